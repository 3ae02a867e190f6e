"""WebSocket over HTTP/2 (RFC 8441 extended CONNECT) over real sockets.

The client is `tests.integration.h2ws`: h2 opens the stream, wsproto frames
the messages inside it (no WebSocket library here speaks RFC 8441). The
server side is the same `WebSocketHandler` and ASGI session as over
HTTP/1.1, running on a `StreamTunnel`. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from wsproto.events import BytesMessage, CloseConnection, TextMessage

from pounce import Server, ServerBuilder
from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer
from tests.conformance.h2wire import PROTOCOL_ERROR, Wire, request_headers
from tests.integration.conftest import PKI
from tests.integration.h2ws import H2WebSocket, h2_websocket
from tests.integration.test_asgi_http import logged
from tests.integration.test_websocket import AcceptAndWait, echo, gatekeeper

TIMEOUT = 5.0  # seconds: every wait on the app


def builder(**ws: Any) -> ServerBuilder:
    return (
        Server.builder()
        .bind("127.0.0.1", 0)
        .timeouts(graceful_shutdown=3)
        .h1()
        .h2()
        .websocket(**ws)
    )


@pytest.fixture(scope="module")
def echo_server() -> Iterator[TestServer]:
    with TestServer(builder().asgi(echo)) as ts:
        yield ts


def client(ts: TestServer) -> H2WebSocket:
    return H2WebSocket(ts.port)


# -- negotiation ----------------------------------------------------------------------------


def test_extended_connect_is_advertised_with_websocket(echo_server: TestServer) -> None:
    with client(echo_server) as c:
        assert c.connect_protocol_enabled


def test_not_advertised_without_websocket_and_protocol_is_refused() -> None:
    server = Server.builder().bind("127.0.0.1", 0).h1().h2().asgi(echo)
    with TestServer(server) as ts:
        with client(ts) as c:
            assert not c.connect_protocol_enabled
        # RFC 8441 §3: :protocol before the setting is a malformed request.
        with Wire(ts.port) as wire:
            wire.handshake()
            headers = [*request_headers(b"/ws", b"CONNECT"), (b":protocol", b"websocket")]
            sid = wire.headers(headers)
            wire.expect_error(PROTOCOL_ERROR, stream_id=sid)
            wire.expect_alive()


def test_describe_names_extended_connect() -> None:
    assert "extended CONNECT for websocket" in builder().asgi(echo).describe()
    h2_only = Server.builder().bind("127.0.0.1", 0).h2().asgi(echo)
    assert "extended CONNECT" not in h2_only.describe()


def test_unknown_protocol_is_501_and_the_connection_goes_on(echo_server: TestServer) -> None:
    with client(echo_server) as c:
        sid, status, _ = c.open(protocol=b"chat-over-carrier-pigeon")
        assert status == 501
        c.wait_ended(sid)
        sid, status, _ = c.open()
        assert status == 200
        c.send_text(sid, "still here")
        assert c.receive(sid) == TextMessage(data="still here")


# -- messages ------------------------------------------------------------------------------


def test_text_and_binary_echo(echo_server: TestServer) -> None:
    with client(echo_server) as c:
        sid, status, headers = c.open()
        assert status == 200
        assert (b"x-ws", b"1") in headers
        assert not any(name == b"sec-websocket-accept" for name, _ in headers)  # RFC 8441 §5
        c.send_text(sid, "héllo")
        assert c.receive(sid) == TextMessage(data="héllo")
        c.send_bytes(sid, b"\x00\xff" * 50_000)  # past the 65 535 B stream window
        assert c.receive(sid) == BytesMessage(data=b"\x00\xff" * 50_000)


def test_permessage_deflate_over_http2(echo_server: TestServer) -> None:
    with client(echo_server) as c:
        sid, status, headers = c.open(deflate=True)
        assert status == 200
        assert dict(headers)[b"sec-websocket-extensions"].startswith(b"permessage-deflate")
        for n in range(5):  # context takeover: later messages reuse the window
            c.send_text(sid, "compress me " * 100 + str(n))
            assert c.receive(sid) == TextMessage(data="compress me " * 100 + str(n))


def test_many_websockets_and_plain_requests_share_one_connection(
    echo_server: TestServer,
) -> None:
    with client(echo_server) as c:
        sids = [c.open(f"/ws/{n}".encode())[0] for n in range(5)]
        plain = c.h2.get_next_available_stream_id()
        c.events[plain] = []
        c.h2.send_headers(plain, request_headers(b"/plain"), end_stream=True)
        c._flush()
        for sid in reversed(sids):
            c.send_text(sid, f"to {sid}")
        for sid in sids:
            assert c.receive(sid) == TextMessage(data=f"to {sid}")
        assert c.body(plain) == b"plain http: /plain"


def test_scope_is_a_websocket_scope_over_http2() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            seen.append(dict(scope))
            await receive()
            await send({"type": "websocket.accept", "subprotocol": "b"})
            await send({"type": "websocket.close"})

    with TestServer(builder().asgi(app)) as ts, client(ts) as c:
        sid, status, headers = c.open(
            b"/chat/room%201?x=1", headers=[(b"sec-websocket-protocol", b"a, b")]
        )
        assert status == 200
        assert dict(headers)[b"sec-websocket-protocol"] == b"b"
        assert c.receive_close(sid).code == 1000
    scope = seen[0]
    assert scope["type"] == "websocket"
    assert scope["http_version"] == "2"
    assert scope["scheme"] == "ws"
    assert scope["path"] == "/chat/room 1"
    assert scope["query_string"] == b"x=1"
    assert scope["subprotocols"] == ["a", "b"]
    assert "method" not in scope
    assert (b"host", b"localhost") in scope["headers"]
    assert "websocket.http.response" in scope["extensions"]


# -- closing -----------------------------------------------------------------------------------


def test_close_codes_both_ways(echo_server: TestServer) -> None:
    with client(echo_server) as c:
        sid, _, _ = c.open()
        c.send_text(sid, "close:4000")
        close = c.receive_close(sid)
        assert (close.code, close.reason) == (4000, "bye")
        c.send(sid, close.response(), end_stream=True)
        c.wait_ended(sid)
        assert sid in c.ended  # END_STREAM, not a reset


def test_client_close_and_reset_reach_the_app() -> None:
    got: list[dict[str, Any]] = []
    done = threading.Semaphore(0)

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.accept"})
            got.append(dict(await receive()))
            done.release()

    with TestServer(builder().asgi(app)) as ts, client(ts) as c:
        sid, _, _ = c.open()
        c.send(sid, CloseConnection(code=4321, reason="leaving"))
        assert done.acquire(timeout=TIMEOUT)
        sid, _, _ = c.open()
        c.h2.reset_stream(sid)
        c._flush()
        assert done.acquire(timeout=TIMEOUT)
    assert got[0] == {"type": "websocket.disconnect", "code": 4321, "reason": "leaving"}
    assert got[1]["type"] == "websocket.disconnect" and got[1]["code"] == 1006


def test_close_before_accept_is_403_on_the_stream() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            await send({"type": "websocket.close"})

    with TestServer(builder().asgi(app)) as ts, client(ts) as c:
        sid, status, _ = c.open()
        assert status == 403
        c.wait_ended(sid)


def test_denial_response_over_http2() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            headers = [(b"content-type", b"text/plain"), (b"x-why", b"nope")]
            await send({"type": "websocket.http.response.start", "status": 401, "headers": headers})
            await send({"type": "websocket.http.response.body", "body": b"no ", "more_body": True})
            await send({"type": "websocket.http.response.body", "body": b"entry"})

    with TestServer(builder().asgi(app)) as ts, client(ts) as c:
        sid, status, headers = c.open()
        assert status == 401
        assert (b"x-why", b"nope") in headers
        assert not any(name == b"connection" for name, _ in headers)  # RFC 9113 §8.2.2
        assert c.body(sid) == b"no entry"


def test_app_errors_are_500_before_and_1011_after_accept() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await receive()
            if scope["path"] == "/late":
                await send({"type": "websocket.accept"})
                await receive()
            raise RuntimeError("boom")

    with TestServer(builder().asgi(app)) as ts, client(ts) as c:
        assert c.open(b"/early")[1] == 500
        sid, status, _ = c.open(b"/late")
        assert status == 200
        c.send_text(sid, "trigger")
        assert c.receive_close(sid).code == 1011


def test_server_shutdown_closes_with_1001_and_goaway() -> None:
    app = AcceptAndWait()
    accepted, ended = app.accepted, app.ended
    ts = TestServer(builder().asgi(app)).start()
    stopper = threading.Thread(target=ts.stop)
    try:
        with client(ts) as c:
            sid, _, _ = c.open()
            assert accepted.wait(TIMEOUT)
            stopper.start()
            assert c.receive_close(sid).code == 1001  # the close frame comes first,
            while c.goaway is None:
                c._read()  # then the GOAWAY (after which h2, as a client, sends nothing)
            assert c.goaway.last_stream_id == sid
    finally:
        if stopper.ident is None:
            stopper.start()
        stopper.join(TIMEOUT + 5)
    assert not stopper.is_alive()
    assert ended and ended[0]["code"] == 1001


# -- bad handshakes and limits -------------------------------------------------------------------


@pytest.mark.parametrize("version", [b"8", b"14"])
def test_bad_version_is_426_naming_13(echo_server: TestServer, version: bytes) -> None:
    with client(echo_server) as c:
        _, status, headers = c.open(version=version)
        assert status == 426
        assert (b"sec-websocket-version", b"13") in headers


def test_line_break_lookalike_in_a_header_is_400(echo_server: TestServer) -> None:
    with client(echo_server) as c:
        _, status, _ = c.open(headers=[(b"sec-websocket-protocol", b"a\x0bb")])
        assert status == 400


def test_message_over_max_size_closes_with_1009() -> None:
    with TestServer(builder(max_size=1024).asgi(echo)) as ts, client(ts) as c:
        sid, _, _ = c.open()
        c.send_text(sid, "x" * 1024)
        assert c.receive(sid) == TextMessage(data="x" * 1024)
        c.send_text(sid, "x" * 1025)
        assert c.receive_close(sid).code == 1009


def test_compressed_bomb_over_max_size_closes_with_1009() -> None:
    with TestServer(builder(max_size=10_000).asgi(echo)) as ts, client(ts) as c:
        sid, _, _ = c.open(deflate=True)
        c.send_text(sid, "a" * 100_000)  # a few hundred bytes on the wire
        assert c.receive_close(sid).code == 1009


def test_max_queue_holds_the_window_and_drops_nothing() -> None:
    """A paused app stops the stream's window from being credited; nothing is lost."""
    release: list[asyncio.Event] = []
    accepted = threading.Event()
    received: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()
        await send({"type": "websocket.accept"})
        gate = asyncio.Event()
        release.append(gate)
        accepted.set()
        await asyncio.wait_for(gate.wait(), TIMEOUT * 2)
        while len(received) < 200:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                break
            received.append(message["text"])
        await send({"type": "websocket.send", "text": str(len(received))})

    message = "." * 1000
    with TestServer(builder(max_queue=4).asgi(app)) as ts, client(ts) as c:
        sid, _, _ = c.open()
        assert accepted.wait(TIMEOUT)
        sent = 0
        # Send until the stream's window runs dry: the server stops crediting it.
        while c.h2.local_flow_control_window(sid) > 2000 and sent < 200:
            c.send_text(sid, f"m{sent}{message}")
            sent += 1
        with pytest.raises(TimeoutError):
            c.sock.settimeout(0.5)
            while True:
                c._read()  # no WINDOW_UPDATE for this stream while the app sleeps
        c.sock.settimeout(TIMEOUT)
        assert c.h2.local_flow_control_window(sid) <= 2000
        assert 4 < sent < 200
        assert ts._loop is not None
        ts._loop.call_soon_threadsafe(release[0].set)
        while sent < 200:
            while c.h2.local_flow_control_window(sid) <= 2000:
                c._read()
            c.send_text(sid, f"m{sent}{message}")
            sent += 1
        assert c.receive(sid) == TextMessage(data="200")
    assert received == [f"m{n}{message}" for n in range(200)]


# -- TLS: ALPN h2, then RFC 8441 -------------------------------------------------------------------


def test_wss_over_alpn_h2(pki: PKI) -> None:
    server = builder().tls(cert=str(pki.cert), key=str(pki.key)).asgi(echo)
    with TestServer(server) as ts:
        context = ssl.create_default_context(cafile=str(pki.ca))
        context.set_alpn_protocols(["h2"])
        with h2_websocket(ts.port, tls=context) as c:
            assert c.sock.selected_alpn_protocol() == "h2"  # type: ignore[attr-defined]
            sid, status, _ = c.open()
            assert status == 200
            c.send_text(sid, "secure")
            assert c.receive(sid) == TextMessage(data="secure")


def test_access_log_says_connect_and_200_over_http2() -> None:
    server = builder().access_log().asgi(gatekeeper)
    with logged("pounce.access") as log, TestServer(server) as ts, client(ts) as c:
        assert c.open(b"/ok")[1] == 200
        assert c.open(b"/no")[1] == 403
        ok = log.wait_for(lambda r: " /ok " in r.getMessage()).getMessage()
        no = log.wait_for(lambda r: " /no " in r.getMessage()).getMessage()
    assert '"CONNECT /ok HTTP/2" 200 0 ' in ok
    assert '"CONNECT /no HTTP/2" 403 0 ' in no
