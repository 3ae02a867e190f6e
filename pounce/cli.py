"""The ``pounce`` command: Uvicorn's flag names over the standard preset.

Every flag is an option defined once (`pounce.options`; the list is
`pounce.presets.FRONT_END`), and so is its ``POUNCE_<FLAG>`` environment
variable and its config-file key. Precedence: command line > environment >
config file (``--config FILE``, else ``[tool.pounce]`` in the app directory's
pyproject.toml) > defaults; ``--print-config`` shows the merged result and
where each value came from. Exit codes: 0 after a clean shutdown, 2 for a bad
flag, variable, config file or value, 1 for an app that cannot be imported or
a listener that cannot be opened, 3 for a failed lifespan startup.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pounce import __version__, envfile, uvicorn_flags
from pounce.errors import AppImportError, BuildError, LifespanError, PounceError, TransportError
from pounce.importer import import_app
from pounce.logs import LoggingOptions, configure_logging
from pounce.options import outside_values
from pounce.presets import FRONT_END, STANDARD, StandardOptions, standard
from pounce.settings import (
    Setting,
    add_arguments,
    defaults,
    from_args,
    from_environ,
    from_file,
    render_settings,
)
from pounce.workers.options import WorkerOptions

NO_APP = "pounce.layers.static:not_found"
"""The app behind ``--static`` / ``--static-dir`` when no APP is given."""

EXIT_OK = 0
EXIT_STARTUP = 1
EXIT_USAGE = 2
EXIT_LIFESPAN = 3

error_log = logging.getLogger("pounce.error")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pounce",
        description="Serve an ASGI application. Every flag may also be set as POUNCE_<FLAG> "
        "or as a key of the config file; see docs/cli.md. `pounce bench APP` benchmarks an "
        "app under Pounce and its peers instead (pounce bench --help).",
    )
    add_arguments(parser, FRONT_END)
    parser.add_argument(
        "--config",
        metavar="FILE",
        type=Path,
        help="TOML file of options (keys: the pounce.run() keywords); default: [tool.pounce] "
        "of pyproject.toml in --app-dir",
    )
    parser.add_argument(
        "--env-file",
        metavar="FILE",
        type=Path,
        help="set the variables of this dotenv file (KEY=VALUE lines) that the environment "
        "lacks, for Pounce's POUNCE_* options and for the app",
    )
    parser.add_argument(
        "--print-config",
        action="store_true",
        help="print the merged options and where each came from, then exit",
    )
    parser.add_argument("--version", action="version", version=f"pounce {__version__}")
    return parser


def config_file(args: argparse.Namespace, app_dir: object) -> Path | None:
    """``--config FILE``, else the app directory's pyproject.toml when it has [tool.pounce]."""
    if args.config is not None:
        return Path(args.config)
    pyproject = Path(str(app_dir)) / "pyproject.toml"
    return pyproject if pyproject.is_file() else None


def settings_from(
    args: argparse.Namespace, environ: Mapping[str, str] | None = None
) -> tuple[dict[str, Setting], list[str]]:
    """Every option's value and source: command line > environment > file > default.

    Raises `BuildError` naming the flag, variable or file and key at fault.
    """
    environ = os.environ if environ is None else environ
    env, warnings = from_environ(FRONT_END, environ)
    cli = from_args(FRONT_END, args)
    app_dir = (cli.get("app_dir") or env.get("app_dir") or Setting(".", "default")).value
    path = config_file(args, app_dir)
    file = from_file(FRONT_END, path) if path is not None else {}
    return {**defaults(FRONT_END), **file, **env, **cli}, warnings


def options_from(args: argparse.Namespace) -> StandardOptions:
    """The standard preset's options from parsed flags, the environment and a config file."""
    settings, _ = settings_from(args)
    names = {opt.name for opt in STANDARD}
    return StandardOptions({k: s.value for k, s in settings.items() if k in names})


_BOOL_WORDS = {"true": True, "1": True, "yes": True, "on": True}
_BOOL_WORDS |= {"false": False, "0": False, "no": False, "off": False}


def bool_values(argv: Sequence[str]) -> list[str]:
    """Uvicorn's value form of a boolean flag, ``--ws-per-message-deflate false`` (or
    ``=false``), as our ``--no-ws-per-message-deflate``; only a true/false word is taken."""
    flags = {o.flag for o in FRONT_END if o.base == "bool" and o.meta.parse is None}
    out: list[str] = []
    bare = False  # the last argument is a bare boolean flag that may take a word
    for arg in argv:
        flag, _, word = arg.partition("=") if not bare else (out[-1], "", arg)
        if flag in flags and word.lower() in _BOOL_WORDS:
            if bare:
                out.pop()
            out.append(flag if _BOOL_WORDS[word.lower()] else "--no-" + flag[2:])
            bare = False
        else:
            out.append(arg)
            bare = arg in flags
    return out


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["bench"]:  # not an app: an import string has a colon
        from pounce.bench.cli import main as bench  # loaded only for this command

        return bench(argv[1:])
    parser = build_parser()
    refused = uvicorn_flags.refusal(argv)  # a Uvicorn flag Pounce does not take: say why
    if refused is not None:
        parser.error(refused)
    args = parser.parse_args(bool_values(argv))
    try:
        if args.env_file is not None:
            envfile.load(args.env_file, os.environ)
        settings, warnings = settings_from(args)
    except BuildError as exc:
        configure_logging("info")
        return _fail(exc, EXIT_USAGE, False)
    values = {name: setting.value for name, setting in settings.items()}
    log_level = str(values["log_level"])
    try:
        configure_logging(
            log_level, access_log=bool(values["access_log"]), options=logging_options(values)
        )
    except BuildError as exc:
        configure_logging("info")
        return _fail(exc, EXIT_USAGE, False)
    for warning in warnings:
        error_log.warning("%s", warning)
    if args.print_config:
        print(render_settings(FRONT_END, settings))
        return EXIT_OK
    if not values["app"] and (values["static"] or values["static_dir"]):
        values["app"] = NO_APP  # only the static files: 404 for the rest
    if not values["app"]:
        parser.error("the APP argument is required (e.g. pounce pounce.demo:app)")
    debug = log_level in ("debug", "trace")
    try:
        names = {opt.name for opt in STANDARD}
        options = StandardOptions({k: v for k, v in values.items() if k in names})
        app_name = str(values["app"])
        if values["reload"]:
            return serve_reloading(options, values, app_name)
        if fresh_workers(options):
            return serve_fresh_workers(options, values, app_name)
        app = import_app(app_name, factory=bool(values["factory"]), app_dir=str(values["app_dir"]))
        server = standard(options).asgi(app, name=app_name)
        if debug:
            error_log.debug("Stack:\n%s", server.describe())
        server.run(**options.keywords(WorkerOptions))
    except BuildError as exc:
        return _fail(exc, EXIT_USAGE, debug)
    except (AppImportError, TransportError) as exc:
        return _fail(exc, EXIT_STARTUP, debug)
    except LifespanError as exc:
        return _fail(exc, EXIT_LIFESPAN, debug)
    except PounceError as exc:
        return _fail(exc, EXIT_STARTUP, debug)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def serve_reloading(options: StandardOptions, values: Mapping[str, object], app: str) -> int:
    """``--reload``: a supervisor that never imports APP; a fresh worker per change."""
    from pounce.workers import from_keywords
    from pounce.workers.reload import ReloadOptions, run_reloading

    workers = from_keywords(options.keywords(WorkerOptions))
    if workers.workers > 1:
        raise BuildError(
            f"--reload serves one worker: it cannot be combined with --workers {workers.workers}",
            hint="drop --workers while developing, or --reload in production",
        )
    reload = ReloadOptions(**outside_values(ReloadOptions, values))
    return run_reloading(
        app,
        factory=bool(values["factory"]),
        app_dir=str(values["app_dir"]),
        log_level=str(values["log_level"]),
        options=options,
        reload=reload,
        logging=logging_values(values),
    )


def fresh_workers(options: StandardOptions) -> bool:
    """Process workers under a supervisor: each imports APP itself (so SIGHUP re-reads it)."""
    from pounce.workers import from_keywords, needs_supervisor, worker_kind

    workers = from_keywords(options.keywords(WorkerOptions))
    return needs_supervisor(workers) and worker_kind(workers.worker_class) == "process"


def serve_fresh_workers(options: StandardOptions, values: Mapping[str, object], app: str) -> int:
    """``--workers N`` (processes): a supervisor that never imports APP; each worker a
    fresh interpreter that does, so a rolling restart (SIGHUP) serves the code on disk."""
    from pounce.workers import check, from_keywords, supervise_fresh
    from pounce.workers.reload import Recipe, not_served

    workers = from_keywords(options.keywords(WorkerOptions))
    check(workers)
    factory, app_dir = bool(values["factory"]), str(values["app_dir"])
    recipe = Recipe(
        app, factory, app_dir, str(values["log_level"]), dict(options), logging_values(values)
    )
    server = standard(options).asgi(not_served, name=app)
    return supervise_fresh(server, workers, recipe)


def logging_values(values: Mapping[str, object]) -> dict[str, Any]:
    """The `LoggingOptions` among the front end's values (for a fresh worker's recipe)."""
    return outside_values(LoggingOptions, values)


def logging_options(values: Mapping[str, object]) -> LoggingOptions:
    return LoggingOptions(**logging_values(values))


def _fail(exc: PounceError, code: int, debug: bool) -> int:
    """One line, no traceback, unless --log-level debug asks for it."""
    error_log.error("%s", exc, exc_info=exc if debug else None)
    return code
