"""Dev reload: one worker, started afresh — a new interpreter that imports the app
again from its import string — whenever a watched file changes.

Why a fresh interpreter (multiprocessing's *spawn*) and not fork: a forked
child inherits the supervisor's modules, i.e. the old code. The child gets
a `Recipe` (the import string and the standard preset's option values, all
plain data) and the listening sockets (passed as file descriptors), builds
its own `Server` and serves it like any worker (`run_worker`).

The reload is a rolling restart of the one slot: the new worker must import
and become ready before the old one drains, so a file saved with a syntax
error costs nothing: the new worker logs its import error once and exits,
the supervisor does not retry (`Supervisor` in reload mode waits for the
next change) and the old worker serves on. Uvicorn, by contrast, serves
nothing until the code is fixed.
"""

from __future__ import annotations

import asyncio
import signal
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from typing import TYPE_CHECKING, Any

from pounce.options import option, seconds
from pounce.workers.handle import Events, Worker, WorkerPlan
from pounce.workers.process import (
    SUPERVISOR_SIGNALS,
    ProcessLink,
    ProcessSpawner,
    ProcessWorker,
    register_stack_dump,
)
from pounce.workers.runtime import STARTUP_FAILED, run_worker

if TYPE_CHECKING:
    from pounce.presets import StandardOptions


def _path(text: str) -> str:
    return text.strip()


@dataclass(frozen=True, slots=True, kw_only=True)
class ReloadOptions:
    """The CLI's dev-reload options (Uvicorn's names and defaults)."""

    options_group = "reload"

    reload: bool = option(
        False,
        help="development: serve the new code when a watched file changes (a fresh worker "
        "imports APP again; if it fails, the old code serves on); not with --workers > 1",
    )
    reload_dirs: tuple[str, ...] = option(
        (),
        flag="--reload-dir",
        parse=_path,
        repeat=True,
        shown="the current directory",
        help="a directory to watch; repeat the flag, or comma-separate",
    )
    reload_includes: tuple[str, ...] = option(
        ("*.py",),
        flag="--reload-include",
        parse=_path,
        repeat=True,
        help="glob of the files to watch (a name or a path under the directory); repeatable",
    )
    reload_excludes: tuple[str, ...] = option(
        (".*", ".py[cod]", ".sw.*", "~*"),
        flag="--reload-exclude",
        parse=_path,
        repeat=True,
        help="glob of files and directories not to watch; repeatable",
    )
    reload_delay: float = option(
        0.25,
        unit="s",
        check=seconds(),
        help="polling: between two looks at the watched files; with watchfiles "
        "(pounce[reload]): how long to wait for more changes to batch into one reload",
    )


@dataclass(frozen=True, slots=True)
class Recipe:
    """How a fresh worker builds its server: plain data, sent to a new interpreter."""

    app: str
    factory: bool
    app_dir: str
    log_level: str
    options: Mapping[str, Any]  # the standard preset's values, by name
    logging: Mapping[str, Any] = field(default_factory=dict)  # LoggingOptions' values


RELOAD_KEYWORDS = ("reload", "reload_dirs", "reload_includes", "reload_excludes", "reload_delay")
"""`ReloadOptions` by name: ``pounce.run()``'s keywords (``uvicorn.run()``'s), the config keys."""


def reload_options(label: str, given: Mapping[str, object]) -> ReloadOptions:
    """`ReloadOptions` from keywords by name (``reload_dirs`` …), None meaning the
    default as in ``uvicorn.run()``; a bad value is a `BuildError` "`label`(name=…): …"."""
    from pounce.errors import BuildError
    from pounce.options import check_value, options_of

    known = {opt.name: opt for opt in options_of(ReloadOptions)}
    fields: dict[str, Any] = {}
    for name, value in given.items():
        opt = known.get(name)
        if opt is None:
            raise BuildError(f"{label}({name}=...): unknown option")
        if value is not None:
            fields[opt.field] = check_value(f"{label}({name}={value!r}):", opt, value)
    return ReloadOptions(**fields)


def run_reloading(
    app: str,
    *,
    factory: bool,
    app_dir: str | None,
    log_level: str,
    options: StandardOptions,
    reload: ReloadOptions,
    logging: Mapping[str, Any] | None = None,
) -> int:
    """Dev reload of the import string `app` with the standard preset's `options`
    (a `StandardOptions`, already checked to ask for one worker): a supervisor that
    never imports `app`, and a fresh worker per change. Returns the exit status."""
    from pounce.presets import standard
    from pounce.workers import from_keywords, supervise_reload
    from pounce.workers.options import WorkerOptions

    workers = from_keywords(options.keywords(WorkerOptions))
    recipe = Recipe(app, factory, app_dir or ".", log_level, dict(options), dict(logging or {}))
    # The supervisor's own Server only opens the listeners; each worker builds its own.
    server = standard(options).asgi(not_served, name=app)
    return supervise_reload(server, workers, recipe, reload)


async def not_served(scope: Any, receive: Any, send: Any) -> None:
    """The app of a supervisor's own `Server`, which only opens the listeners."""
    raise AssertionError("the supervisor serves no request: its workers do")


class FreshSpawner(ProcessSpawner):
    def __init__(self, recipe: Recipe) -> None:
        super().__init__()
        self.recipe = recipe

    def spawn(self, plan: WorkerPlan, events: Events, loop: asyncio.AbstractEventLoop) -> Worker:
        return FreshWorker(plan, events, loop, self)


class FreshWorker(ProcessWorker):
    def __init__(
        self,
        plan: WorkerPlan,
        events: Events,
        loop: asyncio.AbstractEventLoop,
        spawner: FreshSpawner,
    ) -> None:
        super().__init__(plan, events, loop, spawner)
        self.recipe = spawner.recipe

    def make_process(
        self, conn: Connection, stack: Connection, supervisor_ends: list[Connection]
    ) -> Any:
        import multiprocessing

        # (spawn passes only what the arguments hold: no supervisor end to shed)
        context = multiprocessing.get_context("spawn")
        plan = self.plan
        args = (self.recipe, plan.generation, plan.limit, plan.sockets, conn, stack)
        return context.Process(target=_fresh_main, args=args, name="pounce-reload-worker")


def _fresh_main(
    recipe: Recipe,
    generation: int,
    limit: int | None,
    sockets: tuple[socket.socket, ...],
    conn: Connection,
    stack: Connection,
) -> None:
    """In the new interpreter: import the app, build the server, serve it."""
    from pounce.importer import import_app
    from pounce.logs import LoggingOptions, configure_logging
    from pounce.presets import StandardOptions, standard

    # exec keeps the signal mask and ignored signals; set them as a forked worker's
    signal.pthread_sigmask(signal.SIG_UNBLOCK, SUPERVISOR_SIGNALS)
    for signum in (signal.SIGINT, signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU):
        signal.signal(signum, signal.SIG_IGN)
    options = StandardOptions(recipe.options)
    configure_logging(
        recipe.log_level,
        access_log=bool(options["access_log"]),
        options=LoggingOptions(**recipe.logging),
    )
    register_stack_dump(stack)
    try:
        app = import_app(recipe.app, factory=recipe.factory, app_dir=recipe.app_dir)
        server = standard(options).asgi(app, name=recipe.app)
    except Exception as exc:  # the error the user must see, once: no retry follows
        import logging

        logging.getLogger("pounce.error").error("Worker cannot load %s: %s", recipe.app, exc)
        sys.exit(STARTUP_FAILED)
    sys.exit(run_worker(WorkerPlan(server, sockets, limit, generation), ProcessLink(conn)))
