"""WebSocket over real sockets: the upgrade seam, the driver, the ASGI session.

Clients are the ``websockets`` library, wsproto as a client, and raw sockets
for handshakes no library will send. Every network wait has a timeout and
every wait on the server's app is bounded; nothing asserts a duration.
"""

from __future__ import annotations

import asyncio
import base64
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import websockets.exceptions
from websockets.sync.client import ClientConnection, connect
from wsproto import ConnectionType, WSConnection
from wsproto import events as wse

from pounce import Server, ServerBuilder
from pounce.asgi.types import Receive, Scope, Send
from pounce.drivers.http1 import H1Parser
from pounce.testing import TestServer
from tests.integration.test_asgi_http import logged

TIMEOUT = 5.0  # seconds: the bound on every network wait in this module
KEY = base64.b64encode(b"0123456789abcdef").decode()

PARSERS: tuple[H1Parser, ...] = ("fast", "h11")


def builder(parser: H1Parser = "fast", **ws: Any) -> ServerBuilder:
    return (
        Server.builder()
        .bind("127.0.0.1", 0)
        .timeouts(graceful_shutdown=3)
        .h1(parser=parser)
        .websocket(**ws)
    )


class Recorder:
    """What the app saw, for the test thread to read after a bounded wait."""

    def __init__(self) -> None:
        self.messages: list[dict[str, Any]] = []
        self.scopes: list[Scope] = []
        self.done = threading.Event()
        self.errors: list[BaseException] = []


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Echo every message; close with the code a text message ``close:CODE`` names."""
    if scope["type"] == "http":
        body = b"plain http: " + scope["path"].encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    if scope["type"] != "websocket":
        return
    assert (await receive())["type"] == "websocket.connect"
    subprotocol = scope["subprotocols"][0] if scope["subprotocols"] else None
    await send(
        {"type": "websocket.accept", "subprotocol": subprotocol, "headers": [(b"x-ws", b"1")]}
    )
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None and text.startswith("close:"):
            await send({"type": "websocket.close", "code": int(text[6:]), "reason": "bye"})
            return
        await send({"type": "websocket.send", "text": text, "bytes": message.get("bytes")})


@pytest.fixture(params=PARSERS)
def echo_server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    with TestServer(builder(request.param).asgi(echo)) as ts:
        yield ts


def ws_url(ts: TestServer, path: str = "/ws") -> str:
    return f"ws://127.0.0.1:{ts.port}{path}"


def client(ts: TestServer, path: str = "/ws", **kwargs: Any) -> ClientConnection:
    return connect(ws_url(ts, path), open_timeout=TIMEOUT, close_timeout=TIMEOUT, **kwargs)


def raw(ts: TestServer, data: bytes) -> bytes:
    """Send `data`, read until the server closes; the whole answer."""
    with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def handshake(*extra: bytes, key: str = KEY, version: bytes = b"13") -> bytes:
    lines = [
        b"GET /ws HTTP/1.1",
        b"host: t",
        b"upgrade: websocket",
        b"connection: Upgrade",
        b"sec-websocket-key: " + key.encode(),
        b"sec-websocket-version: " + version,
        *extra,
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n"


# -- the happy path -----------------------------------------------------------------------


def test_text_and_binary_echo(echo_server: TestServer) -> None:
    with client(echo_server) as ws:
        ws.send("hello")
        assert ws.recv(timeout=TIMEOUT) == "hello"
        ws.send(b"\x00\xff" * 40_000)
        assert ws.recv(timeout=TIMEOUT) == b"\x00\xff" * 40_000
        assert ws.response.headers["x-ws"] == "1"
        assert ws.response.headers["server"] == "pounce"


def test_fragmented_message_is_reassembled(echo_server: TestServer) -> None:
    with client(echo_server) as ws:
        ws.send(iter(["frag", "ment", "ed"]))
        assert ws.recv(timeout=TIMEOUT) == "fragmented"


def test_subprotocol_is_chosen_from_the_offer(echo_server: TestServer) -> None:
    with client(echo_server, subprotocols=["chat.v2", "chat.v1"]) as ws:  # type: ignore[list-item]
        assert ws.subprotocol == "chat.v2"


def test_permessage_deflate_is_negotiated(echo_server: TestServer) -> None:
    with client(echo_server) as ws:  # websockets offers permessage-deflate by default
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        ws.send("z" * 100_000)
        assert ws.recv(timeout=TIMEOUT) == "z" * 100_000


def test_compression_off_declines_the_offer() -> None:
    with TestServer(builder(per_message_deflate=False).asgi(echo)) as ts, client(ts) as ws:
        assert "sec-websocket-extensions" not in ws.response.headers
        ws.send("plain")
        assert ws.recv(timeout=TIMEOUT) == "plain"


def test_app_close_code_and_reason_reach_the_client(echo_server: TestServer) -> None:
    with client(echo_server) as ws:
        ws.send("close:4001")
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 4001
        assert ws.close_reason == "bye"


def test_wsproto_client_with_bytes_pipelined_behind_the_head(echo_server: TestServer) -> None:
    """The first frame arrives in the same write as the handshake: trailing data is kept."""
    conn = WSConnection(ConnectionType.CLIENT)
    data = conn.send(wse.Request(host="t", target="/ws"))
    with socket.create_connection((echo_server.host, echo_server.port), timeout=TIMEOUT) as sock:
        # Before the 101 the client may not know the extensions: none offered.
        sock.sendall(data)
        events = _read_events(sock, conn, wse.AcceptConnection)
        assert isinstance(events[-1], wse.AcceptConnection)
        sock.sendall(conn.send(wse.TextMessage(data="one")) + conn.send(wse.TextMessage("two")))
        texts = _read_texts(sock, conn, 2)
        assert texts == ["one", "two"]


def test_handshake_and_first_frame_in_one_write(echo_server: TestServer) -> None:
    conn = WSConnection(ConnectionType.CLIENT)
    request = conn.send(wse.Request(host="t", target="/ws"))
    # A client that does not wait for the 101: the frame follows the head at once.
    with socket.create_connection((echo_server.host, echo_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(request + _masked_text_frame(b"early"))
        events = _read_events(sock, conn, wse.TextMessage)
    assert isinstance(events[0], wse.AcceptConnection)
    assert [e.data for e in events if isinstance(e, wse.TextMessage)] == ["early"]


def _masked_text_frame(payload: bytes) -> bytes:
    mask = b"\x01\x02\x03\x04"
    masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return bytes([0x81, 0x80 | len(payload)]) + mask + masked


def _read_events(sock: socket.socket, conn: WSConnection, until: type) -> list[wse.Event]:
    seen: list[wse.Event] = []
    while not any(isinstance(e, until) for e in seen):
        chunk = sock.recv(65536)
        if not chunk:
            break
        conn.receive_data(chunk)
        seen.extend(conn.events())
    return seen


def _read_texts(sock: socket.socket, conn: WSConnection, count: int) -> list[str]:
    texts: list[str] = []
    for event in conn.events():
        if isinstance(event, wse.TextMessage):
            texts.append(event.data)
    while len(texts) < count:
        chunk = sock.recv(65536)
        if not chunk:
            break
        conn.receive_data(chunk)
        texts.extend(e.data for e in conn.events() if isinstance(e, wse.TextMessage))
    return texts


def test_scope_is_a_complete_websocket_scope() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            seen.append(dict(scope))
            await receive()
            await send({"type": "websocket.close"})

    with TestServer(builder().asgi(app)) as ts, pytest.raises(websockets.exceptions.InvalidStatus):
        client(ts, "/chat/room%201?x=1", subprotocols=["a"]).close()  # type: ignore[list-item]
    scope = seen[0]
    assert scope["type"] == "websocket"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/chat/room 1"
    assert scope["raw_path"] == b"/chat/room%201"
    assert scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == ["a"]
    assert scope["http_version"] == "1.1"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert "websocket.http.response" in scope["extensions"]
    assert "method" not in scope
    assert scope["client"][0] == "127.0.0.1"
    assert any(name == b"sec-websocket-key" for name, _ in scope["headers"])


# -- denial, failures ---------------------------------------------------------------------


def test_close_before_accept_is_403() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})

    with TestServer(builder().asgi(app)) as ts:
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            client(ts)
        assert info.value.response.status_code == 403


def test_denial_response_extension() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            headers = [(b"content-type", b"text/plain"), (b"x-why", b"nope")]
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"entry"})

    with TestServer(builder().asgi(app)) as ts:
        answer = raw(ts, handshake())
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 ")
    assert b"x-why: nope" in head
    assert b"connection: close" in head
    assert body == b"no entry"


def test_app_error_before_accept_is_500() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            raise RuntimeError("boom")

    with TestServer(builder().asgi(app)) as ts:
        assert raw(ts, handshake()).startswith(b"HTTP/1.1 500 ")


def test_app_error_after_accept_is_1011() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            await receive()
            raise RuntimeError("boom")

    with TestServer(builder().asgi(app)) as ts, client(ts) as ws:
        ws.send("trigger")
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1011


def test_client_close_code_reaches_the_app() -> None:
    got: list[dict[str, Any]] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            got.append(dict(await receive()))
            done.set()

    with TestServer(builder().asgi(app)) as ts:
        with client(ts) as ws:
            ws.close(4321, "client leaves")
        assert done.wait(TIMEOUT)
    assert got == [{"type": "websocket.disconnect", "code": 4321, "reason": "client leaves"}]


class AcceptAndWait:
    """Accepts, then waits for the disconnect and keeps it (in `ended`)."""

    def __init__(self) -> None:
        self.accepted = threading.Event()
        self.ended: list[dict[str, Any]] = []

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            self.accepted.set()
            self.ended.append(dict(await receive()))


def test_server_shutdown_closes_with_1001() -> None:
    app = AcceptAndWait()
    accepted, ended = app.accepted, app.ended
    ts = TestServer(builder().asgi(app)).start()
    stopper = threading.Thread(target=ts.stop)
    try:
        with client(ts) as ws:
            assert accepted.wait(TIMEOUT)
            stopper.start()
            with pytest.raises(websockets.exceptions.ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
            assert ws.close_code == 1001
    finally:
        if not stopper.is_alive() and stopper.ident is None:
            stopper.start()
        stopper.join(TIMEOUT + 5)
    assert not stopper.is_alive()
    assert ended and ended[0]["code"] == 1001


def test_no_pong_closes_with_1011() -> None:
    """A client that never answers pings (pong replies are switched off) is closed."""
    server = builder(ping_interval=0.05, ping_timeout=0.05).asgi(echo)
    with TestServer(server) as ts:
        conn = WSConnection(ConnectionType.CLIENT)
        with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(conn.send(wse.Request(host="t", target="/ws")))
            events: list[wse.Event] = []
            # Read everything, answer nothing, until the server's close frame.
            while not any(isinstance(e, wse.CloseConnection) for e in events):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                conn.receive_data(chunk)
                events.extend(conn.events())
    closes = [e for e in events if isinstance(e, wse.CloseConnection)]
    assert any(isinstance(e, wse.Ping) for e in events)
    assert closes and closes[0].code == 1011


def test_pongs_keep_the_connection_open() -> None:
    server = builder(ping_interval=0.02, ping_timeout=TIMEOUT).asgi(echo)
    with TestServer(server) as ts, client(ts) as ws:
        for n in range(20):
            ws.send(str(n))
            assert ws.recv(timeout=TIMEOUT) == str(n)


def test_message_over_max_size_closes_with_1009() -> None:
    with TestServer(builder(max_size=1024).asgi(echo)) as ts, client(ts, compression=None) as ws:
        ws.send("x" * 1024)
        assert ws.recv(timeout=TIMEOUT) == "x" * 1024
        ws.send("x" * 1025)
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1009


def test_compressed_message_over_max_size_closes_with_1009() -> None:
    with TestServer(builder(max_size=10_000).asgi(echo)) as ts, client(ts) as ws:
        assert "permessage-deflate" in ws.response.headers["sec-websocket-extensions"]
        ws.send("a" * 10_001)  # compresses to a few bytes
        with pytest.raises(websockets.exceptions.ConnectionClosedError):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1009


def test_max_queue_pauses_reading_and_drops_nothing() -> None:
    release = threading.Event()
    received: list[str] = []
    loop_release: list[asyncio.Event] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        gate = asyncio.Event()
        loop_release.append(gate)
        release.set()
        await asyncio.wait_for(gate.wait(), TIMEOUT)
        while len(received) < 200:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            received.append(message["text"])
        await send({"type": "websocket.send", "text": str(len(received))})

    sent = threading.Semaphore(0)

    def sender(ws: ClientConnection) -> None:
        # Sends block once the server stops reading and the socket buffers fill:
        # a thread of their own, so the app can be released meanwhile.
        for n in range(200):
            ws.send(f"m{n}" + "." * 1000)
            sent.release()

    with TestServer(builder(max_queue=4).asgi(app)) as ts, client(ts) as ws:
        assert release.wait(TIMEOUT)
        thread = threading.Thread(target=sender, args=(ws,), daemon=True)
        thread.start()
        for _ in range(50):  # well past the queue of 4 while the app is not reading
            assert sent.acquire(timeout=TIMEOUT)
        assert ts._loop is not None
        ts._loop.call_soon_threadsafe(loop_release[0].set)
        assert ws.recv(timeout=TIMEOUT) == "200"
        thread.join(TIMEOUT)
    assert received == [f"m{n}" + "." * 1000 for n in range(200)]


# -- bad handshakes (RFC 6455 §4.2.1, CVE-2026-44546) ------------------------------------


def test_bad_key_is_400(echo_server: TestServer) -> None:
    assert raw(echo_server, handshake(key="short")).startswith(b"HTTP/1.1 400 ")


def test_missing_key_is_400(echo_server: TestServer) -> None:
    request = handshake().replace(b"sec-websocket-key: " + KEY.encode() + b"\r\n", b"")
    assert raw(echo_server, request).startswith(b"HTTP/1.1 400 ")


@pytest.mark.parametrize("version", [b"8", b"14", b"13, 8"])
def test_bad_version_is_426_naming_13(echo_server: TestServer, version: bytes) -> None:
    answer = raw(echo_server, handshake(version=version))
    assert answer.startswith(b"HTTP/1.1 426 ")
    assert b"sec-websocket-version: 13\r\n" in answer.lower()


@pytest.mark.parametrize("byte", [b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85", b"\x00"])
def test_header_value_with_line_break_lookalikes_is_400(
    echo_server: TestServer, byte: bytes
) -> None:
    request = handshake(b"x-inject: a" + byte + b"b")
    assert raw(echo_server, request).startswith(b"HTTP/1.1 400 ")


def test_post_upgrade_is_not_a_websocket(echo_server: TestServer) -> None:
    request = handshake().replace(b"GET /ws", b"POST /ws")
    assert raw(echo_server, request).startswith(b"HTTP/1.1 400 ")


# -- the upgrade seam -----------------------------------------------------------------------


@pytest.mark.parametrize("parser", PARSERS)
def test_without_websocket_an_upgrade_request_is_plain_http(parser: H1Parser) -> None:
    server = Server.builder().bind("127.0.0.1", 0).h1(parser=parser).asgi(echo)
    with TestServer(server) as ts:
        answer = raw(ts, handshake().replace(b"\r\n\r\n", b"\r\nconnection: close\r\n\r\n"))
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"plain http: /ws")


def test_other_upgrade_tokens_stay_plain_http(echo_server: TestServer) -> None:
    request = b"GET /x HTTP/1.1\r\nhost: t\r\nupgrade: h2c\r\nconnection: upgrade, close\r\n\r\n"
    answer = raw(echo_server, request)
    assert answer.startswith(b"HTTP/1.1 200 ")
    assert answer.endswith(b"plain http: /x")


def test_websocket_after_a_keep_alive_request(echo_server: TestServer) -> None:
    """An HTTP request, then an upgrade on the same connection, pipelined in one write."""
    conn = WSConnection(ConnectionType.CLIENT)
    first = b"GET /first HTTP/1.1\r\nhost: t\r\n\r\n"
    with socket.create_connection((echo_server.host, echo_server.port), timeout=TIMEOUT) as sock:
        sock.sendall(first + conn.send(wse.Request(host="t", target="/ws")))
        buffer = b""
        while b"plain http: /first" not in buffer:
            chunk = sock.recv(65536)
            assert chunk
            buffer += chunk
        rest = buffer.split(b"plain http: /first", 1)[1]
        if rest:  # (wsproto takes b"" for EOF)
            conn.receive_data(rest)
        events = list(conn.events())
        if not any(isinstance(e, wse.AcceptConnection) for e in events):
            events += _read_events(sock, conn, wse.AcceptConnection)
        assert any(isinstance(e, wse.AcceptConnection) for e in events)
        sock.sendall(conn.send(wse.TextMessage(data="after http")))
        assert _read_texts(sock, conn, 1) == ["after http"]


# -- the ASGI contract ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"type": "websocket.send", "text": "before accept"},
        {"type": "websocket.accept", "subprotocol": "never-offered"},
        {"type": "websocket.accept", "headers": [(b"x-a", b"1\r\nx-b: 2")]},
        {"type": "websocket.http.response.start", "status": 101},
        {"type": "http.response.start", "status": 200},
    ],
    ids=["send-first", "subprotocol", "header-splitting", "denial-101", "http-message"],
)
def test_contract_errors_before_accept_are_500(bad: dict[str, Any]) -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            try:
                await send(bad)
            except Exception as exc:
                errors.append(exc)
                raise

    with TestServer(builder().asgi(app)) as ts:
        assert raw(ts, handshake()).startswith(b"HTTP/1.1 500 ")
    assert [type(e).__name__ for e in errors] == ["ASGIContractError"]


def test_send_needs_exactly_one_of_text_and_bytes() -> None:
    errors: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            try:
                await send({"type": "websocket.send", "text": "a", "bytes": b"b"})
            except Exception as exc:
                errors.append(exc)
                raise

    with TestServer(builder().asgi(app)) as ts, client(ts) as ws:
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1011
    assert [type(e).__name__ for e in errors] == ["ASGIContractError"]


def test_send_after_the_client_left_raises_oserror() -> None:
    raised: list[BaseException] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            assert (await receive())["type"] == "websocket.disconnect"
            try:
                await send({"type": "websocket.send", "text": "too late"})
            except OSError as exc:
                raised.append(exc)
            done.set()

    with TestServer(builder().asgi(app)) as ts:
        with client(ts) as ws:
            ws.close()
        assert done.wait(TIMEOUT)
    assert [type(e).__name__ for e in raised] == ["ClientDisconnectedError"]


# -- access log ----------------------------------------------------------------------------


async def gatekeeper(scope: Scope, receive: Receive, send: Send) -> None:
    """Accepts /ok, closes /no before accepting, denies /deny with 401 and a body, fails /boom."""
    if scope["type"] != "websocket":
        return
    await receive()
    path = scope["path"]
    if path == "/ok":
        await send({"type": "websocket.accept"})
        await send({"type": "websocket.close"})
    elif path == "/no":
        await send({"type": "websocket.close"})
    elif path == "/deny":
        await send({"type": "websocket.http.response.start", "status": 401, "headers": []})
        await send({"type": "websocket.http.response.body", "body": b"nope"})
    else:
        raise RuntimeError("boom")


def test_access_log_has_one_line_per_handshake() -> None:
    server = builder().access_log().asgi(gatekeeper)
    with logged("pounce.access") as log, TestServer(server) as ts:
        with client(ts, "/ok") as ws, pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        for path in ("/no", "/deny", "/boom"):
            raw(ts, handshake().replace(b"GET /ws ", b"GET " + path.encode() + b" "))
        lines = {
            path: log.wait_for(lambda r, p=path: f" {p} " in r.getMessage()).getMessage()
            for path in ("/ok", "/no", "/deny", "/boom")
        }
    assert '"GET /ok HTTP/1.1" 101 0 ' in lines["/ok"]
    assert '"GET /no HTTP/1.1" 403 0 ' in lines["/no"]
    assert '"GET /deny HTTP/1.1" 401 4 ' in lines["/deny"]
    assert '"GET /boom HTTP/1.1" 500 0 ' in lines["/boom"]
