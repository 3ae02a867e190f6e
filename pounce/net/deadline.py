"""`Deadline`: one connection timer that can be moved without a new timer handle.

A keep-alive server re-arms its timer twice per request (request head, then
keep-alive). Creating and cancelling an `asyncio.TimerHandle` each time costs
more than the rest of the timer logic; here moving the deadline only stores a
number, and the one handle re-schedules itself when it fires early.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable


class Deadline:
    """Calls the callback once the deadline passes, unless cleared or moved first."""

    __slots__ = ("_callback", "_handle", "_loop", "_time", "_when")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._time = loop_clock(loop)
        self._handle: asyncio.TimerHandle | None = None
        self._when = 0.0
        self._callback: Callable[[], None] | None = None

    def set(self, delay: float, callback: Callable[[], None]) -> None:
        """Fire `callback` `delay` seconds from now (replacing any earlier setting)."""
        when = self._time() + delay
        self._when = when
        self._callback = callback
        handle = self._handle
        if handle is not None and handle.when() <= when:
            return  # it fires in time and will re-check then
        if handle is not None:
            handle.cancel()
        self._handle = self._loop.call_at(when, self._fire)

    def clear(self) -> None:
        """Nothing to time now; the handle, if any, fires later and does nothing."""
        self._callback = None

    def cancel(self) -> None:
        self._callback = None
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def remaining(self) -> float:
        """Seconds until it fires; 0 when it is not set."""
        if self._callback is None:
            return 0.0
        return max(0.0, self._when - self._time())

    @property
    def active(self) -> bool:
        return self._callback is not None

    def _fire(self) -> None:
        self._handle = None
        callback = self._callback
        if callback is None:
            return
        if self._time() < self._when:
            self._handle = self._loop.call_at(self._when, self._fire)
            return
        self._callback = None
        callback()


def loop_clock(loop: asyncio.AbstractEventLoop) -> Callable[[], float]:
    """``loop.time``, or `time.monotonic` itself where that is all it is.

    asyncio's own loops read their clock through `BaseEventLoop.time`, a Python
    method around ``time.monotonic()``: a frame per reading, and a deadline is
    moved once a request. A loop that brings its own clock (uvloop's, a test's)
    is read through it.
    """
    if type(loop).time is asyncio.BaseEventLoop.time:
        return time.monotonic
    return loop.time
