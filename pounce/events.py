"""Typed lifecycle events, and the bus that hands them to subscribers.

Frameworks and operators observe a server through these events instead of
parsing its logs: the access log (`pounce.observe.access_log`) is one
subscriber of them, metrics and tracing are others. Each event is a small
frozen, slotted, keyword-only dataclass, emitted where its facts are true:

* the transport adapter counts a connection's bytes as they cross the socket
  (`ConnectionOpened`, `ConnectionClosed`);
* the HTTP exchange knows the status and body bytes it really handed to the
  protocol (a 500 the server writes itself included) and when the last of them
  was written (`RequestStarted`, `ResponseStarted`, `RequestCompleted`,
  `RequestFailed`);
* the WebSocket session counts messages each way (`WebSocketOpened`,
  `WebSocketClosed`);
* `Server.serve()` brackets a worker (`WorkerStarted`, `WorkerStopped`);
* the bridge names a connection's protocol once it picks or switches one
  (`ConnectionProtocol`);
* `.limit()`'s queue brackets a request that waits (`RequestQueued`,
  `RequestDequeued`);
* the limits refuse (`Refused`: 503 from `.limit()`, 429 from `.rate_limit()`),
  and the listener pauses accepting (`Refused` with ``layer`` ``listener``).

The events that end or fail a request or a WebSocket session
(`RequestCompleted`, `RequestFailed`, `WebSocketClosed`) carry `extensions`:
the request scope's ``extensions`` dict, the same object for the whole
request whatever the protocol. It is their correlation key (compare with
``is``), and where an app layer leaves what a subscriber needs to settle that
request: `.otel()`'s layer leaves the span there, its subscriber ends it. The
events of the request's start do not carry it: every field of an event that
every request builds is paid by every subscriber (about 1,400 instructions
per request each, measured), and a layer sees the scope itself.

A subscriber is any callable taking one event (``def seen(event): ...``), or
a `Subscriber` subclass, which dispatches each kind to its ``on_<kind>``
method. Subscribers run synchronously on the worker's event loop, in the
order given to `.observe()`: keep them quick (hand slow work to a queue). An
exception in a subscriber never reaches the request: it is logged on
``pounce.error`` (with its traceback the first time for that subscriber;
later failures summed in one line a minute at most) and the next subscriber
runs.

Cost: a server with no subscriber has no `EventBus` at all (``None``), and
each emission point is one ``is not None`` test; no clock is read and no
event is built. Durations are seconds from `EventBus.clock`
(`time.perf_counter` unless a test injects another).

A subscriber that is sometimes idle says so with an ``enabled()`` method
(the access log: its logger above INFO). The bus asks it when a serve
starts and then once a second (`REFRESH_INTERVAL`), never per event; while
it answers False it gets no event, and the events only it takes are not
built at all, so a disabled access log costs a request nothing. A change of
its answer (a logging level lowered at run time) is seen within that second.

Thread safety: one bus per built server, shared by its worker threads; it
holds only immutable subscriber tuples, and events are immutable, so a
subscriber that keeps state of its own must guard it (free-threaded Python).
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import types
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, ClassVar

error_log = logging.getLogger("pounce.error")

current_request_id: ContextVar[str | None] = ContextVar("pounce_request_id", default=None)
"""The id of the request whose app task is running (with `.request_id()`); log lines read it."""

Address = tuple[str, int] | None
Headers = Sequence[tuple[bytes, bytes]]
Extensions = dict[str, Any]
"""A request scope's ``extensions`` (see the module docstring: the request's correlation key)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Event:
    """Base of every lifecycle event; `kind` names its `Subscriber` method (``on_<kind>``)."""

    kind: ClassVar[str] = "event"


# -- connections ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionOpened(Event):
    """A client connected (before any TLS handshake or protocol choice)."""

    kind: ClassVar[str] = "connection_opened"
    connection_id: int
    client: Address
    server: tuple[str, int | None] | None
    scheme: str


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionClosed(Event):
    """A connection ended; bytes as they crossed the socket (TLS records included)."""

    kind: ClassVar[str] = "connection_closed"
    connection_id: int
    client: Address
    protocol: str | None
    """The protocol served last (``http/1.1``, ``h2``, ``websocket``); None: none chosen."""
    tls_version: str | None
    alpn: str | None
    bytes_in: int
    bytes_out: int
    duration: float


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionProtocol(Event):
    """A connection's protocol was chosen (``none`` → ``http/1.1``, ``h2``) or switched
    (``http/1.1`` → ``websocket``, ``h2`` by h2c upgrade); pairs with `ConnectionClosed`,
    whose `protocol` is the last one named here."""

    kind: ClassVar[str] = "connection_protocol"
    connection_id: int
    protocol: str
    previous: str | None
    """The protocol served before the switch; None: the first choice."""


# -- HTTP requests ---------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestStarted(Event):
    """A request head arrived and the app is about to see it."""

    kind: ClassVar[str] = "request_started"
    method: str
    path: str
    http_version: str
    client: Address
    request_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseStarted(Event):
    """The response head was handed to the protocol (written with the first body bytes)."""

    kind: ClassVar[str] = "response_started"
    method: str
    path: str
    status: int
    ttfb: float
    """Seconds from the request head to this moment."""
    request_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestCompleted(Event):
    """A response ended: its last byte was written, or it was cut short (`complete` False).

    `duration` runs to the last byte, not to the end of the app (background
    work after the response is not counted); `bytes` counts the body handed to
    the protocol, a 500 that Pounce wrote itself included (HEAD: 0).
    """

    kind: ClassVar[str] = "request_completed"
    method: str
    path: str
    """The path as the app saw it, with ``?query`` when there was one."""
    http_version: str
    scheme: str
    client: Address
    """After the forwarded-headers layer: the real client behind a trusted proxy."""
    status: int
    """0 when no response head was sent (the client left first)."""
    bytes: int
    ttfb: float | None
    duration: float
    queue_wait: float
    """Seconds the request waited in `.limit()`'s queue (0 when it did not)."""
    complete: bool
    """False: reset, or the client left before the last byte."""
    headers: Headers
    """The request's headers, as received (for user agent, referer …)."""
    request_id: str | None
    extensions: Extensions = field(repr=False, compare=False)
    """The request scope's ``extensions``: the request's correlation key (module docstring)."""
    probe: bool = False
    """A health probe (`.health()`): the access log skips it."""


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestFailed(Event):
    """The app raised, or returned without finishing its response."""

    kind: ClassVar[str] = "request_failed"
    method: str
    path: str
    exception: str | None
    """The exception's qualified type name; None: the app returned without finishing."""
    error: BaseException | None
    """The exception itself, with its traceback (for error reporters); None as above."""
    client_left: bool
    """The exception came from the client's leaving (ClientDisconnect, OSError): not a bug."""
    response_started: bool
    headers: Headers
    """The request's headers, as received (mask secrets before reporting them)."""
    request_id: str | None
    extensions: Extensions = field(repr=False, compare=False)
    """The request scope's ``extensions``: the request's correlation key (module docstring)."""


# -- WebSocket ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketOpened(Event):
    """The app accepted a WebSocket (answered 101, or 200 over HTTP/2)."""

    kind: ClassVar[str] = "websocket_opened"
    path: str
    http_version: str
    client: Address
    status: int
    subprotocol: str | None
    duration: float
    """Seconds from the handshake request to the accept."""
    headers: Headers
    """The handshake request's headers."""
    request_id: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketClosed(Event):
    """A WebSocket session ended; `accepted` False: the handshake was refused with `status`."""

    kind: ClassVar[str] = "websocket_closed"
    path: str
    http_version: str
    client: Address
    accepted: bool
    status: int
    """101/200 when accepted, else the refusal's status (403, a denial response's, 500)."""
    code: int | None
    """The close code (1000 normal, 1006 the connection was lost …); None if never opened."""
    messages_in: int
    messages_out: int
    bytes: int
    """Bytes of a denial response's body (0 when accepted)."""
    duration: float
    """Seconds from the handshake request to the end (the refusal's last byte if refused)."""
    headers: Headers
    request_id: str | None
    extensions: Extensions = field(repr=False, compare=False)
    """The request scope's ``extensions``: the request's correlation key (module docstring)."""


# -- the concurrency limit's queue ----------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestQueued(Event):
    """A request found `.limit()` full and began waiting in its queue (never emitted for a
    request admitted at once)."""

    kind: ClassVar[str] = "request_queued"
    client: Address
    path: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestDequeued(Event):
    """A request that waited left `.limit()`'s queue; one for every `RequestQueued`."""

    kind: ClassVar[str] = "request_dequeued"
    client: Address
    path: str
    outcome: str
    """``admitted`` (to the app), ``timeout`` (503 follows), ``gone`` (the client left, or
    the wait was cancelled)."""
    waited: float
    """Seconds in the queue."""


# -- workers and overload -----------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStarted(Event):
    """A worker (one `Server.serve()`) is listening."""

    kind: ClassVar[str] = "worker_started"
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStopped(Event):
    """A worker finished its graceful shutdown."""

    kind: ClassVar[str] = "worker_stopped"
    worker: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Refused(Event):
    """An overload layer refused a request before the app saw it, or the listener paused
    accepting (``layer`` ``listener``: at the connection cap, out of file descriptors;
    `status` 0, `client` None, `path` empty: no request was read)."""

    kind: ClassVar[str] = "refused"
    layer: str
    """``concurrency limit``, ``rate limit`` or ``listener``."""
    reason: str
    """``at capacity``, ``waited too long``, ``too many requests``."""
    status: int
    client: Address
    path: str


# -- subscribers and the bus ---------------------------------------------------------------

SubscriberFn = Callable[[Event], object]

FAILURE_LOG_INTERVAL = 60.0  # seconds between two lines about the same failing subscriber
REFRESH_INTERVAL = 1.0  # seconds between two askings of the subscribers' ``enabled()``


def _quick_init(cls: type[Event]) -> None:
    """Give a frozen event an ``__init__`` that stores through its slots' descriptors.

    A frozen dataclass sets each field with ``object.__setattr__(self, name,
    value)``, a lookup by name per field; for the 15 fields of
    `RequestCompleted`, built for every response an access log writes, that
    was most of its cost. The descriptors store the same values in the same
    slots, and the instance stays frozen (assignment still raises).
    """
    namespace: dict[str, object] = {}
    params, body = [], []
    for i, f in enumerate(dataclasses.fields(cls)):
        namespace[f"_set{i}"] = cls.__dict__[f.name].__set__
        if f.default is not dataclasses.MISSING:
            namespace[f"_default{i}"] = f.default
            params.append(f"{f.name}=_default{i}")
        else:
            params.append(f.name)
        body.append(f"    _set{i}(self, {f.name})")
    source = f"def __init__(self, *, {', '.join(params)}) -> None:\n" + "\n".join(body)
    exec(source, namespace)
    init = namespace["__init__"]
    assert isinstance(init, types.FunctionType)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    type.__setattr__(cls, "__init__", init)


EVENT_TYPES: tuple[type[Event], ...] = (
    ConnectionOpened,
    ConnectionProtocol,
    ConnectionClosed,
    RequestQueued,
    RequestDequeued,
    RequestStarted,
    ResponseStarted,
    RequestCompleted,
    RequestFailed,
    WebSocketOpened,
    WebSocketClosed,
    WorkerStarted,
    WorkerStopped,
    Refused,
)
"""Every kind of event, in lifecycle order."""

for _kind in EVENT_TYPES:
    _quick_init(_kind)


class Subscriber:
    """A subscriber with one method per event kind; override those you need.

    ``on_request_completed(self, event)`` is called for `RequestCompleted` and
    so on (``on_`` + the event's `kind`); kinds with no method are never
    built for it (`event_kinds`), so a subscriber of completed requests
    costs nothing per connection.
    """

    event_kinds: ClassVar[frozenset[type[Event]]] = frozenset()
    """The kinds this subscriber takes; any subscriber may declare it (absent: all)."""

    # Any subscriber may also have ``enabled() -> bool``: would it do anything now?
    # Asked when a serve starts and once a second (`REFRESH_INTERVAL`), never per event;
    # while it answers False, it gets no event and the events only it takes are not built.

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.event_kinds = frozenset(k for k in EVENT_TYPES if hasattr(cls, "on_" + k.kind))

    def __call__(self, event: Event) -> None:
        method = getattr(self, "on_" + event.kind, None)
        if method is not None:
            method(event)


def worker_name() -> str:
    """This worker's name in events and log lines: the pid, and the thread unless main."""
    import os

    thread = threading.current_thread()
    if thread is threading.main_thread():
        return str(os.getpid())
    return f"{os.getpid()}/{thread.name}"


class EventBus:
    """The subscribers of one built server; `emit` hands each event to every one of them."""

    __slots__ = (
        "_by_kind",
        "_enabled",
        "_failures",
        "_lock",
        "_switchable",
        "clock",
        "connection_protocol",
        "connections",
        "queue",
        "request_started",
        "requests",
        "response_started",
        "subscribers",
    )

    def __init__(
        self,
        subscribers: Sequence[SubscriberFn],
        clock: Callable[[], float] = time.perf_counter,
    ) -> None:
        self.subscribers = tuple(subscribers)
        self.clock = clock
        # Those with an ``enabled()`` (the access log): asked by `refresh`, never per event.
        self._switchable = tuple(
            s for s in self.subscribers if callable(getattr(s, "enabled", None))
        )
        # Per failing subscriber (by id): failures not logged yet, when the next line may go.
        self._failures: dict[int, list[float]] = {}
        self._lock = threading.Lock()
        self._enabled = self.subscribers  # every one, until `refresh` asks
        self._by_kind: dict[type[Event], tuple[SubscriberFn, ...]] = {}
        self._take(self.subscribers)
        # Which transport adapter a serve makes is chosen once, when it starts: the
        # connection events are wanted whenever a subscriber takes them, enabled or not.
        self.connections = self.wants(ConnectionOpened, ConnectionProtocol, ConnectionClosed)

    def _take(self, enabled: tuple[SubscriberFn, ...]) -> None:
        """Hand events to the `enabled` subscribers only, and build no other event."""
        # Per kind, the subscribers that take it (`event_kinds`; absent: every kind).
        self._by_kind = {kind: tuple(s for s in enabled if _takes(s, kind)) for kind in EVENT_TYPES}
        self._enabled = enabled
        # What the emission points ask before they build an event or read a clock.
        self.connection_protocol = self.wants(ConnectionProtocol)
        self.queue = self.wants(RequestQueued, RequestDequeued)
        self.request_started = self.wants(RequestStarted)
        self.response_started = self.wants(ResponseStarted)
        self.requests = self.wants(RequestStarted, ResponseStarted, RequestCompleted, RequestFailed)

    @property
    def switchable(self) -> bool:
        """Has a subscriber an ``enabled()`` to ask (then a serve calls `refresh`)?"""
        return bool(self._switchable)

    def refresh(self) -> None:
        """Ask each subscriber with an ``enabled()`` whether it is on now, and emit to
        those that are (and build only the events they take).

        Called by every serve of the server when it starts and then every
        `REFRESH_INTERVAL` seconds. Worker threads may call it at once: they
        take turns, and a request that starts meanwhile sees either answer.
        """
        if not self._switchable:
            return
        off = {id(s) for s in self._switchable if not self._asks(s)}
        enabled = tuple(s for s in self.subscribers if id(s) not in off)
        with self._lock:
            if enabled != self._enabled:
                self._take(enabled)

    def _asks(self, subscriber: SubscriberFn) -> bool:
        try:
            return bool(subscriber.enabled())  # type: ignore[attr-defined]
        except Exception as exc:  # on, as if it had no enabled(); said like a failed event
            self._report(subscriber, Event(), exc)
            return True

    def wants(self, *kinds: type[Event]) -> bool:
        """Does any enabled subscriber take one of `kinds`?"""
        return any(self._by_kind.get(kind) for kind in kinds)

    def emit(self, event: Event) -> None:
        for subscriber in self._by_kind.get(type(event), self._enabled):
            try:
                subscriber(event)
            except Exception as exc:  # a subscriber never breaks a request
                self._report(subscriber, event, exc)

    def _report(self, subscriber: SubscriberFn, event: Event, exc: Exception) -> None:
        """The first failure with its traceback; later ones summed, one line per interval."""
        now = time.monotonic()
        with self._lock:
            record = self._failures.get(id(subscriber))
            first = record is None
            if record is None:
                record = self._failures[id(subscriber)] = [0.0, now + FAILURE_LOG_INTERVAL]
            else:
                record[0] += 1
                if now < record[1]:
                    return
                record[1] = now + FAILURE_LOG_INTERVAL
            count, record[0] = record[0], 0.0
        name = getattr(subscriber, "__qualname__", type(subscriber).__qualname__)
        if first:
            error_log.error(
                "Event subscriber %s failed on %s", name, type(event).__name__, exc_info=exc
            )
            return
        error_log.error(
            "Event subscriber %s failed %d more times, last on %s: %s: %s",
            name,
            count,
            type(event).__name__,
            type(exc).__name__,
            exc,
        )


def _takes(subscriber: SubscriberFn, kind: type[Event]) -> bool:
    kinds = getattr(subscriber, "event_kinds", None)
    return kinds is None or kind in kinds


def bus_for(subscribers: Sequence[SubscriberFn]) -> EventBus | None:
    """The bus for `subscribers`, or None when there are none (then nothing is emitted)."""
    return EventBus(subscribers) if subscribers else None
