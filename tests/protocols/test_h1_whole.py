"""`FastH1Core.send_whole` is the head then the body with ``end_stream``, in one call.

The driver takes it for the common whole response (one ASGI body message
after the head); everything else goes through `send`, which the differential
tests hold to h11. So here the one call is held to the two (with the
Content-Length the exchange gives a head that has no framing): after the same
request, the same bytes queued and the same state in every slot, the same
events for the request after it, and the same refusal; where the one call
declines (None) it must have changed nothing, for the caller then sends the
two events itself.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pounce.errors import LocalProtocolError
from pounce.protocols.events import Headers, SendData, SendInformational, SendResponse
from pounce.protocols.h1_fast import FastH1Core

REQUESTS = [
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n",
    b"GET / HTTP/1.0\r\n\r\n",
    b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
    b"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n",
    b"CONNECT h:443 HTTP/1.1\r\nHost: h:443\r\n\r\n",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc",
    b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\na",  # body not read to its end
    b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: upgrade\r\n\r\n",
    b"GET / HTTP/1.1\r\nHost: h\r\n\r\nGET /next HTTP/1.1\r\nHost: h\r\n\r\n",  # pipelined
]
NEXT = b"GET /after HTTP/1.1\r\nHost: h\r\n\r\n"

statuses = st.sampled_from([200, 201, 204, 299, 301, 304, 404, 500, 599, 600, 999, 100, 101, 199])
bodies = st.sampled_from([b"", b"x", b"Hello, world!", b"\r\n0\r\n\r\n"])
plain_fields = st.sampled_from(
    [
        (b"content-type", b"text/plain"),
        (b"server", b"pounce"),
        (b"x-empty", b""),
        (b"x-split", b"a\r\nb"),  # response splitting: refused
        (b"transfer-encoding", b"chunked"),
        (b"connection", b"close"),
        (b"connection", b"keep-alive"),
    ]
)


@st.composite
def heads(draw: st.DrawFn) -> tuple[int, Headers, bytes]:
    body = draw(bodies)
    headers: Headers = draw(st.lists(plain_fields, max_size=3))
    length = draw(
        st.sampled_from(
            [None, b"%d" % len(body), b"0%d" % len(body), b"%d" % (len(body) + 1), b"x"]
        )
    )
    if length is not None:
        headers.insert(draw(st.integers(0, len(headers))), (b"content-length", length))
        if draw(st.booleans()):
            headers.append((b"content-length", length))  # twice
    return draw(statuses), headers, body


def fed(request: bytes) -> FastH1Core:
    core = FastH1Core()
    core.receive_data(request)
    return core


def state(core: FastH1Core) -> dict[str, object]:
    return {name: getattr(core, name) for name in FastH1Core.__slots__ if name != "_limits"}


def outcome(action: object) -> tuple[str, object]:
    try:
        return "ok", action()  # type: ignore[operator]
    except LocalProtocolError as exc:
        return "refused", exc.status


@settings(max_examples=400)
@given(st.sampled_from(REQUESTS), heads())
def test_the_one_call_is_the_two_events(request: bytes, head: tuple[int, Headers, bytes]) -> None:
    status, headers, body = head
    one, two = fed(request), fed(request)
    before = state(one)

    whole = outcome(lambda: one.send_whole(status, list(headers), body))
    if whole == ("ok", None):
        assert state(one) == before  # declined: nothing done, the caller sends both
        return

    def both() -> None:
        framed = list(headers)
        if not any(name in (b"content-length", b"transfer-encoding") for name, _ in framed):
            framed.append((b"content-length", b"%d" % len(body)))  # as the exchange adds it
        two.send(SendResponse(stream_id=1, status=status, headers=framed))
        two.send(SendData(stream_id=1, data=body, end_stream=True))

    apart = outcome(both)
    if whole[0] == "refused":
        assert apart == whole
        assert one.data_to_send() == two.data_to_send()
    else:
        assert apart == ("ok", None)
        written = whole[1]
        assert isinstance(written, bytes)
        assert written + one.data_to_send() == two.data_to_send()  # nothing left queued
        assert one.receive_data(NEXT) == two.receive_data(NEXT)
    assert state(one) == state(two)


def test_the_common_response_takes_the_one_call() -> None:
    core = fed(REQUESTS[0])
    headers = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
    assert core.send_whole(200, headers, b"Hello, world!") == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"
    )
    assert core.data_to_send() == b""
    assert core.idle


def test_a_head_without_framing_gets_the_body_length() -> None:
    core = fed(REQUESTS[0])
    assert core.send_whole(200, [(b"content-type", b"text/plain")], b"Hello, world!") == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n\r\nHello, world!"
    )
    assert core.idle
    assert fed(REQUESTS[0]).send_whole(204, [], b"") is None  # no body, no length: declined


def test_a_connection_that_closes_takes_the_one_call_and_says_so() -> None:
    core = fed(REQUESTS[1])  # Connection: close
    assert core.send_whole(200, [(b"content-type", b"text/plain")], b"Hello, world!") == (
        b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 13\r\n"
        b"connection: close\r\n\r\nHello, world!"
    )
    assert core.must_close and not core.idle
    assert core.peer_finished()  # it said it was the last: no lingering close
    with pytest.raises(LocalProtocolError):
        core.send(SendData(stream_id=1, data=b"more", end_stream=True))


def test_what_was_queued_before_leaves_first() -> None:
    core = fed(REQUESTS[0])
    core.send(SendInformational(stream_id=1, status=103, headers=[(b"link", b"</a>")]))
    written = core.send_whole(200, [(b"content-length", b"1")], b"x")
    assert written == (
        b"HTTP/1.1 103 Early Hints\r\nlink: </a>\r\n\r\n"
        b"HTTP/1.1 200 OK\r\ncontent-length: 1\r\n\r\nx"
    )
    assert core.data_to_send() == b""


@pytest.mark.parametrize(
    ("request_bytes", "status", "headers", "why"),
    [
        (REQUESTS[0], 200, [(b"transfer-encoding", b"chunked")], "framed by the app, chunked"),
        (REQUESTS[0], 200, [(b"connection", b"close")], "a Connection field"),
        (REQUESTS[0], 200, [(b"content-length", b"12")], "a length that is not the body's"),
        (REQUESTS[0], 204, [(b"content-length", b"13")], "a status without a body"),
        (REQUESTS[2], 200, [(b"content-length", b"13")], "an HTTP/1.0 client"),
        (REQUESTS[4], 200, [(b"content-length", b"13")], "a HEAD"),
        (REQUESTS[7], 200, [(b"content-length", b"13")], "a body not read to its end"),
    ],
)
def test_the_one_call_declines_off_its_path(
    request_bytes: bytes, status: int, headers: Headers, why: str
) -> None:
    core = fed(request_bytes)
    assert core.send_whole(status, headers, b"Hello, world!") is None, why
    assert core.data_to_send() == b""
