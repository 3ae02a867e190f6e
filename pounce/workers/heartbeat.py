"""`Heartbeat`: every serving worker's event loop must answer the supervisor, or it
is reported as blocked.

Why the event loop, and not the process or a side thread: a worker whose
loop is blocked — ``time.sleep`` or a CPU-bound loop in an async view, a
deadlock, a C call that never returns — is alive to the kernel and its side
threads would answer for it, yet it serves nobody and its accepted
connections hang. So each kind answers a ping from a callback that only a
turning loop runs: a process worker from the reader callback of its pipe on
its own loop (`pounce.workers.process.ProcessLink`), a thread worker from a
``call_soon_threadsafe`` round trip through its loop
(`pounce.workers.thread.ThreadWorker.ping`).

Each tick (a fifth of the timeout, at most 1 s) pings every serving worker;
an answer moves the worker's `answered_at` (on the supervisor's loop). A
worker is judged from the moment it became ready — lifespan startup and a
drain have bounds of their own — and one that has not answered for
`timeout` seconds is handed to `unresponsive` once: the supervisor logs its
stack, ends it as far as its kind allows and starts a replacement. Detection
takes between `timeout` and `timeout` + one tick. The clock is injected.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Iterable

from pounce.workers.handle import Worker

MAX_TICK = 1.0  # seconds between pings at most


class Heartbeat:
    def __init__(
        self,
        timeout: float,
        workers: Callable[[], Iterable[Worker]],
        unresponsive: Callable[[Worker], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.tick = min(MAX_TICK, timeout / 5)
        self._workers = workers
        self._unresponsive = unresponsive
        self._clock = clock
        self._timer: asyncio.TimerHandle | None = None

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        def again() -> None:
            self.beat()
            self._timer = loop.call_later(self.tick, again)

        self._timer = loop.call_later(self.tick, again)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def beat(self) -> None:
        """One tick: report the workers silent for `timeout`, ping the others."""
        now = self._clock()
        for worker in list(self._workers()):
            if worker.state != "serving" or worker.answered_at is None:
                continue
            if now - worker.answered_at >= self.timeout:
                self._unresponsive(worker)
            else:
                worker.ping()
