"""`IdleClock`: keep-alive timeouts marked by a tick, swept by one timer (net/idle_clock.py)."""

from __future__ import annotations

import asyncio

import pytest

from pounce.net.idle_clock import MIN_PERIOD, IdleClock

TIMEOUT = 0.2  # seconds, the clock's (a quarter of it: `MIN_PERIOD`); the test waits are generous
WAIT = 10.0  # seconds any awaited expiry may take on a busy machine


class Member:
    """An `IdleMember` that records when the clock let it go."""

    def __init__(self, name: str, done: asyncio.Event | None = None) -> None:
        self.name = name
        self.idle_since: int | None = None
        self.timed_out_at: float | None = None
        self.done = done or asyncio.Event()

    def idle_timed_out(self) -> None:
        self.timed_out_at = asyncio.get_running_loop().time()
        self.done.set()

    def go_idle(self, clock: IdleClock) -> float:
        self.idle_since = clock.tick
        return asyncio.get_running_loop().time()


async def test_an_idle_member_times_out_never_before_the_timeout() -> None:
    clock = IdleClock(TIMEOUT)
    member = Member("a")
    clock.join(member)
    await asyncio.sleep(TIMEOUT / 3)  # idle from part-way through a period
    idle_at = member.go_idle(clock)
    await asyncio.wait_for(member.done.wait(), WAIT)
    assert member.timed_out_at is not None
    assert member.timed_out_at - idle_at >= TIMEOUT
    assert member not in clock and len(clock) == 0  # let go before it was told


async def test_a_busy_member_is_never_timed_out() -> None:
    clock = IdleClock(TIMEOUT)
    busy, idle = Member("busy"), Member("idle")
    clock.join(busy)
    clock.join(idle)
    idle.go_idle(clock)
    await asyncio.wait_for(idle.done.wait(), WAIT)
    for _ in range(3):  # more sweeps than a timeout's worth
        await asyncio.sleep(TIMEOUT)
    assert busy.timed_out_at is None and busy in clock


async def test_going_busy_then_idle_again_times_from_the_last_idle() -> None:
    clock = IdleClock(TIMEOUT)
    member = Member("a")
    clock.join(member)
    member.go_idle(clock)
    for _ in range(6):  # requests keep coming, each shorter than the timeout apart
        await asyncio.sleep(TIMEOUT / 2)
        member.idle_since = None  # a request
        idle_at = member.go_idle(clock)  # its response
    assert member.timed_out_at is None
    await asyncio.wait_for(member.done.wait(), WAIT)
    assert member.timed_out_at is not None and member.timed_out_at - idle_at >= TIMEOUT


async def test_a_member_that_left_is_never_timed_out() -> None:
    clock = IdleClock(TIMEOUT)
    gone, kept = Member("gone"), Member("kept")
    for member in (gone, kept):
        clock.join(member)
        member.go_idle(clock)
    clock.leave(gone)
    clock.leave(Member("never joined"))  # harmless
    await asyncio.wait_for(kept.done.wait(), WAIT)
    await asyncio.sleep(TIMEOUT)
    assert gone.timed_out_at is None


async def test_the_timer_stops_with_no_members_and_restarts_on_join() -> None:
    clock = IdleClock(TIMEOUT)
    first = Member("first")
    clock.join(first)
    first.go_idle(clock)
    await asyncio.wait_for(first.done.wait(), WAIT)
    assert clock._handle is None  # its last member gone: no timer runs
    second = Member("second")
    clock.join(second)
    assert clock._handle is not None
    idle_at = second.go_idle(clock)
    await asyncio.wait_for(second.done.wait(), WAIT)
    assert second.timed_out_at is not None and second.timed_out_at - idle_at >= TIMEOUT


async def test_remaining_bounds_the_time_to_the_close() -> None:
    clock = IdleClock(TIMEOUT)
    member = Member("a")
    clock.join(member)
    idle_at = member.go_idle(clock)
    assert member.idle_since is not None
    left = clock.remaining(member.idle_since)
    assert TIMEOUT <= left <= TIMEOUT + clock.period
    await asyncio.wait_for(member.done.wait(), WAIT)
    assert member.timed_out_at is not None
    # It closes at the sweep `remaining` counted to (or later, on a loaded machine).
    assert member.timed_out_at - idle_at >= left - 0.005
    assert clock.remaining(0) == 0.0  # no timer runs: nothing is owed


async def test_a_zero_timeout_closes_at_the_next_sweep_without_spinning() -> None:
    clock = IdleClock(0)
    assert clock.period == MIN_PERIOD
    member = Member("a")
    clock.join(member)
    member.go_idle(clock)
    await asyncio.wait_for(member.done.wait(), WAIT)


async def test_an_expiry_may_join_and_leave_members() -> None:
    clock = IdleClock(TIMEOUT)
    done = asyncio.Event()
    late = Member("late", done)
    other = Member("other")

    class Rejoins(Member):
        def idle_timed_out(self) -> None:
            super().idle_timed_out()
            clock.leave(other)
            clock.join(late)
            late.go_idle(clock)

    first = Rejoins("first")
    for member in (first, other):
        clock.join(member)
    first.go_idle(clock)
    await asyncio.wait_for(done.wait(), WAIT)
    assert other.timed_out_at is None and late.timed_out_at is not None


def test_a_negative_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="negative"):
        IdleClock(-1)
