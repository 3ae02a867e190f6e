"""HTTP/1.1 server core over h11, the strict reference implementation.

h11 does the parsing and framing; this module maps its events onto Pounce's
(`RequestReceived`, `DataReceived`, …), numbers requests as streams 1, 2, 3 …,
adds the limits h11 does not have (request-line length → 414, HTTP major
version → 505) and translates every h11 exception into Pounce's own error tree
at this seam. Invariants:

* At most one request is in flight: h11 pauses after a complete request until
  its response is done, which is what answers pipelined requests in order.
* A response that ends while the request body is still unread closes the
  connection: we never guess where the next request starts.
"""

from __future__ import annotations

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
    SendInformational,
    SendResponse,
    SendTrailers,
    StreamEnded,
)

KiB = 1024

# h11's and Uvicorn's default: the largest request head we buffer (answer 431).
DEFAULT_MAX_HEAD = 16 * KiB  # bytes
# nginx and Apache (LimitRequestLine) default: the longest request line (answer 414).
DEFAULT_MAX_REQUEST_LINE = 8 * KiB  # bytes

REASONS: dict[int, bytes] = {s.value: s.phrase.encode("ascii") for s in HTTPStatus}


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
        self._paused = False

    # -- inbound --------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[InboundEvent]:
        if data:
            self._conn.receive_data(data)
        return self._drain_events()

    def receive_eof(self) -> list[InboundEvent]:
        self._conn.receive_data(b"")
        try:
            events = self._drain_events()
        except RemoteProtocolError:
            # A request cut off by EOF is not worth an answer: nobody reads it.
            events = []
        if not events or not isinstance(events[-1], ConnectionLost):
            events.append(ConnectionLost(stream_id=self._stream_id))
        self._closing = True
        return events

    def _drain_events(self) -> list[InboundEvent]:
        events: list[InboundEvent] = []
        while True:
            try:
                event = self._conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise self._translate(exc) from exc
            if event is h11.NEED_DATA:
                self._paused = False
                return events
            if event is h11.PAUSED:
                self._paused = True
                return events
            events.append(self._map(event))
            if isinstance(events[-1], ConnectionLost):
                return events

    def _map(self, event: object) -> InboundEvent:
        if isinstance(event, h11.Request):
            return self._request(event)
        if isinstance(event, h11.Data):
            return DataReceived(stream_id=self._stream_id, data=bytes(event.data))
        if isinstance(event, h11.EndOfMessage):
            return StreamEnded(stream_id=self._stream_id)
        return ConnectionLost(stream_id=self._stream_id)

    def _request(self, event: h11.Request) -> RequestReceived:
        self._stream_id += 1
        version = event.http_version
        if not version.startswith(b"1."):
            # RFC 9110 §15.6.6: we only speak HTTP/1.x on this core.
            raise RemoteProtocolError(f"unsupported HTTP version {version!r}", status=505)
        if len(event.target) > self._limits.max_request_line:
            raise RemoteProtocolError("request target too long", status=414)
        headers = list(event.headers)
        return RequestReceived(
            stream_id=self._stream_id,
            method=bytes(event.method),
            target=bytes(event.target),
            headers=headers,
            http_version="1.0" if version == b"1.0" else "1.1",
            expects_continue=self._conn.they_are_waiting_for_100_continue,
            has_body=_declares_body(headers),
        )

    def _translate(self, exc: h11.RemoteProtocolError) -> RemoteProtocolError:
        status = exc.error_status_hint
        if status == 431 and self._request_line_too_long():
            status = 414
        return RemoteProtocolError(str(exc) or "malformed request", status=status)

    def _request_line_too_long(self) -> bool:
        buffered, _ = self._conn.trailing_data
        end = buffered.find(b"\n", 0, self._limits.max_request_line + 1)
        return end == -1

    # -- outbound -------------------------------------------------------------

    def send(self, event: OutboundEvent) -> None:
        try:
            self._send(event)
        except h11.LocalProtocolError as exc:
            self._closing = True
            raise LocalProtocolError(str(exc), status=500) from exc

    def _send(self, event: OutboundEvent) -> None:
        conn = self._conn
        if isinstance(event, SendData):
            if event.data:
                self._out.append(conn.send(h11.Data(data=event.data)) or b"")
            if event.end_stream:
                self._out.append(conn.send(h11.EndOfMessage()) or b"")
                self._end_cycle()
        elif isinstance(event, SendResponse):
            reason = REASONS.get(event.status, b"")
            response = h11.Response(status_code=event.status, headers=event.headers, reason=reason)
            self._out.append(conn.send(response) or b"")
        elif isinstance(event, SendInformational):
            if conn.our_state is h11.SEND_RESPONSE and conn.their_http_version != b"1.0":
                reason = REASONS.get(event.status, b"")
                info = h11.InformationalResponse(
                    status_code=event.status, headers=event.headers, reason=reason
                )
                self._out.append(conn.send(info) or b"")
        elif isinstance(event, SendTrailers):
            self._out.append(conn.send(h11.EndOfMessage(headers=event.headers)) or b"")
            self._end_cycle()
        elif isinstance(event, RejectRequest):
            self._out.append(error_response_bytes(event.status, event.headers))
            self._closing = True
        elif isinstance(event, ResetStream | CloseConnection):
            self._closing = True

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

    @property
    def must_close(self) -> bool:
        return self._closing or self._conn.our_state in (h11.MUST_CLOSE, h11.CLOSED, h11.ERROR)

    @property
    def read_paused(self) -> bool:
        return self._paused

    @property
    def idle(self) -> bool:
        return self._conn.our_state is h11.IDLE and self._conn.their_state is h11.IDLE


def _declares_body(headers: Headers) -> bool:
    for name, value in headers:
        if name == b"transfer-encoding" or (name == b"content-length" and value != b"0"):
            return True
    return False
