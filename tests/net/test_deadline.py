"""`pounce.net.deadline`: which clock a deadline reads."""

from __future__ import annotations

import asyncio
import time

from pounce.net.deadline import Deadline, loop_clock


class _OwnClock(asyncio.SelectorEventLoop):
    def time(self) -> float:
        return 1000.0


def test_asyncios_loop_is_read_as_time_monotonic() -> None:
    loop = asyncio.new_event_loop()
    try:
        assert loop_clock(loop) is time.monotonic
    finally:
        loop.close()


def test_a_loop_with_its_own_clock_is_read_through_it() -> None:
    loop = _OwnClock()
    try:
        assert loop_clock(loop)() == 1000.0
        deadline = Deadline(loop)
        deadline.set(5.0, lambda: None)
        assert deadline.remaining() == 5.0
        deadline.cancel()
    finally:
        loop.close()
