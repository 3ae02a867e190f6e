"""`peer_finished`: when both HTTP/1.1 cores say the client sends nothing more.

The driver closes without a lingering close only when this is true (RFC
9112 §9.6), so every case where the client may still send — keep-alive, a
body not read to its end, bytes after the request, a close that was our
idea, HTTP/1.0 — must say False. Bytes in, the flag out.
"""

from __future__ import annotations

import pytest

from pounce.errors import RemoteProtocolError
from pounce.protocols.base import ProtocolCore
from pounce.protocols.events import Headers, RequestReceived, SendData, SendResponse
from pounce.protocols.h1 import H11Core
from pounce.protocols.h1_fast import FastH1Core

CORES = {"fast": FastH1Core, "h11": H11Core}
GET_CLOSE = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
GET = b"GET / HTTP/1.1\r\nhost: t\r\n\r\n"


def answer(core: ProtocolCore, data: bytes, headers: Headers | None = None) -> ProtocolCore:
    """Feed `data`, answer its first request with a 2-byte body."""
    events = core.receive_data(data)
    stream_id = next(e.stream_id for e in events if isinstance(e, RequestReceived))
    head = [(b"content-length", b"2"), *(headers or [])]
    core.send(SendResponse(stream_id=stream_id, status=200, headers=head))
    core.send(SendData(stream_id=stream_id, data=b"ok", end_stream=True))
    core.data_to_send()
    return core


@pytest.fixture(params=sorted(CORES))
def core(request: pytest.FixtureRequest) -> ProtocolCore:
    made: ProtocolCore = CORES[request.param]()
    return made


def test_a_whole_request_that_said_close(core: ProtocolCore) -> None:
    assert answer(core, GET_CLOSE).peer_finished()
    assert core.must_close


def test_close_among_other_connection_tokens(core: ProtocolCore) -> None:
    data = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: TE, Close\r\nte: trailers\r\n\r\n"
    assert answer(core, data).peer_finished()


def test_a_post_that_said_close_and_came_whole(core: ProtocolCore) -> None:
    data = b"POST / HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-length: 3\r\n\r\nabc"
    assert answer(core, data).peer_finished()


def test_keep_alive(core: ProtocolCore) -> None:
    assert not answer(core, GET).peer_finished()
    assert not core.must_close


def test_bytes_after_the_last_request(core: ProtocolCore) -> None:
    """A client that breaks its promise, or a stray CRLF: their reset must not come."""
    assert not answer(core, GET_CLOSE + GET).peer_finished()
    assert not answer(type(core)(), GET_CLOSE + b"\r\n").peer_finished()


def test_a_body_not_read_to_its_end(core: ProtocolCore) -> None:
    data = b"POST / HTTP/1.1\r\nhost: t\r\nconnection: close\r\ncontent-length: 10\r\n\r\nabc"
    assert not answer(core, data).peer_finished()
    assert core.must_close


def test_a_close_that_was_ours(core: ProtocolCore) -> None:
    """The app (or a draining server) said close: the client may be sending its next."""
    assert not answer(core, GET, [(b"connection", b"close")]).peer_finished()
    assert core.must_close


def test_http_1_0_lingers_either_way(core: ProtocolCore) -> None:
    assert not answer(core, b"GET / HTTP/1.0\r\nhost: t\r\n\r\n").peer_finished()
    plain = b"GET / HTTP/1.0\r\nhost: t\r\nconnection: keep-alive\r\n\r\n"
    assert not answer(type(core)(), plain).peer_finished()


def test_a_broken_request(core: ProtocolCore) -> None:
    with pytest.raises(RemoteProtocolError):
        core.receive_data(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\nbad header\r\n\r\n")
    assert not core.peer_finished()


def test_nothing_received_yet(core: ProtocolCore) -> None:
    assert not core.peer_finished()
    core.receive_data(b"GET / HTTP/1.1\r\nhost: t\r\nconnection: cl")
    assert not core.peer_finished()
