"""Process workers: forked from the supervisor, one pipe each.

Fork, not spawn: the child inherits the app *object*, the `Server` and the
listening sockets as they are, so ``Server.run(workers=N)`` works for an app
built in Python, not only for an import string. Platforms without fork are
refused when the options are checked (`pounce.workers.options`).

The pipe carries small tuples: supervisor → worker ``("stop",)``,
``("ping",)``; worker → supervisor ``("ready",)``, ``("pong",)``,
``("recycle", served)``, ``("served", served)``. The worker reads its end
in a reader callback on its own event loop, so a ``pong`` proves that loop
turns (`pounce.workers.heartbeat`).

A second pipe, one way, carries a stack dump: the child registers
`faulthandler` on SIGUSR1 to write every thread's stack into it. When a
worker's loop stops answering, the supervisor sends SIGUSR1, gives the
dump `STACK_WAIT` to arrive (faulthandler writes from the C signal handler,
even while Python code is blocked in a C call), logs it, then SIGKILLs.
A worker that reads EOF on it has lost its supervisor and drains. The
supervisor learns of an exit from the process sentinel, whatever the cause
(exit, exception, SIGKILL, the OOM killer).

Signals: SIGINT is ignored in workers (Ctrl+C reaches the whole process
group; the supervisor decides), SIGTERM drains the worker, SIGHUP and the job
control signals are the supervisor's business. Signals are blocked across
the fork so none reaches the child before it has dropped the supervisor's
handlers and its event loop's wakeup fd.
"""

from __future__ import annotations

import asyncio
import contextlib
import faulthandler
import gc
import logging
import multiprocessing
import os
import signal
import socket
import sys
from multiprocessing.connection import Connection
from typing import Any

from pounce.workers.handle import Events, Worker, WorkerPlan
from pounce.workers.runtime import run_worker
from pounce.workers.sockets import close_all

error_log = logging.getLogger("pounce.error")

REAP_TIMEOUT = 1.0  # seconds; reaping a child whose sentinel fired takes microseconds
STACK_WAIT = 0.5  # seconds from SIGUSR1 to reading the stack dump; it takes microseconds
STACK_SIGNAL = signal.SIGUSR1

SUPERVISOR_SIGNALS = (
    signal.SIGINT,
    signal.SIGTERM,
    signal.SIGHUP,
    signal.SIGTTIN,
    signal.SIGTTOU,
)


class ProcessSpawner:
    """Makes process workers and remembers the supervisor's pipe ends, which a new
    child must close (else a worker would not see EOF when the supervisor dies)."""

    def __init__(self) -> None:
        self.pipes: set[Connection] = set()  # (the stack pipes' read ends too)

    def spawn(self, plan: WorkerPlan, events: Events, loop: asyncio.AbstractEventLoop) -> Worker:
        return ProcessWorker(plan, events, loop, self)


class ProcessWorker(Worker):
    kind = "process"

    def __init__(
        self,
        plan: WorkerPlan,
        events: Events,
        loop: asyncio.AbstractEventLoop,
        spawner: ProcessSpawner,
    ) -> None:
        super().__init__(plan, events, loop)
        self._pipes = spawner.pipes
        self._stack: Connection | None = None  # the read end of this worker's stack pipe
        self._conn: Connection | None = None
        self._process: Any = None  # multiprocessing's fork Process; its stub is untyped

    def start(self, own_sockets: list[socket.socket]) -> None:
        ours, theirs = multiprocessing.Pipe()
        stack, stack_w = multiprocessing.Pipe(duplex=False)
        process = self.make_process(theirs, stack_w, [ours, stack, *self._pipes])
        previous = signal.pthread_sigmask(signal.SIG_BLOCK, SUPERVISOR_SIGNALS)
        try:
            process.start()
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, previous)
            theirs.close()
            stack_w.close()
            close_all(own_sockets)  # the child has them now; a sibling must not
        os.set_blocking(stack.fileno(), False)
        self._process, self._conn, self._stack = process, ours, stack
        self._pipes.update((ours, stack))
        self.ident = process.pid or 0
        self.loop.add_reader(ours.fileno(), self._read)
        self.loop.add_reader(process.sentinel, self._exited)

    def make_process(
        self, conn: Connection, stack: Connection, supervisor_ends: list[Connection]
    ) -> Any:
        """The (not yet started) child: forked, serving `plan` as it is."""
        context = multiprocessing.get_context("fork")
        return context.Process(
            target=_child_main,
            args=(self.plan, conn, stack, supervisor_ends),
            name=f"pounce-worker-g{self.generation}",
        )

    def drain(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("stop",))

    def kill(self) -> None:
        self._signal(signal.SIGKILL)

    def _signal(self, signum: signal.Signals) -> None:
        if self._process is not None and self._process.exitcode is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.ident, signum)

    def ping(self) -> None:
        if self._conn is not None:
            with contextlib.suppress(OSError):
                self._conn.send(("ping",))

    def abandon(self) -> None:
        """SIGUSR1 (faulthandler dumps the stacks into the stack pipe), log them, SIGKILL."""
        self._signal(STACK_SIGNAL)

        def dump_and_kill() -> None:
            stack = self._read_stack().rstrip() or "(no stack: the worker did not dump one)"
            error_log.error("Stack of %s, blocked; killing it:\n%s", self, stack)
            self.kill()

        self.loop.call_later(STACK_WAIT, dump_and_kill)

    def _read_stack(self) -> str:
        chunks = []
        with contextlib.suppress(OSError):  # (EAGAIN: all read)
            while self._stack is not None and (chunk := os.read(self._stack.fileno(), 65536)):
                chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")

    def _read(self) -> None:
        conn = self._conn
        while conn is not None and not conn.closed:
            try:
                if not conn.poll():
                    return
                message = conn.recv()
            except (EOFError, OSError):
                self.loop.remove_reader(conn.fileno())
                return
            self._handle(message)

    def _handle(self, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "pong":
            self.answered()
        elif kind == "ready":
            self.events.worker_ready(self)
        elif kind == "recycle":
            self.served = int(message[1])
            self.events.worker_recycle(self)
        elif kind == "served":
            self.served = int(message[1])

    def _exited(self) -> None:
        process = self._process
        self.loop.remove_reader(process.sentinel)
        self._read()  # the last words (the served count) before the exit
        if self._conn is not None:
            with contextlib.suppress(ValueError, OSError):
                self.loop.remove_reader(self._conn.fileno())
            self._pipes.discard(self._conn)
            self._conn.close()
        if self._stack is not None:
            self._pipes.discard(self._stack)
            self._stack.close()
            self._stack = None
        # The sentinel is readable once the child's fds are closed, a moment
        # before the kernel lets us reap it: wait that moment.
        process.join(REAP_TIMEOUT)
        code = process.exitcode
        signum = -code if code is not None and code < 0 else None
        self.events.worker_exited(self, None if signum else code, signum)


def _child_main(
    plan: WorkerPlan, conn: Connection, stack: Connection, supervisor_ends: list[Connection]
) -> None:
    """In the forked child: shed the supervisor's signal set-up and pipes, then serve."""
    signal.set_wakeup_fd(-1)  # the supervisor loop's; a signal here must not wake it
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for signum in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(signum, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    for end in supervisor_ends:  # (fork passes these objects as they are, unpickled)
        end.close()
    register_stack_dump(stack)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)
    sys.exit(run_worker(plan, ProcessLink(conn)))


def register_stack_dump(stack: Connection) -> None:
    """In a child: SIGUSR1 writes every thread's stack into `stack` (kept by faulthandler)."""
    faulthandler.register(STACK_SIGNAL, file=stack, all_threads=True, chain=False)


class ProcessLink:
    """The worker's end of the pipe (in the child)."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._stop: asyncio.Event | None = None

    def attach(self, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
        self._stop = stop
        loop = asyncio.get_running_loop()
        loop.add_reader(self._conn.fileno(), self._read)
        loop.add_signal_handler(signal.SIGTERM, stop.set)

    def _read(self) -> None:
        assert self._stop is not None
        try:
            message = self._conn.recv()
        except (EOFError, OSError):  # the supervisor is gone: drain
            asyncio.get_running_loop().remove_reader(self._conn.fileno())
            self._stop.set()
            return
        if message[0] == "ping":  # answered here, on this worker's loop: it turns
            self._send("pong")
        elif message[0] == "stop":
            self._stop.set()

    def _send(self, *message: Any) -> None:
        with contextlib.suppress(OSError):
            self._conn.send(message)

    def ready(self) -> None:
        # As Server.run(): the start-up heap out of the collector's scans
        # (server.py, _freeze_startup_objects); this process is the worker's own.
        gc.freeze()
        self._send("ready")

    def recycle(self, served: int) -> None:
        self._send("recycle", served)

    def finished(self, served: int | None) -> None:
        if served is not None:
            self._send("served", served)
