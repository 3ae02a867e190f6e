"""HTTP/3 over QUIC: one connection's sans-I/O core, and what the endpoint needs to route.

aioquic is the QUIC and HTTP/3 engine (QUIC, its TLS 1.3, QPACK); this is the
only module that imports it (the ``pounce[h3]`` extra). Like the other cores
it owns no socket, no clock and no task: the driver hands it datagrams with
the time they arrived (``now``, the loop's clock), and gets back Pounce events
and datagrams to send; `timer` says when `handle_timer` is due.

What Pounce adds to aioquic, each at the line that does it:

* flow control credited as the app reads (`AcknowledgeData`), as for
  HTTP/2: aioquic raises a window as soon as bytes *arrive* (doubling it),
  so an app that does not read would let a client fill our memory;
* a malformed request is a stream error (RFC 9114 §4.1.2), not the
  connection error aioquic makes of it; trailers are checked, then ignored;
* GOAWAY on shutdown (RFC 9114 §5.2), which aioquic does not send;
* budgets: the request head size (431), reset streams (Rapid Reset) —
  the same as HTTP/2's;
* response bodies held to their content-length (`DeclaredLengths`);
* a send scheduler: aioquic is handed only the response bytes its next
  flight can carry, the rest wait in a `SendQueue` (`pounce.protocols.h3_send`
  says why: aioquic's per-packet walk over every stream with bytes queued),
  and the streams waiting their turn leave aioquic's send queue meanwhile.

Those five reach into aioquic internals (`_CreditedQuic`, `_StreamErrors`,
the control stream id, the sender buffer, the pacer and the send queue); the
``pounce[h3]`` extra pins aioquic to 1.7.x and tests/protocols/test_h3.py
and test_h3_scheduler.py prove each of them.

The amplification limit before address validation (RFC 9000 §8: three
times the bytes received) is aioquic's, tested from outside.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, replace
from typing import Any

from aioquic._buffer import Buffer, BufferReadError  # re-exported by aioquic.buffer, untyped there
from aioquic.buffer import encode_uint_var
from aioquic.h3 import events as h3e
from aioquic.h3.connection import (
    H3_ALPN,
    ErrorCode,
    FrameType,
    H3Connection,
    H3Stream,
    HeadersState,
    MessageError,
    encode_frame,
)
from aioquic.quic import events as qe
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.packet import (
    QuicPacketType,
    QuicProtocolVersion,
    encode_quic_retry,
    encode_quic_version_negotiation,
    pull_quic_header,
)
from aioquic.quic.retry import QuicRetryTokenHandler
from aioquic.tls import CipherSuite

from pounce.protocols.events import (
    AcknowledgeData,
    CloseConnection,
    ConnectionLost,
    DataReceived,
    Headers,
    InboundEvent,
    OutboundEvent,
    RejectRequest,
    ResetStream,
    SendData,
    SendInformational,
    SendResponse,
    SendTrailers,
    StreamEnded,
    StreamReset,
    UpgradeRequested,
)
from pounce.protocols.framing import DeclaredLengths
from pounce.protocols.h2_fields import CONNECTION_SPECIFIC, parse_request, valid_trailers
from pounce.protocols.h3_send import DIRECT, SendQueue
from pounce.protocols.h3_settings import H3Settings

Address = tuple[Any, ...]
"""A UDP peer address as the socket gives it: ``(host, port)`` or IPv6's 4-tuple."""

ALPN = tuple(H3_ALPN)
H3_NO_ERROR = int(ErrorCode.H3_NO_ERROR)
H3_REQUEST_REJECTED = int(ErrorCode.H3_REQUEST_REJECTED)
H3_REQUEST_CANCELLED = int(ErrorCode.H3_REQUEST_CANCELLED)
H3_MESSAGE_ERROR = int(ErrorCode.H3_MESSAGE_ERROR)
H3_EXCESSIVE_LOAD = int(ErrorCode.H3_EXCESSIVE_LOAD)
H3_INTERNAL_ERROR = int(ErrorCode.H3_INTERNAL_ERROR)
MIN_INITIAL_SIZE = 1200  # bytes; RFC 9000 §14.1: a client's Initial datagram is padded to this
_SUPPORTED = (QuicProtocolVersion.VERSION_1, QuicProtocolVersion.VERSION_2)
# `ResetStream` codes come in HTTP/2's numbers (the exchange's 0, the tunnel's CANCEL):
# RFC 9114 §8.1 names their HTTP/3 equivalents.
_H2_TO_H3 = {0x0: H3_INTERNAL_ERROR, 0x2: H3_INTERNAL_ERROR, 0x8: H3_REQUEST_CANCELLED}


class CertificateError(Exception):
    """The certificate or key could not be loaded for QUIC (the message says why)."""


@dataclass(frozen=True, slots=True)
class Credentials:
    """A certificate chain and key as aioquic holds them; load with `load_credentials`."""

    certificate: Any
    chain: tuple[Any, ...]
    private_key: Any
    server_cert: str | None


def load_credentials(cert: str, key: str | None, password: str | None) -> Credentials:
    """Read the PEM files of ``.tls()`` for QUIC.

    Raises:
        CertificateError: a file is missing, unreadable or not a matching pair.
    """
    config = QuicConfiguration(is_client=False)
    try:
        config.load_cert_chain(cert, key, password)
    except (OSError, ValueError, TypeError) as exc:
        raise CertificateError(f"cannot load {cert!r} / {key or cert!r} for QUIC: {exc}") from exc
    from cryptography.hazmat.primitives.serialization import Encoding

    pem = config.certificate.public_bytes(Encoding.PEM).decode("ascii")
    return Credentials(config.certificate, tuple(config.certificate_chain), config.private_key, pem)


# -- routing: what the endpoint reads of a datagram before any connection has it --------


@dataclass(frozen=True, slots=True)
class PacketHeader:
    """The routing facts of a datagram's first packet."""

    destination_cid: bytes
    source_cid: bytes
    version: int | None
    """None for a short header (an established connection's packet)."""
    is_initial: bool
    token: bytes = b""
    """An Initial's token: ours from a Retry, when the client echoes it."""

    @property
    def version_supported(self) -> bool:
        return self.version is None or self.version in _SUPPORTED

    @property
    def is_version_negotiation(self) -> bool:
        return self.version == 0  # RFC 9000 §17.2.1


def read_header(data: bytes, cid_length: int) -> PacketHeader | None:
    """The header of the first packet in `data`, or None when it is not QUIC."""
    try:
        header = pull_quic_header(Buffer(data=data), host_cid_length=cid_length)
    except (BufferReadError, ValueError):
        return None
    return PacketHeader(
        destination_cid=header.destination_cid,
        source_cid=header.source_cid,
        version=header.version,
        is_initial=header.packet_type == QuicPacketType.INITIAL,
        token=header.token,
    )


def version_negotiation(header: PacketHeader) -> bytes:
    """RFC 9000 §6: the Version Negotiation packet answering an unsupported version."""
    return encode_quic_version_negotiation(
        source_cid=header.destination_cid,
        destination_cid=header.source_cid,
        supported_versions=[int(v) for v in _SUPPORTED],
    )


class RetryTokens:
    """Stateless Retry (RFC 9000 §8.1.2): make a client prove its address before any state.

    The token is sealed with a key made per instance (per serve), and names
    the client's address, its original destination connection id and ours.
    """

    def __init__(self) -> None:
        self._tokens = QuicRetryTokenHandler()

    def retry(self, header: PacketHeader, addr: Address, now: float) -> bytes:
        """The Retry packet answering `header`'s tokenless Initial."""
        assert header.version is not None
        ours = os.urandom(8)
        token = self._tokens.create_token(
            address=addr,
            original_destination_connection_id=header.destination_cid,
            retry_source_connection_id=ours,
            now=now,
        )
        return encode_quic_retry(
            version=header.version,
            source_cid=ours,
            destination_cid=header.source_cid,
            original_destination_cid=header.destination_cid,
            retry_token=token,
        )

    def original_cid(self, header: PacketHeader, addr: Address, now: float) -> bytes | None:
        """The client's original destination id, if `header` carries our valid token."""
        try:
            return self._tokens.validate_token(
                address=addr, destination_cid=header.destination_cid, token=header.token, now=now
            )
        except ValueError:
            return None


# -- aioquic, credited as the app reads -----------------------------------------------------


class _CreditedQuic(QuicConnection):
    """aioquic's connection with windows that open as the app reads, not as bytes arrive.

    aioquic raises MAX_STREAM_DATA / MAX_DATA by doubling whenever half the
    window has *arrived*. Here a window's limit is what arrived, less what
    waits unread, plus the window size (sent when that moves by half a
    window), as HTTP/2's core does with WINDOW_UPDATE. The two methods
    replace aioquic 1.7's ``_write_stream_limits`` / ``_write_connection_limits``
    guards; the frame writing stays aioquic's.
    """

    def __init__(self, *, settings: H3Settings, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.pending: dict[int, int] = {}  # stream → bytes received, not yet read
        self.pending_total = 0
        self.h3: H3Connection | None = None  # for the bytes it holds of incomplete frames
        self._stream_window = settings.stream_window
        # A stream's limit can move once at most this much of its window is left.
        self._stream_slack = settings.stream_window - settings.stream_window // 2
        self._connection_window = settings.connection_window
        self._local_max_streams_bidi.value = settings.max_concurrent_streams
        self.held = SendQueue()  # response bytes not yet handed to aioquic
        self._fed: set[int] = set()  # streams given bytes from `held` that may have some unsent
        self._parked: dict[int, Any] = {}  # streams taken out of aioquic's queue (`_park`)

    def _write_stream_limits(self, builder: Any, space: Any, stream: Any) -> None:
        # aioquic calls this for every open stream in every packet it builds (a dozen
        # streams a packet in a download): the common case must cost two compares.
        local = stream.max_stream_data_local
        if not local or (  # not local: a stream we opened, unidirectional; nothing to receive
            local - stream.receiver.highest_offset > self._stream_slack
            and stream.max_stream_data_local_sent == local
        ):
            return  # the limit cannot move, and the last one was sent
        highest = stream.receiver.highest_offset
        window = self._stream_window
        if highest + window - local >= window // 2:  # the limit could move (waiting ≥ 0)
            waiting = self.pending.get(stream.stream_id, 0) + _h3_buffered(self, stream.stream_id)
            limit = highest - waiting + window
            if limit - local >= window // 2:
                stream.max_stream_data_local = limit
        # Past this guard aioquic only doubles when more than half has arrived:
        # keep it from doing so by writing the frame here.
        if stream.max_stream_data_local_sent != stream.max_stream_data_local:
            stream.receiver.highest_offset = 0
            try:
                super()._write_stream_limits(builder, space, stream)
            finally:
                stream.receiver.highest_offset = highest

    def _write_connection_limits(self, builder: Any, space: Any) -> None:
        limit = self._local_max_data
        target = limit.used - self.pending_total + self._connection_window
        if target - limit.value >= self._connection_window // 2:
            limit.value = target
        used, limit.used = limit.used, 0  # aioquic doubles when used * 2 > value
        try:
            super()._write_connection_limits(builder, space)
        finally:
            limit.used = used

    # -- the send scheduler: see pounce.protocols.h3_send ---------------------------------------

    def send_stream_data(self, stream_id: int, data: bytes, end_stream: bool = False) -> None:
        # Request streams (client-initiated bidirectional: id % 4 == 0): a write joins
        # what the stream holds, or is held itself unless it leaves little unsent (a head,
        # a small body), so that only `_top_up`'s turns reach aioquic's per-packet walk.
        if not stream_id & 3 and (
            stream_id in self.held or self._unsent(stream_id) + len(data) > DIRECT
        ):
            self.held.hold(stream_id, data, end_stream)
        else:
            super().send_stream_data(stream_id, data, end_stream)

    def reset_stream(self, stream_id: int, error_code: int) -> None:
        self.held.drop(stream_id)
        super().reset_stream(stream_id, error_code)

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Any]]:
        if self.held or self._parked:
            self._top_up(now)
            self._park()
        return super().datagrams_to_send(now)

    def _top_up(self, now: float) -> None:
        """Hand aioquic, in turns, what this call can send beyond what it has queued."""
        if self._close_event is not None:
            self.held.clear()  # closing: nothing more is sent
            return
        budget = self._allowance(now) - self._queued()
        if budget > 0:
            for stream_id, data, fin in self.held.take(budget, self._room):
                QuicConnection.send_stream_data(self, stream_id, data, fin)  # type: ignore[arg-type]
                self._fed.add(stream_id)

    def _park(self) -> None:
        """Out of aioquic's send queue while they wait their turn: the streams whose every
        byte aioquic had is acknowledged and that have nothing else to send.

        aioquic looks at every stream in its send queue for every packet it builds (is it
        finished? a STOP_SENDING or RESET_STREAM to send? bytes?); a stream waiting here
        has nothing there. Worked out afresh before each `datagrams_to_send`, the only
        place aioquic reads the queue, so whatever changed since (a reset, a STOP_SENDING
        to send or received, the stream's turn) puts it back first.
        """
        held = self.held
        parked = self._parked
        streams: list[Any] = self._streams_queue
        if parked:
            streams = [*streams, *parked.values()]
        keep: list[Any] = []
        self._parked = {}
        for stream in streams:
            sender = stream.sender
            stream_id = stream.stream_id
            if (
                stream_id in held
                and sender._buffer_start == sender._buffer_stop  # all acknowledged
                and sender._reset_error_code is None
                and not stream.receiver.stop_pending
            ):
                self._parked[stream_id] = stream
            else:
                keep.append(stream)
        self._streams_queue = keep

    def _allowance(self, now: float) -> int:
        """Bytes the next `datagrams_to_send` can send at most: the congestion window
        left, the pacer's burst (and a packet an ACK sends past it), the peer's MAX_DATA;
        at least a datagram."""
        loss = self._loss
        allowance = loss.congestion_window - loss.bytes_in_flight
        pacer = loss._pacer
        if pacer.packet_time is not None:
            pacer.update_bucket(now)  # as aioquic's first next_send_time(now) will
            packets = math.ceil(pacer.bucket_time / pacer.packet_time) + 1
            allowance = min(allowance, packets * self._max_datagram_size)
        credit = self._remote_max_data - self._remote_max_data_used
        return max(min(allowance, credit), self._max_datagram_size)

    def _queued(self) -> int:
        """Bytes of the streams fed from `held` that aioquic has and may send now (a reset
        stream's bytes are never sent: they must not shrink the budget)."""
        total = 0
        for stream_id in list(self._fed):
            stream = self._streams.get(stream_id)
            waiting = 0
            if stream is not None and stream.sender._reset_error_code is None:
                sender = stream.sender
                sendable = min(sender._buffer_stop, stream.max_stream_data_remote)
                waiting = sendable - sender.highest_offset
            if waiting > 0:
                total += waiting
            else:
                self._fed.discard(stream_id)
        return total

    def _room(self, stream_id: int) -> int | None:
        """What the stream's flow control lets it queue; None: it sends no more (reset, gone)."""
        stream = self._streams.get(stream_id)
        if stream is None or stream.sender._reset_error_code is not None:
            return None
        return int(stream.max_stream_data_remote - stream.sender._buffer_stop)

    def _unsent(self, stream_id: int) -> int:
        """Bytes of the stream aioquic has queued and not sent."""
        stream = self._streams.get(stream_id)
        if stream is None:
            return 0
        return int(stream.sender._buffer_stop - stream.sender.highest_offset)


def _h3_buffered(quic: _CreditedQuic, stream_id: int) -> int:
    """Bytes of a request stream that the HTTP/3 layer holds as an incomplete frame."""
    h3 = quic.h3
    stream = h3._stream.get(stream_id) if h3 is not None else None
    return len(stream.buffer) if stream is not None else 0


class _StreamErrors(H3Connection):
    """aioquic's HTTP/3 connection with a malformed request a *stream* error.

    RFC 9114 §4.1.2: "A malformed request or response … MUST be treated as a
    stream error of type H3_MESSAGE_ERROR." aioquic closes the whole
    connection instead; here the stream is reset and its later frames dropped.
    """

    def __init__(self, quic: _CreditedQuic) -> None:
        super().__init__(quic)
        self.malformed: list[int] = []  # streams refused since the core last looked
        self._refused: set[int] = set()

    def _handle_request_or_push_frame(
        self, frame_type: int, frame_data: bytes | None, stream: H3Stream, stream_ended: bool
    ) -> list[h3e.H3Event]:
        sid = stream.stream_id
        if sid in self._refused:
            return []
        try:
            return super()._handle_request_or_push_frame(
                frame_type, frame_data, stream, stream_ended
            )
        except MessageError:
            if self._is_client:
                raise
            self._refused.add(sid)
            self.malformed.append(sid)
            stream.headers_recv_state = HeadersState.AFTER_TRAILERS
            return []

    def send_goaway(self, stream_id: int) -> None:
        """RFC 9114 §5.2: requests on `stream_id` and later are not processed."""
        control = self._local_control_stream_id
        if control is not None:
            frame = encode_frame(FrameType.GOAWAY, encode_uint_var(stream_id))
            self._quic.send_stream_data(control, frame)


# -- the core ---------------------------------------------------------------------------------


class H3Core:
    """One QUIC connection serving HTTP/3: datagrams in, events out; events in, datagrams out."""

    def __init__(
        self,
        credentials: Credentials,
        settings: H3Settings,
        original_destination_cid: bytes,
        retry_source_cid: bytes | None = None,
    ) -> None:
        """`retry_source_cid`: after a Retry, the id it gave the client (RFC 9000 §7.3)."""
        self.settings = settings
        config = QuicConfiguration(
            is_client=False,
            alpn_protocols=list(ALPN),
            idle_timeout=settings.idle_timeout,
            max_datagram_size=settings.max_datagram_size,
            max_data=settings.connection_window,
            max_stream_data=settings.stream_window,
            connection_id_length=settings.connection_id_length,
        )
        config.certificate = credentials.certificate
        config.certificate_chain = list(credentials.chain)
        config.private_key = credentials.private_key
        # No session_ticket_handler: no tickets, so no resumption and no 0-RTT
        # (replayable requests; see H3Settings).
        self._quic = _CreditedQuic(
            settings=settings,
            configuration=config,
            original_destination_connection_id=original_destination_cid,
            retry_source_connection_id=retry_source_cid,
        )
        self._h3 = _StreamErrors(self._quic)
        self._quic.h3 = self._h3
        self._active: set[int] = set()  # streams handed to the driver, response not done
        self._ended: set[int] = set()  # ... whose request body is complete
        self._lengths = DeclaredLengths()
        self._goaway: int | None = None  # first stream id not served, once GOAWAY is sent
        self._last_served = -4
        self.cipher_suite: tuple[int, str] | None = None  # IANA number, name; once handshaken
        self.server_cert = credentials.server_cert
        self.terminated = False
        self.resets = 0
        self.completed = 0
        self.close_error: tuple[int, str] | None = None  # once terminated: code, reason
        self.issued_ids: list[bytes] = []  # connection ids to route here, since last looked
        self.retired_ids: list[bytes] = []

    @property
    def host_cid(self) -> bytes:
        return self._quic.host_cid

    # -- inbound -------------------------------------------------------------------------------

    def receive_datagram(self, data: bytes, addr: Address, now: float) -> list[InboundEvent]:
        self._quic.receive_datagram(data, addr, now)
        return self._events()

    def handle_timer(self, now: float) -> list[InboundEvent]:
        self._quic.handle_timer(now)
        return self._events()

    def timer(self) -> float | None:
        return self._quic.get_timer()

    def datagrams_to_send(self, now: float) -> list[tuple[bytes, Address]]:
        return self._quic.datagrams_to_send(now)

    def _events(self) -> list[InboundEvent]:
        out: list[InboundEvent] = []
        while (event := self._quic.next_event()) is not None:
            self._on_quic(event, out)
        for sid in self._h3.malformed:
            self._malformed(sid, out)
        self._h3.malformed.clear()
        self._check_budget()
        return out

    def _on_quic(self, event: qe.QuicEvent, out: list[InboundEvent]) -> None:
        if isinstance(event, qe.StreamReset | qe.StopSendingReceived):
            if isinstance(event, qe.StopSendingReceived):  # aioquic reset our side
                self._quic.held.drop(event.stream_id)
            self._on_reset(event.stream_id, event.error_code, out)
        elif isinstance(event, qe.HandshakeCompleted):
            self.cipher_suite = self._cipher_suite()
        elif isinstance(event, qe.ConnectionIdIssued):
            self.issued_ids.append(event.connection_id)
        elif isinstance(event, qe.ConnectionIdRetired):
            self.retired_ids.append(event.connection_id)
        elif isinstance(event, qe.ConnectionTerminated):
            self.terminated = True
            self.close_error = (event.error_code, event.reason_phrase)
            self._quic.held.clear()
            out.extend(StreamReset(stream_id=sid) for sid in sorted(self._active))
            self._active.clear()
            out.append(ConnectionLost())
            return
        for h3_event in self._h3.handle_event(event):
            if isinstance(h3_event, h3e.DataReceived):
                self._on_data(h3_event, out)
            elif isinstance(h3_event, h3e.HeadersReceived):
                self._on_headers(h3_event, out)
            # Datagrams, pushes, WebTransport: not served.

    def _on_headers(self, event: h3e.HeadersReceived, out: list[InboundEvent]) -> None:
        sid = event.stream_id
        stream = self._h3._stream.get(sid)
        if stream is not None and stream.headers_recv_state is HeadersState.AFTER_TRAILERS:
            # Trailers: checked, then ignored (as HTTP/2's).
            if sid not in self._active:
                return  # answered already
            if not valid_trailers(event.headers):
                self._malformed(sid, out)
            elif event.stream_ended:
                self._end(sid, out)
            return
        if self._goaway is not None and sid >= self._goaway:
            self._refuse(sid, H3_REQUEST_REJECTED)  # RFC 9114 §5.2: after our GOAWAY
            return
        size = sum(len(n) + len(v) + 32 for n, v in event.headers)  # RFC 9114 §4.2.2
        if size > self.settings.max_header_list_size:
            self._active.add(sid)
            self.send(RejectRequest(stream_id=sid, status=431))
            return
        request, _priority, protocol = parse_request(sid, event.headers, ended=event.stream_ended)
        if request is None:
            self._malformed(sid, out)
            return
        request = replace(request, http_version="3")  # events are not changed once made
        self._active.add(sid)
        self._last_served = max(self._last_served, sid)
        if event.stream_ended:
            self._ended.add(sid)
        if request.method == b"HEAD":
            self._lengths.head_request(sid)
        if protocol is None:
            out.append(request)
        else:  # RFC 9220 extended CONNECT: the driver finds the protocol or refuses
            out.append(UpgradeRequested(stream_id=sid, request=request, protocol=protocol))

    def _on_data(self, event: h3e.DataReceived, out: list[InboundEvent]) -> None:
        sid = event.stream_id
        if sid not in self._active or sid in self._ended:
            return
        if event.data:
            self._quic.pending[sid] = self._quic.pending.get(sid, 0) + len(event.data)
            self._quic.pending_total += len(event.data)
            out.append(DataReceived(stream_id=sid, data=event.data))
        if event.stream_ended:
            self._end(sid, out)

    def _end(self, sid: int, out: list[InboundEvent]) -> None:
        if sid not in self._ended:
            self._ended.add(sid)
            out.append(StreamEnded(stream_id=sid))

    def _on_reset(self, sid: int, code: int, out: list[InboundEvent]) -> None:
        self.resets += 1
        if self._forget(sid):
            out.append(StreamReset(stream_id=sid, error_code=code))

    def _malformed(self, sid: int, out: list[InboundEvent]) -> None:
        """RFC 9114 §4.1.2: a stream error H3_MESSAGE_ERROR; it counts as a reset."""
        self.resets += 1
        self._refuse(sid, H3_MESSAGE_ERROR)
        if self._forget(sid):
            out.append(StreamReset(stream_id=sid, error_code=H3_MESSAGE_ERROR))

    def _refuse(self, sid: int, code: int) -> None:
        quic = self._quic
        stream = quic._streams.get(sid)
        if stream is not None:
            if not stream.receiver.is_finished:
                quic.stop_stream(sid, code)
            if not stream.sender.is_finished:
                quic.reset_stream(sid, code)

    def _check_budget(self) -> None:
        """Rapid Reset (CVE-2023-44487): as HTTP/2's budget, then H3_EXCESSIVE_LOAD."""
        if self.terminated or self.resets <= self.settings.max_resets + self.completed // 2:
            return
        self._quic.close(
            error_code=H3_EXCESSIVE_LOAD, reason_phrase="too many reset streams (Rapid Reset)"
        )
        self.resets = 0  # closing: once is enough

    @property
    def excessive_load(self) -> bool:
        event = self._quic._close_event
        return event is not None and event.error_code == H3_EXCESSIVE_LOAD

    @property
    def failed(self) -> bool:
        """Terminated by an error (a protocol violation, a budget), not a clean close or
        the idle timeout."""
        error = self.close_error
        return error is not None and error[0] not in (0, H3_NO_ERROR) and error[1] != "Idle timeout"

    # -- outbound ------------------------------------------------------------------------------

    def send(self, event: OutboundEvent) -> None:
        """Queue `event`.

        Raises:
            LocalProtocolError: a body that breaks its declared content-length
                (``status=500``); the stream is then the caller's to reset.
        """
        if isinstance(event, CloseConnection):
            self._go_away()
            return
        sid = event.stream_id
        if sid not in self._active or self.terminated:
            return  # reset meanwhile: what the app still says goes nowhere
        h3 = self._h3
        if isinstance(event, SendData):
            self._lengths.data(sid, len(event.data), event.end_stream)
            h3.send_data(sid, event.data, event.end_stream)
            if event.end_stream:
                self._finish(sid)
        elif isinstance(event, AcknowledgeData):
            self.credit(sid, event.size)
        elif isinstance(event, SendResponse):
            self._lengths.response(sid, event.status, event.headers)
            h3.send_headers(sid, _head(event.status, event.headers))
        elif isinstance(event, SendInformational):
            if 100 < event.status < 200 or (event.status == 100 and sid not in self._ended):
                h3.send_headers(sid, _head(event.status, event.headers))
        elif isinstance(event, SendTrailers):
            self._lengths.trailers(sid)
            trailers = [pair for pair in event.headers if pair[0] not in CONNECTION_SPECIFIC]
            h3.send_headers(sid, trailers, end_stream=True)
            self._finish(sid)
        elif isinstance(event, RejectRequest):
            h3.send_headers(sid, _head(event.status, event.headers), end_stream=True)
            self._finish(sid)
        elif isinstance(event, ResetStream):
            self._refuse(sid, _H2_TO_H3.get(event.error_code, event.error_code))
            self._forget(sid)

    def credit(self, sid: int, size: int) -> None:
        """The app read `size` bytes of `sid`'s body: they no longer hold its windows shut."""
        pending = self._quic.pending
        if sid in pending:
            pending[sid] -= size
            self._quic.pending_total -= size

    def _finish(self, sid: int) -> None:
        """The response is complete; a request body still coming is not wanted (RFC 9114
        §4.1: STOP_SENDING H3_NO_ERROR), so its bytes stop costing us bandwidth."""
        self.completed += 1
        stream = self._quic._streams.get(sid)
        if stream is not None and not stream.receiver.is_finished:
            self._quic.stop_stream(sid, H3_NO_ERROR)
        self._forget(sid)

    def _forget(self, sid: int) -> bool:
        """Drop what is kept of `sid`; True if it was handed to the driver."""
        self._lengths.forget(sid)
        self._ended.discard(sid)
        unread = self._quic.pending.pop(sid, 0)
        self._quic.pending_total -= unread
        if sid in self._active:
            self._active.discard(sid)
            return True
        return False

    def _go_away(self) -> None:
        """GOAWAY naming the first request stream not taken; those before it finish."""
        if self._goaway is None and not self.terminated:
            self._goaway = self._last_served + 4  # client-initiated bidirectional: 0, 4, 8 …
            self._h3.send_goaway(self._goaway)

    def close(self, error_code: int = H3_NO_ERROR, reason: str = "") -> None:
        """CONNECTION_CLOSE; the connection drains, then `terminated` (RFC 9000 §10.2)."""
        if not self.terminated:
            self._quic.close(error_code=error_code, reason_phrase=reason)

    # -- state for the driver ---------------------------------------------------------------------

    def unsent(self, sid: int) -> int:
        """Response bytes of `sid` queued and not yet sent, held by the scheduler or by
        aioquic: what the peer's window or the congestion window holds back (bytes sent
        and awaiting acknowledgement are not counted: the congestion window bounds those,
        as a socket buffer does for TCP)."""
        stream = self._quic._streams.get(sid)
        if stream is None or sid not in self._active:
            return 0
        sender = stream.sender
        return max(0, sender._buffer_stop - sender.highest_offset) + self._quic.held.held(sid)

    def responses_delivered(self) -> bool:
        """Every response sent, and the GOAWAY, is acknowledged (or a stream's reset is):
        closing now loses nothing.

        A CONNECTION_CLOSE discards what is still unacknowledged, so a going-away
        connection waits for this (bounded by the graceful shutdown timeout).
        """
        streams = self._quic._streams
        control = streams.get(self._h3._local_control_stream_id or -1)
        if control is not None and control.sender._buffer_start != control.sender._buffer_stop:
            return False  # the GOAWAY itself is not acknowledged yet
        return all(
            stream.sender.is_finished
            for sid, stream in streams.items()
            if sid % 4 == 0  # client-initiated bidirectional: the request streams
        )

    def is_active(self, sid: int) -> bool:
        return sid in self._active

    @property
    def going_away(self) -> bool:
        return self._goaway is not None

    def _cipher_suite(self) -> tuple[int, str] | None:
        """The TLS 1.3 suite negotiated, with the name OpenSSL gives it."""
        schedule = self._quic.tls.key_schedule
        if schedule is None:
            return None
        number = int(schedule.cipher_suite)
        return number, f"TLS_{CipherSuite(number).name}"


def _head(status: int, headers: Headers) -> Headers:
    out: Headers = [(b":status", b"%d" % status)]
    # RFC 9114 §4.2: no connection-specific fields; TE belongs to requests
    # (the exchange may add "connection: close", which HTTP/3 says with GOAWAY instead).
    out.extend(pair for pair in headers if pair[0] not in CONNECTION_SPECIFIC and pair[0] != b"te")
    return out
