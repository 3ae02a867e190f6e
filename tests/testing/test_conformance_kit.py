"""The conformance kit over every built-in layer and protocol, and every recipe.

Each (subject, check) pair is its own test, so a failure names both; every
built-in passes every check.

TLS cannot finish a handshake in memory, so the kit checks what it can
(``admits=False``) and `test_tls_passes_shutdown_inward_over_a_real_socket`
covers the rest over a real socket.
"""

from __future__ import annotations

import base64
import importlib
import socket
import ssl
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trustme

from pounce import Server
from pounce.drivers.bridge import ProtocolFactory
from pounce.drivers.http1 import HTTP1Protocol
from pounce.drivers.http2 import HTTP2Protocol
from pounce.drivers.websocket import WebSocketProtocol
from pounce.layers.compression import Compression
from pounce.layers.health import Health
from pounce.layers.limit import ConcurrencyLimit
from pounce.layers.metrics import MetricsEndpoint
from pounce.layers.proxy.headers import ProxyHeadersLayer
from pounce.layers.proxy.protocol import ProxyProtocolLayer
from pounce.layers.rate_limit import RateLimit
from pounce.layers.static import Static
from pounce.layers.tls.config import TLSConfig
from pounce.layers.tls.layer import TLSLayer
from pounce.protocols.h2 import PREFACE
from pounce.testing import (
    APP_LAYER_CHECKS,
    PROTOCOL_CHECKS,
    STREAM_LAYER_CHECKS,
    TestServer,
    check_app_layer,
    check_bad_options,
    check_protocol,
    check_stream_layer,
)

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
HERE = str(Path(__file__).resolve().parent)  # a directory for the static layer to serve
if str(RECIPES) not in sys.path:
    sys.path.insert(0, str(RECIPES))
add_header = importlib.import_module("add_header")
connection_cap = importlib.import_module("connection_cap")
line_echo = importlib.import_module("line_echo")
upgrade_echo = importlib.import_module("upgrade_echo")

TIMEOUT = 5.0  # seconds, for every network wait


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, trustme.CA]:
    ca = trustme.CA()
    path = tmp_path_factory.mktemp("kit-tls") / "server.pem"
    ca.issue_cert("localhost", "127.0.0.1").private_key_and_cert_chain_pem.write_to_path(str(path))
    return str(path), ca


def _tls_layer(cert_file: str) -> TLSLayer:
    return TLSLayer(TLSConfig(cert=cert_file), ("h2", "http/1.1"))


# -- stream layers --------------------------------------------------------------------------

PROXY_V1 = b"PROXY TCP4 192.0.2.1 127.0.0.1 56324 8000\r\n"
PROXY_V2 = (
    b"\r\n\r\n\x00\r\nQUIT\n"  # signature
    + b"\x21\x11\x00\x0c"  # v2 PROXY, TCP over IPv4, 12 bytes of addresses
    + bytes([192, 0, 2, 1, 127, 0, 0, 1])
    + (56324).to_bytes(2, "big")
    + (8000).to_bytes(2, "big")
)


@dataclass(frozen=True)
class StreamCase:
    make: Callable[[str], Any]  # the cert file → a layer
    options: dict[str, Any] = field(default_factory=dict)


STREAM_CASES = {
    "connection_cap recipe": StreamCase(lambda _: connection_cap.ConnectionCap(2)),
    "proxy protocol v1": StreamCase(
        lambda _: ProxyProtocolLayer(),
        {
            "preamble": PROXY_V1,
            "refused": [b"GET / HTTP/1.1\r\n\r\n", b"PROXY TCP9 192.0.2.1 127.0.0.1 1 2\r\n"],
        },
    ),
    "proxy protocol v2": StreamCase(
        lambda _: ProxyProtocolLayer(["127.0.0.0/8"], header_timeout=1.0),
        {"preamble": PROXY_V2, "refused": [b"\r\n\r\n\x00\r\nQUIT\n\x99" + bytes(15)]},
    ),
    "proxy protocol, untrusted peer": StreamCase(
        lambda _: ProxyProtocolLayer(),
        {"client": ("203.0.113.9", 50000), "admits": False},
    ),
    "tls": StreamCase(_tls_layer, {"admits": False}),
}


def _pairs(cases: dict[str, Any], checks: tuple[str, ...]) -> list[Any]:
    return [pytest.param(name, check, id=f"{name}-{check}") for name in cases for check in checks]


@pytest.mark.parametrize(("name", "check"), _pairs(STREAM_CASES, STREAM_LAYER_CHECKS))
def test_stream_layer(name: str, check: str, cert: tuple[str, trustme.CA]) -> None:
    case = STREAM_CASES[name]
    check_stream_layer(lambda: case.make(cert[0]), checks=[check], **case.options)


# -- app layers -------------------------------------------------------------------------------


@dataclass(frozen=True)
class AppCase:
    make: Callable[[], Any]
    options: dict[str, Any] = field(default_factory=dict)


APP_CASES = {
    "add_header recipe": AppCase(lambda: add_header.AddHeader(b"x-served-by", b"kit")),
    "proxy headers": AppCase(ProxyHeadersLayer),
    "proxy headers, forwarded": AppCase(
        lambda: ProxyHeadersLayer(["127.0.0.1"]),
        {"headers": [(b"x-forwarded-for", b"203.0.113.9"), (b"x-forwarded-proto", b"https")]},
    ),
    # Two places: the kit holds two requests at once.
    "concurrency limit": AppCase(lambda: ConcurrencyLimit(max_in_flight=2)),
    "concurrency limit, queue": AppCase(lambda: ConcurrencyLimit(max_in_flight=2, queue=4)),
    "rate limit": AppCase(lambda: RateLimit(rate="1000/s")),
    "health": AppCase(Health),
    "metrics endpoint": AppCase(lambda: MetricsEndpoint("/metrics", lambda: b"up 1\n")),
    # The kit compares bodies byte for byte: its clients accept no coding (identity), so
    # the layer's negotiation, decision and pass-through run; tests/layers/test_compression.py
    # checks the encoded bodies.
    "compression": AppCase(Compression, {"headers": [(b"accept-encoding", b"identity")]}),
    "compression, inflating requests": AppCase(
        lambda: Compression(minimum_size=0, algorithms=("gzip",), decompress_requests=True)
    ),
    # Mounted at /: the kit's /kit is a miss in this folder, so it reaches the app.
    "static": AppCase(lambda: Static("/", HERE)),
    "static, a file's prefix": AppCase(lambda: Static("/kit", HERE)),
}


@pytest.mark.parametrize(("name", "check"), _pairs(APP_CASES, APP_LAYER_CHECKS))
def test_app_layer(name: str, check: str) -> None:
    case = APP_CASES[name]
    check_app_layer(case.make, checks=[check], **case.options)


# -- protocols ----------------------------------------------------------------------------------

WS_HEADERS = [
    (b"sec-websocket-key", base64.b64encode(b"conformance-kit!")),
    (b"sec-websocket-version", b"13"),
]
HTTP_GREETING = b"GET / HTTP/1.1\r\nhost: kit.test\r\n\r\n"

PROTOCOL_CASES: dict[str, tuple[ProtocolFactory, dict[str, Any]]] = {
    "http/1.1 fast": (HTTP1Protocol(), {"greeting": HTTP_GREETING}),
    "http/1.1 h11": (HTTP1Protocol(parser="h11"), {"greeting": HTTP_GREETING}),
    "h2": (HTTP2Protocol(), {"greeting": PREFACE, "upgrade_headers": [(b"http2-settings", b"")]}),
    "h2 with tunnels": (HTTP2Protocol().with_tunnels((b"websocket",)), {"greeting": PREFACE}),
    "websocket": (WebSocketProtocol(), {"upgrade_headers": WS_HEADERS}),
    "line_echo recipe": (line_echo.LineEcho(), {"greeting": b"hello\n"}),
    "upgrade_echo recipe": (upgrade_echo.UpgradeEcho(), {"upgrade_target": b"/echo"}),
}


@pytest.mark.parametrize("check", PROTOCOL_CHECKS)
@pytest.mark.parametrize("name", PROTOCOL_CASES)
def test_protocol(name: str, check: str) -> None:
    factory, options = PROTOCOL_CASES[name]
    check_protocol(factory, checks=[check], **options)


# -- bad options fail at build -----------------------------------------------------------------


def _builder() -> Any:
    return Server.builder().bind("127.0.0.1", 0)


BAD_OPTIONS: dict[str, tuple[Callable[[Any], object], list[Any], list[Any]]] = {
    "ConnectionCap": (connection_cap.ConnectionCap, [0, -1, "2", 1.5], [1]),
    "AddHeader name": (lambda v: add_header.AddHeader(v, b"1"), [b"", b"a b", b"a:"], [b"x-a"]),
    "LineEcho": (lambda v: line_echo.LineEcho(max_line=v), [0, -1, "9"], [1]),
    "UpgradeEcho": (lambda v: upgrade_echo.UpgradeEcho(path=v), [b"", b"echo", "/echo"], [b"/"]),
    "ProxyProtocolLayer": (lambda v: ProxyProtocolLayer([v]), ["nope", "10.0.0.0/33"], ["*"]),
    "ProxyHeadersLayer": (lambda v: ProxyHeadersLayer([v]), ["nope", "1.2.3"], ["unix"]),
    ".proxy_protocol(header_timeout=)": (
        lambda v: _builder().proxy_protocol(header_timeout=v),
        [0, -1.0, float("inf"), "5"],
        [0.5],
    ),
    ".tls(cert=)": (lambda v: _builder().tls(cert=v), ["", "/nonexistent/cert.pem"], []),
    ".h1(parser=)": (lambda v: _builder().h1(parser=v), ["slow", ""], ["h11"]),
    "ConcurrencyLimit": (
        lambda v: ConcurrencyLimit(max_in_flight=v),
        [0, -1, "2", 1.5, True, None],
        [1, 1000],
    ),
    "RateLimit rate": (lambda v: RateLimit(rate=v), ["", "5", "0/s", "5/y", 5, None], ["1/h"]),
    ".rate_limit(burst=)": (
        lambda v: _builder().rate_limit(rate="5/s", burst=v),
        [0, -1, "3", 2.5],
        [1, None],
    ),
    "Health": (lambda v: Health(live=v), ["", "livez", 5, None, "/readyz"], ["/alive"]),
    ".compress(algorithms=)": (
        lambda v: _builder().compress(algorithms=v),
        ["", "lzma", ["gzip", "gzip"], 5, ["br", 1]],
        [None, "gzip", ["br", "gzip"]],
    ),
    ".compress(gzip_level=)": (
        lambda v: _builder().compress(gzip_level=v),
        [0, 10, "6", 2.5],
        [1, 9],
    ),
    ".compress(brotli_level=)": (lambda v: _builder().compress(brotli_level=v), [-1, 12], [0, 11]),
    ".compress(zstd_level=)": (lambda v: _builder().compress(zstd_level=v), [0, 23, True], [1, 22]),
    ".compress(minimum_size=)": (lambda v: _builder().compress(minimum_size=v), [-1, "5"], [0]),
    ".compress(max_request_size=)": (
        lambda v: _builder().compress(max_request_size=v),
        [0, -5, 1.5],
        [1],
    ),
    "Static prefix": (lambda v: Static(v, HERE), ["", "assets", "//x", "/a/../b", None, 5], ["/a"]),
    "Static directory": (
        lambda v: Static("/a", v),
        ["", "/nonexistent/dir", None, __file__],
        [HERE],
    ),
    ".static(max_ranges=)": (
        lambda v: _builder().static("/a", HERE, max_ranges=v),
        [0, -1, "3", 1.5, 101],
        [1, 100],
    ),
    ".static(chunk_size=)": (
        lambda v: _builder().static("/a", HERE, chunk_size=v),
        [0, 1023, "x"],
        [4096],
    ),
    ".static(max_age=)": (
        lambda v: _builder().static("/a", HERE, max_age=v),
        [-1, 1.5, "x"],
        [0, None],
    ),
    ".limit(queue_timeout=)": (
        lambda v: _builder().limit(max_in_flight=1, queue=1, queue_timeout=v),
        [0, -1.0, float("inf"), float("nan"), "5"],
        [0.5, 30],
    ),
}


@pytest.mark.parametrize("name", BAD_OPTIONS)
def test_bad_options_fail_at_build(name: str) -> None:
    build, bad, good = BAD_OPTIONS[name]
    check_bad_options(build, bad, good_values=good)


# -- what the kit cannot see in memory: TLS over a real socket ------------------------------------


def _tls_client(ca: trustme.CA, ts: TestServer) -> ssl.SSLSocket:
    context = ssl.create_default_context()
    ca.configure_trust(context)
    raw = socket.create_connection((ts.host, ts.port), timeout=TIMEOUT)
    return context.wrap_socket(raw, server_hostname="localhost")


def _read_then_close(sock: socket.socket, seen: dict[str, float]) -> None:
    """Read to EOF (a reset counts), note when, and close: a client that answers a close."""
    with sock:
        try:
            while sock.recv(65536):
                pass
        except (ConnectionResetError, ssl.SSLError):
            pass
        seen[threading.current_thread().name] = time.monotonic()


def test_tls_passes_shutdown_inward_over_a_real_socket(cert: tuple[str, trustme.CA]) -> None:
    """An idle keep-alive connection behind TLS is closed at once when the server stops
    (``begin_shutdown`` reached the HTTP driver through the TLS layer), and so is one
    still in its handshake: neither waits out the graceful timeout."""

    async def app(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})

    server = Server.builder().bind("127.0.0.1", 0).tls(cert=cert[0]).h1().asgi(app)
    seen: dict[str, float] = {}
    with TestServer(server) as ts:
        idle = _tls_client(cert[1], ts)
        idle.sendall(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
        assert idle.recv(65536).startswith(b"HTTP/1.1 200")
        handshaking = socket.create_connection((ts.host, ts.port), timeout=TIMEOUT)
        readers = [
            threading.Thread(target=_read_then_close, args=(sock, seen), name=name)
            for name, sock in (("idle", idle), ("handshaking", handshaking))
        ]
        for reader in readers:
            reader.start()
        time.sleep(0.1)  # both connections are the server's by now
        started = time.monotonic()
    for reader in readers:
        reader.join(TIMEOUT)
    assert sorted(seen) == ["handshaking", "idle"]
    assert max(seen.values()) - started < TIMEOUT  # not the 30 s graceful timeout
    assert time.monotonic() - started < TIMEOUT
