"""HTTP/2 server core over the `h2` library (RFC 9113, RFC 7541).

h2 does framing, HPACK, the stream state machine and header validation; this
module maps its events onto Pounce's, owns the per-stream response buffers
that wait for flow-control window, and adds what h2 leaves to its user:

* request windows are credited only as the app consumes the body
  (`AcknowledgeData`), never on arrival, so a slow app bounds what we buffer;
* a graceful GOAWAY (`CloseConnection`) names the highest stream we accepted,
  lets those finish and discards newer ones without a frame (§6.8);
* the abuse budgets of `H2Settings` (Rapid Reset CVE-2023-44487, MadeYouReset
  CVE-2025-8671, the 2019 flood family CVE-2019-9512/9515/9518): past one, the
  connection ends with GOAWAY ENHANCE_YOUR_CALM;
* response scheduling by the RFC 9218 ``priority`` request header, and by
  PRIORITY_UPDATE frames (§7.1) that change it later: when window opens,
  lower urgency goes first (below);
* request checks h2 does not make (``host`` beside a different ``:authority``,
  RFC 9113 §8.3.1) as stream errors, before any app sees the request;
* response bodies held to their ``content-length`` (RFC 9113 §8.1.1), which
  h2 does not check on what it sends (`pounce.protocols.framing`): a body
  longer or shorter is refused with `LocalProtocolError`, excess bytes before
  they are queued; the exchange then resets the stream (INTERNAL_ERROR).

The frames of every response, and the HPACK coding of repeated blocks, go
around h2's per-frame machinery through `pounce.protocols.h2_fast`, which
feeds h2's own state machines the same inputs (`H2Core(reference=True)`: h2's
own paths, what the differential tests compare with).

Every h2, hpack and hyperframe exception is translated here: a connection
error is a `RemoteProtocolError` whose `error_code` is the GOAWAY code (the
GOAWAY is already queued), and it is sticky, as in the HTTP/1.1 cores.
"""

from __future__ import annotations

import base64
import binascii
from collections import deque
from collections.abc import Callable
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import h2.exceptions
import h2.settings
import h2.stream
import hpack
import hyperframe.exceptions
import hyperframe.frame

from pounce.errors import LocalProtocolError, RemoteProtocolError
from pounce.protocols import h2_fast
from pounce.protocols.events import (
    AcknowledgeData,
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
    StreamReset,
    UpgradeRequested,
)
from pounce.protocols.framing import DeclaredLengths
from pounce.protocols.h2_fields import CONNECTION_SPECIFIC, RequestBlocks, valid_trailers
from pounce.protocols.h2_settings import H2Settings as H2Settings

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"  # RFC 9113 §3.4

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

_SETTINGS = 0x4
_GOAWAY = 0x7
_PRIORITY_UPDATE = 0x10  # RFC 9218 §7.1
_GOAWAY_SIZE = 9 + 8  # a GOAWAY h2 queues has no debug data
_PREFACE_AND_HEADER = len(PREFACE) + 9

_H2_ERRORS = (h2.exceptions.H2Error, hpack.HPACKError, hyperframe.exceptions.HyperframeError)

# RFC 7540 §3.2: the last HTTP/1.1 bytes of an h2c upgrade; HTTP/2 frames follow.
SWITCHING_PROTOCOLS = (
    b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: h2c\r\n\r\n"
)
# RFC 9218 §4: urgency 0 (first) … 7 (last), default 3; incremental default false.
DEFAULT_PRIORITY = (3, False)
# Fields of the upgrade request that belong to the HTTP/1.1 hop, not to stream 1.
_UPGRADE_FIELDS = frozenset((b"connection", b"upgrade", b"http2-settings", b"keep-alive"))


class _Outbox:
    """Response bytes of one stream waiting for flow-control window."""

    __slots__ = ("chunks", "end", "offset", "size", "trailers")

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.offset = 0  # bytes of chunks[0] already sent
        self.size = 0
        self.end = False
        self.trailers: Headers | None = None

    def take(self, limit: int) -> bytes | memoryview:
        """Up to `limit` bytes of the first chunk: the chunk itself, or a view of it (no copy)."""
        head = self.chunks[0]
        piece: bytes | memoryview = head
        if self.offset or limit < len(head):
            piece = memoryview(head)[self.offset : self.offset + limit]
        self.offset += len(piece)
        if self.offset == len(head):
            self.chunks.popleft()
            self.offset = 0
        self.size -= len(piece)
        return piece


class H2Core:
    """A `ProtocolCore` for HTTP/2 server connections (prior knowledge or ALPN h2)."""

    def __init__(
        self,
        settings: H2Settings | None = None,
        *,
        upgrade_settings: bytes | None = None,
        reference: bool = False,
    ) -> None:
        """`upgrade_settings`: the HTTP2-Settings of an h2c upgrade (then see `upgraded`).

        `reference`: every frame through h2's own methods and plain hpack coders,
        not `pounce.protocols.h2_fast`'s paths (what the differential tests compare with).
        """
        self.settings = s = settings or H2Settings()
        # Outbound fields were checked by pounce.asgi.headers (lower-case token
        # names, no control characters, no surrounding whitespace) and
        # `_head` drops the connection-specific ones, so h2 need not check and
        # normalise them again: that was a fifth of the time of a response.
        # Inbound blocks are checked by `parse_request` (through `RequestBlocks`) / `valid_trailers`
        # (pounce.protocols.h2_fields), as strictly as h2 and in one pass.
        config = h2.config.H2Configuration(
            client_side=False,
            header_encoding=None,
            validate_outbound_headers=False,
            normalize_outbound_headers=False,
            validate_inbound_headers=False,  # `parse_request`: same checks, one pass
        )
        reference = reference or not h2_fast.FITS
        conn = (_ServerConnection if reference else _FastServerConnection)(config=config)
        if not reference:
            conn.encoder = h2_fast.CachingEncoder()
            conn.decoder = h2_fast.CachingDecoder(conn.decoder)
        # (the connection is a `_FastServerConnection` where they are h2_fast's)
        self._send_headers: Callable[[Any, int, Headers, bool], None] = (
            _h2_send_headers if reference else h2_fast.send_headers
        )
        self._send_data: Callable[[Any, int, bytes | memoryview, bool], None] = (
            h2_fast.send_data_by_h2 if reference else h2_fast.send_data
        )
        codes = h2.settings.SettingCodes
        conn.local_settings = h2.settings.Settings(
            client=False,
            initial_values={
                codes.MAX_CONCURRENT_STREAMS: s.max_concurrent_streams,
                codes.INITIAL_WINDOW_SIZE: s.initial_window_size,
                codes.MAX_FRAME_SIZE: s.max_frame_size,
                codes.MAX_HEADER_LIST_SIZE: s.max_header_list_size,
                codes.ENABLE_PUSH: 0,
                **({codes.ENABLE_CONNECT_PROTOCOL: 1} if s.connect_protocols else {}),
            },
        )
        conn.max_inbound_frame_size = s.max_frame_size
        conn.decoder.max_header_list_size = s.max_header_list_size
        if upgrade_settings is None:
            conn.initiate_connection()
        else:
            conn.initiate_upgrade_connection(_padded(upgrade_settings))
        extra = s.connection_window_size - 65_535
        if extra > 0:
            conn.increment_flow_control_window(extra)
        self._conn = conn
        self._out: list[bytes] = []
        self._active: set[int] = set()  # streams handed to the driver, response not done
        self._ended: set[int] = set()  # ... whose request body is complete
        self._unacked: dict[int, int] = {}  # body bytes delivered, not yet consumed
        self._outboxes: dict[int, _Outbox] = {}
        self._requests = RequestBlocks()  # `parse_request`, remembering repeated blocks
        self._lengths = DeclaredLengths()  # response bodies against their content-length
        self._priority: dict[int, tuple[int, bool]] = {}  # streams not at DEFAULT_PRIORITY
        self._idle_priority: dict[int, tuple[int, bool]] = {}  # PRIORITY_UPDATEs ahead of HEADERS
        self._goaway_last: int | None = None  # set once our GOAWAY is queued
        self._peer_gone = False
        self._error: RemoteProtocolError | None = None
        self._last_served = 0
        self._head: bytes | None = b""  # the first bytes, until the preface is checked
        self.resets = 0  # streams reset by the peer, or by us because of its frames
        self.completed = 0
        self.control_backlog = 0  # acks owed since the driver last saw output drain
        self._empty_frames = 0

    def upgraded(self, request: RequestReceived) -> RequestReceived:
        """Stream 1: the HTTP/1.1 request that asked for h2c (RFC 7540 §3.2), body complete.

        Queues the 101 ahead of our SETTINGS; the response goes out on stream 1.
        """
        self._out.insert(0, SWITCHING_PROTOCOLS)
        self._active.add(1)
        self._ended.add(1)
        self._unacked[1] = 0
        self._last_served = 1
        if request.method == b"HEAD":
            self._lengths.head_request(1)
        headers = [pair for pair in request.headers if pair[0] not in _UPGRADE_FIELDS]
        return RequestReceived(
            stream_id=1,
            method=request.method,
            target=request.target,
            headers=headers,
            http_version="2",
            has_body=False,
        )

    # -- inbound ----------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[InboundEvent]:
        if self._error is not None:
            raise RemoteProtocolError(self._error.message, error_code=self._error.error_code)
        events: list[InboundEvent] = []
        try:
            if self._head is not None:
                self._check_preface(data)
            for event in self._conn.receive_data(data) if data else ():
                self._map(event, events)
            self._flush_all()
            self._check_budgets()
        except _H2_ERRORS as exc:
            raise self._connection_error(exc) from exc
        return events

    def _check_preface(self, data: bytes) -> None:
        """RFC 9113 §3.4: the preface MUST be followed by a SETTINGS frame (h2 does not check)."""
        assert self._head is not None
        head = self._head = self._head + data[: _PREFACE_AND_HEADER - len(self._head)]
        if len(head) < _PREFACE_AND_HEADER:
            return
        self._head = None
        if head[len(PREFACE) + 3] != _SETTINGS or head[len(PREFACE) + 4] & 0x1:
            raise h2.exceptions.ProtocolError("the client preface is not followed by SETTINGS")

    def receive_eof(self) -> list[InboundEvent]:
        self._peer_gone = True
        return [ConnectionLost()]

    def release(self) -> None:
        """The connection is gone: nothing more is received. Breaks the cycle h2 makes
        (its frame dispatch table holds the connection's own bound methods), so the
        connection's state — streams, windows, HPACK tables — is freed by reference
        counting instead of waiting for the cyclic collector."""
        self._conn._frame_dispatch_table = {}

    def _map(self, event: h2.events.Event, out: list[InboundEvent]) -> None:
        if isinstance(event, h2.events.DataReceived):
            self._on_data(event, out)
        elif isinstance(event, h2.events.RequestReceived):
            self._on_request(event, out)
        elif isinstance(event, h2.events.StreamEnded):
            sid = event.stream_id
            if sid in self._active:
                self._ended.add(sid)
                out.append(StreamEnded(stream_id=sid))
        elif isinstance(event, h2.events.StreamReset):
            self.resets += 1  # remote (Rapid Reset) or h2's own (MadeYouReset)
            self._check_budgets()  # now, not after the read: no stream past it is served
            if self._forget(event.stream_id):
                out.append(StreamReset(stream_id=event.stream_id, error_code=event.error_code))
        elif isinstance(event, h2.events.PingReceived | h2.events.RemoteSettingsChanged):
            self.control_backlog += 1  # h2 queued the ACK
        elif isinstance(event, h2.events.ConnectionTerminated):
            self._peer_gone = True
            if event.error_code:
                out.append(ConnectionLost())
        elif isinstance(event, h2.events.UnknownFrameReceived):
            if event.frame is not None and event.frame.type == _PRIORITY_UPDATE:
                self._on_priority_update(event.frame)
        elif isinstance(event, h2.events.TrailersReceived):
            sid = event.stream_id
            if not valid_trailers(event.headers or []):
                self._malformed(sid)
                if self._forget(sid):  # the app hears of it as of a reset
                    out.append(StreamReset(stream_id=sid, error_code=PROTOCOL_ERROR))
        # WindowUpdated: _flush_all follows. Priority, unknown frames: ignored; trailers too.

    def _on_request(self, event: h2.events.RequestReceived, out: list[InboundEvent]) -> None:
        sid = event.stream_id
        if self._goaway_last is not None and sid > self._goaway_last:
            # RFC 9113 §6.8: newer than our GOAWAY, which tells the client it
            # was not processed; discarded without a frame, as the RFC allows —
            # the Python h2 client fails on any frame after a GOAWAY.
            return
        request, priority, protocol = self._requests.parse(
            sid, event.headers or [], ended=event.stream_ended is not None
        )
        if protocol is not None and not self.settings.connect_protocols:
            request = None  # RFC 8441 §3: :protocol only after we advertised it
        if request is None:
            self._malformed(sid)
            return
        urgency = self._idle_priority.pop(sid, None)  # RFC 9218 §7: the frame overrides
        if urgency is None:
            urgency = DEFAULT_PRIORITY if priority is None else parse_priority(priority)
        if urgency != DEFAULT_PRIORITY:
            self._priority[sid] = urgency
        self._active.add(sid)
        self._last_served = sid
        self._unacked[sid] = 0
        if request.method == b"HEAD":
            self._lengths.head_request(sid)
        if protocol is None:
            out.append(request)
        else:  # RFC 8441 extended CONNECT: the driver finds the protocol or refuses
            out.append(UpgradeRequested(stream_id=sid, request=request, protocol=protocol))

    def _on_priority_update(self, frame: hyperframe.frame.Frame) -> None:
        """RFC 9218 §7.1: new priority parameters for an open stream, or one not yet opened."""
        body: bytes = getattr(frame, "body", b"")
        if frame.stream_id != 0:
            raise h2.exceptions.ProtocolError("PRIORITY_UPDATE on a stream other than 0")
        if len(body) < 4:
            raise _FrameSizeError("PRIORITY_UPDATE shorter than its stream id")
        sid = int.from_bytes(body[:4], "big") & 0x7FFF_FFFF
        if sid == 0:
            raise h2.exceptions.ProtocolError("PRIORITY_UPDATE for stream 0")
        urgency = parse_priority(body[4:])
        if sid in self._active:
            if urgency == DEFAULT_PRIORITY:
                self._priority.pop(sid, None)
            else:
                self._priority[sid] = urgency
        elif (
            sid > self._conn.highest_inbound_stream_id  # idle: kept for its HEADERS,
            and sid % 2
            and len(self._idle_priority) < self.settings.max_concurrent_streams  # bounded
        ):
            self._idle_priority[sid] = urgency
        # A closed stream: nothing left to schedule.

    def _malformed(self, sid: int) -> None:
        """RFC 9113 §8.1.1: a malformed request is a stream error; it counts as a reset."""
        self.resets += 1
        self._reset(sid, PROTOCOL_ERROR)
        self._check_budgets()

    def _on_data(self, event: h2.events.DataReceived, out: list[InboundEvent]) -> None:
        sid = event.stream_id
        data = event.data or b""
        length = event.flow_controlled_length or 0
        if not data and event.stream_ended is None:
            self._empty_frames += 1
        if sid not in self._active or sid in self._ended:
            if length:
                self._conn.acknowledge_received_data(length, sid)
            return
        if length > len(data):  # padding is ours to credit at once
            self._conn.acknowledge_received_data(length - len(data), sid)
        if data:
            self._unacked[sid] += len(data)
            out.append(DataReceived(stream_id=sid, data=data))

    def _check_budgets(self) -> None:
        s = self.settings
        if self.resets + self._conn.refused_streams > s.max_resets + self.completed // 2:
            raise _Calm("too many reset streams (Rapid Reset / MadeYouReset)")
        if self.control_backlog > s.max_control_backlog:
            raise _Calm("control frames flood while not reading (PING/SETTINGS)")
        if self._empty_frames > s.max_empty_frames:
            raise _Calm("too many empty DATA frames")

    def _connection_error(self, exc: Exception) -> RemoteProtocolError:
        code = getattr(exc, "error_code", None)
        if isinstance(exc, _Calm):
            code = ENHANCE_YOUR_CALM
        code = _wire_code(exc, int(code) if code is not None else PROTOCOL_ERROR)
        if self._conn.state_machine.state is h2.connection.ConnectionState.CLOSED:
            self._recode_goaway(code)
        else:  # h2 queued no GOAWAY for our own errors: name the last stream we served
            self._conn.close_connection(error_code=code, last_stream_id=self._last_served)
        message = str(exc) or "HTTP/2 protocol error"
        # Kept, never raised: a raised one's traceback holds this frame, and so this core.
        self._error = RemoteProtocolError(message, error_code=code)
        for sid in list(self._active):
            self._forget(sid)
        return RemoteProtocolError(message, error_code=code)

    def _recode_goaway(self, code: int) -> None:
        """Put `code` into the GOAWAY h2 just queued, where h2 picked a less exact one."""
        data = self._conn.data_to_send()
        if len(data) >= _GOAWAY_SIZE and data[-_GOAWAY_SIZE + 3] == _GOAWAY:
            last = int.from_bytes(data[-8:-4], "big")
            data = data[:-_GOAWAY_SIZE]
            frame = hyperframe.frame.GoAwayFrame(0, last_stream_id=last, error_code=code)
            data += frame.serialize()
        self._out.append(data)

    # -- outbound -----------------------------------------------------------------

    def send(self, event: OutboundEvent) -> None:
        if self._error is not None and not isinstance(event, CloseConnection):
            return  # the connection is dead; the driver closes it
        try:
            self._send(event)
        except _H2_ERRORS as exc:
            raise LocalProtocolError(f"HTTP/2: {exc}", status=500) from exc

    def _send(self, event: OutboundEvent) -> None:
        if isinstance(event, CloseConnection):
            self._go_away()
            return
        sid = event.stream_id
        if sid not in self._active:
            return  # reset meanwhile: what the app still says goes nowhere
        if isinstance(event, SendData):
            self._lengths.data(sid, len(event.data), event.end_stream)  # before it is queued
            box = self._outboxes.setdefault(sid, _Outbox())
            if event.data:
                box.chunks.append(event.data)
                box.size += len(event.data)
            box.end = event.end_stream
            self._flush(sid, box)
        elif isinstance(event, AcknowledgeData):
            self._acknowledge(sid, event.size)
        elif isinstance(event, SendResponse):
            self._lengths.response(sid, event.status, event.headers)
            self._send_headers(self._conn, sid, _head(event.status, event.headers), False)
        elif isinstance(event, SendInformational):
            if 100 < event.status < 200 or (event.status == 100 and sid not in self._ended):
                self._conn.send_headers(sid, _head(event.status, event.headers))
        elif isinstance(event, SendTrailers):
            self._lengths.trailers(sid)
            box = self._outboxes.setdefault(sid, _Outbox())
            trailers = [pair for pair in event.headers if pair[0] not in CONNECTION_SPECIFIC]
            box.trailers = (
                trailers or None
            )  # none: END_STREAM on DATA (h2 cannot send an empty block)
            box.end = True
            self._flush(sid, box)
        elif isinstance(event, RejectRequest):
            self._send_headers(self._conn, sid, _head(event.status, event.headers), True)
            self._finish(sid)
        elif isinstance(event, ResetStream):
            self._reset(sid, event.error_code or INTERNAL_ERROR)
            self._forget(sid)
        elif isinstance(event, SendDataAside):
            # HTTP/2 frames every byte of a body: none can go around the core.
            raise LocalProtocolError("HTTP/2 cannot send body data aside", status=500)

    def _flush_all(self) -> None:
        if self._priority:
            self._flush_by_priority()
            return
        for sid, box in list(self._outboxes.items()):
            self._flush(sid, box)

    def _flush_by_priority(self) -> None:
        """RFC 9218 §10: who gets the window that just opened.

        Lower urgency first; within one urgency, non-incremental streams one
        after another in stream order, then incremental ones take turns a
        frame at a time. (A stream whose app sends while window is open sends
        at once: scheduling decides only between bytes that wait.)
        """
        levels: dict[int, tuple[list[int], list[int]]] = {}
        for sid in self._outboxes:
            urgency, incremental = self._priority.get(sid, DEFAULT_PRIORITY)
            levels.setdefault(urgency, ([], []))[incremental].append(sid)
        for urgency in sorted(levels):
            sequential, shared = levels[urgency]
            for sid in sorted(sequential):
                box = self._outboxes.get(sid)
                if box is not None:
                    self._flush(sid, box)
            self._take_turns(sorted(shared))

    def _take_turns(self, sids: list[int]) -> None:
        moved = True
        while moved and self._conn.outbound_flow_control_window > 0:
            moved = False
            for sid in sids:
                box = self._outboxes.get(sid)
                if box is not None and self._flush(sid, box, frames=1):
                    moved = True

    def _flush(self, sid: int, box: _Outbox, frames: int = -1) -> bool:
        """Send what the windows allow (one DATA frame if `frames` is 1, else as many as
        fit); True if anything was sent."""
        conn = self._conn
        ended = sent = False
        while box.size and frames:
            window = conn.local_flow_control_window(sid)
            if frames == 1:
                window = min(window, conn.max_outbound_frame_size)
            if window <= 0:
                return sent
            piece = box.take(window)
            ended = box.end and not box.size and box.trailers is None
            self._send_data(conn, sid, piece, ended)  # in frames of the peer's size
            sent = True
            frames -= 1
        if box.size or not box.end:
            return sent
        if box.trailers is not None:
            self._send_headers(conn, sid, box.trailers, True)
        elif not ended:
            self._send_data(conn, sid, b"", True)
        self._finish(sid)
        return True

    def _finish(self, sid: int) -> None:
        """Our side of `sid` is complete (RFC 9113 §8.1: reset a body we will not read)."""
        self.completed += 1
        if sid not in self._ended:
            self._reset(sid, NO_ERROR)
        self._forget(sid)

    def _reset(self, sid: int, code: int) -> None:
        stream = self._conn.streams.get(sid)
        if stream is not None and not stream.closed:
            self._conn.reset_stream(sid, code)

    def _forget(self, sid: int) -> bool:
        """Drop every trace of `sid`; credit the body nobody will read. True if it was ours."""
        self._outboxes.pop(sid, None)
        self._priority.pop(sid, None)
        self._lengths.forget(sid)
        self._ended.discard(sid)
        unacked = self._unacked.pop(sid, 0)
        if unacked:
            self._conn.acknowledge_received_data(unacked, sid)
        if sid in self._active:
            self._active.discard(sid)
            return True
        return False

    def _acknowledge(self, sid: int, size: int) -> None:
        unacked = self._unacked.get(sid, 0)
        size = min(size, unacked)
        if size:
            self._unacked[sid] = unacked - size
            self._conn.acknowledge_received_data(size, sid)

    def _go_away(self) -> None:
        """Graceful GOAWAY (RFC 9113 §6.8): streams up to the last one we took finish."""
        if self._goaway_last is not None or self._error is not None:
            return
        last = self._conn.highest_inbound_stream_id
        self._goaway_last = last
        self._out.append(self._conn.data_to_send())
        frame = hyperframe.frame.GoAwayFrame(0, last_stream_id=last, error_code=NO_ERROR)
        self._out.append(frame.serialize())

    def data_to_send(self) -> bytes:
        data = self._conn.data_to_send()
        if self._out:
            self._out.append(data)
            data = b"".join(self._out)
            self._out.clear()
        return data

    # -- the driver's view ----------------------------------------------------------

    def buffered(self, stream_id: int) -> int:
        """Response bytes of `stream_id` still waiting for the peer's window."""
        box = self._outboxes.get(stream_id)
        return box.size if box is not None else 0

    def is_active(self, stream_id: int) -> bool:
        return stream_id in self._active

    def output_drained(self) -> None:
        """The driver saw our output leave: the acks we owed are on their way."""
        self.control_backlog = 0

    @property
    def opened_a_stream(self) -> bool:
        """The client has opened at least one stream (a GOAWAY now names a real one)."""
        return self._conn.highest_inbound_stream_id > 0

    @property
    def going_away(self) -> bool:
        """Our GOAWAY is queued or sent."""
        return self._goaway_last is not None

    def peer_finished(self) -> bool:
        """HTTP/2 has no last request: a client may open streams until it sees GOAWAY."""
        return False

    @property
    def must_close(self) -> bool:
        if self._error is not None:
            return True
        return (self._goaway_last is not None or self._peer_gone) and self.idle

    @property
    def read_paused(self) -> bool:
        return False  # flow control is the windows'; reading must go on for PING, RST …

    @property
    def idle(self) -> bool:
        return not self._active


def parse_priority(value: bytes) -> tuple[int, bool]:
    """(urgency, incremental) of a ``priority`` field (RFC 9218 §4, a Structured Field
    Dictionary); members that do not parse keep their defaults, as §4 asks."""
    urgency, incremental = DEFAULT_PRIORITY
    for member in value.split(b","):
        key, _, item = member.strip().partition(b"=")
        item = item.partition(b";")[0].strip()  # parameters are ignored
        if key == b"u" and len(item) == 1 and item in b"01234567":
            urgency = int(item)
        elif key == b"i" and item in (b"", b"?1", b"?0"):
            incremental = item != b"?0"
    return urgency, incremental


def valid_upgrade_settings(value: bytes) -> bool:
    """Is `value` an HTTP2-Settings header h2 can start a connection from (RFC 7540 §3.2.1)?

    base64url of a SETTINGS payload, padding optional, each setting in range.
    """
    try:
        payload = base64.b64decode(_padded(value), altchars=b"-_", validate=True)
    except (binascii.Error, ValueError):
        return False
    if len(payload) % 6:
        return False
    trial = h2.connection.H2Connection(h2.config.H2Configuration(client_side=False))
    try:
        trial.initiate_upgrade_connection(_padded(value))
    except (*_H2_ERRORS, ValueError):
        return False
    return True


def _padded(value: bytes) -> bytes:
    """Clients send base64url without padding (token68); Python's decoder wants it."""
    value = value.strip()
    return value + b"=" * (-len(value) % 4)


def _wire_code(exc: BaseException, code: int) -> int:
    """The error code RFC 9113 asks for, where h2 answers PROTOCOL_ERROR for everything."""
    cause = exc.__cause__
    if isinstance(cause, hpack.HPACKError) and not isinstance(
        exc, h2.exceptions.DenialOfServiceError
    ):
        return COMPRESSION_ERROR  # §4.3: a field block that does not decode
    if isinstance(cause, hyperframe.exceptions.InvalidDataError) and "ack" in str(cause):
        return FRAME_SIZE_ERROR  # §6.5: SETTINGS ACK with a payload
    return code


class _ServerConnection(h2.connection.H2Connection):
    """h2's connection, with two answers RFC 9113 asks for and h2 gives differently.

    * A client's graceful GOAWAY does not end our connection. h2 closes its
      whole connection on any GOAWAY it receives and refuses to send another
      frame, so the responses still in flight — and the WINDOW_UPDATEs they
      need — would be cut short. §6.8: a GOAWAY stops new streams; streams
      already started complete. A GOAWAY carrying an error is h2's to handle.
    * A stream past our SETTINGS_MAX_CONCURRENT_STREAMS is refused alone
      (RST_STREAM REFUSED_STREAM: safe to retry), as §5.1.2 requires; h2 ends
      the connection. A client can do this innocently, before our SETTINGS
      reach it. Its field block is still decoded, so the HPACK state stays in
      step, and it counts against the reset budget (`refused_streams`).
    """

    refused_streams = 0

    def _receive_headers_frame(
        self, frame: hyperframe.frame.HeadersFrame
    ) -> tuple[list[hyperframe.frame.Frame], list[h2.events.Event]]:
        sid = frame.stream_id
        limit = self.local_settings.max_concurrent_streams
        if (
            len(self.streams) < limit  # closed ones included: the common case, cheaply
            or sid in self.streams
            or sid % 2 == 0  # h2 judges stream ids (a connection error)
            or sid <= self.highest_inbound_stream_id
            or self.open_inbound_streams < limit
        ):
            return super()._receive_headers_frame(frame)
        h2.connection._decode_headers(self.decoder, frame.data)  # h2's own wrapper of hpack
        self.highest_inbound_stream_id = sid
        self._closed_streams[sid] = h2.stream.StreamClosedBy.SEND_RST_STREAM
        self.refused_streams += 1
        return [hyperframe.frame.RstStreamFrame(sid, error_code=REFUSED_STREAM)], []

    def _receive_goaway_frame(
        self, frame: hyperframe.frame.GoAwayFrame
    ) -> tuple[list[hyperframe.frame.Frame], list[h2.events.Event]]:
        if frame.error_code:
            return super()._receive_goaway_frame(frame)
        event = h2.events.ConnectionTerminated()
        event.error_code = h2.errors.ErrorCodes.NO_ERROR
        event.last_stream_id = frame.last_stream_id
        event.additional_data = frame.additional_data or None
        return [], [event]


class _FastServerConnection(h2_fast.FastConnection, _ServerConnection):
    """`_ServerConnection` with the output and the frame dispatch the fast paths need."""


class _FrameSizeError(h2.exceptions.ProtocolError):
    """A frame whose length does not fit its type: FRAME_SIZE_ERROR (RFC 9113 §4.2)."""

    error_code = h2.errors.ErrorCodes.FRAME_SIZE_ERROR


class _Calm(h2.exceptions.ProtocolError):
    """An abuse budget ran out: GOAWAY ENHANCE_YOUR_CALM."""

    error_code = h2.errors.ErrorCodes.ENHANCE_YOUR_CALM


def _h2_send_headers(
    conn: h2.connection.H2Connection, sid: int, headers: Headers, end_stream: bool
) -> None:
    conn.send_headers(sid, headers, end_stream=end_stream)


def _head(status: int, headers: Headers) -> Headers:
    out: Headers = [(b":status", b"%d" % status)]
    # RFC 9113 §8.2.2: no connection-specific fields; TE belongs to requests.
    # (the exchange may add "connection: close", which HTTP/2 says with GOAWAY instead)
    out.extend(pair for pair in headers if pair[0] not in CONNECTION_SPECIFIC and pair[0] != b"te")
    return out
