"""Fixtures for the edge tests: a trustme PKI on disk, and tools found on PATH."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest
import trustme
from cryptography.hazmat.primitives import serialization


@dataclass(frozen=True)
class PKI:
    """Files of a throw-away PKI: one CA for the server and clients, one nobody trusts."""

    ca: Path
    cert: Path  # server certificate chain
    key: Path
    combined: Path  # key and chain in one file
    client: Path  # client certificate and key, issued by `ca`
    stranger: Path  # client certificate and key from an unknown CA
    stranger_ca: Path
    encrypted_key: Path  # `key` encrypted with PASSWORD
    other_key: Path  # a key that matches no certificate here
    second_cert: Path  # another server certificate (for reloads) and its key
    second_key: Path


PASSWORD = "s3cret"


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PKI:
    root = tmp_path_factory.mktemp("pki")
    ca, other_ca = trustme.CA(), trustme.CA()
    server = ca.issue_cert("localhost", "127.0.0.1", "::1")
    second = ca.issue_cert("localhost", "127.0.0.1", common_name="second")
    client = ca.issue_cert("client@example.com", common_name="alice")
    stranger = other_ca.issue_cert("mallory@example.com", common_name="mallory")
    files = PKI(
        ca=root / "ca.pem",
        cert=root / "server.pem",
        key=root / "server.key",
        combined=root / "server-combined.pem",
        client=root / "client.pem",
        stranger=root / "stranger.pem",
        stranger_ca=root / "stranger-ca.pem",
        encrypted_key=root / "server-encrypted.key",
        other_key=root / "other.key",
        second_cert=root / "second.pem",
        second_key=root / "second.key",
    )
    ca.cert_pem.write_to_path(str(files.ca))
    other_ca.cert_pem.write_to_path(str(files.stranger_ca))
    for blob in server.cert_chain_pems:
        blob.write_to_path(str(files.cert), append=True)
    server.private_key_pem.write_to_path(str(files.key))
    server.private_key_and_cert_chain_pem.write_to_path(str(files.combined))
    client.private_key_and_cert_chain_pem.write_to_path(str(files.client))
    stranger.private_key_and_cert_chain_pem.write_to_path(str(files.stranger))
    for blob in second.cert_chain_pems:
        blob.write_to_path(str(files.second_cert), append=True)
    second.private_key_pem.write_to_path(str(files.second_key))
    stranger.private_key_pem.write_to_path(str(files.other_key))
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    files.encrypted_key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(PASSWORD.encode()),
        )
    )
    return files


def need(tool: str) -> str:
    """The path of `tool`, or skip the test: CI installs it (.ci/run)."""
    path = shutil.which(tool) or shutil.which(tool, path="/usr/sbin:/usr/local/sbin:/sbin")
    if path is None:
        pytest.skip(f"{tool} is not installed (.ci/run installs it with apt-get)")
    return path


@pytest.fixture(params=["asyncio", "uvloop"])
def loop_name(request: pytest.FixtureRequest) -> str:
    """Both event loops: they differ in when a new connection starts reading."""
    from pounce.net.loops import uvloop_installed

    if request.param == "uvloop" and not uvloop_installed():
        pytest.skip("uvloop is not installed")
    return str(request.param)
