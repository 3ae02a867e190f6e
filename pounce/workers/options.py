"""`WorkerOptions`: how many workers, of which kind, and when to recycle them.

Frozen configuration, checked once by `check()` before any socket is opened:
a bad value is a `BuildError` that names the argument of `Server.run()` and
the fix. `worker_kind()` resolves ``"auto"``: threads on a free-threaded
interpreter (``sys._is_gil_enabled()`` false, Python 3.13t+), processes
otherwise — threads under the GIL share one core's worth of Python.
"""

from __future__ import annotations

import multiprocessing
import sys
from dataclasses import dataclass
from typing import Literal

from pounce.errors import BuildError

WorkerClass = Literal["auto", "process", "thread"]
WORKER_CLASSES: tuple[WorkerClass, ...] = ("auto", "process", "thread")


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """The arguments of `Server.run()` that concern workers, each with its default."""

    workers: int = 1  # worker count; 1 (and no reload) = no supervisor, as Uvicorn
    worker_class: WorkerClass = "auto"  # threads when free-threaded, else processes
    reuse_port: bool = False  # SO_REUSEPORT: one listening socket per worker (Linux)
    max_requests: int | None = None  # requests before a worker is recycled; Gunicorn's name
    max_requests_jitter: int = 0  # up to this many more, at random, per worker; Gunicorn's


def gil_enabled() -> bool:
    """False only on a free-threaded build running without the GIL."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def worker_kind(choice: WorkerClass) -> Literal["process", "thread"]:
    if choice == "auto":
        return "process" if gil_enabled() else "thread"
    return choice


def check(options: WorkerOptions) -> None:
    """Raise `BuildError` for a value `Server.run()` cannot serve with."""
    workers = options.workers
    if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
        raise BuildError(
            f"Server.run(workers={workers!r}): must be an integer >= 1",
            hint="workers=1 serves in this process; more starts a supervisor",
        )
    if options.worker_class not in WORKER_CLASSES:
        raise BuildError(
            f"Server.run(worker_class={options.worker_class!r}): "
            f"must be one of {', '.join(WORKER_CLASSES)}"
        )
    _check_limits(options)
    if worker_kind(options.worker_class) == "process" and workers > 1:
        _check_fork(options.worker_class)


def _check_limits(options: WorkerOptions) -> None:
    limit = options.max_requests
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 1):
        raise BuildError(
            f"Server.run(max_requests={limit!r}): must be an integer >= 1 or None",
            hint="None (the default) never recycles a worker",
        )
    jitter = options.max_requests_jitter
    if isinstance(jitter, bool) or not isinstance(jitter, int) or jitter < 0:
        raise BuildError(f"Server.run(max_requests_jitter={jitter!r}): must be an integer >= 0")
    if jitter and limit is None:
        raise BuildError(
            "Server.run(max_requests_jitter=...): has no effect without max_requests",
            hint="set max_requests too, or leave the jitter at 0",
        )
    if options.reuse_port and not _has_reuse_port():
        raise BuildError(
            "Server.run(reuse_port=True): this platform has no SO_REUSEPORT",
            hint="leave reuse_port off: the workers then share one listening socket",
        )


def _check_fork(choice: WorkerClass) -> None:
    """Process workers are forked, so they inherit the app object and the sockets."""
    if "fork" not in multiprocessing.get_all_start_methods():
        raise BuildError(
            f"Server.run(worker_class={choice!r}): process workers need the fork start "
            "method, which this platform lacks",
            hint="use worker_class='thread', or run one `pounce` per core behind a balancer",
        )


def _has_reuse_port() -> bool:
    import socket

    return hasattr(socket, "SO_REUSEPORT") and sys.platform.startswith("linux")
