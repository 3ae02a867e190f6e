"""The HTTP/1.1 core without I/O: bytes in, events out, against h11's own client.

Every request is produced by ``h11.Connection(h11.CLIENT)`` (or written by hand
where it must be malformed) and every response the core writes is parsed back
by that client, so both directions are checked against the reference peer.
"""

from __future__ import annotations

from dataclasses import dataclass

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pounce.errors import LocalProtocolError, RemoteProtocolError
from pounce.protocols import h1
from pounce.protocols.events import (
    CloseConnection,
    ConnectionLost,
    DataReceived,
    Headers,
    InboundEvent,
    OutboundEvent,
    RejectRequest,
    RequestReceived,
    ResetStream,
    SendData,
    SendDataAside,
    SendInformational,
    SendResponse,
    SendTrailers,
    StreamEnded,
    UpgradeRequested,
)
from pounce.protocols.h1 import H1Limits, H11Core
from pounce.protocols.h1_fast import FastH1Core

# RFC 9110 statuses the core may answer malformed input with (501: a
# Transfer-Encoding other than chunked, RFC 9112 §6.1).
WIRE_ERROR_STATUSES = {400, 413, 414, 431, 501, 505}


def request_bytes(
    method: bytes = b"GET",
    target: bytes = b"/",
    headers: Headers | None = None,
    body: bytes | None = None,
    *,
    chunks: list[bytes] | None = None,
    http_version: bytes = b"1.1",
) -> bytes:
    """One request as h11's client writes it."""
    client = h11.Connection(h11.CLIENT)
    all_headers: Headers = [(b"host", b"example.com"), *(headers or [])]
    if body is not None:
        all_headers.append((b"content-length", b"%d" % len(body)))
    elif chunks is not None:
        all_headers.append((b"transfer-encoding", b"chunked"))
    out = client.send(
        h11.Request(method=method, target=target, headers=all_headers, http_version=http_version)
    )
    for part in chunks or ([body] if body else []):
        out += client.send(h11.Data(data=part))
    out += client.send(h11.EndOfMessage())
    return out


def merge_data(events: list[InboundEvent]) -> list[InboundEvent]:
    """Join adjacent DataReceived of a stream: how bytes are split must not matter."""
    merged: list[InboundEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if (
            isinstance(event, DataReceived)
            and isinstance(last, DataReceived)
            and last.stream_id == event.stream_id
        ):
            merged[-1] = DataReceived(stream_id=event.stream_id, data=last.data + event.data)
        elif not (isinstance(event, DataReceived) and not event.data):
            merged.append(event)
    return merged


@dataclass
class Pair:
    """The core under test and an h11 client that reads what it writes."""

    core: H11Core
    client: h11.Connection

    @classmethod
    def new(cls, limits: H1Limits | None = None) -> Pair:
        return cls(H11Core(limits), h11.Connection(h11.CLIENT))

    def send_request(self, *events: h11.Event) -> list[InboundEvent]:
        data = b"".join(self.client.send(event) or b"" for event in events)
        return self.core.receive_data(data)

    def respond(self, *events: OutboundEvent) -> list[object]:
        for event in events:
            self.core.send(event)
        return self.client_events()

    def client_events(self) -> list[object]:
        self.client.receive_data(self.core.data_to_send())
        out: list[object] = []
        while True:
            event = self.client.next_event()
            if event is h11.NEED_DATA or event is h11.PAUSED:
                return out
            out.append(event)
            if isinstance(event, h11.ConnectionClosed):
                return out


def ok(stream_id: int, body: bytes = b"ok") -> tuple[SendResponse, SendData]:
    head = SendResponse(
        stream_id=stream_id, status=200, headers=[(b"content-length", b"%d" % len(body))]
    )
    return head, SendData(stream_id=stream_id, data=body, end_stream=True)


def feed_error(data: bytes, limits: H1Limits | None = None) -> RemoteProtocolError:
    core = H11Core(limits)
    with pytest.raises(RemoteProtocolError) as info:
        core.receive_data(data)
    return info.value


# -- requests in --------------------------------------------------------------------------


def test_simple_get() -> None:
    pair = Pair.new()
    events = pair.send_request(
        h11.Request(method="GET", target="/a?b=1", headers=[("Host", "x"), ("X-Y", "Z")]),
        h11.EndOfMessage(),
    )
    assert events == [
        RequestReceived(
            stream_id=1,
            method=b"GET",
            target=b"/a?b=1",
            headers=[(b"host", b"x"), (b"x-y", b"Z")],
            http_version="1.1",
            has_body=False,
        ),  # complete with its head: no StreamEnded for a request without a body
    ]
    assert not pair.core.idle


def test_post_with_content_length() -> None:
    pair = Pair.new()
    events = pair.send_request(
        h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "5")]),
    )
    assert isinstance(events[0], RequestReceived)
    assert events[0].has_body
    assert pair.core.receive_data(b"hel") == [DataReceived(stream_id=1, data=b"hel")]
    assert pair.core.receive_data(b"lo") == [
        DataReceived(stream_id=1, data=b"lo"),
        StreamEnded(stream_id=1),
    ]


def test_chunked_body() -> None:
    pair = Pair.new()
    events = pair.send_request(
        h11.Request(
            method="POST", target="/", headers=[("host", "x"), ("transfer-encoding", "chunked")]
        ),
        h11.Data(data=b"abc"),
        h11.Data(data=b"defg"),
        h11.EndOfMessage(headers=[("x-trailer", "1")]),
    )
    assert isinstance(events[0], RequestReceived)
    assert events[0].has_body
    assert merge_data(events[1:]) == [
        DataReceived(stream_id=1, data=b"abcdefg"),
        StreamEnded(stream_id=1),
    ]


def test_zero_content_length_declares_no_body() -> None:
    events = H11Core().receive_data(request_bytes(b"POST", body=b""))
    assert isinstance(events[0], RequestReceived)
    assert not events[0].has_body
    assert events[1:] == []  # complete with its head


def test_http_1_0_request() -> None:
    core = H11Core()
    events = core.receive_data(b"GET /old HTTP/1.0\r\n\r\n")
    assert events == [
        RequestReceived(
            stream_id=1,
            method=b"GET",
            target=b"/old",
            headers=[],
            http_version="1.0",
            has_body=False,
        ),
    ]
    core.send(SendResponse(stream_id=1, status=200, headers=[]))
    core.send(SendData(stream_id=1, data=b"hi", end_stream=True))
    out = core.data_to_send()
    assert out.startswith(b"HTTP/1.1 200 OK\r\n")
    assert out.endswith(b"\r\n\r\nhi")  # no chunked framing for a 1.0 client
    assert core.must_close  # no keep-alive asked for


def test_http_1_0_keep_alive_is_declined() -> None:
    # h11 never keeps an HTTP/1.0 connection open (RFC 9112 §9.3 lets a server
    # close); the response says so, so the client does not wait for more.
    core = H11Core()
    core.receive_data(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
    core.send(SendResponse(stream_id=1, status=200, headers=[(b"content-length", b"2")]))
    core.send(SendData(stream_id=1, data=b"hi", end_stream=True))
    assert b"connection: close\r\n" in core.data_to_send().lower()
    assert core.must_close


def test_stream_ids_count_up_and_keep_alive_reuses_the_connection() -> None:
    pair = Pair.new()
    for stream_id in (1, 2, 3):
        events = pair.send_request(
            h11.Request(method="GET", target=f"/{stream_id}", headers=[("host", "x")]),
            h11.EndOfMessage(),
        )
        assert [type(e) for e in events] == [RequestReceived]
        assert all(e.stream_id == stream_id for e in events)
        response = pair.respond(*ok(stream_id, b"r%d" % stream_id))
        assert isinstance(response[0], h11.Response)
        assert response[0].status_code == 200
        assert isinstance(response[1], h11.Data)
        assert response[1].data == b"r%d" % stream_id
        assert not pair.core.must_close
        assert pair.core.idle
        pair.client.start_next_cycle()


def test_pipelined_request_waits_for_the_response() -> None:
    core = H11Core()
    data = request_bytes(target=b"/1") + request_bytes(b"POST", b"/2", body=b"xyz")
    events = core.receive_data(data)
    assert [type(e) for e in events] == [RequestReceived]
    assert core.read_paused
    # Nothing more comes out while the first response is unfinished.
    assert core.receive_data(b"") == []
    core.send(SendResponse(stream_id=1, status=200, headers=[(b"content-length", b"1")]))
    assert core.receive_data(b"") == []
    core.send(SendData(stream_id=1, data=b"a", end_stream=True))
    events = core.receive_data(b"")
    assert isinstance(events[0], RequestReceived)
    assert events[0].stream_id == 2
    assert events[0].target == b"/2"
    assert events[1:] == [DataReceived(stream_id=2, data=b"xyz"), StreamEnded(stream_id=2)]
    assert not core.read_paused


def test_partial_pipelined_head_makes_the_core_not_idle() -> None:
    core = H11Core()
    core.receive_data(request_bytes() + b"GET /next HT")
    core.send(SendResponse(stream_id=1, status=204, headers=[]))
    core.send(SendData(stream_id=1, data=b"", end_stream=True))
    assert core.receive_data(b"") == []
    assert not core.idle  # the next head has begun: the driver's head timer applies
    events = core.receive_data(b"TP/1.1\r\nhost: x\r\n\r\n")
    assert isinstance(events[0], RequestReceived)
    assert events[0].target == b"/next"


def test_expect_100_continue() -> None:
    pair = Pair.new()
    events = pair.send_request(
        h11.Request(
            method="PUT",
            target="/",
            headers=[("host", "x"), ("content-length", "2"), ("expect", "100-continue")],
        )
    )
    assert isinstance(events[0], RequestReceived)
    assert events[0].expects_continue
    replies = pair.respond(SendInformational(stream_id=1, status=100))
    assert len(replies) == 1
    assert isinstance(replies[0], h11.InformationalResponse)
    assert replies[0].status_code == 100
    assert pair.send_request(h11.Data(data=b"ab"), h11.EndOfMessage()) == [
        DataReceived(stream_id=1, data=b"ab"),
        StreamEnded(stream_id=1),
    ]
    response = pair.respond(*ok(1))
    assert isinstance(response[0], h11.Response)
    assert not pair.core.must_close


def test_no_100_once_the_body_is_on_its_way() -> None:
    # RFC 9110 §10.1.1: a server may omit the 100 once content has arrived.
    core = H11Core()
    events = core.receive_data(
        request_bytes(b"PUT", headers=[(b"expect", b"100-continue")], body=b"ab")
    )
    assert isinstance(events[0], RequestReceived)
    assert events[0].expects_continue
    core.send(SendInformational(stream_id=1, status=100))
    assert core.data_to_send() == b""
    core.send(SendInformational(stream_id=1, status=103))
    assert core.data_to_send().startswith(b"HTTP/1.1 103 Early Hints\r\n")


def test_expect_is_ignored_for_http_1_0() -> None:
    core = H11Core()
    events = core.receive_data(
        b"PUT / HTTP/1.0\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\n"
    )
    assert isinstance(events[0], RequestReceived)
    assert not events[0].expects_continue
    core.send(SendInformational(stream_id=1, status=100))
    core.send(SendInformational(stream_id=1, status=103))
    assert core.data_to_send() == b""


def test_early_hints_go_out_before_the_response() -> None:
    pair = Pair.new()
    pair.send_request(
        h11.Request(method="GET", target="/", headers=[("host", "x")]), h11.EndOfMessage()
    )
    replies = pair.respond(
        SendInformational(stream_id=1, status=103, headers=[(b"link", b"</a.css>; rel=preload")]),
        *ok(1),
    )
    assert isinstance(replies[0], h11.InformationalResponse)
    assert replies[0].status_code == 103
    assert (b"link", b"</a.css>; rel=preload") in list(replies[0].headers)
    assert isinstance(replies[1], h11.Response)


# -- responses out --------------------------------------------------------------------------


def test_head_response_carries_no_body() -> None:
    pair = Pair.new()
    pair.send_request(
        h11.Request(method="HEAD", target="/", headers=[("host", "x")]), h11.EndOfMessage()
    )
    pair.core.send(SendResponse(stream_id=1, status=200, headers=[(b"content-length", b"10")]))
    pair.core.send(SendData(stream_id=1, data=b"", end_stream=True))
    raw = pair.core.data_to_send()
    assert raw.endswith(b"\r\n\r\n")
    assert b"content-length: 10" in raw
    assert not pair.core.must_close


def test_chunked_response_and_trailers() -> None:
    pair = Pair.new()
    pair.send_request(
        h11.Request(method="GET", target="/", headers=[("host", "x")]), h11.EndOfMessage()
    )
    events = pair.respond(
        SendResponse(stream_id=1, status=200, headers=[(b"trailer", b"x-sum")]),
        SendData(stream_id=1, data=b"ab"),
        SendData(stream_id=1, data=b"cd"),
        SendTrailers(stream_id=1, headers=[(b"x-sum", b"4")]),
    )
    response = events[0]
    assert isinstance(response, h11.Response)
    assert (b"transfer-encoding", b"chunked") in list(response.headers)
    assert [e.data for e in events[1:3] if isinstance(e, h11.Data)] == [b"ab", b"cd"]
    end = events[3]
    assert isinstance(end, h11.EndOfMessage)
    assert list(end.headers) == [(b"x-sum", b"4")]
    assert pair.core.idle


def test_connection_close_from_the_client_means_must_close() -> None:
    pair = Pair.new()
    pair.send_request(
        h11.Request(method="GET", target="/", headers=[("host", "x"), ("connection", "close")]),
        h11.EndOfMessage(),
    )
    assert not pair.core.must_close
    events = pair.respond(*ok(1))
    response = events[0]
    assert isinstance(response, h11.Response)
    assert (b"connection", b"close") in list(response.headers)
    assert pair.core.must_close


def test_connection_close_from_the_app_means_must_close() -> None:
    pair = Pair.new()
    pair.send_request(
        h11.Request(method="GET", target="/", headers=[("host", "x")]), h11.EndOfMessage()
    )
    pair.core.send(
        SendResponse(
            stream_id=1, status=200, headers=[(b"connection", b"close"), (b"content-length", b"0")]
        )
    )
    pair.core.send(SendData(stream_id=1, data=b"", end_stream=True))
    assert pair.core.must_close


def test_response_before_the_body_was_read_means_must_close() -> None:
    pair = Pair.new()
    events = pair.send_request(
        h11.Request(method="POST", target="/", headers=[("host", "x"), ("content-length", "100")]),
        h11.Data(data=b"only part"),
    )
    assert [type(e) for e in events] == [RequestReceived, DataReceived]
    pair.respond(*ok(1))
    assert pair.core.must_close
    assert not pair.core.idle


def test_reset_and_close_connection_mean_must_close() -> None:
    for event in (ResetStream(stream_id=1), CloseConnection()):
        core = H11Core()
        core.receive_data(request_bytes())
        core.send(SendResponse(stream_id=1, status=200, headers=[]))
        core.send(event)
        assert core.must_close


def test_reject_request_writes_a_complete_response() -> None:
    core = H11Core()
    core.send(RejectRequest(stream_id=0, status=400, headers=[(b"server", b"pounce")]))
    assert core.must_close
    client = h11.Connection(h11.CLIENT)
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(core.data_to_send())
    response = client.next_event()
    assert isinstance(response, h11.Response)
    assert response.status_code == 400
    assert response.reason == b"Bad Request"
    headers = dict(response.headers)
    assert headers[b"connection"] == b"close"
    assert headers[b"server"] == b"pounce"
    assert headers[b"content-type"] == b"text/plain; charset=utf-8"
    body = client.next_event()
    assert isinstance(body, h11.Data)
    assert body.data == b"Bad Request\n"
    assert isinstance(client.next_event(), h11.EndOfMessage)
    assert core.data_to_send() == b""


def test_app_breaking_framing_is_a_local_error() -> None:
    core = H11Core()
    core.receive_data(request_bytes())
    core.send(SendResponse(stream_id=1, status=200, headers=[(b"content-length", b"1")]))
    with pytest.raises(LocalProtocolError):
        core.send(SendData(stream_id=1, data=b"too long"))
    assert core.must_close


def test_invalid_response_header_is_a_local_error() -> None:
    core = H11Core()
    core.receive_data(request_bytes())
    with pytest.raises(LocalProtocolError):
        core.send(SendResponse(stream_id=1, status=200, headers=[(b"bad name", b"x")]))


def test_a_refused_head_is_refused_every_time() -> None:
    """The memo of response heads keeps only heads h11 accepted."""
    headers: Headers = [(b"content-length", b"1"), (b"content-length", b"2")]
    for _ in range(2):
        core = H11Core()
        core.receive_data(request_bytes())
        with pytest.raises(LocalProtocolError):
            core.send(SendResponse(stream_id=1, status=200, headers=headers))
    assert all(key[1:] != tuple(headers) for key in h1._RESPONSES)


def test_a_repeated_head_is_built_once_and_stays_per_connection() -> None:
    """A memoized head carries nothing of the connection that sent it first:
    h11 still frames it and adds ``connection: close`` per client."""
    headers: Headers = [(b"content-type", b"text/plain"), (b"x-memo-test", b"1")]
    assert h1._response(200, headers) is h1._response(200, list(headers))
    heads = []
    bodies = []
    for version in (b"1.1", b"1.0"):
        core = H11Core()
        core.receive_data(b"GET / HTTP/" + version + b"\r\nhost: x\r\n\r\n")
        core.send(SendResponse(stream_id=1, status=200, headers=headers))
        core.send(SendData(stream_id=1, data=b"ok", end_stream=True))
        head, _, body = core.data_to_send().partition(b"\r\n\r\n")
        heads.append(head.lower().split(b"\r\n"))
        bodies.append(body)
    keep_alive, http10 = heads
    assert bodies == [b"2\r\nok\r\n0\r\n\r\n", b"ok"]
    assert b"transfer-encoding: chunked" in keep_alive
    assert b"connection: close" not in keep_alive
    assert b"connection: close" in http10
    assert not any(line.startswith(b"transfer-encoding") for line in http10)
    assert b"x-memo-test: 1" in keep_alive and b"x-memo-test: 1" in http10


def test_the_memo_of_heads_is_bounded() -> None:
    for i in range(h1._MEMO_RESPONSES + 10):
        h1._response(200, [(b"x-count", b"%d" % i)])
        assert len(h1._RESPONSES) <= h1._MEMO_RESPONSES


def test_an_unhashable_field_is_judged_by_h11_without_the_memo() -> None:
    pair = Pair.new()
    pair.send_request(
        h11.Request(method=b"GET", target=b"/", headers=[(b"host", b"x")]), h11.EndOfMessage()
    )
    headers = [[b"content-length", b"2"]]  # a list: not hashable, still a pair to h11
    events = pair.respond(
        SendResponse(stream_id=1, status=200, headers=headers),  # type: ignore[arg-type]
        SendData(stream_id=1, data=b"ok", end_stream=True),
    )
    assert isinstance(events[0], h11.Response)
    assert dict(events[0].headers)[b"content-length"] == b"2"


def test_eof_between_requests_is_connection_lost() -> None:
    core = H11Core()
    assert core.receive_eof() == [ConnectionLost(stream_id=0)]
    assert core.must_close


@pytest.mark.parametrize("factory", [H11Core, FastH1Core], ids=["h11", "fast"])
def test_eof_after_a_whole_request_is_connection_lost(factory: type) -> None:
    """A FIN cannot tell a closed client from a half-closed one: taken as gone."""
    core = factory()
    core.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n\r\nabc")
    assert core.receive_eof() == [ConnectionLost(stream_id=1)]
    assert core.must_close


def test_eof_mid_request_is_connection_lost_not_an_error() -> None:
    core = H11Core()
    core.receive_data(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\nabc")
    assert core.receive_eof() == [ConnectionLost(stream_id=1)]


@pytest.mark.parametrize(
    "first",
    [
        pytest.param(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", id="close"),
        pytest.param(b"GET / HTTP/1.0\r\n\r\n", id="http-1.0"),
    ],
)
def test_bytes_after_a_closing_request_are_ignored(first: bytes) -> None:
    # RFC 9112 §9.6: the server "MUST NOT process any further requests"; the
    # request that asked to close still gets its answer, not a 400.
    core = H11Core()
    events = core.receive_data(first + request_bytes(target=b"/ignored"))
    assert [type(e) for e in events] == [RequestReceived]
    assert core.read_paused
    assert core.receive_data(b"more") == []
    core.send(SendResponse(stream_id=1, status=200, headers=[(b"content-length", b"0")]))
    core.send(SendData(stream_id=1, data=b"", end_stream=True))
    assert core.data_to_send().startswith(b"HTTP/1.1 200 OK\r\n")
    assert core.must_close


def test_upgrade_request_pauses_only_with_bytes_behind_it() -> None:
    core = H11Core()
    upgrade = request_bytes(headers=[(b"connection", b"upgrade"), (b"upgrade", b"websocket")])
    core.receive_data(upgrade)
    assert not core.read_paused  # nothing held back yet
    assert core.receive_data(b"GET /next") == []
    assert core.read_paused


def test_upgrade_request_answered_normally_keeps_the_connection() -> None:
    core = H11Core()
    events = core.receive_data(
        request_bytes(headers=[(b"connection", b"upgrade"), (b"upgrade", b"websocket")])
    )
    # The switch is proposed as an event; a driver with no protocol for it
    # answers the request inside as plain HTTP.
    assert [type(e) for e in events] == [UpgradeRequested]
    core.send(SendResponse(stream_id=1, status=404, headers=[(b"content-length", b"0")]))
    core.send(SendData(stream_id=1, data=b"", end_stream=True))
    assert not core.must_close
    assert core.idle


# -- bad input ----------------------------------------------------------------------------


def test_long_request_target_is_414() -> None:
    limits = H1Limits(max_request_line=100)
    assert feed_error(request_bytes(target=b"/" + b"a" * 100), limits).status == 414
    assert H11Core(limits).receive_data(request_bytes(target=b"/" + b"a" * 60))


def test_request_line_counts_the_method_too() -> None:
    limits = H1Limits(max_request_line=100)
    assert (
        feed_error(request_bytes(method=b"M" * 80, target=b"/" + b"a" * 15), limits).status == 414
    )


def test_request_line_longer_than_the_head_limit_is_414() -> None:
    # No line end within the whole buffered head: h11 says 431, we say 414.
    error = feed_error(b"GET /" + b"a" * (20 * 1024))
    assert error.status == 414


def test_huge_headers_are_431() -> None:
    data = b"GET / HTTP/1.1\r\nhost: x\r\n" + b"x-big: " + b"a" * (17 * 1024) + b"\r\n\r\n"
    assert feed_error(data).status == 431
    # The limit is configurable.
    small = H1Limits(max_incomplete_event_size=1024)
    assert feed_error(request_bytes(headers=[(b"x-big", b"a" * 1100)]), small).status == 431


def test_http_2_request_line_is_505() -> None:
    assert feed_error(b"GET / HTTP/2.0\r\nhost: x\r\n\r\n").status == 505
    assert feed_error(b"GET / HTTP/0.9\r\n\r\n").status == 505


@pytest.mark.parametrize(
    "data",
    [
        pytest.param(b"GET\r\n\r\n", id="no-target"),
        pytest.param(b"GET / HTTP/1.1 extra\r\nhost: x\r\n\r\n", id="extra-token"),
        pytest.param(b"G(T / HTTP/1.1\r\nhost: x\r\n\r\n", id="bad-method"),
        pytest.param(b"GET / HTTP/1.1\r\nho(st: x\r\n\r\n", id="bad-header-name"),
        pytest.param(b"GET / HTTP/1.1\r\nhost : x\r\n\r\n", id="space-before-colon"),
        pytest.param(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n 2\r\n\r\n", id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n\t2\r\n\r\n", id="obs-fold-tab"),
        pytest.param(b"GET / HTTP/1.1\r\n host: x\r\n\r\n", id="leading-whitespace"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", id="no-host"),
        pytest.param(b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n", id="two-hosts"),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\n"
            b"transfer-encoding: chunked\r\n\r\n",
            id="cl-and-te",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: 3\r\ncontent-length: 4\r\n\r\n",
            id="two-content-lengths",
        ),
        pytest.param(b"POST / HTTP/1.1\r\nhost: x\r\ncontent-length: -1\r\n\r\n", id="negative-cl"),
        pytest.param(b"GARBAGE\n\n", id="bare-lf-garbage"),
        pytest.param(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\n\n", id="tls-hello"),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\nzz\r\n",
            id="bad-chunk-size",
        ),
    ],
)
def test_malformed_requests_are_400(data: bytes) -> None:
    core = H11Core()
    with pytest.raises(RemoteProtocolError) as info:
        core.receive_data(data)
    assert info.value.status == 400


def test_unknown_transfer_coding_is_501() -> None:
    data = b"POST / HTTP/1.1\r\nhost: x\r\ntransfer-encoding: gzip\r\n\r\n"
    assert feed_error(data).status == 501


def test_obs_fold_split_across_reads_is_400() -> None:
    core = H11Core()
    assert core.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n") == []
    with pytest.raises(RemoteProtocolError):
        core.receive_data(b" 2\r\n\r\n")


def test_whitespace_in_a_body_is_not_obs_fold() -> None:
    body = b'{\n  "a": 1,\n\t"b": 2\n}'
    events = H11Core().receive_data(request_bytes(b"POST", body=body))
    assert merge_data(events)[1] == DataReceived(stream_id=1, data=body)


def test_errors_after_an_error_stay_errors() -> None:
    core = H11Core()
    with pytest.raises(RemoteProtocolError):
        core.receive_data(b"BAD REQUEST LINE\r\n\r\n")
    assert core.must_close
    with pytest.raises(RemoteProtocolError):
        core.receive_data(request_bytes())
    assert core.receive_eof() == [ConnectionLost(stream_id=0)]


def test_a_refused_request_is_not_followed_by_events() -> None:
    # 505 is raised by the core after h11 accepted the head; the body bytes
    # behind it must not come out as events of a request nobody sees.
    core = H11Core()
    with pytest.raises(RemoteProtocolError) as info:
        core.receive_data(b"POST / HTTP/2.0\r\ncontent-length: 3\r\n\r\n")
    assert info.value.status == 505
    assert core.must_close
    with pytest.raises(RemoteProtocolError):
        core.receive_data(b"abc")


def test_huge_head_in_one_read_is_431() -> None:
    # h11 bounds only incomplete heads; one read must not bypass the limit.
    data = request_bytes(headers=[(b"x-big-%d" % i, b"a" * 1000) for i in range(20)])
    assert len(data) > 16 * 1024
    assert feed_error(data).status == 431


# -- hypothesis ---------------------------------------------------------------------------


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({c % (len(data) + 1) for c in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return pieces


def serve(core: H11Core, pieces: list[bytes]) -> list[InboundEvent]:
    """Feed `pieces`, answering each complete request at once, as the driver does."""
    events: list[InboundEvent] = []
    pending = list(pieces)
    while True:
        batch = core.receive_data(pending.pop(0) if pending else b"")
        events.extend(batch)
        for event in batch:
            if completes(event):
                core.send(SendResponse(stream_id=event.stream_id, status=204, headers=[]))
                core.send(SendData(stream_id=event.stream_id, data=b"", end_stream=True))
        if core.must_close:
            return events
        if not pending and not batch:
            return events


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(
    data=st.one_of(
        st.binary(max_size=300),
        # Mostly-valid heads with a random tail reach deeper into the parser.
        st.builds(
            lambda tail: b"POST / HTTP/1.1\r\nhost: x\r\n" + tail,
            st.binary(max_size=200),
        ),
        st.lists(
            st.sampled_from(
                [
                    b"GET",
                    b" ",
                    b"/",
                    b"HTTP/1.1",
                    b"HTTP/1.0",
                    b"\r\n",
                    b"\n",
                    b":",
                    b"host",
                    b"content-length",
                    b"transfer-encoding",
                    b"chunked",
                    b"0",
                    b"5",
                    b"\t",
                    b"expect",
                    b"100-continue",
                    b"abc",
                    b"\x00",
                    b"\xff",
                ]
            ),
            max_size=40,
        ).map(b"".join),
    ),
    cuts=st.lists(st.integers(min_value=0, max_value=400), max_size=8),
)
def test_random_bytes_only_raise_remote_protocol_errors(data: bytes, cuts: list[int]) -> None:
    core = H11Core(H1Limits(max_incomplete_event_size=128, max_request_line=64))
    try:
        serve(core, split(data, cuts))
    except RemoteProtocolError as exc:
        assert exc.status in WIRE_ERROR_STATUSES
        return
    core.receive_eof()


TOKEN = st.text(
    alphabet="!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ",
    min_size=1,
    max_size=10,
)
FIELD_VALUE = st.from_regex(rb"\A[\x21-\x7e\x80-\xff]{1,8}( [\x21-\x7e]{1,8}){0,2}\Z")
PATH = st.from_regex(rb"\A/[A-Za-z0-9._~%!$&'()*+,;=:@/-]{0,30}(\?[A-Za-z0-9=&]{0,10})?\Z")


@st.composite
def requests(draw: st.DrawFn) -> tuple[bytes, list[InboundEvent]]:
    method = draw(TOKEN.filter(lambda m: m.upper() not in ("CONNECT", "HEAD"))).encode()
    target = draw(PATH)
    names = draw(st.lists(TOKEN.map(lambda t: "x-" + t.lower()), max_size=4, unique=True))
    headers = [(name.encode(), draw(FIELD_VALUE)) for name in names]
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    chunks = draw(st.lists(st.binary(min_size=1, max_size=50), max_size=4))
    body = b"".join(chunks)
    if framing == "none":
        raw = request_bytes(method, target, headers)
        expected_headers = [(b"host", b"example.com"), *headers]
        body = b""
    elif framing == "length":
        raw = request_bytes(method, target, headers, body)
        expected_headers = [
            (b"host", b"example.com"),
            *headers,
            (b"content-length", b"%d" % len(body)),
        ]
    else:
        raw = request_bytes(method, target, headers, chunks=chunks)
        expected_headers = [(b"host", b"example.com"), *headers, (b"transfer-encoding", b"chunked")]
    head = RequestReceived(
        stream_id=0,
        method=method,
        target=target,
        headers=expected_headers,
        http_version="1.1",
        has_body=framing == "chunked" or (framing == "length" and bool(body)),
    )
    events: list[InboundEvent] = [head]
    if body:
        events.append(DataReceived(stream_id=0, data=body))
    return raw, events


def completes(event: InboundEvent) -> bool:
    """The request is read whole: its body's end, or a head without a body."""
    return isinstance(event, StreamEnded) or (
        isinstance(event, RequestReceived) and not event.has_body
    )


def numbered(events: list[InboundEvent], stream_id: int) -> list[InboundEvent]:
    out: list[InboundEvent] = []
    for event in events:
        if isinstance(event, RequestReceived):
            out.append(
                RequestReceived(
                    stream_id=stream_id,
                    method=event.method,
                    target=event.target,
                    headers=event.headers,
                    http_version=event.http_version,
                    has_body=event.has_body,
                )
            )
        elif isinstance(event, DataReceived):
            out.append(DataReceived(stream_id=stream_id, data=event.data))
    head = events[0]
    if isinstance(head, RequestReceived) and head.has_body:  # (else complete with its head)
        out.append(StreamEnded(stream_id=stream_id))
    return out


@settings(max_examples=200, deadline=None)
@given(
    batch=st.lists(requests(), min_size=1, max_size=3),
    cuts=st.lists(st.integers(min_value=0, max_value=2000), max_size=12),
)
def test_valid_requests_give_the_same_events_however_split(
    batch: list[tuple[bytes, list[InboundEvent]]], cuts: list[int]
) -> None:
    data = b"".join(raw for raw, _ in batch)
    expected: list[InboundEvent] = []
    for index, (_, events) in enumerate(batch, start=1):
        expected.extend(numbered(events, index))
    core = H11Core()
    assert merge_data(serve(core, split(data, cuts))) == expected
    assert core.idle
    assert not core.must_close


# -- body bytes sent aside (sendfile): counted, never framed ------------------------------


@pytest.mark.parametrize("make", [H11Core, FastH1Core], ids=["h11", "fast"])
def test_data_aside_is_counted_against_content_length(make: type) -> None:
    """The driver writes the file's bytes itself, between the head and the next response:
    the core writes the head, nothing for the aside, and is ready for the next request."""
    client = h11.Connection(h11.CLIENT)
    core = make()
    core.receive_data(request_bytes())
    head = [(b"content-length", b"10")]
    core.send(SendResponse(stream_id=1, status=200, headers=head))
    core.send(SendData(stream_id=1, data=b"abc"))
    core.send(SendDataAside(stream_id=1, size=7))
    written = core.data_to_send()
    core.send(SendData(stream_id=1, data=b"", end_stream=True))
    written += core.data_to_send() + b"defghij"  # what the driver sends aside, in place
    client.send(h11.Request(method="GET", target="/", headers=[("host", "x")]))
    client.send(h11.EndOfMessage())
    client.receive_data(written)
    events = [client.next_event() for _ in range(2)]
    while not isinstance(events[-1], h11.EndOfMessage | h11.NEED_DATA):
        events.append(client.next_event())
    assert isinstance(events[0], h11.Response)
    assert isinstance(events[-1], h11.EndOfMessage)
    assert b"".join(e.data for e in events if isinstance(e, h11.Data)) == b"abcdefghij"
    assert not core.must_close
    assert core.receive_data(request_bytes())[0] == RequestReceived(
        stream_id=2,
        method=b"GET",
        target=b"/",
        headers=[(b"host", b"example.com")],
        http_version="1.1",
        has_body=False,
    )


@pytest.mark.parametrize("make", [H11Core, FastH1Core], ids=["h11", "fast"])
@pytest.mark.parametrize(
    "headers, size",
    [([], 5), ([(b"content-length", b"4")], 5)],
    ids=["chunked", "more than the length"],
)
def test_data_aside_needs_a_content_length_that_covers_it(
    make: type, headers: Headers, size: int
) -> None:
    core = make()
    core.receive_data(request_bytes())
    core.send(SendResponse(stream_id=1, status=200, headers=headers))
    with pytest.raises(LocalProtocolError):
        core.send(SendDataAside(stream_id=1, size=size))
    assert core.must_close
