"""Connections in memory: drive a `ConnectionHandler` without a socket.

`MemoryConn` plays both the peer and the transport of one connection, the
way `pounce.net.transport.TransportAdapter` does for a real socket: the test
calls `open`, `feed`, `feed_eof`, `lose` and `shutdown` (the server's
``begin_shutdown``); the handler answers through the `Conn` methods, which
are recorded (`written`, `closed`, `aborted`). As with a real transport,
`close` and `abort` end in exactly one ``connection_lost`` a loop turn
later, reading paused holds fed bytes back, and an ``eof_received`` that
does not return True closes the connection.

`MemorySetupConn` adds the `SetupConn` seam the outermost layers use: exact
reads are served from the fed bytes, and `start_tls` starts a handshake that
never completes (there is no TLS peer in memory) until the connection is
aborted, lost, or its handshake timeout passes.

`RecordingHandler` is an inner handler that records every callback;
`RecordingFactory` makes them and keeps them, so a test can see what a
stream layer passed inward.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from pounce.conn import Conn, ConnectionHandler, ConnectionInfo

KIT_CLIENT = ("127.0.0.1", 40000)
KIT_SERVER = ("127.0.0.1", 8000)


def kit_info(client: tuple[str, int] | None = KIT_CLIENT) -> ConnectionInfo:
    """The `ConnectionInfo` of a plain TCP connection from `client`."""
    return ConnectionInfo(client=client, server=KIT_SERVER)


class MemoryConn:
    """One connection in memory: a `Conn` for the handler, a peer for the test."""

    def __init__(self, handler: ConnectionHandler, info: ConnectionInfo | None = None) -> None:
        self.handler = handler
        self._info = info if info is not None else kit_info()
        self.written = bytearray()
        self.written_after_lost = bytearray()
        self.closed = False
        self.aborted = False
        self.lost = False
        self.reading_paused = False
        self._unread = bytearray()
        self._eof_pending = False

    # -- the peer and the server: what the test does ----------------------------------

    def open(self) -> MemoryConn:
        self.handler.connection_made(self)
        return self

    def feed(self, data: bytes) -> None:
        """The peer sends `data` (held back while reading is paused)."""
        if self.lost or self.is_closing():
            return  # a closing transport drops what still arrives
        self._unread += data
        self._pump()

    def feed_eof(self) -> None:
        """The peer half-closes; the connection closes unless ``eof_received`` returns True."""
        if self.lost or self.is_closing():
            return
        self._eof_pending = True
        self._pump()

    def lose(self, exc: Exception | None = None) -> None:
        """The connection is gone: ``connection_lost(exc)``, at most once."""
        if self.lost:
            return
        self.lost = True
        self._fail_setup(exc or ConnectionResetError("the connection was lost"))
        self.handler.connection_lost(exc)

    def shutdown(self) -> None:
        """The server begins a graceful shutdown."""
        if not self.lost:
            self.handler.begin_shutdown()

    @property
    def ended(self) -> bool:
        """Closed or aborted by the handler, or lost."""
        return self.closed or self.aborted or self.lost

    # -- Conn: what the handler does ------------------------------------------------------

    @property
    def info(self) -> ConnectionInfo:
        return self._info

    def write(self, data: bytes) -> None:
        if self.lost:
            self.written_after_lost += data
        elif not self.is_closing():
            self.written += data

    def close(self) -> None:
        if not self.is_closing():
            self.closed = True
            self._lose_soon()

    def abort(self) -> None:
        if not self.lost and not self.aborted:
            self.aborted = True
            self._lose_soon()

    def is_closing(self) -> bool:
        return self.closed or self.aborted or self.lost

    def pause_reading(self) -> None:
        self.reading_paused = True

    def resume_reading(self) -> None:
        self.reading_paused = False
        if self._unread or self._eof_pending:
            asyncio.get_running_loop().call_soon(self._pump)

    async def drain(self) -> None:
        return None  # nothing is buffered in memory

    # -- internals ------------------------------------------------------------------------

    def _lose_soon(self) -> None:
        asyncio.get_running_loop().call_soon(self.lose, None)

    def _pump(self) -> None:
        if self._unread and not self.reading_paused and not self.is_closing():
            data = bytes(self._unread)
            self._unread.clear()
            self.handler.data_received(data)
        if self._eof_pending and not self._unread and not self.reading_paused:
            self._eof_pending = False
            if not self.is_closing() and not self.handler.eof_received():
                self.close()

    def _fail_setup(self, exc: Exception) -> None:
        """A plain connection has no setup reads to fail."""


class MemorySetupConn(MemoryConn):
    """A `MemoryConn` that also offers the `SetupConn` seam (PROXY header, TLS)."""

    def __init__(self, handler: ConnectionHandler, info: ConnectionInfo | None = None) -> None:
        super().__init__(handler, info)
        self._exact: tuple[int, asyncio.Future[bytes]] | None = None
        self._exact_mode = False
        self.tls_started = False
        self._tls: asyncio.Future[object] | None = None
        self._tls_timer: asyncio.TimerHandle | None = None

    def update_info(self, **changes: object) -> None:
        self._info = self._info.with_changes(**changes)

    def read_exactly(self, size: int) -> asyncio.Future[bytes]:
        if self._exact is not None or size < 1:
            raise RuntimeError("one exact read of at least one byte at a time")
        waiter = asyncio.get_running_loop().create_future()
        self._exact = (size, waiter)
        self._exact_mode = True
        if self.lost:
            self._fail_setup(ConnectionResetError("the connection closed mid-header"))
        else:
            self._pump()
        return waiter

    def end_exact_reads(self) -> None:
        self._exact_mode = False
        self.reading_paused = True  # as the transport: reading stays paused until resumed

    def start_tls(self, context: object, *, handshake_timeout: float) -> asyncio.Future[object]:
        """A handshake that waits for a client hello no one in memory sends."""
        loop = asyncio.get_running_loop()
        self.tls_started = True
        self._exact_mode = False
        self._tls = loop.create_future()
        self._tls_timer = loop.call_later(handshake_timeout, self._handshake_timed_out)
        return self._tls

    def abort(self) -> None:
        tls = self._tls
        if tls is not None and not tls.done():
            # As the transport: an abort mid-handshake ends the handshake.
            tls.cancel()
        super().abort()

    def _handshake_timed_out(self) -> None:
        self._fail_setup(TimeoutError("no TLS handshake in memory"))
        self.abort()

    def _pump(self) -> None:
        if self._tls is not None:
            self._unread.clear()  # the TLS protocol owns these bytes now
            if self._eof_pending:
                self._eof_pending = False
                self._fail_setup(ConnectionResetError("EOF during the TLS handshake"))
                self.abort()
            return
        if self._exact_mode:
            self._read_exact()
            return
        super()._pump()

    def _read_exact(self) -> None:
        if self._exact is not None:
            size, waiter = self._exact
            if len(self._unread) >= size:
                self._exact = None
                data = bytes(self._unread[:size])
                del self._unread[:size]
                if not waiter.done():
                    waiter.set_result(data)
                return
        if self._eof_pending:
            self._eof_pending = False
            self._fail_setup(ConnectionResetError("the peer closed the connection mid-header"))
            self.close()

    def _fail_setup(self, exc: Exception) -> None:
        if self._tls_timer is not None:
            self._tls_timer.cancel()
        if self._exact is not None:
            waiter = self._exact[1]
            self._exact = None
            if not waiter.done():
                waiter.set_exception(exc)
        if self._tls is not None and not self._tls.done():
            self._tls.set_exception(exc)


@dataclass(frozen=True, slots=True)
class Callback:
    """One callback a `RecordingHandler` received."""

    name: str
    """``connection_made``, ``data_received``, ``eof_received``, ``connection_lost``
    or ``begin_shutdown``."""
    data: bytes = b""
    exc: Exception | None = None


@dataclass(eq=False)
class RecordingHandler:
    """An inner handler that records every callback (and returns `eof_result`)."""

    eof_result: bool | None = None
    callbacks: list[Callback] = field(default_factory=list)
    conn: Conn | None = None
    info: ConnectionInfo | None = None

    def connection_made(self, conn: Conn) -> None:
        self.conn, self.info = conn, conn.info
        self.callbacks.append(Callback("connection_made"))

    def data_received(self, data: bytes) -> None:
        self.callbacks.append(Callback("data_received", data=bytes(data)))

    def eof_received(self) -> bool | None:
        self.callbacks.append(Callback("eof_received"))
        return self.eof_result

    def connection_lost(self, exc: Exception | None) -> None:
        self.callbacks.append(Callback("connection_lost", exc=exc))

    def begin_shutdown(self) -> None:
        self.callbacks.append(Callback("begin_shutdown"))

    @property
    def names(self) -> list[str]:
        """The callbacks' names in order, runs of ``data_received`` merged into one."""
        names: list[str] = []
        for callback in self.callbacks:
            if not (callback.name == "data_received" and names[-1:] == ["data_received"]):
                names.append(callback.name)
        return names

    @property
    def data(self) -> bytes:
        return b"".join(c.data for c in self.callbacks)

    @property
    def made(self) -> bool:
        return any(c.name == "connection_made" for c in self.callbacks)


@dataclass(eq=False)
class RecordingFactory:
    """A `HandlerFactory` of `RecordingHandler`s; `handlers` are all it made, in order."""

    handlers: list[RecordingHandler] = field(default_factory=list)

    def __call__(self) -> ConnectionHandler:
        handler = RecordingHandler()
        self.handlers.append(handler)
        return handler

    def receiving(self) -> list[RecordingHandler]:
        """The handlers a connection was handed to (``connection_made`` received)."""
        return [h for h in self.handlers if h.made]
