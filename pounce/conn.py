"""What a connection is, as the connection plane sees it: `Conn`, its handlers, its info.

A connection flows outward through `Conn` (write, close, pause and resume
reading, drain) and inward through a `ConnectionHandler`'s
``asyncio.Protocol``-style callbacks. `ConnectionInfo` is what is known about
it (addresses, TLS, the PROXY header), frozen once the stream layers have
spoken. The transport implements `Conn` (and `SetupConn`, for the layers that
speak before any protocol); an HTTP/2 stream implements `StreamConn`. The
layers (`pounce.layer`), the drivers and the ASGI adapter all import these
types from here, so none of them imports another's module for them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

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
    """Set by the TLS layer once the handshake is done (`pounce/layers/tls/layer.py`)."""
    proxy: ProxyInfo | None = None
    """Set by the PROXY protocol layer (`pounce/layers/proxy/protocol.py`)."""

    def with_changes(self, **changes: object) -> ConnectionInfo:
        return replace(self, **changes)  # type: ignore[arg-type]


class _UnfrozenInfo:
    """`ConnectionInfo`'s slots without its frozen ``__setattr__``: see `connection_info`."""

    __slots__ = ConnectionInfo.__slots__


def connection_info(
    client: tuple[str, int] | None, server: tuple[str, int | None] | None, scheme: str
) -> ConnectionInfo:
    """A new connection's `ConnectionInfo`, equal to ``ConnectionInfo(client=…, server=…,
    scheme=…)`` and as frozen, made at a fifth of the cost (one per accepted connection).

    A frozen dataclass's ``__init__`` sets each of its eight fields through
    ``object.__setattr__``: some 15,000 instructions, 5 % of a ``Connection:
    close`` request. Here the fields are stored into an object of the same
    slot layout that is not frozen, which then becomes a `ConnectionInfo`
    (``__class__`` assignment, allowed between classes of one layout).
    """
    info: Any = _UnfrozenInfo()  # (its slots are set by name: typed as ConnectionInfo's)
    info.client = client
    info.server = server
    info.scheme = scheme
    info.alpn = info.tls_version = info.cipher = info.tls = info.proxy = None
    info.__class__ = ConnectionInfo
    made: ConnectionInfo = info
    return made


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
class FileConn(Conn, Protocol):
    """A `Conn` that can send a file's bytes itself, with ``sendfile`` where it can.

    Only the transport implements it, so a stream layer that hands its inner
    handler another `Conn` (one that changes the bytes) never has a file's
    bytes written around it.
    """

    def can_send_file(self) -> bool:
        """True where the kernel can copy file to socket: plain TCP on asyncio's loop."""
        ...

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        """Write `count` bytes of `fd` from `offset` after what was written before.

        Returns once they are in the kernel's hands; raises `ConnectionError`
        when the peer is gone or stopped reading for the send timeout.
        """
        ...


class GatherConn(Conn, Protocol):
    """A `Conn` that writes several pieces as one, uncopied where its loop can.

    The transport implements it (`asyncio.WriteTransport.writelines`: one
    ``writev``/``sendmsg`` on uvloop and on asyncio from Python 3.12; joined,
    as one write, on asyncio before). The HTTP driver uses it for a large body
    behind its head; a `Conn` without it gets one joined write.
    """

    def writelines(self, pieces: list[bytes]) -> None: ...


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


class _Gone:
    """The handler of a connection that is lost: hears nothing more."""

    __slots__ = ()

    def connection_made(self, conn: object) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def begin_shutdown(self) -> None:
        pass


GONE: ConnectionHandler = _Gone()
"""What a connection (a socket's adapter, an HTTP/2 stream's tunnel) holds in place of
its handler once it is lost. The handler holds the connection too (to write), so
keeping it would leave the pair a reference cycle for the collector to find."""


def peer_name(client: tuple[str, int] | None, unix: str = "unix socket") -> str:
    """``host:port`` of a peer for a log line; `unix` for a peer without an address."""
    return f"{client[0]}:{client[1]}" if client else unix
