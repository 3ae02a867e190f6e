"""The TLS and proxy flags of the CLI, their POUNCE_* twins, and systemd socket activation."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import pytest

from pounce.cli import build_parser, options_from
from pounce.layers.proxy.headers import ProxyHeadersLayer
from pounce.layers.proxy.protocol import ProxyProtocolLayer
from pounce.layers.tls.layer import TLSLayer
from pounce.net.binds import systemd_fds
from pounce.presets import StandardOptions, standard
from tests.integration.conftest import PKI
from tests.integration.edge_apps import app
from tests.integration.edge_clients import (
    HERE,
    TIMEOUT,
    Running,
    cli,
    json_body,
    read_until_closed,
)

FLAGS = [
    "--ssl-certfile",
    "--ssl-keyfile",
    "--ssl-keyfile-password",
    "--ssl-version",
    "--ssl-cert-reqs",
    "--ssl-ca-certs",
    "--ssl-ciphers",
    "--ssl-handshake-timeout",
    "--proxy-headers",
    "--no-proxy-headers",
    "--forwarded-allow-ips",
    "--proxy-protocol",
]


def test_help_lists_every_edge_flag() -> None:
    text = build_parser().format_help()
    for flag in FLAGS:
        assert flag in text


def test_flags_reach_the_stack(pki: PKI) -> None:
    args = build_parser().parse_args(
        ["m:app", "--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key),
         "--ssl-cert-reqs", "2", "--ssl-ca-certs", str(pki.ca), "--ssl-version", "1.3",
         "--proxy-headers", "--proxy-protocol", "--forwarded-allow-ips", "10.0.0.0/8, unix"]
    )  # fmt: skip
    options = options_from(args)
    assert options.forwarded_allow_ips == ("10.0.0.0/8", "unix")
    spec = standard(options).asgi(app).spec
    proxy, tls = spec.stream_layers
    assert isinstance(proxy, ProxyProtocolLayer) and isinstance(tls, TLSLayer)
    assert tls.config.client_certs == "required" and tls.config.ca == str(pki.ca)
    assert tls.config.min_version == ssl.TLSVersion.TLSv1_3
    assert isinstance(spec.app_layers[0], ProxyHeadersLayer)  # outside the access log
    assert spec.app_layers[0].trusted.entries == ("10.0.0.0/8", "unix")


def test_environment_twins(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POUNCE_SSL_CERTFILE", str(pki.combined))
    monkeypatch.setenv("POUNCE_SSL_CERT_REQS", "optional")
    monkeypatch.setenv("POUNCE_PROXY_HEADERS", "true")
    monkeypatch.setenv("POUNCE_FORWARDED_ALLOW_IPS", "*")
    options = options_from(build_parser().parse_args(["m:app"]))
    assert options.ssl_certfile == str(pki.combined)
    assert options.ssl_cert_reqs == "optional"
    assert options.proxy_headers and options.forwarded_allow_ips == ("*",)
    monkeypatch.delenv("POUNCE_FORWARDED_ALLOW_IPS")
    monkeypatch.setenv("FORWARDED_ALLOW_IPS", "10.1.2.3")  # Uvicorn's variable
    assert options_from(build_parser().parse_args(["m:app"])).forwarded_allow_ips == ("10.1.2.3",)


def test_defaults_trust_forwarded_headers_from_loopback_only() -> None:
    spec = standard(StandardOptions()).asgi(app).spec
    assert spec.stream_layers == ()  # no TLS, no PROXY protocol unless asked
    layers = [layer for layer in spec.app_layers if isinstance(layer, ProxyHeadersLayer)]
    assert len(layers) == 1, "proxy headers are on by default, as in Uvicorn"
    assert layers[0].describe() == "proxy headers (trusted 127.0.0.1, ::1)"
    off = standard(StandardOptions(proxy_headers=False)).asgi(app).spec
    assert not any(isinstance(layer, ProxyHeadersLayer) for layer in off.app_layers)


def test_bad_certificate_exits_2_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pem"
    proc = subprocess.run(
        [sys.executable, "-m", "pounce", "edge_apps:app", "--app-dir", str(HERE),
         "--ssl-certfile", str(missing)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 2
    assert str(missing) in proc.stderr and "not found" in proc.stderr


def test_cli_serves_tls(pki: PKI) -> None:
    flags = ["--ssl-certfile", str(pki.cert), "--ssl-keyfile", str(pki.key)]
    with cli("edge_apps:app", *flags) as running:
        assert "https://127.0.0.1:" in running.output()
        context = ssl.create_default_context(cafile=str(pki.ca))
        raw = socket.create_connection(("127.0.0.1", running.port), timeout=TIMEOUT)
        with context.wrap_socket(raw, server_hostname="localhost") as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert json_body(read_until_closed(sock))["scheme"] == "https"


# -- systemd socket activation ------------------------------------------------------------------


def test_systemd_fds() -> None:
    me = os.getpid()
    assert systemd_fds({"LISTEN_FDS": "2", "LISTEN_PID": str(me)}) == (3, 4)
    assert systemd_fds({"LISTEN_FDS": "1", "LISTEN_PID": str(me + 1)}) == ()  # not for us
    assert systemd_fds({"LISTEN_FDS": "x", "LISTEN_PID": str(me)}) == ()
    assert systemd_fds({}) == ()


# What systemd does between fork and exec: the socket on fd 3, LISTEN_PID the new pid.
ACTIVATE = """\
import os, sys
os.dup2(int(sys.argv[1]), 3)
os.environ["LISTEN_FDS"] = "1"
os.environ["LISTEN_PID"] = str(os.getpid())
os.execv(sys.executable, [sys.executable, "-m", "pounce", *sys.argv[2:]])
"""


def test_socket_activation_serves_the_passed_socket() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", ACTIVATE, str(listener.fileno()), "--app-dir", str(HERE),
         "edge_apps:app", "--lifespan", "off"],
        pass_fds=[listener.fileno()], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    listener.close()  # the server holds it now
    running = Running(proc)
    try:
        assert running._started.wait(15), running.output()
        assert running.port == port, running.output()
        with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /sd HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            assert json_body(read_until_closed(sock))["path"] == "/sd"
    finally:
        proc.terminate()
        proc.wait(TIMEOUT)
