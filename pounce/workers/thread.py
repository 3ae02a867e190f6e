"""Thread workers: one thread and one event loop each, in the supervisor's process.

The natural kind on a free-threaded interpreter, where they run Python in
parallel; under the GIL they share one core's worth of Python and are there
for tests and for apps that mostly wait. Signals reach only the supervisor's
(main) thread, so a worker is told to drain or exit through its own loop's
``call_soon_threadsafe``, and reports through the supervisor's.

A thread cannot be killed. A worker whose loop stops answering the
heartbeat (`abandon`) has the stack of its thread logged (from
``sys._current_frames()``, in faulthandler's format), is told to drain —
which it does if its loop ever turns again — and is replaced; with a shared
listening socket it takes no new connection meanwhile (its loop is not
accepting), but the connections it holds wait with it, and with
``reuse_port`` its own socket keeps receiving its share of new connections
until it turns again (docs/workers.md).

Shared state: the handle's `_worker_loop`, `_stop`, `_task` and `_pending`
are written by the worker thread (in `attach`) and read by the supervisor
thread (in `drain` and `kill`); `_lock` guards them, nothing else. The
served count is written by the worker thread and read by the supervisor
only after the worker reported its exit (through the loop's queue, which
orders the two).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import threading
import traceback
from collections.abc import Callable
from typing import Any, Literal

from pounce.workers.handle import Events, Worker, WorkerPlan
from pounce.workers.runtime import run_worker
from pounce.workers.sockets import close_all

error_log = logging.getLogger("pounce.error")


def thread_stack(ident: int) -> str:
    """The stack of thread `ident`, innermost first, as faulthandler prints one."""
    frame = sys._current_frames().get(ident)
    if frame is None:
        return "(the thread has ended)"
    lines = [f"Thread {ident:#018x} (most recent call first):"]
    for entry in reversed(traceback.extract_stack(frame)):
        lines.append(f'  File "{entry.filename}", line {entry.lineno} in {entry.name}')
    return "\n".join(lines)


class ThreadSpawner:
    def spawn(self, plan: WorkerPlan, events: Events, loop: asyncio.AbstractEventLoop) -> Worker:
        return ThreadWorker(plan, events, loop)


class ThreadWorker(Worker):
    kind = "thread"

    def __init__(self, plan: WorkerPlan, events: Events, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__(plan, events, loop)
        self._lock = threading.Lock()
        self._worker_loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._task: asyncio.Task[Any] | None = None
        self._pending: Literal["drain", "kill"] | None = None  # asked before attach
        self._own: list[socket.socket] = []

    def start(self, own_sockets: list[socket.socket]) -> None:
        self._own = own_sockets
        thread = threading.Thread(
            target=self._main, name=f"pounce-worker-g{self.generation}", daemon=True
        )
        thread.start()
        self.ident = thread.ident or 0

    def _main(self) -> None:
        code = 1
        try:
            code = run_worker(self.plan, self)
        finally:
            close_all(self._own)
            self._report(self.events.worker_exited, self, code, None)

    def _report(self, callback: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the supervisor's loop has closed
            self.loop.call_soon_threadsafe(callback, *args)

    # -- supervisor side ------------------------------------------------------------

    def drain(self) -> None:
        self._tell("drain")

    def kill(self) -> None:
        self._tell("kill")

    def ping(self) -> None:
        with self._lock:
            loop = self._worker_loop
        if loop is not None:
            # Runs on the worker's loop, and only if it turns; answers on ours.
            with contextlib.suppress(RuntimeError):  # that loop has closed
                loop.call_soon_threadsafe(self._report, self.answered)

    def abandon(self) -> None:
        error_log.error(
            "Stack of %s, blocked (a thread cannot be killed: it drains if its loop "
            "ever turns again):\n%s",
            self,
            thread_stack(self.ident),
        )
        self.drain()

    def _tell(self, what: Literal["drain", "kill"]) -> None:
        with self._lock:
            loop, stop, task = self._worker_loop, self._stop, self._task
            if loop is None or stop is None or task is None:
                self._pending = what
                return
        action = stop.set if what == "drain" else task.cancel
        with contextlib.suppress(RuntimeError):  # that loop has closed: nothing to stop
            loop.call_soon_threadsafe(action)

    # -- worker side (the Link) -----------------------------------------------------

    def attach(self, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
        with self._lock:
            self._worker_loop = asyncio.get_running_loop()
            self._stop, self._task = stop, task
            pending = self._pending
        if pending == "drain":
            stop.set()
        elif pending == "kill":
            task.cancel()

    def ready(self) -> None:
        self._report(self.events.worker_ready, self)

    def recycle(self, served: int) -> None:
        self.served = served
        self._report(self.events.worker_recycle, self)

    def finished(self, served: int | None) -> None:
        self.served = served
