"""`WorkerOptions`: how many workers, of which kind, when to recycle them, and how
long a worker's event loop may go without answering the supervisor.

Each field is an option defined once (`pounce.options`): its default, unit,
help and outside names (``--workers``, ``POUNCE_WORKERS``, config key
``workers``) are derived from it, and `Server.run()` checks its keywords
against these definitions (`from_keywords`: a `BuildError` naming the
argument). `check()` adds what one field cannot say alone: a jitter needs a
request limit, SO_REUSEPORT and fork must exist on this platform.
`worker_kind()` resolves ``"auto"``: threads on a free-threaded interpreter
(``sys._is_gil_enabled()`` false, Python 3.13t+), processes otherwise —
threads under the GIL share one core's worth of Python.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from pounce.errors import BuildError
from pounce.options import keywords, option, seconds, whole

WorkerClass = Literal["auto", "process", "thread"]
WORKER_CLASSES: tuple[WorkerClass, ...] = ("auto", "process", "thread")

HEALTHCHECK_TIMEOUT = 5.0  # seconds; Uvicorn's --timeout-worker-healthcheck default


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerOptions:
    """The keywords of `Server.run()` (and ``pounce.run()``, the CLI) that concern workers."""

    builder_call = "Server.run"
    options_group = "workers"

    workers: int = option(
        1,
        check=whole(1),
        env=("POUNCE_WORKERS", "WEB_CONCURRENCY"),
        help="workers to keep serving; more than 1 starts a supervisor (as Uvicorn, "
        "WEB_CONCURRENCY is read when POUNCE_WORKERS is not set)",
    )
    worker_class: WorkerClass = option(
        "auto",
        help="process (forked) or thread workers; auto = threads on a free-threaded Python, "
        "processes otherwise",
    )
    reuse_port: bool = option(
        False,
        help="a SO_REUSEPORT listening socket per worker (Linux) instead of one shared socket",
    )
    max_requests: int | None = option(
        None,
        name="limit_max_requests",
        unit="requests",
        check=whole(1),
        help="requests (HTTP requests and WebSocket sessions) after which a worker is "
        "replaced, the new one serving first; none: never",
    )
    max_requests_jitter: int = option(
        0,
        name="limit_max_requests_jitter",
        unit="requests",
        check=whole(0),
        help="up to this many more requests, drawn per worker, so that workers started "
        "together are not recycled together",
    )
    timeout_worker_healthcheck: float = option(
        HEALTHCHECK_TIMEOUT,
        unit="s",
        check=seconds(),
        help="a worker whose event loop does not answer the supervisor's heartbeat for this "
        "long has its stack logged and is replaced (Uvicorn's name and default)",
    )


def from_keywords(given: Mapping[str, object]) -> WorkerOptions:
    """`Server.run()`'s keywords → checked `WorkerOptions`, or a `BuildError` naming one."""
    options = WorkerOptions(**keywords(WorkerOptions, "Server.run", given))
    check(options)
    return options


def gil_enabled() -> bool:
    """False only on a free-threaded build running without the GIL."""
    probe = getattr(sys, "_is_gil_enabled", None)
    return True if probe is None else bool(probe())


def worker_kind(choice: WorkerClass) -> Literal["process", "thread"]:
    if choice == "auto":
        return "process" if gil_enabled() else "thread"
    return choice


def check(options: WorkerOptions) -> None:
    """Raise `BuildError` for a combination `Server.run()` cannot serve with.

    Each value alone was checked by its definition (`from_keywords`).
    """
    if options.max_requests_jitter and options.max_requests is None:
        raise BuildError(
            "Server.run(max_requests_jitter=...): has no effect without max_requests",
            hint="set max_requests (--limit-max-requests) too, or leave the jitter at 0",
        )
    if options.reuse_port and not _has_reuse_port():
        raise BuildError(
            "Server.run(reuse_port=True): this platform has no SO_REUSEPORT",
            hint="leave reuse_port off: the workers then share one listening socket",
        )
    if worker_kind(options.worker_class) == "process" and options.workers > 1:
        _check_fork(options.worker_class)


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
