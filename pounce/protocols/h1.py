"""HTTP/1.1 server core over h11, the strict reference implementation.

h11 does the parsing and framing; this module maps its events onto Pounce's
(`RequestReceived`, `DataReceived`, …), numbers requests as streams 1, 2, 3 …,
adds the limits and checks h11 does not have (request-line length → 414, a
head over the limit even when it arrives in one read → 431, HTTP major version
→ 505, obs-fold and Content-Length beside Transfer-Encoding → 400, and the
Host, absolute-form and chunk-extension rules of `pounce.protocols.h1_syntax`)
and translates every h11 exception into Pounce's own error tree at this seam.
Invariants:

* At most one request is in flight: h11 pauses after a complete request until
  its response is done, which is what answers pipelined requests in order.
* A response that ends while the request body is still unread closes the
  connection: we never guess where the next request starts.
* A broken request breaks the connection: after a `RemoteProtocolError` every
  further `receive_data` raises again. Bytes after a request that closes the
  connection (HTTP/1.0, ``Connection: close``) are ignored, not an error.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from http import HTTPStatus

import h11

from pounce.errors import LocalProtocolError, RemoteProtocolError
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
from pounce.protocols.h1_syntax import ChunkHeaders, check_host, origin_form

KiB = 1024

# h11's and Uvicorn's default: the largest request head we buffer (answer 431).
DEFAULT_MAX_HEAD = 16 * KiB  # bytes
# nginx and Apache (LimitRequestLine) default: the longest request line (answer 414).
DEFAULT_MAX_REQUEST_LINE = 8 * KiB  # bytes

REASONS: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}

# RFC 9112 §5.2: a line of the head that starts with SP or HTAB is obs-fold.
_OBS_FOLD = re.compile(rb"\n[ \t]")
# The blank line that ends a head (h11 accepts bare LF line ends as well).
_HEAD_END = re.compile(rb"\n\r?\n")


@dataclass(frozen=True, slots=True, kw_only=True)
class H1Limits:
    """Size limits of the HTTP/1.1 cores.

    `max_incomplete_event_size` is h11's own knob and Uvicorn's
    ``--h11-max-incomplete-event-size``: the largest request head (request line
    plus headers) we buffer before answering 431. h11 and Uvicorn default to
    16 KiB; nginx's ``large_client_header_buffers`` is 4 × 8 KiB.
    `max_request_line` bounds the request line alone (answer 414); 8 KiB as in
    nginx and Apache (``LimitRequestLine``).
    """

    max_incomplete_event_size: int = DEFAULT_MAX_HEAD  # bytes
    max_request_line: int = DEFAULT_MAX_REQUEST_LINE  # bytes


def error_response_bytes(status: int, headers: Headers) -> bytes:
    """A complete minimal response, used when no parsed request exists to answer."""
    reason = REASONS.get(status, b"Error")
    body = reason + b"\n"
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    lines.extend(name + b": " + value for name, value in headers)
    lines.append(b"content-type: text/plain; charset=utf-8")
    lines.append(b"content-length: %d" % len(body))
    lines.append(b"connection: close")
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class H11Core:
    """A `ProtocolCore` for HTTP/1.0 and HTTP/1.1 backed by h11."""

    def __init__(self, limits: H1Limits | None = None) -> None:
        self._limits = limits or H1Limits()
        self._conn = h11.Connection(
            h11.SERVER, max_incomplete_event_size=self._limits.max_incomplete_event_size
        )
        self._stream_id = 0
        self._out: list[bytes] = []
        self._closing = False
        self._peer_closes = False  # its last request said "Connection: close"
        self._paused = False
        self._error: RemoteProtocolError | None = None
        # The chunk headers of the request body being read, when it is chunked.
        self._chunks: ChunkHeaders | None = None
        # The request being read has a body: only then does its end become a StreamEnded.
        self._has_body = False
        # A buffer no longer than this holds at most a head within both limits.
        self._short_head = min(
            self._limits.max_request_line, self._limits.max_incomplete_event_size
        )

    # -- inbound --------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[InboundEvent]:
        if self._error is not None:
            # Whatever follows a broken request cannot be framed: stay broken.
            self._closing = True
            raise RemoteProtocolError(self._error.message, status=self._error.status)
        try:
            if data:
                chunks = self._chunks
                if chunks is not None and not chunks.feed(data):
                    self._chunks = None  # past the last chunk
                self._conn.receive_data(data)
            return self._drain_events()
        except RemoteProtocolError as exc:
            self._error = exc
            self._closing = True
            raise

    def receive_eof(self) -> list[InboundEvent]:
        self._conn.receive_data(b"")
        try:
            events = [] if self._error is not None else self._drain_events()
        except RemoteProtocolError:
            # A request cut off by EOF is not worth an answer: nobody reads it.
            events = []
        if not events or not isinstance(events[-1], ConnectionLost):
            events.append(ConnectionLost(stream_id=self._stream_id))
        self._closing = True
        return events

    def _drain_events(self) -> list[InboundEvent]:
        conn = self._conn
        events: list[InboundEvent] = []
        while True:
            state = conn.their_state
            if state is h11.MUST_CLOSE and conn.trailing_data[0]:
                # RFC 9112 §9.6: after a request that closes the connection
                # (HTTP/1.0, "Connection: close") the server "MUST NOT process
                # any further requests": that one is answered, the rest ignored.
                self._paused = True
                return events
            try:
                if state is h11.IDLE:
                    self._check_head()
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._translate(exc) from exc
            # Ordered by frequency; exact types, as h11 makes them.
            kind = type(event)
            if kind is h11.Request:
                events.append(self._request(event))  # type: ignore[arg-type]
            elif kind is h11.EndOfMessage:
                if self._has_body:  # (a request without one was complete with its head)
                    events.append(StreamEnded(stream_id=self._stream_id))
            elif event is h11.PAUSED:
                # Paused with nothing buffered (an Upgrade or CONNECT request
                # waiting for its answer) holds back nothing: reading goes on
                # until a byte of a next request is actually waiting. (In DONE
                # h11 pauses only when bytes are buffered.)
                self._paused = conn.their_state is h11.DONE or bool(conn.trailing_data[0])
                return events
            elif event is h11.NEED_DATA:
                self._paused = False
                return events
            elif kind is h11.Data:
                data = event.data  # type: ignore[union-attr]
                events.append(DataReceived(stream_id=self._stream_id, data=bytes(data)))
            else:  # ConnectionClosed
                events.append(ConnectionLost(stream_id=self._stream_id))
                return events

    def _check_head(self) -> None:
        """Check the buffered head of the next request before h11 parses it.

        h11 bounds only an *incomplete* head, so a huge head that arrives in
        one read would pass; and it quietly unfolds obs-fold, which RFC 9112
        §5.2 lets us refuse instead. A proxy in front of us may unfold
        differently or not at all, so a 400 is the answer that cannot be
        misread.
        """
        buffered = self._conn.trailing_data[0]
        if len(buffered) <= self._short_head and b"\n " not in buffered and b"\n\t" not in buffered:
            return  # within both limits even whole, and no line starts with whitespace
        end = _HEAD_END.search(buffered)
        head_size = len(buffered) if end is None else end.end()
        line_end = buffered.find(b"\n", 0, head_size)
        if line_end == -1:
            line_size = head_size
        else:
            line_size = line_end - (buffered[line_end - 1 : line_end] == b"\r")
        if line_size > self._limits.max_request_line:
            raise RemoteProtocolError("request line too long", status=414)
        if head_size > self._limits.max_incomplete_event_size:
            raise RemoteProtocolError("request head too large", status=431)
        if _OBS_FOLD.search(buffered, 0, head_size):
            raise RemoteProtocolError("obsolete line folding in request head", status=400)

    def _request(self, event: h11.Request) -> InboundEvent:
        self._stream_id += 1
        version = event.http_version
        if not version.startswith(b"1."):
            # RFC 9110 §15.6.6: we only speak HTTP/1.x on this core.
            raise RemoteProtocolError(f"unsupported HTTP version {version!r}", status=505)
        # (`raw_items` and `lower()`: h11's own iteration goes through
        # `Sequence.__iter__`, a Python call per field.)
        headers = [(name.lower(), value) for name, value in event.headers.raw_items()]
        fields = dict(headers)  # by name (h11 refused two Host fields)
        chunked = b"transfer-encoding" in fields
        if chunked:
            if b"content-length" in fields:
                # RFC 9112 §6.1: a request smuggling vector; h11 would go by
                # Transfer-Encoding and keep the connection open. Refuse it.
                raise RemoteProtocolError("both Content-Length and Transfer-Encoding", status=400)
            has_body = True
        else:
            has_body = b"content-length" in fields and _declares_body(headers)
        connection = fields.get(b"connection")
        if connection is not None and version == b"1.1":
            self._peer_closes = b"close" in (t.strip().lower() for t in connection.split(b","))
        host = fields.get(b"host")
        if host is not None:
            check_host(host)  # RFC 9112 §3.2: host[:port], else 400
        method, target = bytes(event.method), bytes(event.target)
        if target[:1] != b"/" and method != b"CONNECT":
            # RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
            target, headers = origin_form(method, target, headers)
        if chunked:
            # RFC 9112 §7.1.1: h11 would take a bare CR or a NUL in a chunk extension.
            chunks = ChunkHeaders()
            self._chunks = chunks if chunks.feed(self._conn.trailing_data[0]) else None
        self._has_body = has_body
        request = RequestReceived(
            stream_id=self._stream_id,
            method=method,
            target=target,
            headers=headers,
            http_version="1.0" if version == b"1.0" else "1.1",
            expects_continue=b"expect" in fields and self._conn.they_are_waiting_for_100_continue,
            has_body=has_body,
        )
        if b"upgrade" in fields:
            return upgrade_event(request, self._conn.trailing_data[0])
        return request

    def _translate(self, exc: h11.RemoteProtocolError) -> RemoteProtocolError:
        return RemoteProtocolError(str(exc) or "malformed request", status=exc.error_status_hint)

    # -- outbound -------------------------------------------------------------

    def send(self, event: OutboundEvent) -> None:
        try:
            self._send(event)
        except (h11.LocalProtocolError, AttributeError) as exc:
            # AttributeError: h11 0.16 fails while wording its own error for a
            # response after a switch to a CONNECT tunnel; it is the same refusal.
            self._closing = True
            raise LocalProtocolError(str(exc), status=500) from exc

    def _send(self, event: OutboundEvent) -> None:
        conn = self._conn
        out = self._out
        # (`send_with_data_passthrough`: the pieces go to `data_to_send`'s one
        # join instead of being joined once per event.)
        if isinstance(event, SendData):
            if event.data:
                out += conn.send_with_data_passthrough(h11.Data(data=event.data)) or ()
            if event.end_stream:
                out += conn.send_with_data_passthrough(_END_OF_MESSAGE) or ()
                self._end_cycle()
        elif isinstance(event, SendResponse):
            if conn.our_state is not h11.SEND_RESPONSE:
                # h11 would write a head in IDLE that answers no request; the
                # client would take it for the answer to its next one.
                self._closing = True
                raise LocalProtocolError("no request is waiting for a response", status=500)
            out += conn.send_with_data_passthrough(_response(event.status, event.headers)) or ()
        elif isinstance(event, SendInformational):
            if self._informational_allowed(event.status):
                reason = REASONS.get(event.status, b"")
                info = h11.InformationalResponse(
                    status_code=event.status, headers=event.headers, reason=reason
                )
                out += conn.send_with_data_passthrough(info) or ()
        elif isinstance(event, SendTrailers):
            out += conn.send_with_data_passthrough(h11.EndOfMessage(headers=event.headers)) or ()
            self._end_cycle()
        elif isinstance(event, RejectRequest):
            out.append(error_response_bytes(event.status, event.headers))
            self._closing = True
        elif isinstance(event, ResetStream | CloseConnection):
            self._closing = True
        elif isinstance(event, SendDataAside):
            self._count_aside(event.size)

    def _count_aside(self, size: int) -> None:
        """h11 counts a stand-in of `size` bytes (its data passthrough, made for sendfile).

        Anything but the stand-in coming back means h11 would frame it (chunked): refused.
        """
        aside = _Aside(size)
        data = h11.Data(data=aside)  # type: ignore[arg-type]
        pieces: list[object] = list(self._conn.send_with_data_passthrough(data) or ())
        if pieces != [aside]:
            self._closing = True
            raise LocalProtocolError("body data sent aside needs a Content-Length", status=500)

    def _informational_allowed(self, status: int) -> bool:
        conn = self._conn
        if conn.our_state is not h11.SEND_RESPONSE or conn.their_http_version == b"1.0":
            return False  # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
        # RFC 9110 §10.1.1: a 100 is pointless once the body is on its way.
        return status != 100 or conn.they_are_waiting_for_100_continue

    def _end_cycle(self) -> None:
        conn = self._conn
        if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
            conn.start_next_cycle()
        else:
            # The body was not read to its end (or keep-alive is off): we
            # cannot know where a next request would start, so we close.
            self._closing = True

    def data_to_send(self) -> bytes:
        out = b"".join(self._out)
        self._out.clear()
        return out

    # -- state ----------------------------------------------------------------

    def peer_finished(self) -> bool:
        """An HTTP/1.1 request that said ``Connection: close`` came whole (h11 then
        waits for nothing more from the client) and nothing after it. HTTP/1.0
        is left out: h11 closes even one that asked for keep-alive."""
        conn = self._conn
        return (
            self._peer_closes
            and self._error is None
            and conn.their_state is h11.MUST_CLOSE
            and not conn.trailing_data[0]
        )

    @property
    def must_close(self) -> bool:
        return self._closing or self._conn.our_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    @property
    def read_paused(self) -> bool:
        return self._paused

    @property
    def idle(self) -> bool:
        conn = self._conn
        if conn.our_state is not h11.IDLE or conn.their_state is not h11.IDLE:
            return False
        return not conn.trailing_data[0]  # no part of a next request buffered


# One for every response: h11's events are immutable.
_END_OF_MESSAGE = h11.EndOfMessage()


class _Aside:
    """What h11 counts for body bytes the driver sends itself: only a length."""

    __slots__ = ("size",)

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size


# h11 events for response heads sent before, by status and headers. Building
# an `h11.Response` validates every field with two regexes (~5 µs, the
# largest single cost of a small response on this core), and most responses
# repeat a few heads (the Date value changes once a second). Events are
# immutable and equal input gives an equal event, so sharing them between
# connections and worker threads is safe; a head h11 refuses is never stored.
# Bounded: when full it starts over.
_RESPONSES: dict[tuple[object, ...], h11.Response] = {}
_MEMO_RESPONSES = 256  # entries


def _response(status: int, headers: Headers) -> h11.Response:
    """The h11 event for a response head, from the memo when it was sent before."""
    key = (status, *headers)
    try:
        return _RESPONSES[key]
    except KeyError:
        memoize = True
    except TypeError:  # an unhashable field from a custom layer: h11 judges it unmemoized
        memoize = False
    response = h11.Response(status_code=status, headers=headers, reason=REASONS.get(status, b""))
    if memoize:
        if len(_RESPONSES) >= _MEMO_RESPONSES:
            _RESPONSES.clear()
        _RESPONSES[key] = response
    return response


def upgrade_event(request: RequestReceived, trailing_data: bytes) -> InboundEvent:
    """`request` as an `UpgradeRequested` when it proposes a protocol switch, else itself.

    RFC 9110 §7.8: Upgrade counts only beside ``Connection: upgrade``, and a
    server MUST ignore it in an HTTP/1.0 request. A request with a body, or a
    CONNECT, stays plain HTTP. `protocol` is the Upgrade list lower-cased
    (``b"websocket"``); `trailing_data` is every byte received after the head.
    Both HTTP/1.1 cores call this, so they agree on when a switch is proposed.
    """
    if request.http_version != "1.1" or request.has_body or request.method == b"CONNECT":
        return request
    protocols: list[bytes] = []
    connection_upgrade = False
    for name, value in request.headers:
        if name == b"upgrade":
            protocols.extend(p for p in (p.strip() for p in value.lower().split(b",")) if p)
        elif name == b"connection":
            connection_upgrade = connection_upgrade or b"upgrade" in _tokens(value)
    if not protocols or not connection_upgrade:
        return request
    return UpgradeRequested(
        stream_id=request.stream_id,
        request=request,
        protocol=b", ".join(protocols),
        trailing_data=trailing_data,
    )


def _tokens(value: bytes) -> list[bytes]:
    return [part.strip() for part in value.lower().split(b",")]


def _declares_body(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False
