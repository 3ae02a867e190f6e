"""Events exchanged between a protocol core and the driver.

Inbound events (core → driver) are past-tense nouns: something happened on
the wire. Outbound events (driver → core) are imperative: something to put on
the wire. All are slotted, keyword-only dataclasses carrying the
`stream_id` they belong to (HTTP/1.1 numbers its requests 1, 2, 3 … in the
order they arrive, so the driver treats both HTTP versions alike).

Events are immutable by contract: nobody assigns to a field after
construction. They are not ``frozen=True`` because a frozen dataclass builds
each field through ``object.__setattr__``, which made constructing the four
events of every request (head, end, response, data) about 2.5× slower — a
measurable share of the whole request path (docs/performance.md).
"""

from __future__ import annotations

from dataclasses import dataclass, field

Headers = list[tuple[bytes, bytes]]
"""Header pairs as on the wire: names lower-cased, values untouched bytes."""


# -- inbound ----------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class RequestReceived:
    """A complete request head arrived."""

    stream_id: int
    method: bytes
    target: bytes
    headers: Headers
    http_version: str
    """"1.0", "1.1" or "2"."""
    authority: bytes | None = None
    """HTTP/2 ``:authority``; HTTP/1.1 carries it in the ``host`` header."""
    scheme: bytes | None = None
    """HTTP/2 ``:scheme``; ``None`` where the connection decides it."""
    expects_continue: bool = False
    """The client sent ``Expect: 100-continue`` and waits for a 100."""
    has_body: bool = True
    """False when the framing says there is no body at all: the request is then
    complete with its head, and HTTP/1.1's cores send no `StreamEnded` for it."""


@dataclass(slots=True, kw_only=True)
class DataReceived:
    """A chunk of request body arrived."""

    stream_id: int
    data: bytes


@dataclass(slots=True, kw_only=True)
class StreamEnded:
    """The request body is complete (trailers, if any, are ignored).

    HTTP/1.1's cores send it only for a request with a body (``has_body``); the
    HTTP/2 and HTTP/3 cores for every stream the peer ends. A driver takes a
    request without a body as complete with its head, whichever comes.
    """

    stream_id: int


@dataclass(slots=True, kw_only=True)
class StreamReset:
    """The peer abandoned the stream; the app should stop."""

    stream_id: int
    error_code: int = 0


@dataclass(slots=True, kw_only=True)
class UpgradeRequested:
    """The request asks to switch protocols (HTTP/1.1 Upgrade or CONNECT).

    Switching is an event, never an exception: the driver decides whether a
    registered protocol takes over, with `trailing_data` handed to it.
    """

    stream_id: int
    request: RequestReceived
    protocol: bytes
    trailing_data: bytes = b""


@dataclass(slots=True, kw_only=True)
class ConnectionLost:
    """The peer closed its side; no more events will come."""

    stream_id: int = 0


InboundEvent = (
    RequestReceived | DataReceived | StreamEnded | StreamReset | UpgradeRequested | ConnectionLost
)


# -- outbound ---------------------------------------------------------------


@dataclass(slots=True, kw_only=True)
class SendInformational:
    """Send a 1xx response (100 Continue, 103 Early Hints)."""

    stream_id: int
    status: int
    headers: Headers = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class SendResponse:
    """Send the response head."""

    stream_id: int
    status: int
    headers: Headers


@dataclass(slots=True, kw_only=True)
class SendData:
    """Send response body bytes; `end_stream` finishes the response."""

    stream_id: int
    data: bytes
    end_stream: bool = False


@dataclass(slots=True, kw_only=True)
class SendDataAside:
    """`size` bytes of response body that the driver writes itself (a file, by sendfile).

    The core frames nothing and writes nothing: it counts the bytes against
    the response's Content-Length, which such a body needs (HTTP/1.1 only;
    HTTP/2 frames every byte and refuses it). The driver writes whatever the
    core queued before this event first, then the `size` bytes, untouched.
    """

    stream_id: int
    size: int


@dataclass(slots=True, kw_only=True)
class SendTrailers:
    """Finish the response with trailing headers."""

    stream_id: int
    headers: Headers


@dataclass(slots=True, kw_only=True)
class ResetStream:
    """Abort the stream (HTTP/1.1: the connection must close)."""

    stream_id: int
    error_code: int = 0


@dataclass(slots=True, kw_only=True)
class RejectRequest:
    """Answer a request that could not be parsed or accepted, then close.

    Used where no well-formed request exists to answer (bad bytes, a timeout
    mid-head), so the core writes a minimal ``status`` response itself.
    """

    stream_id: int
    status: int
    headers: Headers = field(default_factory=list)


@dataclass(slots=True, kw_only=True)
class AcknowledgeData:
    """The app consumed `size` bytes of request body: credit the peer's windows.

    HTTP/2 only (a WINDOW_UPDATE); HTTP/1.1 cores never see it, their flow
    control is the socket's.
    """

    stream_id: int
    size: int


@dataclass(slots=True, kw_only=True)
class CloseConnection:
    """Finish what is queued, then the connection closes."""

    stream_id: int = 0


OutboundEvent = (
    SendInformational
    | SendResponse
    | SendData
    | SendDataAside
    | SendTrailers
    | ResetStream
    | RejectRequest
    | AcknowledgeData
    | CloseConnection
)


# -- the common request's events, built fast ---------------------------------------
#
# Calling a keyword-only dataclass passes a dict of keywords through
# ``type.__call__`` to the generated ``__init__``; for the four events of every
# request (head, end, response head, body) that was about 2,400 instructions
# each above filling the slots directly. These build the same events (a test
# compares every field with the dataclass's own constructor, so a field added
# later cannot be missed) for the paths that make one per request.

_new = object.__new__


def request_received(
    stream_id: int, method: bytes, target: bytes, headers: Headers, has_body: bool
) -> RequestReceived:
    """``RequestReceived(stream_id=…, method=…, target=…, headers=…, http_version="1.1",
    has_body=…)``: an HTTP/1.1 request with no authority, scheme or 100-continue."""
    event: RequestReceived = _new(RequestReceived)
    event.stream_id = stream_id
    event.method = method
    event.target = target
    event.headers = headers
    event.http_version = "1.1"
    event.authority = None
    event.scheme = None
    event.expects_continue = False
    event.has_body = has_body
    return event


def stream_ended(stream_id: int) -> StreamEnded:
    """``StreamEnded(stream_id=stream_id)``."""
    event: StreamEnded = _new(StreamEnded)
    event.stream_id = stream_id
    return event


def send_response(stream_id: int, status: int, headers: Headers) -> SendResponse:
    """``SendResponse(stream_id=stream_id, status=status, headers=headers)``."""
    event: SendResponse = _new(SendResponse)
    event.stream_id = stream_id
    event.status = status
    event.headers = headers
    return event


def send_data(stream_id: int, data: bytes, end_stream: bool) -> SendData:
    """``SendData(stream_id=stream_id, data=data, end_stream=end_stream)``."""
    event: SendData = _new(SendData)
    event.stream_id = stream_id
    event.data = data
    event.end_stream = end_stream
    return event
