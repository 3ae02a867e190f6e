"""`IdleClock`: the keep-alive timeout of a serve's connections, with no work per request.

A keep-alive connection goes idle after each response and busy again at the
next request. A timer for each idle spell — even `Deadline`'s, which moves
one handle by storing a number — reads the clock and makes two calls a
request: about 2.5 % of the instructions of a whole small request
(docs/performance.md, "Speed round two — the keep-alive clock"). Here a
connection joins the clock once; going idle stores the clock's `tick` (how
many sweeps it has made) in the member's `idle_since`, going busy stores
None. One timer per serve sweeps every quarter of the timeout while it has
members, and closes those idle since `ticks` sweeps or more.

Why never early: a member marked with tick *t* went idle after the sweep
that made *t*, so when the sweep that makes *t* + `ticks` sees it still
marked, it has been idle for more than `ticks` − 1 whole periods, which is
at least the timeout. At most a period (a quarter of the timeout, or
`MIN_PERIOD`) more: an idle connection closes between 1 and 1.25 times the
timeout after its last response, as the first request head's clock
(`Sweep`) does. A sweep that the loop runs early waits for its due time
before it counts.

Per serve, so per event loop: the loop is the one running at the first `join`.
"""

from __future__ import annotations

import asyncio
import math
from typing import Protocol

# The shortest period between sweeps (seconds): a timeout of 0 closes an idle
# connection within this, and a sweep (a step per connection of the serve, busy ones
# too) runs at most 20 times a second, not every turn of the loop.
MIN_PERIOD = 0.05


class IdleMember(Protocol):
    """A connection the clock times: idle since a tick, or busy (None)."""

    idle_since: int | None

    def idle_timed_out(self) -> None:
        """Idle for the whole timeout: close. The clock has already let the member go."""


class IdleClock:
    """Calls `idle_timed_out()` on each member idle for `timeout` seconds (to 1.25 ×)."""

    __slots__ = ("_due", "_handle", "_loop", "_members", "_period", "_ticks", "tick")

    def __init__(self, timeout: float) -> None:
        if timeout < 0:
            raise ValueError(f"an idle timeout cannot be negative, not {timeout!r}")
        self.tick = 0  # sweeps made; members store it when they go idle
        self._period = max(timeout / 4, MIN_PERIOD)
        # Whole periods a member must stay marked: one more than the timeout holds, as
        # the first of them is only partly idle.
        self._ticks = math.ceil(timeout / self._period - 1e-9) + 1
        self._members: dict[IdleMember, None] = {}  # (a dict: sweeps in joining order)
        self._handle: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._due = 0.0  # the loop time of the next sweep, while one is scheduled

    @property
    def period(self) -> float:
        """Seconds between sweeps."""
        return self._period

    def join(self, member: IdleMember) -> None:
        """Time `member` from now on (once per connection; its `idle_since` says when)."""
        self._members[member] = None
        if self._handle is None:
            loop = self._loop
            if loop is None:
                loop = self._loop = asyncio.get_running_loop()
            self._schedule(loop, loop.time())

    def leave(self, member: IdleMember) -> None:
        """Stop timing `member` (it closed); nothing if it is not a member."""
        self._members.pop(member, None)

    def __len__(self) -> int:
        return len(self._members)

    def __contains__(self, member: object) -> bool:
        return member in self._members

    def remaining(self, since: int) -> float:
        """At most how many seconds until a member idle since tick `since` is closed."""
        if self._handle is None or self._loop is None:
            return 0.0
        sweeps_after_next = since + self._ticks - self.tick - 1
        return max(0.0, self._due + sweeps_after_next * self._period - self._loop.time())

    def _schedule(self, loop: asyncio.AbstractEventLoop, now: float) -> None:
        self._due = now + self._period
        self._handle = loop.call_at(self._due, self._sweep)

    def _sweep(self) -> None:
        self._handle = None
        loop = self._loop
        assert loop is not None
        now = loop.time()
        if now < self._due:  # the loop ran it early (a clock of coarse resolution)
            self._handle = loop.call_at(self._due, self._sweep)
            return
        self.tick = tick = self.tick + 1
        oldest = tick - self._ticks  # idle since this tick or before: expired
        expired = [
            member
            for member in self._members
            if (since := member.idle_since) is not None and since <= oldest
        ]
        for member in expired:
            del self._members[member]
        for member in expired:
            member.idle_timed_out()  # may join or leave others
        if self._members and self._handle is None:
            self._schedule(loop, now)
