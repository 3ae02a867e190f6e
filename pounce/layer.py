"""The two kinds of layer, and the base for a stream layer's handler.

A layer is immutable configuration plus ``wrap(inner) -> outer``. Two nominal
base classes tell the builder which plane a layer belongs to:

* `StreamLayer` wraps a `HandlerFactory` — the push-based connection plane,
  bytes in through `ConnectionHandler` callbacks, bytes out through `Conn`
  (both in `pounce.conn`).
* `AppLayer` wraps an ASGI app — the request plane.

Per-connection and per-request state lives inside what ``wrap`` returns,
never on the layer object itself, so one layer serves every worker thread.
"""

from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from collections.abc import Callable

from pounce.asgi.types import ASGIApp
from pounce.conn import Conn, ConnectionHandler, HandlerFactory
from pounce.events import EventBus


class ForwardingHandler:
    """A stream layer's handler that passes every callback inward; override what you change.

    `inner` is the handler beneath, or None while the connection is not yet
    the inner layers' (a TLS handshake, a PROXY header, a connection waiting
    to be admitted): callbacks then stop here, and `begin_shutdown` aborts
    the connection, since nothing has started that could finish. Set `inner`
    and call its ``connection_made`` once the connection is theirs. Hand-written
    forwarding is how a shutdown gets lost (a handler that forgets to pass
    `begin_shutdown` makes shutdown wait out its whole graceful timeout).
    """

    __slots__ = ("conn", "inner")

    def __init__(self, inner: ConnectionHandler | None = None) -> None:
        self.inner = inner
        self.conn: Conn | None = None

    def connection_made(self, conn: Conn) -> None:
        self.conn = conn
        if self.inner is not None:
            self.inner.connection_made(conn)

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            return self.inner.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self.inner.connection_lost(exc)

    def begin_shutdown(self) -> None:
        if self.inner is not None:
            self.inner.begin_shutdown()
        elif self.conn is not None:
            self.conn.abort()  # not started: nothing in flight to finish


class StreamLayer(ABC):
    """A layer of the connection plane: wraps the handler factory beneath it."""

    @abstractmethod
    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        """Return the factory that connections enter through."""

    def describe(self) -> str:
        """One line for `Server.describe()`; override to show options."""
        return type(self).__name__


ReadinessCheck = Callable[[], str | None]
"""Why this worker should get no new work now (``"queue full"``), or None."""


class Serving:
    """What one serve — one worker — tells the app layers it wraps.

    `Server.serve()` makes one per call and hands it to every app layer's
    `AppLayer.wrap_serving`; a layer keeps it in the closure `wrap_serving`
    returns and reads it per request. `draining` turns True when the serve
    begins its graceful shutdown (before the listeners close); readiness
    checks are what layers report about their own load (the concurrency
    limit: its waiting queue is full), read by the health layer's readiness
    answer; `at_close` callbacks run when the serve has ended. Outside a serve
    (the conformance kit, a bare ``wrap``) a fresh
    `Serving` never drains and has no checks.
    """

    __slots__ = ("_checks", "_closers", "draining", "events")

    def __init__(self, events: EventBus | None = None) -> None:
        self.draining = False
        self._checks: list[ReadinessCheck] = []
        self._closers: list[Callable[[], None]] = []
        self.events = events
        """The server's event subscribers (None: none); layers emit `Refused` on it."""

    def add_readiness_check(self, check: ReadinessCheck) -> None:
        """Report on this worker's readiness: `check` answers why not, or None."""
        self._checks.append(check)

    def at_close(self, callback: Callable[[], None]) -> None:
        """Call `callback` once this serve has ended (after the lifespan shutdown): what a
        layer made in ``wrap`` for the worker (a client with a queue to flush) closes."""
        self._closers.append(callback)

    def close(self) -> None:
        """Run the `at_close` callbacks, last registered first; one failing stops none."""
        closers, self._closers = self._closers, []
        for callback in reversed(closers):
            try:
                callback()
            except Exception:
                logging.getLogger("pounce.error").exception("closing %r failed", callback)

    def not_ready(self) -> list[str]:
        """Why this worker should get no new work now; empty when it is ready."""
        reasons = ["draining"] if self.draining else []
        for check in self._checks:
            reason = check()
            if reason is not None:
                reasons.append(reason)
        return reasons


class AppLayer(ABC):
    """A layer of the request plane: wraps the ASGI app beneath it."""

    @abstractmethod
    def wrap(self, inner: ASGIApp) -> ASGIApp:
        """Return the ASGI app that requests enter through."""

    def wrap_serving(self, inner: ASGIApp, serving: Serving) -> ASGIApp:
        """`wrap`, told about the serve it is wrapped for; what `Server.serve()` calls.

        Override it (and make `wrap` call it with a fresh `Serving`) when the
        layer reads or reports readiness; the default ignores `serving`.
        """
        return self.wrap(inner)

    def describe(self) -> str:
        """One line for `Server.describe()`; override to show options."""
        return type(self).__name__
