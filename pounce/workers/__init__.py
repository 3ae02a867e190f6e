"""Workers: one supervisor, N workers, each serving the same `Server` on its own loop.

``Server.run(workers=N, ...)`` comes here when it needs a supervisor; see
docs/workers.md. Modules, one job each:

* `options` — `WorkerOptions`, their checks, ``auto`` → process or thread;
* `sockets` — the listening sockets, opened once and shared (or split with
  SO_REUSEPORT);
* `supervisor` — the slots, restarts, rolling restarts, the end;
* `policy` — the restart back-off and when to give up;
* `heartbeat` — each serving worker's event loop must answer, or it is replaced;
* `handle`, `process`, `thread` — a worker as the supervisor sees it, per kind;
* `runtime` — the body of a worker, the same for both kinds;
* `counting` — the request counter behind ``max_requests``;
* `reload`, `watch` — dev reload: a fresh worker per change of a watched file.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import TYPE_CHECKING

from pounce.workers.options import WorkerOptions, check, from_keywords, worker_kind
from pounce.workers.policy import GIVE_UP_EXIT_CODE, RestartPolicy
from pounce.workers.reload import FreshSpawner, Recipe, ReloadOptions
from pounce.workers.supervisor import Supervisor
from pounce.workers.watch import Watcher

if TYPE_CHECKING:
    from pounce.server import Server

__all__ = [
    "GIVE_UP_EXIT_CODE",
    "RestartPolicy",
    "Supervisor",
    "WorkerOptions",
    "check",
    "from_keywords",
    "needs_supervisor",
    "supervise",
    "supervise_fresh",
    "supervise_reload",
    "worker_kind",
]


def needs_supervisor(options: WorkerOptions) -> bool:
    """More than one worker, or one that must be recycled; else serve in this process."""
    return options.workers > 1 or options.max_requests is not None


def supervise(server: Server, options: WorkerOptions) -> int:
    """Run a supervisor in this process until SIGTERM / SIGINT; return its exit status."""
    with asyncio.Runner() as runner:
        return runner.run(_run_with_signals(Supervisor(server, options)))


def supervise_fresh(server: Server, options: WorkerOptions, recipe: Recipe) -> int:
    """Process workers that each import the app afresh (the CLI, which has its import
    string): a rolling restart (SIGHUP) then serves the code as it is on disk now,
    as Gunicorn's workers do without ``preload_app``. `server` gives the listeners."""
    supervisor = Supervisor(server, options, spawner=FreshSpawner(recipe))
    with asyncio.Runner() as runner:
        return runner.run(_run_with_signals(supervisor))


def supervise_reload(
    server: Server, options: WorkerOptions, recipe: Recipe, reload: ReloadOptions
) -> int:
    """Dev reload: one fresh worker (`pounce.workers.reload`), a new one per change.

    `server` gives the listeners and timeouts only; the worker builds its own from `recipe`.
    """
    watcher = Watcher(
        reload.reload_dirs, reload.reload_includes, reload.reload_excludes, reload.reload_delay
    )
    supervisor = Supervisor(server, options, spawner=FreshSpawner(recipe), watcher=watcher)
    with asyncio.Runner() as runner:
        return runner.run(_run_with_signals(supervisor))


async def _run_with_signals(supervisor: Supervisor) -> int:
    """SIGINT / SIGTERM drain (a second one forces), SIGHUP rolls, SIGTTIN / SIGTTOU scale."""
    loop = asyncio.get_running_loop()

    def on_stop() -> None:
        if supervisor.stopping:
            supervisor.force()
        else:
            supervisor.stop()

    handlers = {
        signal.SIGINT: on_stop,
        signal.SIGTERM: on_stop,
        signal.SIGHUP: supervisor.roll,
        signal.SIGTTIN: supervisor.add,
        signal.SIGTTOU: supervisor.remove,
    }
    installed = []
    for signum, handler in handlers.items():
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signum, handler)
            installed.append(signum)
    try:
        return await supervisor.run()
    finally:
        for signum in installed:
            loop.remove_signal_handler(signum)
