"""Differential tests: `H2Core` on the fast paths (`pounce.protocols.h2_fast`) against
`H2Core(reference=True)`, which sends every frame through h2 and codes with plain hpack.

Every step goes to both cores and the two must agree on everything the driver can
observe: the events of each read, the bytes of each write, the exception (type,
message, error code) of a read or a send that fails, and the flags and per-stream
buffers after it. A fast path that is faster by being different is a defect.

* Hypothesis generates sessions: an h2 client opening streams (repeated and new
  header blocks, so the HPACK caches both hit and miss), sending bodies, window
  updates, resets, PINGs and SETTINGS (initial window, frame size, header table
  size), raw frames that break the rules, while the server answers with every
  outbound event — responses, DATA of every size around the window and the
  frame size, trailers, 1xx, rejections, resets — on live, closed and unknown
  streams.
* The HPACK caches against plain hpack coders: generated header lists, table
  size changes, never-indexed fields, and arbitrary "all indexed" blocks (index
  0 and indexes past the table included) decoded by both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import h2
import h2.config
import h2.connection
import h2.exceptions
import h2.settings
import hpack
import hyperframe.frame
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pounce.errors import LocalProtocolError, RemoteProtocolError
from pounce.protocols import h2_fast
from pounce.protocols.events import (
    AcknowledgeData,
    CloseConnection,
    OutboundEvent,
    RejectRequest,
    RequestReceived,
    ResetStream,
    SendData,
    SendInformational,
    SendResponse,
    SendTrailers,
)
from pounce.protocols.h2 import H2Core, H2Settings
from pounce.protocols.h2_fast import CachingDecoder, CachingEncoder

SLOW_OK = [HealthCheck.too_slow, HealthCheck.data_too_large]

REQUESTS = [
    [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/")],
    [
        (b":method", b"GET"),
        (b":scheme", b"https"),
        (b":authority", b"example.com"),
        (b":path", b"/hello"),
        (b"user-agent", b"h2load nghttp2/1.64.0"),
    ],
    [
        (b":method", b"POST"),
        (b":scheme", b"http"),
        (b":authority", b"x"),
        (b":path", b"/up"),
        (b"content-type", b"application/json"),
    ],
    [(b":method", b"HEAD"), (b":scheme", b"http"), (b":authority", b"x"), (b":path", b"/h")],
    [(b":method", b"GET"), (b":scheme", b"http"), (b":path", b"/no-authority")],  # malformed
]
FIELDS = st.sampled_from(
    [
        (b"content-type", b"text/plain"),
        (b"content-length", b"13"),
        (b"date", b"Sun, 06 Dec 2026 15:00:00 GMT"),
        (b"date", b"Sun, 06 Dec 2026 15:00:01 GMT"),
        (b"server", b"pounce"),
        (b"x-long", b"v" * 300),
        (b"set-cookie", b"a=b"),
        (b"cache-control", b"no-store"),
    ]
)
# Over 16 KiB coded (a 13-bit Huffman code): CONTINUATION frames, and a table emptied.
HUGE = (b"x-huge", b"~" * 10_100)
RESPONSE_HEADERS = st.lists(st.one_of(FIELDS, FIELDS, FIELDS, st.just(HUGE)), max_size=5)
BODY_SIZES = st.sampled_from([0, 1, 13, 1000, 16_383, 16_384, 16_385, 40_000, 65_535, 70_000])
STATUSES = st.sampled_from([200, 204, 304, 404, 500, 100, 103])

# -- a session: client actions and server events -----------------------------------------

client_actions = st.one_of(
    st.tuples(st.just("open"), st.integers(0, len(REQUESTS) - 1), st.booleans()),
    st.tuples(st.just("data"), st.integers(0, 7), st.integers(0, 20_000), st.booleans()),
    st.tuples(st.just("window"), st.integers(0, 7), st.sampled_from([1, 1000, 65_535, 2**20])),
    st.tuples(st.just("reset"), st.integers(0, 7)),
    st.tuples(st.just("ping")),
    st.tuples(
        st.just("settings"),
        st.sampled_from(
            [
                (h2.settings.SettingCodes.INITIAL_WINDOW_SIZE, 0),
                (h2.settings.SettingCodes.INITIAL_WINDOW_SIZE, 100),
                (h2.settings.SettingCodes.INITIAL_WINDOW_SIZE, 2**20),
                (h2.settings.SettingCodes.MAX_FRAME_SIZE, 16_384),
                (h2.settings.SettingCodes.MAX_FRAME_SIZE, 40_000),
                (h2.settings.SettingCodes.HEADER_TABLE_SIZE, 0),
                (h2.settings.SettingCodes.HEADER_TABLE_SIZE, 100),
                (h2.settings.SettingCodes.HEADER_TABLE_SIZE, 4096),
            ]
        ),
    ),
    st.tuples(st.just("raw"), st.integers(0, 9), st.integers(0, 255), st.integers(0, 9)),
    st.tuples(st.just("raw-block"), st.integers(0, 7), st.binary(max_size=12)),
)
server_events = st.one_of(
    st.tuples(st.just("response"), st.integers(0, 8), STATUSES, RESPONSE_HEADERS),
    st.tuples(st.just("body"), st.integers(0, 8), BODY_SIZES, st.booleans()),
    st.tuples(st.just("trailers"), st.integers(0, 8), RESPONSE_HEADERS),
    st.tuples(st.just("reject"), st.integers(0, 8), STATUSES),
    st.tuples(st.just("server-reset"), st.integers(0, 8)),
    st.tuples(st.just("ack"), st.integers(0, 8), st.integers(0, 30_000)),
    st.tuples(st.just("goaway")),
)
sessions = st.lists(st.one_of(client_actions, server_events), max_size=40)


def body(size: int) -> bytes:
    return (bytes(range(256)) * (size // 256 + 1))[:size]


@dataclass
class Session:
    """One client; two servers fed the same bytes and events; a trace of each server."""

    client: h2.connection.H2Connection = field(init=False)
    fast: H2Core = field(default_factory=lambda: H2Core(H2Settings(max_concurrent_streams=5)))
    reference: H2Core = field(
        default_factory=lambda: H2Core(H2Settings(max_concurrent_streams=5), reference=True)
    )
    streams: list[int] = field(default_factory=list)
    requests: list[int] = field(default_factory=list)  # stream ids the servers saw opened
    client_broken: bool = False

    def __post_init__(self) -> None:
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.client = h2.connection.H2Connection(config)
        self.client.initiate_connection()
        self.flush_client()
        self.flush_servers()

    def both(self, call: Any) -> None:
        """`call(core)` on both; the same result or the same exception."""
        results = []
        for core in (self.fast, self.reference):
            try:
                outcome: object = ("ok", call(core))
            except (RemoteProtocolError, LocalProtocolError) as exc:
                message = re.sub(r" at 0x[0-9a-f]+", "", str(exc))  # hpack names a memoryview
                outcome = ("error", type(exc), message, exc.error_code, exc.status)
            buffered = {sid: core.buffered(sid) for sid in range(1, 20, 2)}
            results.append((outcome, core.must_close, core.idle, core.going_away, buffered))
        assert results[0] == results[1]
        outcome = results[0][0]
        if outcome[0] == "ok" and isinstance(outcome[1], list):
            for event in outcome[1]:
                if isinstance(event, RequestReceived):
                    self.requests.append(event.stream_id)

    def flush_client(self) -> None:
        data = self.client.data_to_send()
        self.both(lambda core: core.receive_data(data))

    def flush_servers(self) -> None:
        out = [core.data_to_send() for core in (self.fast, self.reference)]
        assert out[0] == out[1]
        if out[0] and not self.client_broken:
            try:
                self.client.receive_data(out[0])
            except Exception:  # the client rejects what it reads: it only stops generating
                self.client_broken = True

    def pick(self, index: int, pool: list[int]) -> int:
        return pool[index % len(pool)] if pool and index < 2 * len(pool) else 2 * index + 1

    def act(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind in {"response", "body", "trailers", "reject", "server-reset", "ack", "goaway"}:
            self.serve(action)
        else:
            self.client_act(action)
        self.flush_servers()

    def client_act(self, action: tuple[Any, ...]) -> None:
        if self.client_broken:
            return
        kind, client = action[0], self.client
        try:
            if kind == "open":
                sid = client.get_next_available_stream_id()
                client.send_headers(sid, REQUESTS[action[1]], end_stream=action[2])
                self.streams.append(sid)
            elif kind == "data" and self.streams:
                sid = self.streams[action[1] % len(self.streams)]
                size = min(action[2], client.local_flow_control_window(sid))
                size = min(size, client.max_outbound_frame_size)
                client.send_data(sid, b"b" * size, end_stream=action[3])
            elif kind == "window":
                sid = (
                    self.streams[action[1] % len(self.streams)] if action[1] and self.streams else 0
                )
                client.increment_flow_control_window(action[2], stream_id=sid or None)
            elif kind == "reset" and self.streams:
                client.reset_stream(self.streams[action[1] % len(self.streams)])
            elif kind == "ping":
                client.ping(b"12345678")
            elif kind == "settings":
                client.update_settings(dict([action[1]]))
            elif kind == "raw":
                self.raw(action[1], action[2], action[3])
                return
            elif kind == "raw-block":
                sid = 2 * action[1] + 1
                flags = ["END_HEADERS", "END_STREAM"]
                frame = hyperframe.frame.HeadersFrame(sid, data=action[2], flags=flags)
                data = frame.serialize()
                self.both(lambda core: core.receive_data(data))
                return
        except (h2.exceptions.H2Error, KeyError):  # KeyError: a stream h2 already forgot
            return  # the client refused to generate it: nothing was sent
        self.flush_client()

    def raw(self, kind: int, flags: int, stream: int) -> None:
        """A frame header with a short payload that h2's client would never send."""
        payload = bytes(range(8)) if kind != 0x1 else b"\x82\x86\x84\x41\x01x"
        data = (
            len(payload).to_bytes(3, "big")
            + bytes((kind, flags))
            + (2 * stream + 1 if stream < 9 else 0).to_bytes(4, "big")
            + payload
        )
        self.both(lambda core: core.receive_data(data))

    def serve(self, action: tuple[Any, ...]) -> None:
        kind = action[0]
        sid = self.pick(action[1], self.requests) if len(action) > 1 else 0
        event: OutboundEvent
        if kind == "response":
            event = SendResponse(stream_id=sid, status=action[2], headers=list(action[3]))
        elif kind == "body":
            event = SendData(stream_id=sid, data=body(action[2]), end_stream=action[3])
        elif kind == "trailers":
            event = SendTrailers(stream_id=sid, headers=list(action[2]))
        elif kind == "reject":
            event = RejectRequest(stream_id=sid, status=action[2], headers=[])
        elif kind == "server-reset":
            event = ResetStream(stream_id=sid, error_code=0)
        elif kind == "ack":
            event = AcknowledgeData(stream_id=sid, size=action[2])
        else:
            event = CloseConnection()
        if kind == "response" and action[2] < 200:
            event = SendInformational(stream_id=sid, status=action[2], headers=list(action[3]))
        self.both(lambda core: core.send(event))


@settings(max_examples=1000, deadline=None, suppress_health_check=SLOW_OK)
@given(sessions)
def test_fast_paths_answer_as_h2_does(steps: list[tuple[Any, ...]]) -> None:
    session = Session()
    for step in steps:
        session.act(step)


@pytest.mark.parametrize(
    "steps",
    [
        # HEADERS on a stream the client reset: RST_STREAM, a stream error.
        [("open", 0, False), ("reset", 0), ("raw", 1, 5, 0)],
        # ... on a stream closed by END_STREAM both ways: a connection error.
        [("open", 0, True), ("response", 0, 200, []), ("body", 0, 13, True), ("raw", 1, 5, 0)],
        # ... on such streams after h2 forgot them (a newer stream opened): the same answers.
        [("open", 0, False), ("reset", 0), ("open", 0, True), ("raw", 1, 5, 0)],
        [
            ("open", 0, True),
            ("response", 0, 200, []),
            ("body", 0, 13, True),
            ("open", 0, True),
            ("raw", 1, 5, 0),
        ],
        # ... on a stream skipped over (closed implicitly): PROTOCOL_ERROR.
        [("raw", 1, 5, 2), ("raw", 1, 5, 1)],
        # DATA on a reset stream (h2 answers it before the frame dispatch returns).
        [("open", 0, False), ("reset", 0), ("raw", 0, 0, 0)],
    ],
)
def test_frames_on_closed_streams_are_answered_as_h2_answers(
    steps: list[tuple[Any, ...]],
) -> None:
    session = Session()
    for step in steps:
        session.act(step)


def test_a_download_in_frames_of_the_peers_size() -> None:
    """1 MiB on one stream: the frames split where h2 splits them, windows and all."""
    session = Session()
    session.act(("settings", (h2.settings.SettingCodes.INITIAL_WINDOW_SIZE, 2**20)))
    session.act(("window", 0, 2**20))
    session.act(("open", 1, True))
    session.act(("response", 0, 200, [(b"content-length", b"1048576")]))
    session.act(("body", 0, 2**20, True))  # BODY_SIZES is the hypothesis range; any size works
    assert session.fast.buffered(1) == session.reference.buffered(1) == 0


def test_sends_h2_refuses_fail_as_in_h2() -> None:
    """What the core never asks for still fails as h2 fails: a closed stream, an unknown one,
    data over the window, trailers without END_STREAM; and data over the frame size goes
    in frames of the peer's size."""
    session = Session()
    session.act(("open", 0, True))
    session.act(("response", 0, 200, []))
    session.act(("body", 0, 13, True))
    session.act(("open", 0, False))
    session.act(("response", 1, 200, []))
    calls = [
        lambda core: core._send_headers(core._conn, 1, [(b":status", b"200")], False),
        lambda core: core._send_data(core._conn, 1, b"x", False),
        lambda core: core._send_headers(core._conn, 9, [(b":status", b"200")], False),
        lambda core: core._send_data(core._conn, 9, b"x", False),
        lambda core: core._send_data(core._conn, 3, b"x" * 16_385, False),
        lambda core: core._send_data(core._conn, 3, b"x" * 70_000, False),
        lambda core: core._send_headers(core._conn, 3, [(b"a", b"b")], False),
    ]
    for call in calls:
        outcomes = []
        for core in (session.fast, session.reference):
            try:
                call(core)
                outcomes.append(("sent", core.data_to_send()))
            except Exception as exc:  # h2's own exceptions, untranslated at this level
                outcomes.append((type(exc), str(exc), core.data_to_send()))
        assert outcomes[0] == outcomes[1]


# -- the HPACK caches -------------------------------------------------------------------------

header_lists = st.lists(
    st.lists(
        st.one_of(FIELDS, st.tuples(st.sampled_from([b"a", b"b"]), st.sampled_from([b"1", b"2"]))),
        min_size=1,
        max_size=6,
    ),
    max_size=25,
)


@settings(max_examples=500, deadline=None)
@given(header_lists, st.lists(st.sampled_from([None, 0, 40, 100, 4096]), max_size=25))
def test_caching_coders_code_as_hpack_does(
    blocks: list[list[tuple[bytes, bytes]]], sizes: list[int | None]
) -> None:
    plain, caching = hpack.Encoder(), CachingEncoder()
    plain_decoder = hpack.Decoder()
    caching_decoder = CachingDecoder(hpack.Decoder())
    for n, headers in enumerate(blocks):
        size = sizes[n] if n < len(sizes) else None
        if size is not None:
            plain.header_table_size = caching.header_table_size = size
        block = plain.encode(headers)
        assert caching.encode(headers) == block
        assert caching_decoder.decode(block, raw=True) == plain_decoder.decode(block, raw=True)


@settings(max_examples=500, deadline=None)
@given(
    header_lists,
    st.lists(st.binary(min_size=1, max_size=6).map(lambda b: bytes(0x80 | x for x in b))),
)
def test_the_decoder_cache_agrees_on_any_indexed_block(
    blocks: list[list[tuple[bytes, bytes]]], indexed: list[bytes]
) -> None:
    """Indexed blocks of any index — 0, past the table, 127 and up — decode or fail alike."""
    encoder = hpack.Encoder()
    plain, caching = hpack.Decoder(), CachingDecoder(hpack.Decoder())
    for headers, probe in zip(blocks, indexed * 2 or [b"\x82"] * len(blocks), strict=False):
        block = encoder.encode(headers)
        for data in (block, probe, probe):
            outcomes = []
            for decoder in (plain, caching):
                try:
                    outcomes.append(("ok", decoder.decode(data, raw=True)))
                except hpack.HPACKError as exc:
                    outcomes.append(("error", type(exc), str(exc)))
            assert outcomes[0] == outcomes[1]


def test_never_indexed_fields_code_as_hpack_codes_them() -> None:
    """A `NeverIndexedHeaderTuple` equals a plain tuple; the cache must not take one for the
    other (hpack codes a new one as a literal never indexed, RFC 7541 §6.2.3)."""
    plain, caching = hpack.Encoder(), CachingEncoder()
    for encoder in (plain, caching):
        encoder.encode([(b"a", b"1")])
        encoder.encode([(b"a", b"1")])  # now all indexed, and cached
    for headers in (
        [hpack.NeverIndexedHeaderTuple(b"a", b"1")],
        [hpack.NeverIndexedHeaderTuple(b"b", b"2")],
    ):
        assert caching.encode(headers) == plain.encode(headers)
    assert caching.encode([(b"b", b"2")]) == plain.encode([(b"b", b"2")])


def test_a_smaller_header_list_limit_applies_to_cached_blocks() -> None:
    encoder = hpack.Encoder()
    block = encoder.encode([(b"a", b"1" * 50)])
    repeat = encoder.encode([(b"a", b"1" * 50)])
    decoder = CachingDecoder(hpack.Decoder())
    decoder.decode(block, raw=True)
    assert decoder.decode(repeat, raw=True) == [(b"a", b"1" * 50)]
    decoder.max_header_list_size = 10
    with pytest.raises(hpack.OversizedHeaderListError):
        decoder.decode(repeat, raw=True)


def test_another_major_h2_gets_h2s_own_paths(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fast paths write h2 4's internal state; h2 5 may keep it elsewhere."""
    monkeypatch.setattr(h2_fast, "FITS", False)
    core = H2Core()
    assert core._send_data is h2_fast.send_data_by_h2
    assert type(core._conn.encoder) is hpack.Encoder
    assert type(core._conn.decoder) is hpack.Decoder
    assert type(core._conn).__name__ == "_ServerConnection"
