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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from pounce.asgi.types import ASGIApp
from pounce.protocols.events import Headers

if TYPE_CHECKING:
    import ssl

# TLS protocol versions as the ASGI ``tls`` extension numbers them (RFC 8446 §4.1.2).
TLS_VERSION_CODES = {"TLSv1": 0x0301, "TLSv1.1": 0x0302, "TLSv1.2": 0x0303, "TLSv1.3": 0x0304}


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSInfo:
    """What the TLS layer learnt in the handshake; the ASGI ``tls`` extension's source."""

    version: str
    """``"TLSv1.3"`` …, as `ssl.SSLObject.version` names it."""
    cipher: str
    """OpenSSL's name of the negotiated cipher suite."""
    cipher_suite: int | None = None
    """The IANA number of the cipher suite (``0x1302`` …), where OpenSSL knows it."""
    server_cert: str | None = None
    """PEM of the certificate this server presented."""
    client_cert_chain: tuple[str, ...] = ()
    """PEM, the client's own certificate first; empty without a client certificate."""
    client_cert_name: str | None = None
    """RFC 4514 subject of the client certificate."""

    def asgi_extension(self) -> dict[str, object]:
        """A fresh ``scope["extensions"]["tls"]`` dict (ASGI TLS extension)."""
        return {
            "server_cert": self.server_cert,
            "client_cert_chain": list(self.client_cert_chain),
            "client_cert_name": self.client_cert_name,
            "client_cert_error": None,  # unverifiable client certificates fail the handshake
            "tls_version": TLS_VERSION_CODES.get(self.version),
            "cipher_suite": self.cipher_suite,
        }


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyInfo:
    """What a PROXY protocol header said about the connection it fronts."""

    version: int
    """1 (text) or 2 (binary)."""
    local: bool = False
    """``LOCAL`` (v2) or ``UNKNOWN`` (v1): the proxy's own connection (a health check)."""
    alpn: str | None = None
    """v2 ``PP2_TYPE_ALPN``: the protocol the proxy negotiated with the client."""
    authority: str | None = None
    """v2 ``PP2_TYPE_AUTHORITY``: the host name the client asked for (SNI)."""
    ssl: bool = False
    """v2 ``PP2_TYPE_SSL`` with ``PP2_CLIENT_SSL``: the client spoke TLS to the proxy."""


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
    tls: TLSInfo | None = None
    """Set by the TLS layer once the handshake is done (`pounce/layers/tls.py`)."""
    proxy: ProxyInfo | None = None
    """Set by the PROXY protocol layer (`pounce/layers/proxy_protocol.py`)."""

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


@runtime_checkable
class StreamConn(Conn, Protocol):
    """A `Conn` over one stream of a multiplexed connection: an RFC 8441 tunnel.

    An HTTP/2 extended CONNECT (``:protocol websocket``) hands a protocol one
    stream instead of a socket. Its bytes travel as DATA frames, so the HTTP
    answer that opens (or refuses) the tunnel cannot be bytes: it is a
    HEADERS frame, sent with `send_head`. `close` ends the stream
    (END_STREAM), `abort` resets it, and `pause_reading` stops crediting
    the stream's flow-control window.
    """

    def send_head(self, status: int, headers: Headers, *, end_stream: bool = False) -> None:
        """The response head (a 2xx opens the tunnel); `end_stream`: nothing follows."""
        ...


@runtime_checkable
class SetupConn(Conn, Protocol):
    """What the transport offers the layers that speak before any protocol does.

    The PROXY protocol header and the TLS handshake happen on the raw
    connection, so only `TransportAdapter` implements this, and only the
    outermost stream layers (PROXY protocol, then TLS) can rely on it; the
    builder keeps them there.
    """

    def update_info(self, **changes: object) -> None:
        """Replace `info` with a `with_changes` copy (a PROXY header, a handshake)."""
        ...

    def read_exactly(self, size: int) -> Awaitable[bytes]:
        """Read exactly `size` bytes without consuming anything past them.

        Reading switches to exact reads at once and pauses after each one;
        `end_exact_reads` hands the connection back to `data_received`.
        """
        ...

    def end_exact_reads(self) -> None:
        """Deliver further bytes through `data_received` again (reading stays paused)."""
        ...

    def start_tls(self, context: ssl.SSLContext, *, handshake_timeout: float) -> Awaitable[object]:
        """Pause reading now, then run the event loop's TLS handshake on this connection.

        Resolves to the ``ssl.SSLObject`` of the session; raises what the
        handshake raised (`ssl.SSLError`, `ConnectionError`, a timeout).
        """
        ...


class ConnectionHandler(Protocol):
    """The inward side of a connection: `asyncio.Protocol`-style callbacks."""

    def connection_made(self, conn: Conn) -> None: ...

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> bool | None:
        """The peer will send nothing more. Return True to keep writing (a half-close:
        the peer still reads, as an HTTP/1.0 client after ``shutdown(SHUT_WR)``
        does); otherwise the connection closes. TLS connections always close."""
        ...

    def connection_lost(self, exc: Exception | None) -> None: ...

    def begin_shutdown(self) -> None:
        """The server is shutting down gracefully: finish what is in flight, then close.

        Close at once when idle. Stream layers pass the call inward; a handler
        that ignores it is aborted when the graceful timeout runs out.
        """
        ...


HandlerFactory = Callable[[], ConnectionHandler]
"""Makes one `ConnectionHandler` per accepted connection."""


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


class AppLayer(ABC):
    """A layer of the request plane: wraps the ASGI app beneath it."""

    @abstractmethod
    def wrap(self, inner: ASGIApp) -> ASGIApp:
        """Return the ASGI app that requests enter through."""

    def describe(self) -> str:
        """One line for `Server.describe()`; override to show options."""
        return type(self).__name__
