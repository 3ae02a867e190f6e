"""The HTTP/2 core, bytes in → events out, against h2's own client `H2Connection`."""

from __future__ import annotations

import h2.config
import h2.connection
import h2.events
import h2.settings
import hyperframe.frame
import pytest

from pounce.errors import LocalProtocolError, RemoteProtocolError
from pounce.protocols.events import (
    AcknowledgeData,
    CloseConnection,
    ConnectionLost,
    DataReceived,
    InboundEvent,
    RejectRequest,
    RequestReceived,
    ResetStream,
    SendData,
    SendDataAside,
    SendInformational,
    SendResponse,
    SendTrailers,
    StreamEnded,
    StreamReset,
    UpgradeRequested,
)
from pounce.protocols.h2 import (
    ENHANCE_YOUR_CALM,
    SWITCHING_PROTOCOLS,
    H2Core,
    H2Settings,
    parse_priority,
    valid_upgrade_settings,
)

GET = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/p?q=1")]
POST = [(b":method", b"POST"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/up")]


class Pair:
    """A server core and an h2 client wired back to back in memory."""

    def __init__(self, settings: H2Settings | None = None) -> None:
        self.core = H2Core(settings)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.client = h2.connection.H2Connection(config)
        self.client.initiate_connection()
        self.to_server()
        self.to_client()

    def to_server(self) -> list[InboundEvent]:
        return self.core.receive_data(self.client.data_to_send())

    def to_client(self) -> list[h2.events.Event]:
        return self.client.receive_data(self.core.data_to_send())

    def request(self, headers: list[tuple[bytes, bytes]] = GET, *, end: bool = True) -> int:
        sid = self.client.get_next_available_stream_id()
        self.client.send_headers(sid, headers, end_stream=end)
        return sid

    def respond(self, sid: int, body: bytes = b"ok", status: int = 200) -> None:
        self.core.send(SendResponse(stream_id=sid, status=status, headers=[(b"x-a", b"1")]))
        self.core.send(SendData(stream_id=sid, data=body, end_stream=True))


def of(events: list[object], kind: type) -> list[object]:
    return [e for e in events if isinstance(e, kind)]


def test_get_request_event_and_response() -> None:
    pair = Pair()
    sid = pair.request()
    events = pair.to_server()
    request = events[0]
    assert isinstance(request, RequestReceived)
    assert request.method == b"GET" and request.target == b"/p?q=1"
    assert request.http_version == "2" and request.authority == b"x"
    assert request.scheme == b"http" and not request.has_body
    assert request.headers == [(b"host", b"x")]  # ASGI: :authority becomes host
    assert isinstance(events[1], StreamEnded)
    pair.respond(sid, b"hello")
    got = pair.to_client()
    response = of(got, h2.events.ResponseReceived)[0]
    assert isinstance(response, h2.events.ResponseReceived)
    assert (b":status", b"200") in response.headers and (b"x-a", b"1") in response.headers
    assert b"".join(e.data for e in of(got, h2.events.DataReceived)) == b"hello"  # type: ignore[attr-defined]
    assert of(got, h2.events.StreamEnded)
    assert pair.core.idle


def test_request_body_and_window_credit_only_as_consumed() -> None:
    pair = Pair()
    sid = pair.request(POST, end=False)
    for _ in range(3):
        pair.client.send_data(sid, b"a" * 15_000)
    events = pair.to_server()
    assert isinstance(events[0], RequestReceived) and events[0].has_body
    assert [len(e.data) for e in of(events, DataReceived)] == [15_000] * 3  # type: ignore[attr-defined]
    pair.to_client()
    window = pair.client.local_flow_control_window(sid)
    assert window == 65_535 - 45_000  # nothing credited on arrival
    pair.core.send(AcknowledgeData(stream_id=sid, size=45_000))
    pair.to_client()
    assert pair.client.local_flow_control_window(sid) == 65_535


def test_many_concurrent_streams_interleave() -> None:
    pair = Pair()
    sids = [pair.request() for _ in range(10)]
    events = pair.to_server()
    assert [e.stream_id for e in of(events, RequestReceived)] == sids  # type: ignore[attr-defined]
    for sid in reversed(sids):
        pair.respond(sid, str(sid).encode())
    got = pair.to_client()
    ended = {e.stream_id for e in of(got, h2.events.StreamEnded)}  # type: ignore[attr-defined]
    assert ended == set(sids)


def test_response_waits_for_window_and_other_streams_go_on() -> None:
    pair = Pair()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1000})
    pair.client.increment_flow_control_window(1_000_000)
    pair.to_server()
    pair.to_client()
    big, small = pair.request(), pair.request()
    pair.to_server()
    pair.core.send(SendResponse(stream_id=big, status=200, headers=[]))
    pair.core.send(SendData(stream_id=big, data=b"b" * 5000, end_stream=True))
    assert pair.core.buffered(big) == 4000  # the stream window is 1000
    pair.respond(small, b"s")
    got = pair.to_client()
    assert {e.stream_id for e in of(got, h2.events.StreamEnded)} == {small}  # type: ignore[attr-defined]
    while pair.core.buffered(big):
        for event in of(got, h2.events.DataReceived):
            pair.client.acknowledge_received_data(event.flow_controlled_length, event.stream_id)  # type: ignore[attr-defined]
        pair.to_server()
        got = pair.to_client()
    assert big in {e.stream_id for e in of(got, h2.events.StreamEnded)}  # type: ignore[attr-defined]
    assert pair.core.idle


def test_client_reset_gives_stream_reset_and_drops_pending_data() -> None:
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[]))
    pair.core.send(SendData(stream_id=sid, data=b"x" * 200_000))
    pair.to_client()
    pair.client.reset_stream(sid, 0x8)  # CANCEL
    events = pair.to_server()
    assert events == [StreamReset(stream_id=sid, error_code=0x8)]
    assert pair.core.buffered(sid) == 0 and pair.core.idle
    pair.core.send(SendData(stream_id=sid, data=b"late", end_stream=True))  # ignored
    assert pair.core.data_to_send() == b""


def test_trailers_and_informational() -> None:
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    pair.core.send(SendInformational(stream_id=sid, status=103, headers=[(b"link", b"</a>")]))
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[(b"trailer", b"x-t")]))
    pair.core.send(SendData(stream_id=sid, data=b"body"))
    pair.core.send(SendTrailers(stream_id=sid, headers=[(b"x-t", b"done")]))
    got = pair.to_client()
    assert of(got, h2.events.InformationalResponseReceived)
    trailers = of(got, h2.events.TrailersReceived)[0]
    assert trailers.headers == [(b"x-t", b"done")]  # type: ignore[attr-defined]


def test_connection_specific_response_headers_are_dropped() -> None:
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    headers = [(b"connection", b"close"), (b"transfer-encoding", b"chunked"), (b"x", b"1")]
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=headers))
    pair.core.send(SendData(stream_id=sid, data=b"", end_stream=True))
    response = of(pair.to_client(), h2.events.ResponseReceived)[0]
    assert response.headers == [(b":status", b"200"), (b"x", b"1")]  # type: ignore[attr-defined]


def test_reject_answers_and_resets_unread_body() -> None:
    pair = Pair()
    sid = pair.request(POST, end=False)
    pair.client.send_data(sid, b"x" * 10)
    pair.to_server()
    pair.core.send(RejectRequest(stream_id=sid, status=413, headers=[]))
    got = pair.to_client()
    assert (b":status", b"413") in of(got, h2.events.ResponseReceived)[0].headers  # type: ignore[attr-defined]
    assert of(got, h2.events.StreamReset)[0].error_code == 0  # type: ignore[attr-defined]
    assert pair.core.idle


def test_app_reset_is_internal_error() -> None:
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    pair.core.send(ResetStream(stream_id=sid))
    assert of(pair.to_client(), h2.events.StreamReset)[0].error_code == 0x2  # type: ignore[attr-defined]


def test_graceful_goaway_names_last_stream_and_refuses_newer() -> None:
    pair = Pair()
    first = pair.request()
    pair.to_server()
    pair.core.send(CloseConnection())
    got = pair.to_client()
    goaway = of(got, h2.events.ConnectionTerminated)[0]
    assert goaway.last_stream_id == first and goaway.error_code == 0  # type: ignore[attr-defined]
    assert not pair.core.must_close  # stream 1 is still in flight
    pair.respond(first)
    assert pair.core.must_close


def test_stream_after_goaway_is_discarded_without_a_frame() -> None:
    """RFC 9113 §6.8: the GOAWAY already says it was not processed; a frame after
    it would fail a Python h2 client (python-hyper/h2 #1181)."""
    pair = Pair()
    first = pair.request()
    pair.to_server()
    pair.core.send(CloseConnection())
    pair.core.data_to_send()  # the client will not see it in time
    pair.request()
    assert pair.to_server() == []
    assert pair.core.data_to_send() == b""
    pair.respond(first)  # what was taken is still answered
    assert of(pair.to_client(), h2.events.StreamEnded)[0].stream_id == first  # type: ignore[attr-defined]
    assert pair.core.must_close


def test_peer_goaway_with_error_is_connection_lost() -> None:
    pair = Pair()
    pair.client.close_connection(error_code=0x2)
    assert pair.to_server() == [ConnectionLost()]


def test_eof_is_connection_lost() -> None:
    assert Pair().core.receive_eof() == [ConnectionLost()]


def test_connection_error_is_translated_and_sticky() -> None:
    pair = Pair()
    with pytest.raises(RemoteProtocolError) as info:
        pair.core.receive_data(b"\x00\x00\x00\x09\x00\x00\x00\x00\x00")  # CONTINUATION, naked
    assert info.value.error_code == 0x1
    assert pair.core.must_close
    with pytest.raises(RemoteProtocolError):
        pair.core.receive_data(b"")


def test_rapid_reset_budget() -> None:
    pair = Pair(H2Settings(max_resets=10))
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(50):
            sid = pair.request()
            pair.client.reset_stream(sid, 0x8)
            pair.to_server()
    assert info.value.error_code == ENHANCE_YOUR_CALM
    goaway = of(pair.to_client(), h2.events.ConnectionTerminated)[0]
    assert goaway.error_code == ENHANCE_YOUR_CALM  # type: ignore[attr-defined]


def test_completed_streams_earn_resets() -> None:
    pair = Pair(H2Settings(max_resets=2))
    for _ in range(20):
        sid = pair.request()
        pair.to_server()
        pair.respond(sid)
        pair.to_client()
    for _ in range(10):  # 2 + 20 // 2 = 12 allowed
        sid = pair.request()
        pair.client.reset_stream(sid)
        pair.to_server()


def test_control_backlog_budget_and_drain() -> None:
    pair = Pair(H2Settings(max_control_backlog=100))
    for _ in range(90):
        pair.client.ping(b"12345678")
    pair.to_server()
    pair.core.output_drained()
    for _ in range(90):
        pair.client.ping(b"12345678")
    pair.to_server()
    with pytest.raises(RemoteProtocolError) as info:
        for _ in range(20):
            pair.client.ping(b"12345678")
        pair.to_server()
    assert info.value.error_code == ENHANCE_YOUR_CALM


# -- RFC 9218 priority ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (b"u=0", (0, False)),
        (b"u=7, i", (7, True)),
        (b"i=?1, u=1", (1, True)),
        (b"i=?0", (3, False)),
        (b"u=9", (3, False)),  # out of range: the default (RFC 9218 §4.1)
        (b"u=x, i=5", (3, False)),
        (b"u=2;foo=bar", (2, False)),
        (b"", (3, False)),
    ],
)
def test_parse_priority(value: bytes, expected: tuple[int, bool]) -> None:
    assert parse_priority(value) == expected


def _stalled_pair() -> Pair:
    """A client whose stream windows are large but whose connection window is not."""
    pair = Pair()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 1 << 20})
    pair.to_server()
    pair.to_client()
    return pair


def _data_order(events: list[h2.events.Event]) -> list[int]:
    return [e.stream_id for e in events if isinstance(e, h2.events.DataReceived) and e.data]


def test_higher_urgency_stream_gets_the_window_first() -> None:
    pair = _stalled_pair()
    low = pair.request([*GET, (b"priority", b"u=5")])
    high = pair.request([*GET, (b"priority", b"u=0")])
    pair.to_server()
    big = b"x" * 100_000
    pair.respond(low, big)  # takes the whole connection window (65 535 bytes)
    pair.respond(high, big)  # waits
    first = pair.to_client()
    assert set(_data_order(first)) == {low}
    assert pair.core.buffered(high) == len(big)
    pair.client.increment_flow_control_window(40_000)  # the connection's window only
    pair.to_server()
    order = _data_order(pair.to_client())
    assert order and set(order) == {high}, order


def test_without_priority_streams_are_served_in_order() -> None:
    pair = _stalled_pair()
    first, second = pair.request(), pair.request()
    pair.to_server()
    pair.respond(first, b"x" * 100_000)
    pair.respond(second, b"y" * 100_000)
    pair.to_client()
    pair.client.increment_flow_control_window(40_000)
    pair.to_server()
    order = _data_order(pair.to_client())
    assert order[0] == first and order == sorted(order)  # the first stream's rest, then the next


def test_incremental_streams_of_one_urgency_take_turns() -> None:
    pair = _stalled_pair()
    sids = [pair.request([*GET, (b"priority", b"u=1, i")]) for _ in range(2)]
    pair.to_server()
    for sid in sids:
        pair.respond(sid, b"x" * 100_000)
    pair.to_client()
    pair.client.increment_flow_control_window(4 * 16_384)
    pair.to_server()
    order = _data_order(pair.to_client())
    assert order[:2] == [sids[1], sids[0]] or order[:2] == sids
    assert set(order) == set(sids)


def priority_update(sid: int, value: bytes, *, on_stream: int = 0) -> bytes:
    """An RFC 9218 §7.1 PRIORITY_UPDATE frame (type 0x10), as raw bytes."""
    payload = sid.to_bytes(4, "big") + value
    head = len(payload).to_bytes(3, "big") + bytes([0x10, 0]) + on_stream.to_bytes(4, "big")
    return head + payload


def test_priority_update_reorders_waiting_streams() -> None:
    pair = _stalled_pair()
    first, second = pair.request(), pair.request()
    pair.to_server()
    pair.respond(first, b"x" * 100_000)  # takes the connection window
    pair.respond(second, b"y" * 100_000)
    pair.to_client()
    pair.core.receive_data(priority_update(second, b"u=0"))  # second is now urgent
    pair.client.increment_flow_control_window(40_000)
    pair.to_server()
    order = _data_order(pair.to_client())
    assert order and set(order) == {second}, order


def test_priority_update_ahead_of_its_headers_overrides_the_header() -> None:
    pair = _stalled_pair()
    first = pair.client.get_next_available_stream_id()
    pair.core.receive_data(priority_update(first + 2, b"u=0"))  # for a stream not yet open
    a = pair.request([*GET, (b"priority", b"u=5")])
    b = pair.request([*GET, (b"priority", b"u=7")])  # the frame said u=0: it wins
    assert b == first + 2
    pair.to_server()
    pair.respond(a, b"x" * 100_000)  # takes the connection window
    pair.respond(b, b"y" * 100_000)
    pair.to_client()
    pair.client.increment_flow_control_window(40_000)
    pair.to_server()
    order = _data_order(pair.to_client())
    assert order and set(order) == {b}, order


@pytest.mark.parametrize(
    ("frame", "code"),
    [
        (priority_update(1, b"u=1", on_stream=1), 0x1),  # not on stream 0: PROTOCOL_ERROR
        (priority_update(0, b"u=1"), 0x1),  # for stream 0: PROTOCOL_ERROR
        (bytes([0, 0, 2, 0x10, 0, 0, 0, 0, 0, 0, 1]), 0x6),  # too short: FRAME_SIZE_ERROR
    ],
)
def test_bad_priority_update_is_a_connection_error(frame: bytes, code: int) -> None:
    pair = Pair()
    with pytest.raises(RemoteProtocolError) as info:
        pair.core.receive_data(frame)
    assert info.value.error_code == code


# -- h2c upgrade (RFC 7540 §3.2) ---------------------------------------------------------------


def _upgrade_request() -> RequestReceived:
    return RequestReceived(
        stream_id=1,
        method=b"GET",
        target=b"/up",
        headers=[
            (b"host", b"x"),
            (b"connection", b"Upgrade, HTTP2-Settings"),
            (b"upgrade", b"h2c"),
            (b"http2-settings", b"AAMAAABkAAQAoAAAAAIAAAAA"),
        ],
        http_version="1.1",
        has_body=False,
    )


def test_valid_upgrade_settings() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    header = client.initiate_upgrade_connection()
    assert header is not None
    assert valid_upgrade_settings(header.rstrip(b"="))  # unpadded, as curl sends it
    assert valid_upgrade_settings(b"")  # no settings: all defaults
    assert not valid_upgrade_settings(b"not base64!")
    assert not valid_upgrade_settings(b"AAMAAA")  # 4 bytes: not a whole setting
    assert not valid_upgrade_settings(b"AASAAAAA")  # initial window over 2^31-1


def test_upgrade_answers_the_request_on_stream_1() -> None:
    client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    header = client.initiate_upgrade_connection()
    assert header is not None
    core = H2Core(upgrade_settings=header)
    request = core.upgraded(_upgrade_request())
    assert request.stream_id == 1 and request.http_version == "2" and not request.has_body
    assert request.headers == [(b"host", b"x")]
    out = core.data_to_send()
    assert out.startswith(SWITCHING_PROTOCOLS)
    client.receive_data(out[len(SWITCHING_PROTOCOLS) :])
    events = core.receive_data(client.data_to_send())
    assert events == []
    core.send(SendResponse(stream_id=1, status=200, headers=[]))
    core.send(SendData(stream_id=1, data=b"hi", end_stream=True))
    got = client.receive_data(core.data_to_send())
    assert [e.data for e in got if isinstance(e, h2.events.DataReceived)] == [b"hi"]
    assert any(isinstance(e, h2.events.StreamEnded) and e.stream_id == 1 for e in got)
    assert core.idle


# -- RFC 8441 extended CONNECT -------------------------------------------------------------

CONNECT_WS = [
    (b":method", b"CONNECT"),
    (b":protocol", b"websocket"),
    (b":scheme", b"https"),
    (b":authority", b"x"),
    (b":path", b"/chat"),
    (b"sec-websocket-version", b"13"),
]


def test_extended_connect_is_advertised_only_with_tunnel_protocols() -> None:
    codes = h2.settings.SettingCodes
    assert Pair().client.remote_settings.get(codes.ENABLE_CONNECT_PROTOCOL, 0) == 0
    pair = Pair(H2Settings(connect_protocols=(b"websocket",)))
    assert pair.client.remote_settings.get(codes.ENABLE_CONNECT_PROTOCOL) == 1


def test_extended_connect_is_an_upgrade_event_on_its_stream() -> None:
    pair = Pair(H2Settings(connect_protocols=(b"websocket",)))
    sid = pair.request(CONNECT_WS, end=False)
    [event] = pair.to_server()
    assert isinstance(event, UpgradeRequested)
    assert (event.stream_id, event.protocol) == (sid, b"websocket")
    request = event.request
    assert (request.method, request.target, request.http_version) == (b"CONNECT", b"/chat", "2")
    assert request.scheme == b"https"
    assert (b"sec-websocket-version", b"13") in request.headers
    assert pair.core.is_active(sid)
    # The stream then carries bytes both ways until one side ends it.
    pair.client.send_data(sid, b"\x81\x80abcd")
    [data] = pair.to_server()
    assert isinstance(data, DataReceived) and data.data == b"\x81\x80abcd"
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[]))
    pair.core.send(SendData(stream_id=sid, data=b"\x81\x00", end_stream=False))
    events = pair.to_client()
    assert of(events, h2.events.ResponseReceived)
    assert [e.data for e in of(events, h2.events.DataReceived)] == [b"\x81\x00"]  # type: ignore[attr-defined]


def test_protocol_without_the_setting_is_a_stream_error() -> None:
    pair = Pair()
    sid = pair.request(CONNECT_WS, end=False)
    assert pair.to_server() == []
    [reset] = of(pair.to_client(), h2.events.StreamReset)
    assert reset.stream_id == sid and reset.error_code == 1  # type: ignore[attr-defined]


def test_plain_connect_is_still_refused() -> None:
    pair = Pair(H2Settings(connect_protocols=(b"websocket",)))
    sid = pair.request([(b":method", b"CONNECT"), (b":authority", b"x:443")], end=False)
    assert pair.to_server() == []
    [reset] = of(pair.to_client(), h2.events.StreamReset)
    assert reset.stream_id == sid  # type: ignore[attr-defined]


# -- response bodies against their content-length (RFC 9113 §8.1.1) -----------------


def _declared(pair: Pair, length: bytes, status: int = 200) -> int:
    sid = pair.request()
    pair.to_server()
    headers = [(b"content-length", length)]
    pair.core.send(SendResponse(stream_id=sid, status=status, headers=headers))
    return sid


def _refused(pair: Pair, sid: int, event: SendData | SendTrailers, message: str) -> bytes:
    """`event` is refused as the exchange sees it, then reset as the exchange does:
    returns the body the client got before its RST_STREAM (INTERNAL_ERROR)."""
    with pytest.raises(LocalProtocolError, match=message) as caught:
        pair.core.send(event)
    assert caught.value.status == 500
    pair.core.send(ResetStream(stream_id=sid))
    got = pair.to_client()
    assert [(e.stream_id, e.error_code) for e in of(got, h2.events.StreamReset)] == [(sid, 0x2)]  # type: ignore[attr-defined]
    assert not of(got, h2.events.StreamEnded)
    assert pair.core.idle
    _still_serves(pair)
    return _body(got)


def _body(got: list[h2.events.Event]) -> bytes:
    return b"".join(e.data or b"" for e in got if isinstance(e, h2.events.DataReceived))


def _still_serves(pair: Pair) -> None:
    sid = pair.request()
    pair.to_server()
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[(b"content-length", b"2")]))
    pair.core.send(SendData(stream_id=sid, data=b"ok", end_stream=True))
    got = pair.to_client()
    assert _body(got) == b"ok"
    assert of(got, h2.events.StreamEnded)


def test_too_much_body_in_one_message_never_reaches_the_wire() -> None:
    pair = Pair()
    sid = _declared(pair, b"3")
    event = SendData(stream_id=sid, data=b"1234567", end_stream=True)
    assert _refused(pair, sid, event, "Too much data") == b""


def test_too_much_body_across_messages_sends_only_the_declared_bytes() -> None:
    pair = Pair()
    sid = _declared(pair, b"3")
    pair.core.send(SendData(stream_id=sid, data=b"ab"))
    event = SendData(stream_id=sid, data=b"cdef", end_stream=True)
    assert _refused(pair, sid, event, "Too much data") == b"ab"


def test_too_much_body_without_end_is_refused_at_once() -> None:
    pair = Pair()
    sid = _declared(pair, b"3")
    pair.core.send(SendData(stream_id=sid, data=b"abc"))
    assert _refused(pair, sid, SendData(stream_id=sid, data=b"d"), "Too much data") == b"abc"


def test_too_little_body_at_the_end_is_refused() -> None:
    pair = Pair()
    sid = _declared(pair, b"100")
    event = SendData(stream_id=sid, data=b"12345", end_stream=True)
    assert _refused(pair, sid, event, "Too little data") == b""


def test_too_little_body_before_trailers_is_refused() -> None:
    pair = Pair()
    sid = _declared(pair, b"10")
    pair.core.send(SendData(stream_id=sid, data=b"12345"))
    event = SendTrailers(stream_id=sid, headers=[(b"x-t", b"1")])
    assert _refused(pair, sid, event, "Too little data") == b"12345"


def test_exact_body_then_trailers_is_fine() -> None:
    pair = Pair()
    sid = _declared(pair, b"5")
    pair.core.send(SendData(stream_id=sid, data=b"12"))
    pair.core.send(SendData(stream_id=sid, data=b"345"))
    pair.core.send(SendTrailers(stream_id=sid, headers=[(b"x-t", b"1")]))
    got = pair.to_client()
    assert _body(got) == b"12345"
    assert of(got, h2.events.TrailersReceived) and not of(got, h2.events.StreamReset)


def test_exact_length_is_fine() -> None:
    pair = Pair()
    sid = _declared(pair, b"5")
    pair.core.send(SendData(stream_id=sid, data=b"12"))
    pair.core.send(SendData(stream_id=sid, data=b""))
    pair.core.send(SendData(stream_id=sid, data=b"345", end_stream=True))
    got = pair.to_client()
    assert _body(got) == b"12345"
    assert of(got, h2.events.StreamEnded) and not of(got, h2.events.StreamReset)
    assert pair.core.idle


def test_repeated_identical_content_length_is_one_value() -> None:
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    headers = [(b"content-length", b"2"), (b"content-length", b"2")]
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=headers))
    pair.core.send(SendData(stream_id=sid, data=b"ok", end_stream=True))
    assert of(pair.to_client(), h2.events.StreamEnded)


@pytest.mark.parametrize(
    "headers",
    [
        [(b"content-length", b"2"), (b"content-length", b"3")],
        [(b"content-length", b"2, 3")],
        [(b"content-length", b"2, 2")],  # h2 clients refuse a list, with the connection
        [(b"content-length", b"-1")],
        [(b"content-length", b" 2")],
        [(b"content-length", b"9" * 21)],
    ],
)
def test_conflicting_or_bad_content_length_refuses_the_head(
    headers: list[tuple[bytes, bytes]],
) -> None:
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    with pytest.raises(LocalProtocolError, match="Content-Length"):
        pair.core.send(SendResponse(stream_id=sid, status=200, headers=headers))
    # Nothing went out: the exchange's 500 still can.
    assert not of(pair.to_client(), h2.events.ResponseReceived)
    pair.respond(sid, status=500)
    assert of(pair.to_client(), h2.events.StreamEnded)


def test_head_response_with_content_length_and_no_body_is_fine() -> None:
    pair = Pair()
    sid = pair.request([(b":method", b"HEAD"), *GET[1:]])
    pair.to_server()
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[(b"content-length", b"42")]))
    pair.core.send(SendData(stream_id=sid, data=b"", end_stream=True))
    got = pair.to_client()
    assert (b"content-length", b"42") in of(got, h2.events.ResponseReceived)[0].headers  # type: ignore[attr-defined]
    assert of(got, h2.events.StreamEnded) and not of(got, h2.events.StreamReset)
    _still_serves(pair)  # the HEAD mark went with its stream


@pytest.mark.parametrize("status", [204, 304])
def test_no_content_status_with_content_length_is_fine(status: int) -> None:
    pair = Pair()
    sid = _declared(pair, b"42", status=status)
    pair.core.send(SendData(stream_id=sid, data=b"", end_stream=True))
    # Read as frames: h2's client counts the body of a 204/304 against its
    # content-length too (RFC 9113 §8.1.1 exempts them), and would fail here.
    frames = _frames(pair.core.data_to_send())
    assert [type(f).__name__ for f in frames] == ["HeadersFrame", "DataFrame"]
    assert "END_STREAM" in frames[-1].flags and pair.core.idle


def _frames(data: bytes) -> list[hyperframe.frame.Frame]:
    frames = []
    while data:
        frame, length = hyperframe.frame.Frame.parse_frame_header(memoryview(data[:9]))
        frame.parse_body(memoryview(data[9 : 9 + length]))
        frames.append(frame)
        data = data[9 + length :]
    return frames


def test_response_without_content_length_is_not_counted() -> None:
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[]))
    pair.core.send(SendData(stream_id=sid, data=b"any"))
    pair.core.send(SendData(stream_id=sid, data=b" length", end_stream=True))
    got = pair.to_client()
    assert _body(got) == b"any length"


def test_body_waiting_for_window_is_counted_when_queued() -> None:
    """The check is on what the app hands over, not on what the window lets out."""
    pair = Pair()
    pair.client.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2})
    pair.to_server()
    pair.to_client()
    sid = _declared(pair, b"5")
    pair.core.send(SendData(stream_id=sid, data=b"12345"))
    assert pair.core.buffered(sid) == 3
    assert _refused(pair, sid, SendData(stream_id=sid, data=b"6"), "Too much data") == b"12"


@pytest.mark.parametrize("path", [b"abc", b"/a b", b"/a\x01b", b"*"])
def test_a_path_that_is_not_origin_form_resets_its_stream_only(path: bytes) -> None:
    # RFC 9113 §8.3.1: ":path" is origin-form ("*" for OPTIONS); a malformed
    # request is a stream error of type PROTOCOL_ERROR (§8.1.1).
    pair = Pair()
    pair.client.config.validate_outbound_headers = False
    sid = pair.request([*GET[:3], (b":path", path)])
    assert pair.to_server() == []
    [reset] = of(pair.to_client(), h2.events.StreamReset)
    assert reset.stream_id == sid and reset.error_code == 1  # type: ignore[attr-defined]
    pair.request()
    assert isinstance(pair.to_server()[0], RequestReceived)  # the connection goes on


def test_data_aside_is_refused() -> None:
    """HTTP/2 frames every byte of a body: nothing may go around the core (sendfile)."""
    pair = Pair()
    sid = pair.request()
    pair.to_server()
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[(b"content-length", b"3")]))
    with pytest.raises(LocalProtocolError):
        pair.core.send(SendDataAside(stream_id=sid, size=3))
