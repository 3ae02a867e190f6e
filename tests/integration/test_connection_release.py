"""A closed connection's objects are freed by reference counting, not left for the collector.

A reference cycle among a connection's objects (adapter → bridge → driver →
adapter) keeps all of them — the core, its buffers, the timers — alive until
the cyclic garbage collector finds them, and makes the collections that do
come more frequent and longer: on a stream of short connections that is a
few per cent of the server's work and memory that grows between
collections. So the cycles are broken when a connection is lost. With the
collector off, nothing of a closed connection may remain.

Every protocol is checked with real clients, ending each way it ends: the
client closes, the server closes (a response with ``Connection: close``, an
HTTP/2 GOAWAY when the keep-alive time runs out, a WebSocket the app
closes), the app fails, a protocol error, and for WebSocket the ping and the
close handshake. On failure the message names the objects the collector
would have had to free. (Python 3.11's own asyncio socket transport keeps a
cycle of its own, python/cpython#106503, fixed in 3.12; it holds nothing of
Pounce's once the connection is lost, so it is not counted here.)
"""

from __future__ import annotations

import contextlib
import gc
import logging
import socket
import time
from collections import Counter
from collections.abc import Callable, Iterator

import h2.config
import h2.connection
import h2.events
import httpx
import pytest
import websockets.exceptions
from hyperframe.frame import GoAwayFrame
from websockets.sync.client import connect
from wsproto.events import CloseConnection, TextMessage

from pounce.asgi.session import WebSocketSession
from pounce.asgi.types import Receive, Scope, Send
from pounce.drivers.bridge import ProtocolBridge
from pounce.drivers.http import HTTPDriver
from pounce.drivers.tunnel import StreamTunnel
from pounce.drivers.websocket import WebSocketHandler
from pounce.net.transport import TransportAdapter
from pounce.protocols.h1_fast import FastH1Core
from pounce.protocols.h2 import H2Core
from pounce.protocols.ws import WebSocketCore
from pounce.testing import TestServer
from tests.conformance.h2wire import Wire
from tests.integration.h2ws import H2WebSocket, StreamClosed

TIMEOUT = 5.0  # seconds: every network wait
CONNECTION_TYPES = (
    TransportAdapter,
    ProtocolBridge,
    HTTPDriver,  # and HTTP2Driver
    FastH1Core,
    H2Core,
    h2.connection.H2Connection,  # the server's (`H2Core._conn`); clients' are not counted
    WebSocketHandler,
    WebSocketSession,
    WebSocketCore,
    StreamTunnel,
)


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """HTTP: ``/fail`` fails before answering, ``/fail-late`` after a part of the body; WebSocket:
    echo, ``/close`` closed by the app after its accept, ``/fail`` fails after it."""
    if scope["type"] == "websocket":
        await websocket(scope, receive, send)
        return
    if scope["type"] != "http":
        return
    if scope["path"] == "/fail":
        raise RuntimeError("the app fails (a test)")
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] == "/fail-late":
        await send({"type": "http.response.body", "body": b"a part", "more_body": True})
        raise RuntimeError("the app fails after starting (a test)")
    await send({"type": "http.response.body", "body": b"hello"})


async def websocket(scope: Scope, receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    if scope["path"] == "/close":
        await send({"type": "websocket.close", "code": 1000})
        return
    if scope["path"] == "/fail":
        raise RuntimeError("the app fails (a test)")
    while (message := await receive())["type"] == "websocket.receive":
        await send({"type": "websocket.send", "text": message.get("text") or ""})


def is_pounces(o: object) -> bool:
    module = type(o).__dict__.get("__module__") if type(o) is not type else None
    return isinstance(module, str) and module.startswith("pounce.")


def is_servers(o: object) -> bool:
    # The clients in this process use h2 too: only the server's h2 connection is
    # Pounce's subclass. (Checked first: `isinstance` fails on a dead weak proxy.)
    return is_pounces(o) and isinstance(o, CONNECTION_TYPES)


def alive() -> int:
    """Connection objects still in memory (tracked by the collector, not collected)."""
    return sum(is_servers(o) for o in gc.get_objects())


def left_for_the_collector() -> Counter[str]:
    """Pounce's objects that only the collector could free now, by type (the message)."""
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        gc.collect()
        return Counter(
            f"{type(o).__module__}.{type(o).__qualname__}" for o in gc.garbage if is_pounces(o)
        )
    finally:
        gc.set_debug(0)
        gc.garbage.clear()


@pytest.fixture
def collector_off() -> Iterator[None]:
    # pytest's log capture keeps every record, and a record of a bad request holds
    # the exception, whose traceback holds the connection: not what is tested here.
    logger = logging.getLogger("pounce.error")
    disabled, logger.disabled = logger.disabled, True
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        logger.disabled = disabled


def read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def wait_until_released(before: int) -> int:
    """The count of connection objects once the server has let go (or after 5 s)."""
    deadline = time.monotonic() + 5
    while (now := alive()) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    return now


def assert_released(before: int) -> None:
    now = wait_until_released(before)
    assert now == before, f"left for the collector: {dict(left_for_the_collector())}"


CLIENTS = {
    # The client asks for the close: the server closes at once.
    "client-close": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    # HTTP/1.0: the server closes, then lingers until the client's FIN.
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    # A bad request: 400, the server closes and lingers.
    "bad-request": b"GET / HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.usefixtures("collector_off")
def test_closed_connections_leave_nothing_for_the_collector(client: str, loop_name: str) -> None:
    with TestServer(hello, loop=loop_name, http2=True) as ts:  # type: ignore[arg-type]
        before = alive()
        for _ in range(5):
            with socket.create_connection((ts.host, ts.port), timeout=5) as sock:
                sock.sendall(CLIENTS[client])
                assert read_all(sock).startswith(b"HTTP/1.")
        assert_released(before)


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.usefixtures("collector_off")
def test_keep_alive_connections_the_client_closes_leave_nothing(loop_name: str) -> None:
    with TestServer(hello, loop=loop_name, http2=True) as ts:  # type: ignore[arg-type]
        before = alive()
        for _ in range(5):
            with socket.create_connection((ts.host, ts.port), timeout=5) as sock:
                for _ in range(2):
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert_released(before)


# -- HTTP/2, TLS, WebSocket: each way a connection ends ---------------------------------------

Client = Callable[[TestServer], None]


def h2_httpx(path: str = "/", *, status: int = 200) -> Client:
    """httpx over HTTP/2 (prior knowledge on cleartext, ALPN over TLS); the client closes."""

    def run(ts: TestServer) -> None:
        with ts.client(http2=True) as client:
            for _ in range(2):
                response = client.get(path)
                assert (response.http_version, response.status_code) == ("HTTP/2", status)

    return run


def h2_stream_reset(ts: TestServer) -> None:
    """The app fails after its response started: RST_STREAM, the connection goes on."""
    with ts.client(http2=True) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            client.get("/fail-late")
        assert client.get("/").status_code == 200


def h2_goaway(ts: TestServer) -> None:
    """The server ends an idle connection: GOAWAY when its keep-alive time runs out."""
    with Wire(ts.port) as wire:
        wire.handshake()
        sid = wire.headers()
        wire.response(sid)
        goaway = wire.expect(GoAwayFrame)
        assert isinstance(goaway, GoAwayFrame) and goaway.error_code == 0
        assert not list(wire.frames())  # then it closes


def h2_connection_error(ts: TestServer) -> None:
    """A protocol error: GOAWAY PROTOCOL_ERROR, the server closes."""
    with Wire(ts.port) as wire:
        wire.handshake()
        wire.send(b"\x00\x00\x00\x00\x00\x00\x00\x00\x02")  # DATA on stream 2 (even: ours)
        goaway = wire.expect(GoAwayFrame)
        assert isinstance(goaway, GoAwayFrame) and goaway.error_code != 0


def h2c_upgrade(ts: TestServer) -> None:
    """``Upgrade: h2c`` from HTTP/1.1: the bridge switches drivers mid-connection."""
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    settings = conn.initiate_upgrade_connection()
    assert settings is not None
    head = (
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\n"
        b"upgrade: h2c\r\nhttp2-settings: " + settings.rstrip(b"=") + b"\r\n\r\n"
    )
    with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = sock.recv(65536)
            assert chunk, "closed before the 101"
            data += chunk
        assert data.startswith(b"HTTP/1.1 101 ")
        sock.sendall(conn.data_to_send())
        rest = data.partition(b"\r\n\r\n")[2]
        while not any(isinstance(e, h2.events.StreamEnded) for e in conn.receive_data(rest)):
            rest = sock.recv(65536)
            assert rest, "closed before stream 1 ended"
        conn.close_connection()
        sock.sendall(conn.data_to_send())


def h1_tls(ts: TestServer) -> None:
    """HTTP/1.1 over TLS: a keep-alive connection the client closes, then one the server
    closes (``Connection: close``)."""
    with ts.client(http2=False) as client:
        assert client.get("/").http_version == "HTTP/1.1"
        assert client.get("/", headers={"connection": "close"}).status_code == 200


def ws_client(path: str = "/") -> Client:
    """websockets over HTTP/1.1 (or TLS): echo, ping and the client's close handshake;
    on ``/close`` and ``/fail`` the server closes."""

    def run(ts: TestServer) -> None:
        with connect(ts.ws_url + path, ssl=ts.ssl_context(), open_timeout=TIMEOUT) as ws:
            if path == "/":
                ws.send("hi")
                assert ws.recv(timeout=TIMEOUT) == "hi"
                assert ws.ping().wait(TIMEOUT)
            else:
                with pytest.raises(websockets.exceptions.ConnectionClosed):
                    ws.recv(timeout=TIMEOUT)

    return run


def ws_dropped(ts: TestServer) -> None:
    """The client goes without a close frame: the app hears 1006."""
    with connect(ts.ws_url + "/", open_timeout=TIMEOUT) as ws:
        ws.send("hi")
        assert ws.recv(timeout=TIMEOUT) == "hi"
        ws.socket.shutdown(socket.SHUT_RDWR)


def h2_ws(path: bytes = b"/", *, end: str = "close") -> Client:
    """WebSocket over HTTP/2 (RFC 8441): `end` is the client's close handshake
    (``close``), a reset stream (``reset``) or the connection dropped (``drop``);
    on ``/close`` and ``/fail`` the server closes."""

    def run(ts: TestServer) -> None:
        context = ts.ssl_context()
        if context is not None:
            context.set_alpn_protocols(["h2"])
        with H2WebSocket(ts.port, tls=context) as client:
            sid, status, _ = client.open(path)
            assert status == 200
            if path != b"/":
                with contextlib.suppress(StreamClosed):
                    client.receive_close(sid)
                return
            client.send_text(sid, "hi")
            assert isinstance(client.receive(sid), TextMessage)
            if end == "close":
                client.send(sid, CloseConnection(code=1000))
                client.receive_close(sid)
            elif end == "reset":
                client.h2.reset_stream(sid)
                client._flush()
                client.open(path)  # the connection goes on
            # "drop": the socket closes with the stream open

    return run


CASES: dict[str, tuple[Client, dict[str, object]]] = {
    "h2c-client-closes": (h2_httpx(), {}),
    "h2-tls-client-closes": (h2_httpx(), {"tls": True}),
    "h2c-app-fails": (h2_httpx("/fail", status=500), {}),
    "h2c-stream-reset": (h2_stream_reset, {}),
    "h2c-goaway": (h2_goaway, {"timeout_keep_alive": 0.2}),
    "h2c-connection-error": (h2_connection_error, {}),
    "h2c-upgrade": (h2c_upgrade, {}),
    "h1-tls": (h1_tls, {"tls": True}),
    "ws-client-closes": (ws_client(), {}),
    "ws-tls-client-closes": (ws_client(), {"tls": True}),
    "ws-server-closes": (ws_client("/close"), {}),
    "ws-app-fails": (ws_client("/fail"), {}),
    "ws-dropped": (ws_dropped, {}),
    "ws-h2-client-closes": (h2_ws(), {}),
    "ws-h2-tls-client-closes": (h2_ws(), {"tls": True}),
    "ws-h2-server-closes": (h2_ws(b"/close"), {}),
    "ws-h2-app-fails": (h2_ws(b"/fail"), {}),
    "ws-h2-stream-reset": (h2_ws(end="reset"), {}),
    "ws-h2-dropped": (h2_ws(end="drop"), {}),
}


@pytest.mark.parametrize("case", sorted(CASES))
@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.usefixtures("collector_off")
def test_every_protocol_leaves_nothing_for_the_collector(case: str, loop_name: str) -> None:
    client, options = CASES[case]
    with TestServer(hello, loop=loop_name, http2=True, **options) as ts:  # type: ignore[arg-type]
        before = alive()
        for _ in range(3):
            client(ts)
        assert_released(before)
