"""WebSocket (RFC 6455) server core over wsproto, with permessage-deflate (RFC 7692).

The only module that imports wsproto. It starts where HTTP/1.1 hands over an
`UpgradeRequested`: `WebSocketCore` checks the opening handshake, writes the
answer the app chose (101, a denial response, or a bare 403/500), then turns
bytes into whole messages and messages into frames. Like every core it owns no
socket and no clock: pings are sent and timed out by the driver.

Invariants:

* wsproto's frame layer is used, never its HTTP layer: the request was parsed
  by our HTTP/1.1 or HTTP/2 core, and the handshake is checked here (RFC 6455
  §4.2.1; over HTTP/2, RFC 8441 §5: an extended CONNECT, no key, and the
  answer is a 200 HEADERS frame — `take_head` — not a 101 in the byte stream).
* Outbound data messages with no extension negotiated are framed here
  (`_plain_frame`: a header and the payload, byte for byte what wsproto
  writes, with one copy instead of wsproto's five); every inbound byte,
  every control frame and every compressed message goes through wsproto.
* The message size limit holds on the *decompressed* size, across fragments:
  wsproto 1.3.2 inflates with no bound (the CVE-2018-1000518 class), so
  `BoundedDeflate` inflates with ``max_length`` and `MessageSizeLimit` refuses
  an uncompressed frame by its header, before its payload is buffered.
* Bad input fails the connection with a close frame (1002, 1007, 1009), then
  the connection closes; every wsproto exception is translated here.
* State changes follow `TRANSITIONS`; an outbound event with no entry for
  the current state raises `LocalProtocolError`.
"""

from __future__ import annotations

import base64
import binascii
import enum
import struct
import zlib
from dataclasses import dataclass, field

from wsproto.connection import Connection, ConnectionState, ConnectionType
from wsproto.events import BytesMessage, Ping, Pong, TextMessage
from wsproto.events import CloseConnection as WSClose
from wsproto.extensions import Extension, PerMessageDeflate
from wsproto.frame_protocol import CloseReason, FrameDecoder, FrameProtocol, Opcode, RsvBits
from wsproto.utilities import LocalProtocolError as WSLocalProtocolError
from wsproto.utilities import generate_accept_token

from pounce.errors import LocalProtocolError, RemoteProtocolError
from pounce.protocols.events import (
    Headers,
    RejectRequest,
    RequestReceived,
    SendData,
    SendResponse,
)
from pounce.protocols.h1 import REASONS, error_response_bytes

MiB = 1024 * 1024
DEFAULT_MAX_SIZE = 16 * MiB  # bytes per message, decompressed; Uvicorn's and Hypercorn's
WS_VERSION = b"13"  # RFC 6455 §4.1: the only version there is

# RFC 6455 §7.4.1 close codes.
NORMAL_CLOSURE = 1000
GOING_AWAY = 1001
PROTOCOL_ERROR = 1002
INVALID_DATA = 1007
MESSAGE_TOO_BIG = 1009
INTERNAL_ERROR = 1011
ABNORMAL_CLOSURE = 1006  # never on the wire: the connection dropped without a close

# CVE-2026-44546 (daphne): bytes that str.splitlines() treats as line breaks
# let a header value inject headers. With CR, LF and NUL, refused in any
# handshake header value (answer 400).
_FORBIDDEN_IN_VALUE = frozenset(b"\r\n\x00\x0b\x0c\x1c\x1d\x1e\x85")
_DEFLATE_PARAMS = frozenset(
    (
        "client_no_context_takeover",
        "server_no_context_takeover",
        "client_max_window_bits",
        "server_max_window_bits",
    )
)


# -- events -------------------------------------------------------------------
# Inbound (core → driver) are past tense, outbound imperative, as in events.py.


@dataclass(slots=True, kw_only=True)
class MessageReceived:
    """A whole message arrived: ``str`` for a text message, ``bytes`` for binary."""

    stream_id: int = 0
    data: bytes | str


@dataclass(slots=True, kw_only=True)
class PongReceived:
    """A pong arrived (an answer to our ping, or unsolicited: RFC 6455 §5.5.3)."""

    stream_id: int = 0
    payload: bytes = b""


@dataclass(slots=True, kw_only=True)
class CloseReceived:
    """The peer closed; the core has queued its answering close frame."""

    stream_id: int = 0
    code: int
    reason: str = ""


@dataclass(slots=True, kw_only=True)
class WebSocketFailed:
    """The peer broke the protocol or a limit; a close frame with `code` is queued."""

    stream_id: int = 0
    code: int
    reason: str = ""


WSInboundEvent = MessageReceived | PongReceived | CloseReceived | WebSocketFailed


@dataclass(slots=True, kw_only=True)
class AcceptWebSocket:
    """Answer the handshake with 101 Switching Protocols."""

    stream_id: int = 0
    subprotocol: str | None = None
    headers: Headers = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class SendMessage:
    """Send one whole message: text for ``str``, binary for ``bytes``."""

    stream_id: int = 0
    data: bytes | str


@dataclass(slots=True, kw_only=True)
class SendPing:
    stream_id: int = 0
    payload: bytes = b""


@dataclass(slots=True, kw_only=True)
class CloseWebSocket:
    """Start the closing handshake (RFC 6455 §7.1.2)."""

    stream_id: int = 0
    code: int = NORMAL_CLOSURE
    reason: str = ""


WSOutboundEvent = (
    AcceptWebSocket
    | SendMessage
    | SendPing
    | CloseWebSocket
    | RejectRequest
    | SendResponse
    | SendData
)


# -- the handshake ------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WSSettings:
    """Options of the core; the driver's (pings, queue) live in `pounce.drivers.websocket`."""

    max_size: int = DEFAULT_MAX_SIZE  # bytes per message, after decompression
    per_message_deflate: bool = True  # accept a permessage-deflate offer (RFC 7692)


@dataclass(frozen=True, slots=True, kw_only=True)
class Handshake:
    """A valid opening handshake: what the app chooses from."""

    key: bytes
    """``Sec-WebSocket-Key``; empty over HTTP/2, which has none (RFC 8441 §5)."""
    subprotocols: tuple[str, ...]
    extension_offers: tuple[str, ...]
    http2: bool = False
    """An RFC 8441 extended CONNECT on an HTTP/2 stream, not an HTTP/1.1 Upgrade."""


Head = tuple[int, Headers, bool]
"""An HTTP/2 response head: status, fields, and whether the stream ends with it."""


def check_handshake(request: RequestReceived) -> Handshake:
    """Check an upgrade request against RFC 6455 §4.2.1, or RFC 8441 §5 over HTTP/2.

    Raises:
        RemoteProtocolError: ``status`` 400 for a malformed handshake, 426 for
            a missing or other ``Sec-WebSocket-Version``.
    """
    keys: list[bytes] = []
    versions: list[bytes] = []
    protocols: list[str] = []
    offers: list[str] = []
    for name, value in request.headers:
        if not _FORBIDDEN_IN_VALUE.isdisjoint(value):
            raise RemoteProtocolError(f"forbidden byte in header {name!r} (CVE-2026-44546)")
        if name == b"sec-websocket-key":
            keys.append(value.strip())
        elif name == b"sec-websocket-version":
            versions.append(value.strip())
        elif name == b"sec-websocket-protocol":
            protocols.extend(_split(value))
        elif name == b"sec-websocket-extensions":
            offers.extend(_split(value))
    http2 = request.http_version in ("2", "3")  # RFC 9220 §3: over HTTP/3 as over HTTP/2
    if request.method != (b"CONNECT" if http2 else b"GET"):
        method = "an extended CONNECT" if http2 else "a GET request"
        raise RemoteProtocolError(f"a WebSocket handshake must be {method}")
    if versions != [WS_VERSION]:
        raise RemoteProtocolError("unsupported Sec-WebSocket-Version", status=426)
    if http2:  # RFC 8441 §5: the stream is the handshake; no key, no accept token
        return Handshake(
            key=b"", subprotocols=tuple(protocols), extension_offers=tuple(offers), http2=True
        )
    if len(keys) != 1 or not _valid_key(keys[0]):
        raise RemoteProtocolError("missing or invalid Sec-WebSocket-Key")
    return Handshake(key=keys[0], subprotocols=tuple(protocols), extension_offers=tuple(offers))


def refusal_headers(error: RemoteProtocolError) -> Headers:
    """RFC 6455 §4.2.2 and RFC 9110 §15.5.22: a 426 names the versions we speak."""
    if error.status == 426:
        return [(b"sec-websocket-version", WS_VERSION), (b"upgrade", b"websocket")]
    return []


def refusal_bytes(error: RemoteProtocolError, headers: Headers) -> bytes:
    """The whole answer to a handshake `check_handshake` refused; the connection closes."""
    return error_response_bytes(error.status, [*headers, *refusal_headers(error)])


def _valid_key(key: bytes) -> bool:
    """RFC 6455 §4.1: the key is 16 random bytes, base64-encoded (24 characters)."""
    try:
        return len(base64.b64decode(key, validate=True)) == 16
    except binascii.Error:
        return False


def _split(value: bytes) -> list[str]:
    return [part for part in (p.strip() for p in value.decode("latin-1").split(",")) if part]


def negotiate_deflate(offers: tuple[str, ...], max_size: int) -> tuple[BoundedDeflate, str] | None:
    """The first permessage-deflate offer we can accept, with the response parameters.

    RFC 7692 §7.1: an offer with an unknown, repeated or invalid parameter is
    declined (the next one may be accepted); the client's context-takeover
    and window-bits choices are honoured.
    """
    for offer in offers:
        name, _, params = offer.partition(";")
        if name.strip() != "permessage-deflate" or not _known_params(params):
            continue
        extension = BoundedDeflate(max_size)
        try:
            accepted = extension.accept(offer)
        except ValueError:  # wsproto parses window bits with int()
            continue
        if isinstance(accepted, str):
            return extension, "permessage-deflate" + (f"; {accepted}" if accepted else "")
    return None


def _known_params(params: str) -> bool:
    names = [p.split("=", 1)[0].strip() for p in params.split(";") if p.strip()]
    return len(names) == len(set(names)) and all(n in _DEFLATE_PARAMS for n in names)


# -- limits ----------------------------------------------------------------------------

_NO_RSV = RsvBits(False, False, False)  # an extension's "no reserved bits used"


class MessageSizeLimit(Extension):
    """The message size limit without compression: refused by the frame header.

    Never negotiated; always in the frame layer when permessage-deflate is not.
    """

    name = "pounce-message-size-limit"

    def __init__(self, max_size: int) -> None:
        self.max_size = max_size
        self._size = 0  # payload bytes of the message being received

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        # Called for every frame, so kept lean: a data frame (opcode < 8) that
        # is not a CONTINUATION (0) starts a message, which resets the count.
        if opcode < 8:
            size = self._size + payload_length if opcode == 0 else payload_length
            self._size = size
            if size > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
        return _NO_RSV


class BoundedDeflate(PerMessageDeflate):
    """wsproto's permessage-deflate with inflation bounded by the message size limit.

    wsproto calls ``decompress(data)`` with no ``max_length``, so a small frame
    could inflate to gigabytes; here each call may produce at most one byte
    more than the message still has room for, and a leftover input tail means
    the limit was passed: 1009. Uncompressed messages are checked by the
    frame header, as in `MessageSizeLimit`. Control frames between fragments
    leave the message's compression state alone (wsproto resets it).
    """

    def __init__(self, max_size: int) -> None:
        super().__init__()
        self.max_size = max_size
        self._size = 0  # decompressed bytes of the message being received
        self._control = False

    def frame_inbound_header(
        self, proto: FrameDecoder | FrameProtocol, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        self._control = opcode.iscontrol()
        if self._control:
            return CloseReason.PROTOCOL_ERROR if rsv.rsv1 else _NO_RSV
        result = super().frame_inbound_header(proto, opcode, rsv, payload_length)
        if not isinstance(result, CloseReason) and not self._inbound_compressed:
            self._size += payload_length
            if self._size > self.max_size:
                return CloseReason.MESSAGE_TOO_BIG
        return result

    def frame_inbound_payload_data(
        self, proto: FrameDecoder | FrameProtocol, data: bytes
    ) -> bytes | CloseReason:
        if self._control or not self._inbound_compressed:
            return data
        return self._inflate(data)

    def frame_inbound_complete(
        self, proto: FrameDecoder | FrameProtocol, fin: bool
    ) -> bytes | CloseReason | None:
        if self._control or not fin:
            return None
        compressed = self._inbound_compressed
        self._inbound_compressed = None
        if not compressed:
            self._size = 0
            return None
        tail = self._inflate(b"\x00\x00\xff\xff")  # RFC 7692 §7.2.2: the removed trailer
        self._size = 0
        if self.client_no_context_takeover:
            self._decompressor = None
        return tail

    def _inflate(self, data: bytes) -> bytes | CloseReason:
        decompressor = self._decompressor
        assert decompressor is not None
        room = self.max_size - self._size
        try:
            # max_length=0 would mean "no limit": room + 1 is at least 1.
            out = decompressor.decompress(data, room + 1)
        except zlib.error:
            return CloseReason.INVALID_FRAME_PAYLOAD_DATA
        self._size += len(out)
        if self._size > self.max_size or decompressor.unconsumed_tail:
            return CloseReason.MESSAGE_TOO_BIG
        return out


# -- the core ------------------------------------------------------------------------------


class WSState(enum.Enum):
    HANDSHAKE = "handshake"  # waiting for the app to accept or deny
    DENYING = "denying"  # an HTTP denial response is being written
    OPEN = "open"
    CLOSING = "closing"  # we sent a close frame and wait for the peer's
    CLOSED = "closed"  # nothing more goes out; the connection closes


# (state, outbound event) → next state. Events that end a phase early (the
# denial's last body chunk, a close answered) are handled in `send`.
TRANSITIONS: dict[tuple[WSState, type], WSState] = {
    (WSState.HANDSHAKE, AcceptWebSocket): WSState.OPEN,
    (WSState.HANDSHAKE, RejectRequest): WSState.CLOSED,
    (WSState.HANDSHAKE, SendResponse): WSState.DENYING,
    (WSState.DENYING, SendData): WSState.DENYING,
    (WSState.OPEN, SendMessage): WSState.OPEN,
    (WSState.OPEN, SendPing): WSState.OPEN,
    (WSState.OPEN, CloseWebSocket): WSState.CLOSING,
    # A close or ping that crosses the peer's close is dropped.
    (WSState.CLOSING, SendPing): WSState.CLOSING,
    (WSState.CLOSING, CloseWebSocket): WSState.CLOSING,
    (WSState.CLOSED, SendPing): WSState.CLOSED,
    (WSState.CLOSED, CloseWebSocket): WSState.CLOSED,
}


class WebSocketCore:
    """One WebSocket connection, server side; see the module docstring."""

    def __init__(self, handshake: Handshake, settings: WSSettings | None = None) -> None:
        self.handshake = handshake
        self.settings = settings or WSSettings()
        self.state = WSState.HANDSHAKE
        self._ws: Connection | None = None
        self._out: list[bytes] = []
        self._pending = b""  # bytes that arrived before the app accepted
        self._parts: list[bytes | str] = []
        self._failed = False
        self._head: Head | None = None  # HTTP/2 only: the response head to send first
        self._plain = False  # accepted without permessage-deflate
        self.read_paused = False
        """Bytes wait for an accept that has not come: stop reading meanwhile."""

    # -- inbound ---------------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[WSInboundEvent]:
        """Feed bytes (possibly empty); return the whole messages and closes they complete."""
        ws = self._ws
        if ws is None or self.state is WSState.DENYING:
            self._pending += data  # not ours to read before the 101
            self.read_paused = ws is None and bool(self._pending)
            return []
        if self.state is WSState.CLOSED or self._failed:
            return []  # RFC 6455 §7.1.1: nothing after the close counts
        if data:
            ws.receive_data(data)
        events: list[WSInboundEvent] = []
        for event in ws.events():
            # The common case first: a whole message in one frame.
            if type(event) is BytesMessage and event.message_finished and not self._parts:
                payload = event.data
                events.append(
                    MessageReceived(data=payload if type(payload) is bytes else bytes(payload))
                )
            elif type(event) is TextMessage and event.message_finished and not self._parts:
                events.append(MessageReceived(data=event.data))
            elif self._map(event, events):
                break
        return events

    def _map(self, event: object, events: list[WSInboundEvent]) -> bool:
        """Append what `event` means; True once the connection is done reading."""
        if isinstance(event, TextMessage | BytesMessage):
            data = event.data
            self._parts.append(data if isinstance(data, str) else bytes(data))
            if event.message_finished:
                parts, self._parts = self._parts, []
                whole = parts[0] if len(parts) == 1 else _join(parts)
                events.append(MessageReceived(data=whole))
        elif isinstance(event, Ping):
            self._write(event.response())
        elif isinstance(event, Pong):
            events.append(PongReceived(payload=bytes(event.payload)))
        elif isinstance(event, WSClose):
            events.append(self._closed_by(event))
            return True
        return False

    def _closed_by(self, event: WSClose) -> CloseReceived | WebSocketFailed:
        assert self._ws is not None
        code, reason = int(event.code), event.reason or ""
        if self._ws.state is ConnectionState.OPEN:
            # wsproto reports a frame it could not parse as a close it never
            # received (RFC 6455 §7.1.7 "Fail the WebSocket Connection").
            self._failed = True
            self._parts.clear()
            self._write(WSClose(code=code, reason=_short(reason)))
            self.state = WSState.CLOSED
            return WebSocketFailed(code=code, reason=reason)
        if self._ws.state is ConnectionState.REMOTE_CLOSING:
            self._write(event.response())  # RFC 6455 §5.5.1: echo the close
        self.state = WSState.CLOSED
        return CloseReceived(code=code, reason=reason)

    # -- outbound --------------------------------------------------------------------

    def send(self, event: WSOutboundEvent) -> None:
        following = TRANSITIONS.get((self.state, type(event)))
        if following is None:
            raise LocalProtocolError(
                f"cannot send {type(event).__name__} in WebSocket state {self.state.value}",
                status=500,
            )
        previous, self.state = self.state, following
        if isinstance(event, AcceptWebSocket):
            self._accept(event)
        elif isinstance(event, SendMessage):
            self._write(_message(event.data))
        elif isinstance(event, SendPing):
            if previous is WSState.OPEN:
                self._write(Ping(payload=event.payload))
        elif isinstance(event, CloseWebSocket):
            if previous is WSState.OPEN:
                self._write(WSClose(code=event.code, reason=_short(event.reason)))
        elif isinstance(event, RejectRequest):
            if self.handshake.http2:
                self._head = (event.status, event.headers, True)
            else:
                self._out.append(error_response_bytes(event.status, event.headers))
        elif isinstance(event, SendResponse):
            if self.handshake.http2:
                _check_fields(event.headers)
                self._head = (event.status, event.headers, False)
            else:
                self._out.append(_denial_head(event.status, event.headers))
        else:  # SendData: a denial's body; the connection closes after it
            self._out.append(event.data)
            if event.end_stream:
                self.state = WSState.CLOSED

    def send_message(self, data: bytes | str) -> bytes:
        """`send` of a `SendMessage`, returning the bytes to write (with any queued before)."""
        if self.state is not WSState.OPEN:
            raise LocalProtocolError(
                f"cannot send SendMessage in WebSocket state {self.state.value}", status=500
            )
        assert self._ws is not None
        if self._plain:
            frame = _plain_frame(data)
        else:
            try:
                frame = self._ws.send(_message(data))
            except WSLocalProtocolError as exc:
                raise LocalProtocolError(str(exc), status=500) from exc
        if self._out:
            self._out.append(frame)
            return self.data_to_send()
        return frame

    def _accept(self, event: AcceptWebSocket) -> None:
        handshake, settings = self.handshake, self.settings
        headers: Headers = []
        if not handshake.http2:
            headers += [
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-accept", generate_accept_token(handshake.key)),
            ]
        if event.subprotocol is not None:
            headers.append((b"sec-websocket-protocol", event.subprotocol.encode("latin-1")))
        extension: Extension = MessageSizeLimit(settings.max_size)
        deflate = None
        if settings.per_message_deflate:
            deflate = negotiate_deflate(handshake.extension_offers, settings.max_size)
        if deflate is not None:
            extension = deflate[0]
            headers.append((b"sec-websocket-extensions", deflate[1].encode("ascii")))
        reserved = {name for name, _ in headers}
        headers.extend(pair for pair in event.headers if pair[0] not in reserved)
        _check_fields(headers)
        if handshake.http2:
            self._head = (200, headers, False)  # RFC 8441 §5: a 2xx opens the tunnel
        else:
            self._out.append(b"HTTP/1.1 101 Switching Protocols\r\n" + _fields(headers) + b"\r\n")
        self._ws = Connection(ConnectionType.SERVER, extensions=[extension])
        self._plain = deflate is None
        pending, self._pending = self._pending, b""
        self.read_paused = False
        if pending:
            self._ws.receive_data(pending)  # events come out of the next receive_data

    def _write(self, event: WSClose | Ping | Pong | TextMessage | BytesMessage) -> None:
        assert self._ws is not None
        try:
            self._out.append(self._ws.send(event))
        except WSLocalProtocolError as exc:
            raise LocalProtocolError(str(exc), status=500) from exc

    def take_head(self) -> Head | None:
        """HTTP/2: the response head queued by an accept or a denial, to go before any bytes."""
        head, self._head = self._head, None
        return head

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    # -- state -----------------------------------------------------------------------

    @property
    def has_output(self) -> bool:
        """Bytes (or, over HTTP/2, a head) wait for `data_to_send` (or `take_head`)."""
        return bool(self._out) or self._head is not None

    @property
    def must_close(self) -> bool:
        """True once the connection should close after the queued bytes are written."""
        return self.state is WSState.CLOSED


def _join(parts: list[bytes | str]) -> bytes | str:
    if isinstance(parts[0], str):
        return "".join(p for p in parts if isinstance(p, str))
    return b"".join(p for p in parts if isinstance(p, bytes))


def _plain_frame(data: bytes | str) -> bytes:
    """A whole message as one unmasked frame with no extension: what wsproto would write."""
    if isinstance(data, str):
        payload, first = data.encode("utf-8"), 0x81  # FIN | TEXT
    else:
        payload, first = data, 0x82  # FIN | BINARY
    n = len(payload)
    if n <= 125:
        return _SHORT_HEADS[first & 1][n] + payload
    if n <= 0xFFFF:
        return _HEAD_16.pack(first, 126, n) + payload
    return _HEAD_64.pack(first, 127, n) + payload


_SHORT_HEADS = (  # [text?][length]: the 2-byte header of a short message
    tuple(bytes((0x82, n)) for n in range(126)),
    tuple(bytes((0x81, n)) for n in range(126)),
)
_HEAD_16 = struct.Struct("!BBH")
_HEAD_64 = struct.Struct("!BBQ")


def _message(data: bytes | str) -> TextMessage | BytesMessage:
    if isinstance(data, str):
        return TextMessage(data=data)
    return BytesMessage(data=data)


def _short(reason: str) -> str:
    """RFC 6455 §5.5: a close reason fits a control frame (123 bytes of UTF-8)."""
    encoded = reason.encode("utf-8")
    if len(encoded) <= 123:
        return reason
    return encoded[:123].decode("utf-8", "ignore")


def _denial_head(status: int, headers: Headers) -> bytes:
    """An HTTP/1.1 response head that ends the connection: its body runs to the close."""
    kept = [pair for pair in headers if pair[0] != b"connection"]
    kept.append((b"connection", b"close"))
    _check_fields(kept)
    line = b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))
    return line + _fields(kept) + b"\r\n"


def _fields(headers: Headers) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def _check_fields(headers: Headers) -> None:
    for name, value in headers:
        if b"\r" in name + value or b"\n" in name + value or b"\x00" in name + value:
            raise LocalProtocolError(f"CR, LF or NUL in a header field: {name!r}", status=500)
