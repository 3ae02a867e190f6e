"""The body of one worker, the same for a process and a thread.

A worker makes its own event loop, runs ``server.serve()`` on the shared
listening sockets — lifespan startup first, so it accepts nothing until its
app is ready — and tells its supervisor through a `Link` when it is ready,
when it reached its request limit, and how many requests it served. It stops
when the link says so (or the supervisor is gone). Exit status: 0 after a
graceful stop, `STARTUP_FAILED` when it never became ready, 1 after any
other error (logged here, with its traceback).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import replace
from typing import Any, Protocol

from pounce.errors import PounceError
from pounce.net.loops import loop_factory
from pounce.workers.counting import CountRequests, Tally
from pounce.workers.handle import WorkerPlan

error_log = logging.getLogger("pounce.error")

STARTUP_FAILED = 3  # exit status of a worker that failed before it was ready


class Link(Protocol):
    """The worker's side of the line to its supervisor."""

    def attach(self, stop: asyncio.Event, task: asyncio.Task[Any]) -> None:
        """On the worker's loop: set `stop` to drain; cancel `task` to exit at once."""

    def ready(self) -> None: ...

    def recycle(self, served: int) -> None: ...

    def finished(self, served: int | None) -> None: ...


def run_worker(plan: WorkerPlan, link: Link) -> int:
    """Serve until the link says stop; return the exit status."""
    started = False

    def on_ready() -> None:
        nonlocal started
        started = True
        link.ready()

    try:
        with asyncio.Runner(loop_factory=loop_factory(plan.server.spec.loop)) as runner:
            runner.run(_serve(plan, link, on_ready))
    except SystemExit as exc:  # the app called sys.exit(): this worker ends, with its status
        error_log.error("Worker exited by sys.exit(%r)", exc.code)
        return exc.code if isinstance(exc.code, int) else 1
    except asyncio.CancelledError:
        error_log.warning("Worker forced to exit")
        return 1
    except PounceError as exc:  # a clear message of its own: no traceback
        error_log.error("Worker %s: %s", "failed" if started else "failed to start", exc)
        return 1 if started else STARTUP_FAILED
    except Exception as exc:
        if not started:
            error_log.error("Worker failed to start: %s", exc, exc_info=exc)
            return STARTUP_FAILED
        error_log.error("Worker failed: %s", exc, exc_info=exc)
        return 1
    return 0


async def _serve(plan: WorkerPlan, link: Link, on_ready: Any) -> None:
    stop = asyncio.Event()
    task = asyncio.current_task()
    assert task is not None
    link.attach(stop, task)
    server, tally = plan.server, Tally()
    if plan.limit is not None:
        # Outermost, so it sees every request that reaches the app layers.
        counter = CountRequests(plan.limit, tally, link.recycle)
        spec = replace(server.spec, app_layers=(counter, *server.spec.app_layers))
        server = type(server)(spec)
    try:
        await server.serve(
            stop=stop,
            ready=lambda _: on_ready(),
            sockets=plan.sockets,
            announce=False,
            udp=plan.udp,
            serve_udp=plan.udp_owner,
        )
    finally:
        link.finished(tally.served if plan.limit is not None else None)
