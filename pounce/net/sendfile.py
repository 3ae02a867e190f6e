"""A file's bytes onto a socket by the kernel: ``loop.sendfile``, a slice at a time.

`send` copies with asyncio's ``loop.sendfile`` (``os.sendfile``: no byte
passes through Python), which only works for a plain socket transport on
asyncio's own loop — not TLS (the kernel cannot encrypt), not uvloop (it has
no ``sendfile``); `native` says whether it can. It goes in slices of `SLICE`
bytes so that a peer that stops reading is still noticed: a slice that does
not finish within the send timeout aborts the connection, the same bound as
`TransportAdapter`'s for ordinary writes (asyncio's transport never pauses
writing during a sendfile, so that timer cannot see it). Should the kernel
refuse midway (``SendfileNotAvailableError``), the rest is read off the
event loop and written as ordinary bytes.

While a slice is in flight the transport may not be written to (asyncio
raises), so `TransportAdapter` holds other writes until `send` returns.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable

SLICE = 256 * 1024  # bytes per sendfile call; a peer must read one within the send timeout
READ_CHUNK = 64 * 1024  # bytes per read when the kernel cannot copy


class _Fd:
    """What ``loop.sendfile`` asks of a file: ``fileno()`` and a binary mode."""

    __slots__ = ("_fd",)
    mode = "rb"

    def __init__(self, fd: int) -> None:
        self._fd = fd

    def fileno(self) -> int:
        return self._fd


def native(transport: asyncio.BaseTransport) -> bool:
    """True where ``loop.sendfile`` can copy to `transport` in the kernel."""
    loop = asyncio.get_running_loop()
    return (
        isinstance(loop, asyncio.BaseEventLoop)  # uvloop has no sendfile
        and transport.get_extra_info("sslcontext") is None
        and transport.get_extra_info("socket") is not None
        and not transport.is_closing()
    )


class Stalled(ConnectionError):
    """The peer read nothing of a slice for the send timeout."""


async def send(
    transport: asyncio.Transport,
    fd: int,
    offset: int,
    count: int,
    *,
    timeout: float | None,
    track: Callable[[asyncio.Task[int] | None], None],
) -> int:
    """Copy up to `count` bytes by sendfile; returns how many went (fewer: the kernel refused).

    `track` is told the slice in flight (and None after it), so an abort can
    cancel it first: a cancelled slice takes its writer callback off the
    socket before the socket closes.
    """
    loop = asyncio.get_running_loop()
    file = _Fd(fd)
    sent = 0
    while sent < count:
        if transport.is_closing():
            raise ConnectionResetError("the connection closed while a file was sent")
        piece = min(SLICE, count - sent)
        copying = loop.sendfile(transport, file, offset + sent, piece, fallback=False)  # type: ignore[arg-type]
        task = loop.create_task(copying)
        track(task)
        try:
            done, _ = await asyncio.wait((task,), timeout=timeout)
        finally:
            track(None)
            if not task.done():
                task.cancel()
        if not done:
            raise Stalled(f"the peer read nothing of the file for {timeout} s")
        try:
            moved = task.result()
        except (asyncio.SendfileNotAvailableError, RuntimeError):
            if transport.is_closing():
                raise ConnectionResetError("the connection closed while a file was sent") from None
            return sent  # the caller writes the rest itself
        if moved < piece:
            raise OSError(f"file truncated while sending ({count - sent - moved} bytes short)")
        sent += moved
    return sent


async def copy(
    write: Callable[[bytes], None],
    drain: Callable[[], Awaitable[None]],
    fd: int,
    offset: int,
    count: int,
) -> None:
    """The bytes `send` could not move, read off the loop and written, each awaiting drain."""
    loop = asyncio.get_running_loop()
    while count > 0:
        data = await loop.run_in_executor(None, os.pread, fd, min(READ_CHUNK, count), offset)
        if not data:
            raise OSError(f"file truncated while sending ({count} bytes short)")
        write(data)
        await drain()
        offset += len(data)
        count -= len(data)
