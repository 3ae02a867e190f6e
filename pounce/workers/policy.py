"""`RestartPolicy`: when a dead worker is started again, and when to give up.

A worker that dies after serving for a while is replaced at once. A *fast*
failure — dying before it was ready, or within `fast_window` seconds of
being ready — counts against its slot: the next start waits
``base_delay * 2**(failures - 1)`` seconds (at most `max_delay`), and after
`max_failures` fast failures in a row the supervisor gives up (a broken
app or a port it cannot use would otherwise restart forever — Uvicorn
issue #1115). Pure arithmetic: the supervisor owns the clock.
"""

from __future__ import annotations

from dataclasses import dataclass

GIVE_UP_EXIT_CODE = 3  # the supervisor's exit status when it gives up; Gunicorn's WORKER_BOOT_ERROR


@dataclass(frozen=True, slots=True, kw_only=True)
class RestartPolicy:
    base_delay: float = 0.1  # seconds before the second start after a fast failure
    max_delay: float = 5.0  # seconds; the back-off never waits longer
    max_failures: int = 5  # fast failures in a row before giving up
    fast_window: float = 1.0  # seconds of readiness that make a death "not fast"

    def is_fast(self, ready_for: float | None) -> bool:
        """`ready_for`: seconds the worker had been ready when it died (None: never ready)."""
        return ready_for is None or ready_for < self.fast_window

    def gives_up(self, failures: int) -> bool:
        return failures >= self.max_failures

    def delay(self, failures: int) -> float:
        """Seconds to wait before the next start, after `failures` fast failures in a row."""
        if failures <= 0:
            return 0.0
        return min(self.max_delay, self.base_delay * 2.0 ** (failures - 1))
