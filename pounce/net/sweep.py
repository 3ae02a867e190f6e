"""`Sweep`: one timer for many connections' timeouts of the same length.

A timer handle per connection costs a heap push, a cancel and, on asyncio,
Python-level comparisons on the loop's timer heap each time — more than the
rest of a short connection's bookkeeping for its clock. Where a quarter more
than the timeout does not matter (a connection that has not sent its first
request head, a lingering close), a connection is instead a dict entry: one
timer per serve sweeps the dict every quarter timeout and expires those
older than the timeout, so an entry lives between 1 and 1.25 times the
timeout. The timer runs only while some entry is pending.

Invariants: entries are kept in insertion order, which is age order (`add`
moves a re-added entry to the end); `expire` is called at most once per
`add`, never for an entry discarded first. Per serve, so per event loop: the
loop is the one running at the first `add`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")  # hashable: a dict key


class Sweep(Generic[T]):
    """Calls `expire(entry)` for each entry added `timeout` seconds ago and not discarded."""

    __slots__ = ("_expire", "_handle", "_loop", "_pending", "_timeout")

    def __init__(self, timeout: float, expire: Callable[[T], None]) -> None:
        self._timeout = timeout
        self._expire = expire
        self._pending: dict[T, float] = {}  # entry → when it was added; oldest first
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def timeout(self) -> float:
        return self._timeout

    def add(self, entry: T) -> None:
        loop = self._loop
        if loop is None:
            loop = self._loop = asyncio.get_running_loop()
        pending = self._pending
        pending.pop(entry, None)  # re-added: to the end, where its age now belongs
        pending[entry] = loop.time()
        if self._handle is None:
            self._handle = loop.call_later(self._timeout / 4, self._sweep)

    def discard(self, entry: T) -> None:
        self._pending.pop(entry, None)

    def __len__(self) -> int:
        return len(self._pending)

    def __contains__(self, entry: object) -> bool:
        return entry in self._pending

    def _sweep(self) -> None:
        self._handle = None
        loop = self._loop
        assert loop is not None
        too_old = loop.time() - self._timeout
        expired = []
        for entry, since in self._pending.items():
            if since > too_old:
                break  # the rest are younger
            expired.append(entry)
        for entry in expired:
            del self._pending[entry]
        for entry in expired:
            self._expire(entry)  # may add or discard entries
        if self._pending and self._handle is None:
            self._handle = loop.call_later(self._timeout / 4, self._sweep)
