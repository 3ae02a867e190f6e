"""The PROXY protocol layer over real sockets, alone and in front of TLS.

Every bad input is followed by a good request that is still served.
"""

from __future__ import annotations

import logging
import shutil
import signal
import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from pounce import BuildError, Server
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.edge_apps import app
from tests.integration.edge_clients import (
    TIMEOUT,
    cli,
    json_body,
    plain_request,
    proxy_v1,
    proxy_v2,
    read_until_closed,
    tls_request,
    tlv,
)

CLIENT = ("203.0.113.9", 51000)
FRONT = ("198.51.100.7", 443)


@contextmanager
def proxied(
    pki: PKI | None = None,
    trusted: tuple[str, ...] = ("127.0.0.1",),
    loop: Any = "asyncio",
    **options: Any,
) -> Iterator[TestServer]:
    b = Server.builder().bind("127.0.0.1", 0).proxy_protocol(trusted=trusted, **options)
    if pki is not None:
        b = b.tls(cert=str(pki.cert), key=str(pki.key))
    with TestServer(b.h1().asgi(app), loop=loop) as ts:
        yield ts


def good(ts: TestServer) -> None:
    body = json_body(plain_request(ts.port, proxy_v1(CLIENT, FRONT)))
    assert body["client"] == list(CLIENT)


def context(pki: PKI) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))


def test_v1_names_client_and_server(loop_name: str) -> None:
    with proxied(loop=loop_name) as ts:
        body = json_body(plain_request(ts.port, proxy_v1(CLIENT, FRONT)))
        assert body["client"] == list(CLIENT) and body["server"] == list(FRONT)
        assert body["scheme"] == "http"
        body = json_body(plain_request(ts.port, proxy_v1(("2001:db8::9", 7), ("2001:db8::1", 80))))
        assert body["client"] == ["2001:db8::9", 7]


def test_v2_with_tlvs_and_local() -> None:
    tlvs = tlv(0x01, b"http/1.1") + tlv(0x02, b"example.com") + tlv(0x20, b"\x01\0\0\0\0")
    with proxied() as ts:
        body = json_body(plain_request(ts.port, proxy_v2(CLIENT, FRONT, tlvs)))
        assert body["client"] == list(CLIENT)
        assert body["scheme"] == "https"  # PP2_TYPE_SSL: the client spoke TLS to the proxy
        body = json_body(plain_request(ts.port, proxy_v2(None)))  # LOCAL: a health check
        assert body["client"][0] == "127.0.0.1"


@pytest.mark.parametrize(
    "bad",
    [
        b"",  # no header at all: a plain request
        b"PROXY TCP4 not-an-ip 198.51.100.7 1 2\r\n",
        b"PROXY TCP4 203.0.113.9 198.51.100.7 1 2\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c" + bytes(12),
    ],
)
def test_malformed_header_is_closed_unserved(
    bad: bytes, loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="pounce.error")
    with proxied(loop=loop_name) as ts:
        assert plain_request(ts.port, bad) == b""
        good(ts)
    assert any("PROXY protocol: closing" in r.getMessage() for r in caplog.records)


def test_untrusted_source_is_closed_unserved(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pounce.error")
    with proxied(trusted=("127.0.0.2",)) as ts:
        assert plain_request(ts.port, proxy_v1(CLIENT, FRONT)) == b""  # from 127.0.0.1
        body = json_body(plain_request(ts.port, proxy_v1(CLIENT, FRONT), source="127.0.0.2"))
        assert body["client"] == list(CLIENT)
    assert any("not a trusted proxy" in r.getMessage() for r in caplog.records)


def test_stalled_and_abandoned_headers(loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="pounce.error")
    with proxied(header_timeout=0.3, loop=loop_name) as ts:
        with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"PROXY TCP4 203.0")
            assert read_until_closed(sock) == b""
        with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"PROXY TCP4 203.0")  # and hang up mid-header
        good(ts)
    assert any("within 0.3 s" in r.getMessage() for r in caplog.records)


def test_bad_options() -> None:
    with pytest.raises(BuildError, match="header_timeout"):
        Server.builder().proxy_protocol(header_timeout=-1)
    with pytest.raises(BuildError, match="nope"):
        Server.builder().proxy_protocol(trusted=["nope"])
    with pytest.raises(BuildError, match="before every other layer"):
        Server.builder().health().proxy_protocol()


# -- PROXY then TLS on the same connection ---------------------------------------------------


@pytest.mark.parametrize("version", [1, 2])
def test_header_and_client_hello_in_one_segment(pki: PKI, version: int, loop_name: str) -> None:
    header = proxy_v1(CLIENT, FRONT) if version == 1 else proxy_v2(CLIENT, FRONT)
    with proxied(pki, loop=loop_name) as ts:
        body = json_body(tls_request(ts.port, header, context(pki)))
        assert body["client"] == list(CLIENT) and body["scheme"] == "https"
        assert body["tls"]["tls_version"] in (0x0303, 0x0304)


def test_header_then_tls_in_separate_writes(pki: PKI) -> None:
    with proxied(pki) as ts, socket.create_connection(("127.0.0.1", ts.port)) as raw:
        raw.sendall(proxy_v2(CLIENT, FRONT))
        with context(pki).wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            tls.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            body = json_body(read_until_closed(tls))
    assert body["client"] == list(CLIENT)


def test_plain_request_after_header_on_tls_port(pki: PKI, loop_name: str) -> None:
    with proxied(pki, loop=loop_name) as ts:
        assert b"HTTP/1.1" not in plain_request(ts.port, proxy_v1(CLIENT, FRONT))
        assert json_body(tls_request(ts.port, proxy_v1(CLIENT, FRONT), context(pki)))


# -- the CLI: uvloop when installed, and SIGHUP ------------------------------------------------


def test_cli_proxy_protocol_tls_and_sighup_reload(pki: PKI, tmp_path: Path) -> None:
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    flags = ["--proxy-protocol", "--ssl-certfile", str(cert), "--ssl-keyfile", str(key)]
    with cli("edge_apps:app", *flags) as running:
        assert "https://127.0.0.1:" in running.output()
        body = json_body(tls_request(running.port, proxy_v2(CLIENT, FRONT), context(pki)))
        assert body["client"] == list(CLIENT)
        shutil.copy(pki.second_cert, cert)
        shutil.copy(pki.second_key, key)
        running.proc.send_signal(signal.SIGHUP)
        running.wait_for("Reloaded TLS certificate")
        body = json_body(tls_request(running.port, proxy_v1(CLIENT, FRONT), context(pki)))
        end = "-----END CERTIFICATE-----"
        assert body["tls"]["server_cert"] == pki.second_cert.read_text().split(end)[0] + end + "\n"


def test_shutdown_closes_connections_still_in_setup(pki: PKI) -> None:
    """Mid-header and mid-handshake connections have nothing in flight: closed at once."""
    slow = {"header_timeout": 120.0}
    b = Server.builder().bind("127.0.0.1", 0).proxy_protocol(trusted=["127.0.0.1"], **slow)
    b = b.tls(cert=str(pki.cert), key=str(pki.key), handshake_timeout=120.0)
    server = b.timeouts(graceful_shutdown=120.0).h1().asgi(app)
    ts = TestServer(server).start()
    mid_header = socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT)
    mid_header.sendall(b"PROXY TCP4 ")
    mid_handshake = socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT)
    mid_handshake.sendall(proxy_v1(CLIENT, FRONT) + b"\x16\x03\x01")
    json_body(tls_request(ts.port, proxy_v1(CLIENT, FRONT), context(pki)))  # both are waiting
    ts.stop()  # would wait out the 120 s graceful timeout if they were not closed
    for sock in (mid_header, mid_handshake):
        with sock:
            assert read_until_closed(sock) == b""
