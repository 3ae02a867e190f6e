"""asyncio glue of the connection plane: one `TransportAdapter` per socket.

The adapter is the `asyncio.Protocol` the event loop talks to. It presents the
small `Conn` interface to the outermost `ConnectionHandler` and forwards the
loop's callbacks to it, so stream layers and protocol drivers never touch an
asyncio transport directly. It also implements write-side flow control
(`drain` waits while the transport's buffer is above its high-water mark) and
sets ``TCP_NODELAY`` explicitly: on a pre-bound listening socket asyncio does
not, and small responses would then wait out Nagle's delay.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from typing import cast

from pounce.layer import ConnectionHandler, ConnectionInfo, HandlerFactory


class ConnectionTracker:
    """Every open connection of one server, for graceful shutdown.

    Per server instance (so per worker), never module-level.
    """

    def __init__(self) -> None:
        self._adapters: set[TransportAdapter] = set()
        self._closed = asyncio.Event()
        self._closed.set()

    def add(self, adapter: TransportAdapter) -> None:
        self._adapters.add(adapter)
        self._closed.clear()

    def discard(self, adapter: TransportAdapter) -> None:
        self._adapters.discard(adapter)
        if not self._adapters:
            self._closed.set()

    def __len__(self) -> int:
        return len(self._adapters)

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until every connection is gone; False if `timeout` (seconds) ran out."""
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def begin_shutdown(self) -> None:
        for adapter in list(self._adapters):
            adapter.begin_shutdown()

    def abort_all(self) -> None:
        for adapter in list(self._adapters):
            adapter.abort()


def _peer(transport: asyncio.BaseTransport) -> ConnectionInfo:
    sock = transport.get_extra_info("socket")
    peername = transport.get_extra_info("peername")
    sockname = transport.get_extra_info("sockname")
    client: tuple[str, int] | None = None
    server: tuple[str, int | None] | None = None
    if isinstance(peername, tuple) and len(peername) >= 2:
        client = (str(peername[0]), int(peername[1]))
    if isinstance(sockname, tuple) and len(sockname) >= 2:
        server = (str(sockname[0]), int(sockname[1]))
    elif isinstance(sockname, str) and sockname:
        server = (sockname, None)
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    scheme = "https" if transport.get_extra_info("sslcontext") is not None else "http"
    return ConnectionInfo(client=client, server=server, scheme=scheme)


class TransportAdapter(asyncio.Protocol):
    """Bridges one asyncio transport to a `ConnectionHandler` chain."""

    __slots__ = ("_drain_waiter", "_handler", "_info", "_tracker", "_transport", "_write_paused")

    def __init__(self, factory: HandlerFactory, tracker: ConnectionTracker) -> None:
        self._handler: ConnectionHandler = factory()
        self._tracker = tracker
        self._transport: asyncio.Transport | None = None
        self._info = ConnectionInfo(client=None, server=None)
        self._write_paused = False
        self._drain_waiter: asyncio.Future[None] | None = None

    # -- asyncio.Protocol callbacks -------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.Transport, transport)
        self._info = _peer(transport)
        self._tracker.add(self)
        self._handler.connection_made(self)

    def data_received(self, data: bytes) -> None:
        self._handler.data_received(data)

    def eof_received(self) -> bool | None:
        self._handler.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._tracker.discard(self)
        self._wake_drain()
        self._handler.connection_lost(exc)

    def pause_writing(self) -> None:
        self._write_paused = True

    def resume_writing(self) -> None:
        self._write_paused = False
        self._wake_drain()

    def begin_shutdown(self) -> None:
        self._handler.begin_shutdown()

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- Conn -------------------------------------------------------------------

    @property
    def info(self) -> ConnectionInfo:
        return self._info

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.write(data)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()

    def abort(self) -> None:
        if self._transport is not None:
            self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport is None or self._transport.is_closing()

    def pause_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.resume_reading()

    async def drain(self) -> None:
        if not self._write_paused or self.is_closing():
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter
