"""The two kinds of layer and the connection-plane shapes they wrap.

A layer is immutable configuration plus ``wrap(inner) -> outer``. Two nominal
base classes tell the builder which plane a layer belongs to:

* `StreamLayer` wraps a `HandlerFactory` — the push-based connection plane,
  bytes in through `ConnectionHandler` callbacks, bytes out through `Conn`.
* `AppLayer` wraps an ASGI app — the request plane.

Per-connection and per-request state lives inside what ``wrap`` returns,
never on the layer object itself, so one layer serves every worker thread.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Protocol

from pounce.asgi.types import ASGIApp


@dataclass(frozen=True, slots=True, kw_only=True)
class ConnectionInfo:
    """What is known about a connection, fixed once the stream layers have spoken.

    Stream layers that learn more (TLS: `alpn`, `tls_version`; the PROXY
    protocol: the real `client`) hand the inner handler a `Conn` whose `info`
    is a `with_changes` copy.
    """

    client: tuple[str, int] | None
    """Peer address; ``None`` for Unix sockets and inherited pipes."""
    server: tuple[str, int | None] | None
    """Local address, or ``(path, None)`` for a Unix socket."""
    scheme: str = "http"
    alpn: str | None = None
    tls_version: str | None = None
    cipher: str | None = None

    def with_changes(self, **changes: object) -> ConnectionInfo:
        return replace(self, **changes)  # type: ignore[arg-type]


class Conn(Protocol):
    """The outward side of a connection, as a handler sees it."""

    @property
    def info(self) -> ConnectionInfo: ...

    def write(self, data: bytes) -> None: ...

    def close(self) -> None:
        """Close after flushing what was written."""
        ...

    def abort(self) -> None:
        """Close now, dropping unwritten bytes."""
        ...

    def is_closing(self) -> bool: ...

    def pause_reading(self) -> None: ...

    def resume_reading(self) -> None: ...

    async def drain(self) -> None:
        """Wait until the write buffer is below its high-water mark."""
        ...


class ConnectionHandler(Protocol):
    """The inward side of a connection: `asyncio.Protocol`-style callbacks."""

    def connection_made(self, conn: Conn) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def begin_shutdown(self) -> None:
        """The server is shutting down gracefully: finish what is in flight, then close.

        Close at once when idle. Stream layers pass the call inward; a handler
        that ignores it is aborted when the graceful timeout runs out.
        """
        ...


HandlerFactory = Callable[[], ConnectionHandler]
"""Makes one `ConnectionHandler` per accepted connection."""


class StreamLayer(ABC):
    """A layer of the connection plane: wraps the handler factory beneath it."""

    @abstractmethod
    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        """Return the factory that connections enter through."""

    def describe(self) -> str:
        """One line for `Server.describe()`; override to show options."""
        return type(self).__name__


class AppLayer(ABC):
    """A layer of the request plane: wraps the ASGI app beneath it."""

    @abstractmethod
    def wrap(self, inner: ASGIApp) -> ASGIApp:
        """Return the ASGI app that requests enter through."""

    def describe(self) -> str:
        """One line for `Server.describe()`; override to show options."""
        return type(self).__name__
