"""`Supervisor`: N worker slots, kept full, restarted without a gap.

Each slot holds at most one *current* worker (serving) and one *pending*
worker (starting, not yet ready). Every start — the first, a replacement
after a death, a rolling restart, a recycle after max_requests — makes a
pending worker; only when it reports ready does it become current, and only
then is the worker it replaces told to drain. With the listening sockets
shared, the kernel's accept queue is never without a worker taking from it,
so a rolling restart refuses no connection.

A death that is not a drain is replaced at once, or after the back-off of
`RestartPolicy` when it was fast; when a slot with nobody serving runs out
of tries, the supervisor stops every worker and exits with
`GIVE_UP_EXIT_CODE`. A replacement that keeps failing while the old worker
still serves is given up on alone: the old worker serves on, and the error
is logged.

A serving worker whose event loop stops answering the `Heartbeat` for
``timeout_worker_healthcheck`` seconds is *abandoned*: taken out of its
slot, its stack logged, killed (a process) or told to drain whenever it can
(a thread), and a replacement started at once. Abandoned workers are not
waited for at shutdown.

Every method runs on the supervisor's event loop (signal handlers and
worker reports are delivered there), so the supervisor's own state needs no
lock.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

from pounce.drivers.http3_options import split_bind
from pounce.net.binds import TCPBind
from pounce.workers.handle import Worker, WorkerPlan
from pounce.workers.heartbeat import Heartbeat
from pounce.workers.options import WorkerOptions, worker_kind
from pounce.workers.policy import GIVE_UP_EXIT_CODE, RestartPolicy
from pounce.workers.process import ProcessSpawner
from pounce.workers.sockets import Listeners
from pounce.workers.thread import ThreadSpawner
from pounce.workers.watch import Watcher

if TYPE_CHECKING:
    from pounce.builder import ServerSpec
    from pounce.server import Server

error_log = logging.getLogger("pounce.error")

KILL_MARGIN = 5.0  # seconds past the graceful timeout before a draining worker is killed


class Spawner(Protocol):
    def spawn(
        self, plan: WorkerPlan, events: Supervisor, loop: asyncio.AbstractEventLoop
    ) -> Worker: ...


@dataclass(eq=False)
class Slot:
    number: int
    current: Worker | None = None
    pending: Worker | None = None
    failures: int = 0  # fast failures in a row
    timer: asyncio.TimerHandle | None = field(default=None, repr=False)

    def cancel_timer(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None


class Supervisor:
    def __init__(
        self,
        server: Server,
        options: WorkerOptions,
        policy: RestartPolicy | None = None,
        *,
        spawner: Spawner | None = None,
        watcher: Watcher | None = None,
    ) -> None:
        self.server = server
        self.options = options
        self.policy = policy or RestartPolicy()
        self.kind = worker_kind(options.worker_class) if spawner is None else "process"
        if spawner is None:
            spawner = ProcessSpawner() if self.kind == "process" else ThreadSpawner()
        self.spawner: Spawner = spawner
        self.watcher = watcher  # dev reload: a change rolls the workers
        self.slots: list[Slot] = []
        self.draining: set[Worker] = set()
        self.abandoned: set[Worker] = set()  # blocked loops, given up on (see Heartbeat)
        self.generation = 1
        self.stopping = False
        self.exit_code = 0
        self._numbers = 0
        self._announced = False

    async def run(self) -> int:
        """Open the listeners, keep the slots full until stopped; return the exit status."""
        self._loop = asyncio.get_running_loop()
        self._done = asyncio.Event()
        spec = self.server.spec
        self.listeners = Listeners(
            spec.binds, spec.backlog, reuse_port=self.options.reuse_port, udp=_udp_address(spec)
        )
        watching: asyncio.Task[None] | None = None
        heartbeat = Heartbeat(self.options.timeout_worker_healthcheck, self._serving, self._blocked)
        try:
            error_log.info("Starting %d %s workers", self.options.workers, self.kind)
            for _ in range(self.options.workers):
                self._add_slot()
            heartbeat.start(self._loop)
            watching = self._loop.create_task(self._watch()) if self.watcher else None
            await self._done.wait()
        finally:
            heartbeat.stop()
            if watching is not None:
                assert self.watcher is not None
                self.watcher.stop()
                watching.cancel()
            self.listeners.close()
        return self.exit_code

    # -- commands (signals) ---------------------------------------------------------

    def stop(self) -> None:
        """Drain every worker, then finish (SIGTERM, SIGINT)."""
        if self.stopping:
            return
        self.stopping = True
        error_log.info("Shutting down %d worker(s)", len(self._live()))
        for slot in self.slots:
            slot.cancel_timer()
        for worker in self._live():
            self._drain(worker)
        self._check_done()

    def force(self) -> None:
        """Kill every worker now (a second SIGINT)."""
        self.stopping = True
        error_log.warning("Forced exit")
        for worker in self._live():
            worker.kill()
        self._check_done()
        # A thread worker blocked in its app cannot be killed; do not wait for it forever.
        self._loop.call_later(KILL_MARGIN, self._done.set)

    def roll(self) -> None:
        """A rolling restart: a new generation, each ready before its predecessor drains."""
        if self.stopping:
            return
        self.generation += 1
        error_log.info("Rolling restart: starting generation %d", self.generation)
        for slot in self.slots:
            if slot.pending is None:
                slot.cancel_timer()
                slot.failures = 0
                self._start(slot)

    def add(self) -> None:
        """One more worker (SIGTTIN)."""
        if not self.stopping:
            self._add_slot()
            error_log.info("Adding a worker: %d now", len(self.slots))

    def remove(self) -> None:
        """One worker fewer, never none (SIGTTOU)."""
        if self.stopping:
            return
        if len(self.slots) <= 1:
            error_log.warning("Not removing the last worker")
            return
        slot = self.slots.pop()
        slot.cancel_timer()
        error_log.info("Removing a worker: %d now", len(self.slots))
        for worker in (slot.current, slot.pending):
            if worker is not None:
                self._drain(worker)

    # -- starting ---------------------------------------------------------------------

    def _add_slot(self) -> None:
        self._numbers += 1
        slot = Slot(self._numbers)
        self.slots.append(slot)
        self._start(slot)

    def _start(self, slot: Slot) -> None:
        slot.timer = None
        served, own = self.listeners.for_worker()
        udp = self.listeners.udp
        owner = udp is not None and bool(self.slots) and slot is self.slots[0]
        plan = WorkerPlan(self.server, tuple(served), self._limit(), self.generation, udp, owner)
        worker = self.spawner.spawn(plan, self, self._loop)
        slot.pending = worker
        worker.start(own)
        error_log.info("Started %s", worker)

    def _limit(self) -> int | None:
        limit = self.options.max_requests
        if limit is None:
            return None
        # Jitter spreads the recycling of workers started together (Gunicorn's).
        return limit + random.randint(0, self.options.max_requests_jitter)

    def _restart(self, slot: Slot) -> None:
        slot.timer = None
        if not self.stopping and slot in self.slots and slot.pending is None:
            self._start(slot)

    # -- reports from workers ---------------------------------------------------------

    def worker_ready(self, worker: Worker) -> None:
        worker.ready_at = worker.answered_at = time.monotonic()
        error_log.info("%s ready", _cap(worker))
        slot = self._slot_of(worker)
        if self.stopping or slot is None or slot.pending is not worker:
            self._drain(worker)  # stopping, or its slot was removed meanwhile
            return
        worker.state = "serving"
        old, slot.current, slot.pending = slot.current, worker, None
        if old is not None:
            self._drain(old)
        self._announce()

    def worker_recycle(self, worker: Worker) -> None:
        slot = self._slot_of(worker)
        if self.stopping or slot is None or slot.current is not worker or slot.pending:
            return
        error_log.info("%s served %s requests: recycling it", _cap(worker), worker.served)
        self._start(slot)

    def worker_exited(self, worker: Worker, code: int | None, signum: int | None) -> None:
        if worker.kill_timer is not None:
            worker.kill_timer.cancel()
        expected = worker in self.draining or worker in self.abandoned or self.stopping
        log = error_log.info if expected else error_log.error
        log("%s exited: %s", _cap(worker), worker.exit_summary(code, signum))
        self.draining.discard(worker)
        self.abandoned.discard(worker)
        slot = self._slot_of(worker)
        if slot is not None and worker in (slot.current, slot.pending):
            if slot.current is worker:
                slot.current = None
            else:
                slot.pending = None
            self._died(slot, worker)
        self._check_done()

    async def _watch(self) -> None:
        assert self.watcher is not None
        error_log.info("Watching for changes in %s", self.watcher.describe())
        async for changed in self.watcher.changes():
            shown = ", ".join(changed[:3]) + (
                f" and {len(changed) - 3} more" if changed[3:] else ""
            )
            error_log.info("Changes detected in %s: reloading", shown)
            self.roll()

    # -- deaths -----------------------------------------------------------------------

    def _died(self, slot: Slot, worker: Worker) -> None:
        if self.stopping:
            return
        if self.watcher is not None and worker.ready_at is None:
            # Dev reload: the same code would fail again; its error is above, once.
            slot.failures = 0
            serving = "the previous code serves on" if slot.current else "nothing is served"
            error_log.warning("The new code did not start: %s until the next change", serving)
            return
        ready_for = None if worker.ready_at is None else time.monotonic() - worker.ready_at
        slot.failures = slot.failures + 1 if self.policy.is_fast(ready_for) else 0
        if self.policy.gives_up(slot.failures):
            self._give_up(slot)
            return
        if slot.pending is not None:
            return  # (a current worker died while its replacement starts)
        delay = self.policy.delay(slot.failures)
        if delay:
            error_log.warning("Starting a new worker in %.1f s", delay)
            slot.timer = self._loop.call_later(delay, self._restart, slot)
        else:
            self._start(slot)

    def _give_up(self, slot: Slot) -> None:
        slot.failures = 0
        if slot.current is not None:
            error_log.error(
                "A new worker failed %d times; %s serves on (see the errors above)",
                self.policy.max_failures,
                slot.current,
            )
            return
        error_log.critical(
            "Workers failed %d times in a row at start-up; giving up (see the errors above)",
            self.policy.max_failures,
        )
        self.exit_code = GIVE_UP_EXIT_CODE
        self.stop()

    # -- blocked loops ----------------------------------------------------------------

    def _serving(self) -> list[Worker]:
        return [] if self.stopping else [s.current for s in self.slots if s.current is not None]

    def _blocked(self, worker: Worker) -> None:
        """`worker`'s loop has not answered the heartbeat: replace it now, end it."""
        slot = self._slot_of(worker)
        if slot is not None and slot.current is worker:
            slot.current = None
        worker.state = "draining"
        self.abandoned.add(worker)
        error_log.error(
            "%s has not answered the heartbeat for %g s: its event loop is blocked; replacing it",
            _cap(worker),
            self.options.timeout_worker_healthcheck,
        )
        worker.abandon()
        if slot is not None and slot.pending is None:
            self._start(slot)

    # -- draining and the end ---------------------------------------------------------

    def _drain(self, worker: Worker) -> None:
        if worker.state == "draining":
            return
        worker.state = "draining"
        self.draining.add(worker)
        error_log.info("%s draining", _cap(worker))
        worker.drain()
        deadline = self.server.spec.graceful_timeout + KILL_MARGIN
        worker.kill_timer = self._loop.call_later(deadline, worker.kill)

    def _live(self) -> list[Worker]:
        live = [w for slot in self.slots for w in (slot.current, slot.pending) if w is not None]
        return live + [w for w in self.draining if w not in live]

    def _slot_of(self, worker: Worker) -> Slot | None:
        for slot in self.slots:
            if worker is slot.current or worker is slot.pending:
                return slot
        return None

    def _check_done(self) -> None:
        if self.stopping and not self._live():
            self._done.set()

    def _announce(self) -> None:
        """The start-up line, once, when every first worker is serving."""
        if self._announced or any(slot.current is None for slot in self.slots):
            return
        self._announced = True
        for address in self.listeners.addresses():
            if self.server.uses_tls:
                address = address.replace("http://", "https://", 1)
            error_log.info("Pounce running on %s (Press CTRL+C to quit)", address)
        udp = self.listeners.udp
        if udp is not None:
            host, port = udp.getsockname()[:2]
            error_log.info("Pounce serving HTTP/3 on udp %s:%d (one worker)", host, port)


def _udp_address(spec: ServerSpec) -> tuple[str, int | None] | None:
    """Where HTTP/3 listens: its own bind, else the first listener's host and port."""
    if spec.h3 is None:
        return None
    if spec.h3.options.bind is not None:
        return split_bind(spec.h3.options.bind)
    first = spec.binds[0]
    assert isinstance(first, TCPBind)  # the builder made sure
    return first.host, None


def _cap(worker: Worker) -> str:
    text = str(worker)
    return text[:1].upper() + text[1:]
