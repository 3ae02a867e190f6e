"""The zero-copy ASGI extensions: ``http.response.pathsend`` and ``http.response.zerocopysend``.

An app (or a layer: the static files, Starlette's ``FileResponse``) can hand
the server a file instead of its bytes. ``pathsend`` names an absolute path
and always ends the response; ``zerocopysend`` hands an open file, an
optional ``offset`` (else the file's position) and ``count`` (else to the
end), and may say ``more_body``. `FileBody` is such a message checked and
opened; `read_chunks` is how its bytes travel where the kernel cannot copy
them itself (TLS, HTTP/2, a compressing layer on the way): read off the event
loop, `CHUNK` bytes at a time, so a file never sits whole in memory and each
chunk waits for the connection to drain before the next is read.

Opening (``open``, ``fstat``) runs in the loop's default executor: a slow
disk or network file system must not stall every other connection.
"""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from dataclasses import dataclass

from pounce.asgi.types import Message
from pounce.errors import ASGIContractError

CHUNK = 64 * 1024  # bytes per read where the kernel cannot copy (the static layer's default)
PATHSEND = "http.response.pathsend"
ZEROCOPYSEND = "http.response.zerocopysend"
FILE_MESSAGES = (PATHSEND, ZEROCOPYSEND)


@dataclass(slots=True, kw_only=True)
class FileBody:
    """`count` bytes of `fd` from `offset`; `more`: the response goes on after them."""

    fd: int
    offset: int
    count: int
    more: bool
    owned: bool  # pathsend: we opened the descriptor, so we close it
    advance: bool = False  # zerocopysend without an offset: move the file's position past them

    def close(self) -> None:
        """Release what opening took: our own descriptor, or the app's file position."""
        if self.owned:
            os.close(self.fd)
        elif self.advance:
            os.lseek(self.fd, self.offset + self.count, os.SEEK_SET)


async def open_body(message: Message) -> FileBody:
    """The file a pathsend or zerocopysend `message` names, checked.

    Raises:
        ASGIContractError: a relative path, a file that is not there or not
            regular, a bad offset or count (the app's mistake, answered 500).
    """
    loop = asyncio.get_running_loop()
    if message["type"] == PATHSEND:
        return await loop.run_in_executor(None, _open_path, message.get("path"))
    return await loop.run_in_executor(None, _zero_copy, message)


def _open_path(path: object) -> FileBody:
    if not isinstance(path, str) or not os.path.isabs(path):
        raise ASGIContractError(f"http.response.pathsend 'path' must be absolute, not {path!r}")
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise ASGIContractError(f"http.response.pathsend: cannot open {path!r}: {exc}") from exc
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ASGIContractError(f"http.response.pathsend: {path!r} is not a regular file")
    return FileBody(fd=fd, offset=0, count=info.st_size, more=False, owned=True)


def _zero_copy(message: Message) -> FileBody:
    file = message.get("file")
    try:
        fd = file if isinstance(file, int) else file.fileno()  # type: ignore[union-attr]
        info = os.fstat(fd)
    except (AttributeError, OSError, ValueError) as exc:
        raise ASGIContractError(
            f"http.response.zerocopysend 'file' must be an open file, not {file!r}"
        ) from exc
    if not stat.S_ISREG(info.st_mode):
        raise ASGIContractError("http.response.zerocopysend 'file' must be a regular file")
    offset = message.get("offset")
    advance = offset is None
    start = os.lseek(fd, 0, os.SEEK_CUR) if offset is None else offset
    count = message.get("count")
    if count is None:
        count = max(info.st_size - start, 0)
    if not _whole(start) or not _whole(count):
        raise ASGIContractError(
            "http.response.zerocopysend 'offset' and 'count' must be ints >= 0, "
            f"not {offset!r}, {message.get('count')!r}"
        )
    more = bool(message.get("more_body", False))
    return FileBody(fd=fd, offset=start, count=count, more=more, owned=False, advance=advance)


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


async def read_chunks(fd: int, offset: int, count: int, chunk: int = CHUNK) -> AsyncIterator[bytes]:
    """`count` bytes of `fd` from `offset`, `chunk` at a time, each read off the event loop.

    Raises `OSError` when the file ends first (it shrank while being sent):
    the response's promised length can no longer be kept.
    """
    loop = asyncio.get_running_loop()
    while count > 0:
        data = await loop.run_in_executor(None, os.pread, fd, min(chunk, count), offset)
        if not data:
            raise OSError(f"file truncated while sending ({count} bytes short)")
        yield data
        offset += len(data)
        count -= len(data)
