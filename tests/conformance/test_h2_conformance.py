"""HTTP/2 conformance, organised like h2spec by RFC 9113 / RFC 7541 section.

Each test crafts frames as a client (hyperframe + hpack, see `h2wire`) against
a real server and checks the MUST it names. A stream error may be answered as
a connection error where h2 does so (RFC 9113 §5.4.1 allows an endpoint to
treat a stream error as a connection error); where a request is malformed the
app is never called.
"""

from __future__ import annotations

import asyncio
import struct
from collections.abc import Iterator

import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer
from tests.conformance.h2wire import (
    COMPRESSION_ERROR,
    ENHANCE_YOUR_CALM,
    FLOW_CONTROL_ERROR,
    FRAME_SIZE_ERROR,
    PROTOCOL_ERROR,
    REFUSED_STREAM,
    STREAM_CLOSED,
    Wire,
    raw_frame,
    request_headers,
)

SEEN: list[str] = []  # paths that reached the app


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    SEEN.append(scope["path"])
    if scope["path"] == "/no-read":
        await asyncio.sleep(10)  # holds the stream open and never reads its body
        return
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"got %d" % len(body)})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    server = Server.builder().bind("127.0.0.1", 0).h1().h2().timeouts(graceful_shutdown=2)
    with TestServer(server.asgi(app)) as ts:
        yield ts.port


@pytest.fixture
def wire(port: int) -> Iterator[Wire]:
    with Wire(port) as w:
        w.handshake()
        yield w


def malformed(wire: Wire, headers: list[tuple[bytes, bytes]], path: str) -> None:
    """`headers` (for `path`) never reaches the app and is a *stream* error PROTOCOL_ERROR
    (§8.1.1): RST_STREAM, and the connection goes on."""
    sid = wire.headers(headers)
    frame = wire.expect_error(PROTOCOL_ERROR, stream_id=sid)
    assert isinstance(frame, RstStreamFrame), f"{frame!r}: expected a stream error"
    wire.expect_alive()
    assert path not in SEEN


# -- §3.4 / §3.5 connection preface ---------------------------------------------------------------


def test_3_4_server_preface_is_settings(port: int) -> None:
    with Wire(port) as wire:
        settings = wire.handshake()
        assert settings.stream_id == 0 and "ACK" not in settings.flags
        assert settings.settings[SettingsFrame.MAX_CONCURRENT_STREAMS] == 100
        assert settings.settings[SettingsFrame.MAX_HEADER_LIST_SIZE] == 65536
        wire.expect_alive()


def test_3_4_settings_ack_is_sent(port: int) -> None:
    with Wire(port) as wire:
        wire.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", SettingsFrame(0))
        for frame in wire.frames():
            if isinstance(frame, SettingsFrame) and "ACK" in frame.flags:
                return
        raise AssertionError("no SETTINGS ACK")


def test_3_5_preface_then_non_settings_is_protocol_error(port: int) -> None:
    with Wire(port) as wire:
        wire.send(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", PingFrame(0, opaque_data=b"12345678"))
        wire.expect_goaway(PROTOCOL_ERROR)


def test_3_3_prior_knowledge_and_http1_share_a_port(port: int) -> None:
    with Wire(port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(b"/h2-here"))
        headers, body = wire.response(sid)
        assert (b":status", b"200") in headers and body == b"got 0"
    with Wire(port) as wire:
        wire.send(b"GET /h1-here HTTP/1.1\r\nhost: t\r\n\r\n")
        assert wire.sock.recv(100).startswith(b"HTTP/1.1 200")


# -- §4 frames ------------------------------------------------------------------------------------


def test_4_1_unknown_frame_type_is_ignored(wire: Wire) -> None:
    wire.send(raw_frame(0xEE, 0, 0, b"whatever"))
    wire.expect_alive()


def test_4_2_frame_over_max_frame_size_is_frame_size_error(wire: Wire) -> None:
    sid = wire.headers(end_stream=False)
    wire.send(raw_frame(0x0, 0, sid, b"x" * 16_385))
    wire.expect_error(FRAME_SIZE_ERROR, stream_id=sid)


def test_4_3_invalid_header_block_is_compression_error(wire: Wire) -> None:
    wire.send(raw_frame(0x1, 0x5, 1, b"\xff\xff\xff\xff\xff\xff"))  # index far past the table
    wire.expect_goaway(COMPRESSION_ERROR)


# -- §5 streams -----------------------------------------------------------------------------------


def test_5_1_data_on_idle_stream_is_protocol_error(wire: Wire) -> None:
    wire.data(1, b"x")
    wire.expect_goaway(PROTOCOL_ERROR)


def test_5_1_headers_on_half_closed_remote_is_stream_closed(wire: Wire) -> None:
    sid = wire.headers()
    wire.data(sid, b"late")
    wire.expect_error(STREAM_CLOSED, stream_id=sid)


def test_5_1_1_even_stream_id_is_protocol_error(wire: Wire) -> None:
    wire.headers(stream_id=2)
    wire.expect_goaway(PROTOCOL_ERROR)


def test_5_1_1_decreasing_stream_id_is_protocol_error(wire: Wire) -> None:
    wire.headers(stream_id=5)
    wire.response(5)
    wire.headers(stream_id=3)
    wire.expect_goaway(PROTOCOL_ERROR)


def test_5_1_2_more_streams_than_advertised_is_a_stream_error(port: int) -> None:
    """§5.1.2: REFUSED_STREAM (or PROTOCOL_ERROR) on that stream; the others go on."""
    with Wire(port) as wire:
        wire.handshake()
        first = [wire.headers(end_stream=False) for _ in range(100)]
        sid = wire.headers(end_stream=False)
        frame = wire.expect_error(REFUSED_STREAM, stream_id=sid)
        assert isinstance(frame, RstStreamFrame)
        wire.expect_alive()
        wire.data(first[0], b"", end_stream=True)
        headers, _ = wire.response(first[0])  # the first stream still answers
        assert (b":status", b"200") in headers
        later = wire.headers()  # and a new stream fits again
        assert (b":status", b"200") in wire.response(later)[0]


def test_5_1_2_refusals_count_against_the_reset_budget(port: int) -> None:
    """A client that keeps opening streams past the limit is refused, then sent away."""
    with Wire(port) as wire:
        wire.handshake()
        for _ in range(100):
            wire.headers(end_stream=False)
        try:
            for _ in range(400):  # the budget is 200 (--http2-max-resets)
                wire.headers(end_stream=False)
        except OSError:
            pass  # the server may close while we still write
        wire.expect_goaway(ENHANCE_YOUR_CALM)


def test_5_3_self_dependency_is_protocol_error(wire: Wire) -> None:
    sid = wire.new_stream()
    wire.send(PriorityFrame(sid, depends_on=sid, stream_weight=16))
    wire.expect_error(PROTOCOL_ERROR, stream_id=sid)


# -- §6.1 DATA, §6.2 HEADERS, §6.3 PRIORITY, §6.4 RST_STREAM --------------------------------------


def test_6_1_data_on_stream_0_is_protocol_error(wire: Wire) -> None:
    wire.send(raw_frame(0x0, 0, 0, b"x"))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_1_request_body_arrives(wire: Wire) -> None:
    sid = wire.headers(request_headers(b"/body", b"POST"), end_stream=False)
    wire.data(sid, b"a" * 1000)
    wire.data(sid, b"b" * 1000, end_stream=True)
    assert wire.response(sid)[1] == b"got 2000"


def test_6_2_headers_on_stream_0_is_protocol_error(wire: Wire) -> None:
    wire.send(raw_frame(0x1, 0x5, 0, wire.block(request_headers())))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_3_priority_of_wrong_length_is_frame_size_error(wire: Wire) -> None:
    wire.send(raw_frame(0x2, 0, 1, b"\x00\x00\x00\x00\x10"[:4]))
    wire.expect_error(FRAME_SIZE_ERROR, stream_id=1)


def test_6_4_rst_stream_on_stream_0_is_protocol_error(wire: Wire) -> None:
    wire.send(raw_frame(0x3, 0, 0, b"\x00\x00\x00\x08"))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_4_rst_stream_on_idle_stream_is_protocol_error(wire: Wire) -> None:
    wire.send(RstStreamFrame(1, error_code=0x8))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_4_rst_stream_of_wrong_length_is_frame_size_error(wire: Wire) -> None:
    sid = wire.headers(end_stream=False)
    wire.send(raw_frame(0x3, 0, sid, b"\x00\x00\x08"))
    wire.expect_goaway(FRAME_SIZE_ERROR)


# -- §6.5 SETTINGS --------------------------------------------------------------------------------


def test_6_5_settings_ack_with_payload_is_frame_size_error(wire: Wire) -> None:
    wire.send(raw_frame(0x4, 0x1, 0, b"\x00\x03\x00\x00\x00\x64"))
    wire.expect_goaway(FRAME_SIZE_ERROR)


def test_6_5_settings_on_a_stream_is_protocol_error(wire: Wire) -> None:
    wire.send(raw_frame(0x4, 0, 1, b""))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_5_settings_length_not_multiple_of_6_is_frame_size_error(wire: Wire) -> None:
    wire.send(raw_frame(0x4, 0, 0, b"\x00\x03\x00\x00\x00"))
    wire.expect_goaway(FRAME_SIZE_ERROR)


@pytest.mark.parametrize(
    ("setting", "value", "code"),
    [
        (0x2, 2, PROTOCOL_ERROR),  # ENABLE_PUSH not 0 or 1
        (0x4, 2**31, FLOW_CONTROL_ERROR),  # INITIAL_WINDOW_SIZE over 2^31-1
        (0x5, 16_383, PROTOCOL_ERROR),  # MAX_FRAME_SIZE below the minimum
        (0x5, 2**24, PROTOCOL_ERROR),  # ... above the maximum
    ],
    ids=["enable_push", "initial_window", "max_frame_low", "max_frame_high"],
)
def test_6_5_2_invalid_setting_values(wire: Wire, setting: int, value: int, code: int) -> None:
    wire.send(raw_frame(0x4, 0, 0, struct.pack(">HI", setting, value)))
    wire.expect_goaway(code)


def test_6_5_3_unknown_setting_is_ignored(wire: Wire) -> None:
    wire.send(raw_frame(0x4, 0, 0, struct.pack(">HI", 0xFF, 1)))
    wire.expect_alive()


# -- §6.7 PING, §6.8 GOAWAY -----------------------------------------------------------------------


def test_6_7_ping_is_answered_with_same_payload(wire: Wire) -> None:
    wire.ping(b"\x01\x02\x03\x04\x05\x06\x07\x08")
    ack = wire.expect(PingFrame)
    assert "ACK" in ack.flags and ack.opaque_data == b"\x01\x02\x03\x04\x05\x06\x07\x08"


def test_6_7_ping_ack_is_not_answered(wire: Wire) -> None:
    wire.send(PingFrame(0, opaque_data=b"ackackac", flags=["ACK"]))
    wire.expect_alive()  # the first PING frame back is the answer to expect_alive's


def test_6_7_ping_on_a_stream_is_protocol_error(wire: Wire) -> None:
    wire.send(raw_frame(0x6, 0, 1, b"12345678"))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_7_ping_of_wrong_length_is_frame_size_error(wire: Wire) -> None:
    wire.send(raw_frame(0x6, 0, 0, b"1234567"))
    wire.expect_goaway(FRAME_SIZE_ERROR)


def test_6_8_goaway_on_a_stream_is_protocol_error(wire: Wire) -> None:
    wire.send(raw_frame(0x7, 0, 1, b"\x00\x00\x00\x00\x00\x00\x00\x00"))
    wire.expect_goaway(PROTOCOL_ERROR)


# -- §6.9 WINDOW_UPDATE and flow control ----------------------------------------------------------


def test_6_9_zero_increment_on_connection_is_protocol_error(wire: Wire) -> None:
    wire.send(raw_frame(0x8, 0, 0, b"\x00\x00\x00\x00"))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_9_zero_increment_on_stream_is_protocol_error(wire: Wire) -> None:
    sid = wire.headers(end_stream=False)
    wire.send(raw_frame(0x8, 0, sid, b"\x00\x00\x00\x00"))
    wire.expect_error(PROTOCOL_ERROR, stream_id=sid)


def test_6_9_window_update_of_wrong_length_is_frame_size_error(wire: Wire) -> None:
    wire.send(raw_frame(0x8, 0, 0, b"\x00\x00\x01"))
    wire.expect_goaway(FRAME_SIZE_ERROR)


def test_6_9_1_connection_window_overflow_is_flow_control_error(wire: Wire) -> None:
    wire.send(WindowUpdateFrame(0, window_increment=2**31 - 1))
    wire.expect_goaway(FLOW_CONTROL_ERROR)


def test_6_9_1_stream_window_overflow_is_flow_control_error(wire: Wire) -> None:
    sid = wire.headers(end_stream=False)
    wire.send(WindowUpdateFrame(sid, window_increment=2**31 - 1))
    wire.expect_error(FLOW_CONTROL_ERROR, stream_id=sid)


def test_6_9_1_data_past_the_window_is_flow_control_error(port: int) -> None:
    with Wire(port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(b"/no-read", b"POST"), end_stream=False)
        for _ in range(5):  # 80 KiB against a 64 KiB stream window the app never reads
            wire.send(raw_frame(0x0, 0, sid, b"x" * 16_384))
        wire.expect_error(FLOW_CONTROL_ERROR, stream_id=sid)


def test_6_9_2_initial_window_size_limits_response_data(port: int) -> None:
    with Wire(port) as wire:
        wire.handshake({SettingsFrame.INITIAL_WINDOW_SIZE: 3})
        sid = wire.headers(request_headers(b"/small-window"))
        first = wire.expect(DataFrame, stream_id=sid)
        assert first.data == b"got" and "END_STREAM" not in first.flags
        wire.send(WindowUpdateFrame(sid, window_increment=10))
        rest = wire.expect(DataFrame, stream_id=sid)
        assert rest.data == b" 0" and "END_STREAM" in rest.flags


# -- §6.10 CONTINUATION ---------------------------------------------------------------------------


def test_6_10_continuation_completes_a_header_block(wire: Wire) -> None:
    block = wire.block(request_headers(b"/continued"))
    wire.send(HeadersFrame(1, block[:5], flags=["END_STREAM"]))
    wire.send(ContinuationFrame(1, block[5:], flags=["END_HEADERS"]))
    headers, _ = wire.response(1)
    assert (b":status", b"200") in headers


def test_6_10_other_frame_inside_a_header_block_is_protocol_error(wire: Wire) -> None:
    block = wire.block(request_headers())
    wire.send(HeadersFrame(1, block[:5], flags=["END_STREAM"]), PingFrame(0, b"12345678"))
    wire.expect_goaway(PROTOCOL_ERROR)


def test_6_10_continuation_after_end_headers_is_protocol_error(wire: Wire) -> None:
    sid = wire.headers(end_stream=False)
    wire.send(ContinuationFrame(sid, wire.block([(b"x", b"y")]), flags=["END_HEADERS"]))
    wire.expect_goaway(PROTOCOL_ERROR)


# -- §8 HTTP semantics: malformed requests never reach the app ------------------------------------


def _req(path: str, *extra: tuple[bytes, bytes]) -> list[tuple[bytes, bytes]]:
    return [*request_headers(path.encode()), *extra]


@pytest.mark.parametrize(
    ("path", "headers"),
    [
        ("/upper", _req("/upper", (b"X-Upper", b"1"))),
        ("/conn", _req("/conn", (b"connection", b"keep-alive"))),
        ("/te", _req("/te", (b"te", b"gzip"))),
        ("/cr", _req("/cr", (b"x", b"a\rb"))),
        ("/lf", _req("/lf", (b"x", b"a\nb"))),
        ("/nul", _req("/nul", (b"x", b"a\x00b"))),
        ("/two-hosts", _req("/two-hosts", (b"host", b"t"), (b"host", b"evil"))),
        ("/host-mismatch", _req("/host-mismatch", (b"host", b"evil"))),
        (
            "/pseudo-after",
            [
                (b":method", b"GET"),
                (b":scheme", b"http"),
                (b"x", b"1"),
                (b":path", b"/pseudo-after"),
            ],
        ),
        ("/unknown-pseudo", _req("/unknown-pseudo", (b":foo", b"1"))),
        ("/no-method", [(b":scheme", b"http"), (b":path", b"/no-method")]),
        ("/no-scheme", [(b":method", b"GET"), (b":path", b"/no-scheme")]),
        (
            "/dup-path",
            [*request_headers(b"/dup-path"), (b":path", b"/dup-path")],
        ),
        ("/response-pseudo", _req("/response-pseudo", (b":status", b"200"))),
    ],
    ids=lambda v: v if isinstance(v, str) else "",
)
def test_8_1_malformed_request_is_protocol_error(
    wire: Wire, path: str, headers: list[tuple[bytes, bytes]]
) -> None:
    malformed(wire, headers, path)


def test_8_1_pseudo_header_in_trailers_is_a_stream_error(wire: Wire) -> None:
    sid = wire.headers(_req("/trailers", (b"te", b"trailers")), end_stream=False)
    wire.data(sid, b"body")
    wire.headers([(b":path", b"/again")], stream_id=sid, end_stream=True)
    frame = wire.expect_error(PROTOCOL_ERROR, stream_id=sid)
    assert isinstance(frame, RstStreamFrame)
    wire.expect_alive()


def test_8_1_2_empty_path_is_protocol_error(wire: Wire) -> None:
    malformed(wire, request_headers(b""), "")


def test_8_1_1_content_length_mismatch_is_protocol_error(wire: Wire) -> None:
    headers = [*request_headers(b"/cl", b"POST"), (b"content-length", b"10")]
    sid = wire.headers(headers, end_stream=False)
    wire.data(sid, b"12345", end_stream=True)
    wire.expect_error(PROTOCOL_ERROR, stream_id=sid)


def test_8_3_scope_of_a_good_request(wire: Wire) -> None:
    sid = wire.headers([*request_headers(b"/ok?x=1"), (b"cookie", b"a=1"), (b"cookie", b"b=2")])
    headers, body = wire.response(sid)
    assert (b":status", b"200") in headers and body == b"got 0"
    assert "/ok" in SEEN


# -- RFC 7541 HPACK -------------------------------------------------------------------------------


def test_hpack_4_2_table_size_update_over_the_limit_is_compression_error(wire: Wire) -> None:
    # Dynamic table size update to 2^20, more than SETTINGS_HEADER_TABLE_SIZE (4096).
    update = b"\x3f\xe1\xff\x3f"
    wire.send(raw_frame(0x1, 0x5, 1, update + wire.block(request_headers())))
    wire.expect_goaway(COMPRESSION_ERROR)


def test_hpack_6_1_index_zero_is_compression_error(wire: Wire) -> None:
    wire.send(raw_frame(0x1, 0x5, 1, b"\x80"))
    wire.expect_goaway(COMPRESSION_ERROR)


def test_hpack_huffman_eos_is_compression_error(wire: Wire) -> None:
    # A literal header with a Huffman-coded value that contains EOS padding of 8+ bits.
    block = b"\x00\x81a\x84\xff\xff\xff\xff" + wire.block(request_headers())
    wire.send(raw_frame(0x1, 0x5, 1, block))
    wire.expect_goaway(COMPRESSION_ERROR)


def test_goaway_frames_are_well_formed(wire: Wire) -> None:
    wire.send(raw_frame(0x6, 0, 0, b"1234567"))
    frame = wire.expect_goaway(FRAME_SIZE_ERROR)
    assert frame.stream_id == 0 and isinstance(frame, GoAwayFrame)
