"""`Worker`: the supervisor's handle on one worker, whatever its kind.

A handle is made, started once, told to drain or killed, and reports back
through `Events` — always on the supervisor's event loop, whichever thread
or process the worker itself runs in. `WorkerPlan` is what the worker needs
to serve: the server, the listening sockets, and its request limit.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol

if TYPE_CHECKING:
    from pounce.server import Server

WorkerState = Literal["starting", "serving", "draining"]


@dataclass(frozen=True, slots=True)
class WorkerPlan:
    server: Server
    sockets: tuple[socket.socket, ...]
    limit: int | None  # requests before asking to be recycled; None: never
    generation: int
    udp: socket.socket | None = None  # HTTP/3's socket (its port is advertised by every worker)
    udp_owner: bool = False  # this worker serves HTTP/3 on it (docs/workers.md, "HTTP/3")


class Events(Protocol):
    """What a worker reports; called on the supervisor's event loop."""

    def worker_ready(self, worker: Worker) -> None: ...

    def worker_recycle(self, worker: Worker) -> None: ...

    def worker_exited(self, worker: Worker, code: int | None, signum: int | None) -> None: ...


class Worker(ABC):
    kind: str = "worker"

    def __init__(self, plan: WorkerPlan, events: Events, loop: asyncio.AbstractEventLoop) -> None:
        self.plan = plan
        self.events = events
        self.loop = loop  # the supervisor's
        self.state: WorkerState = "starting"
        self.ident = 0  # pid or thread id, once started
        self.started_at = time.monotonic()
        self.ready_at: float | None = None
        self.served: int | None = None  # requests served, where counted (max_requests)
        self.answered_at: float | None = None  # its loop's last heartbeat answer (from ready on)
        self.kill_timer: asyncio.TimerHandle | None = None

    @property
    def generation(self) -> int:
        return self.plan.generation

    @abstractmethod
    def start(self, own_sockets: list[socket.socket]) -> None:
        """Start serving; `own_sockets` (reuse_port) are this worker's alone to close."""

    @abstractmethod
    def drain(self) -> None:
        """Stop accepting, finish in-flight requests up to the graceful timeout, exit."""

    @abstractmethod
    def kill(self) -> None:
        """Exit at once (a process: SIGKILL; a thread: its serve is cancelled)."""

    @abstractmethod
    def ping(self) -> None:
        """Ask the worker's event loop to answer; its answer sets `answered_at`."""

    @abstractmethod
    def abandon(self) -> None:
        """Its loop is blocked: log the stack of the blocked thread, then end it
        as far as its kind allows (a process: SIGKILL; a thread: drain once unblocked)."""

    def answered(self) -> None:
        """On the supervisor's loop: the worker's loop answered a ping."""
        self.answered_at = time.monotonic()

    def __str__(self) -> str:
        label = "pid" if self.kind == "process" else "thread"
        return f"worker {label} {self.ident} (generation {self.generation})"

    def exit_summary(self, code: int | None, signum: int | None) -> str:
        how = f"signal {signal.Signals(signum).name}" if signum else f"code {code}"
        uptime = time.monotonic() - self.started_at
        served = "" if self.served is None else f", {self.served} requests served"
        return f"{how}, uptime {uptime:.1f} s{served}"
