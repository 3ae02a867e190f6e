"""Memory: a server's RSS idle, and with many idle keep-alive connections held open.

Each connection is a real one the server has served: one GET whose whole answer
(status 200 and the expected body) is read before it is left idle.
"""

from __future__ import annotations

import asyncio
import contextlib
import resource
import time
from dataclasses import dataclass
from typing import Any

from pounce.bench.procs import Rss, tree_rss

OPEN_CONCURRENCY = 200  # connections being opened at once
CONNECT_TIMEOUT_S = 15.0  # per connection: connect, send, read the answer
OPEN_ALL_TIMEOUT_S = 300.0
SETTLE_S = 2.0  # quiet time before RSS is read
CLOSE_TIMEOUT_S = 30.0
FD_MARGIN = 256  # descriptors kept for everything else in a process


def raise_fd_limit(wanted: int) -> int:
    """Raise RLIMIT_NOFILE's soft limit toward `wanted` + margin (children inherit it).

    Returns how many connections fit under the limit we got.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted + FD_MARGIN
    if hard != resource.RLIM_INFINITY:
        target = min(target, hard)
    if target > soft:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    return max(0, min(wanted, soft - FD_MARGIN))


_Conn = tuple[asyncio.StreamReader, asyncio.StreamWriter]


class _GaveUp(Exception):
    """An earlier connection failed, so this one was not tried."""


async def _open_one(
    port: int, request: bytes, body: bytes, gate: asyncio.Semaphore, failed: asyncio.Event
) -> _Conn:
    async with gate:
        if failed.is_set():
            raise _GaveUp
        try:
            return await _connect_and_ask(port, request, body)
        except BaseException:
            failed.set()  # a server that stopped accepting would cost a timeout per connection
            raise


async def _connect_and_ask(port: int, request: bytes, want: bytes) -> _Conn:
    """Connect, send one GET, read the whole answer (`want`); the connection stays open."""
    reader, writer = await asyncio.wait_for(
        asyncio.open_connection("127.0.0.1", port), CONNECT_TIMEOUT_S
    )
    try:
        writer.write(request)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), CONNECT_TIMEOUT_S)
        if b" 200 " not in head.split(b"\r\n", 1)[0]:
            raise ConnectionError(f"answer was {head[:40]!r}")
        body = await asyncio.wait_for(reader.readexactly(len(want)), CONNECT_TIMEOUT_S)
        if body != want:
            raise ConnectionError(f"body was {body!r}")
    except BaseException:
        writer.close()
        raise
    return reader, writer


def _still_open(conn: _Conn) -> bool:
    reader, writer = conn
    return not reader.at_eof() and not writer.is_closing()


async def _close_all(conns: list[_Conn]) -> None:
    for _, writer in conns:
        writer.close()
    with contextlib.suppress(TimeoutError, OSError):
        await asyncio.wait_for(
            asyncio.gather(*(w.wait_closed() for _, w in conns), return_exceptions=True),
            CLOSE_TIMEOUT_S,
        )


@dataclass(frozen=True, slots=True)
class LoadedRss:
    rss: Rss
    requested: int
    opened: int
    held: int  # still open when RSS was read
    open_seconds: float
    first_error: str | None

    def as_json(self) -> dict[str, Any]:
        return {
            "rss": self.rss.as_json(),
            "requested": self.requested,
            "opened": self.opened,
            "held": self.held,
            "open_seconds": round(self.open_seconds, 2),
            "first_error": self.first_error,
        }


async def _rss_with_connections(
    pid: int, port: int, count: int, path: str, body: bytes
) -> LoadedRss:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    gate = asyncio.Semaphore(OPEN_CONCURRENCY)
    failed = asyncio.Event()
    started = time.monotonic()
    results = await asyncio.wait_for(
        asyncio.gather(
            *(_open_one(port, request, body, gate, failed) for _ in range(count)),
            return_exceptions=True,
        ),
        OPEN_ALL_TIMEOUT_S,
    )
    open_seconds = time.monotonic() - started
    conns = [r for r in results if isinstance(r, tuple)]
    errors = [r for r in results if isinstance(r, BaseException) and not isinstance(r, _GaveUp)]
    try:
        await asyncio.sleep(SETTLE_S)
        rss = tree_rss(pid)
        held = sum(1 for conn in conns if _still_open(conn))
    finally:
        await _close_all(conns)
    first_error = f"{type(errors[0]).__name__}: {errors[0]}" if errors else None
    return LoadedRss(rss, count, len(conns), held, open_seconds, first_error)


def rss_with_connections(pid: int, port: int, count: int, path: str, body: bytes) -> LoadedRss:
    """Open `count` keep-alive connections (one GET `path` answered `body` each), hold
    them, read RSS."""
    return asyncio.run(_rss_with_connections(pid, port, count, path, body))


def idle_rss(pid: int) -> Rss:
    time.sleep(SETTLE_S)
    return tree_rss(pid)
