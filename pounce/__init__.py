"""Pounce: a pure-Python ASGI server built as a composable stack of layers.

``pounce.run("myapp:app")`` serves the standard stack; ``Server.builder()``
composes exactly the layers asked for.
"""

from __future__ import annotations

import logging
import logging.config
import os
from pathlib import Path
from typing import Any

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.builder import ServerBuilder
from pounce.conn import Conn, ConnectionHandler, ConnectionInfo, HandlerFactory
from pounce.drivers.bridge import ProtocolFactory
from pounce.drivers.service import ServiceContext
from pounce.errors import (
    ASGIContractError,
    BuildError,
    LimitExceededError,
    LocalProtocolError,
    OverloadedError,
    PounceError,
    ProtocolError,
    RateLimitedError,
    RemoteProtocolError,
    TLSError,
    TransportError,
)
from pounce.layer import AppLayer, ForwardingHandler, StreamLayer
from pounce.server import Server

__version__ = "0.1.0"

__all__ = [
    "ASGIApp",
    "ASGIContractError",
    "AppLayer",
    "BuildError",
    "Conn",
    "ConnectionHandler",
    "ConnectionInfo",
    "ForwardingHandler",
    "HandlerFactory",
    "LimitExceededError",
    "LocalProtocolError",
    "Message",
    "OverloadedError",
    "PounceError",
    "ProtocolError",
    "ProtocolFactory",
    "RateLimitedError",
    "Receive",
    "RemoteProtocolError",
    "Scope",
    "Send",
    "Server",
    "ServerBuilder",
    "ServiceContext",
    "StreamLayer",
    "TLSError",
    "TransportError",
    "__version__",
    "run",
]


def run(
    app: ASGIApp | str,
    *,
    factory: bool = False,
    app_dir: str | None = None,
    log_level: str | None = None,
    log_config: str | dict[str, Any] | None = None,
    use_colors: bool | None = None,
    log_format: str = "text",
    **options: Any,
) -> None:
    """Serve `app` (a callable or ``"module:attr"``) with the standard preset.

    `options` are the standard preset's options by name (Uvicorn's: ``host``,
    ``port``, ``uds``, ``timeout_keep_alive`` …; `pounce.presets.STANDARD`,
    listed in docs/cli.md): the config-file keys, the worker options among
    them (``workers``, ``limit_max_requests`` …; docs/workers.md). None is the
    default, as in ``uvicorn.run()`` (``log_level=None``: ``info``). With
    ``workers`` > 1 the workers are forked from this process and inherit
    `app` as it is, an object or an import string. An unknown name or a bad
    value is a `BuildError` before anything binds. `log_config` (a file, or a
    dictConfig dict as Uvicorn's), `use_colors` and `log_format` set logging
    up as the CLI's flags do (docs/logging.md).

    ``reload=True`` (and ``reload_dirs``, ``reload_includes``,
    ``reload_excludes``, ``reload_delay``: Uvicorn's keywords, the CLI's
    ``--reload*``) serves `app` — which must then be an import string — from a
    fresh interpreter that imports it again whenever a watched file changes
    (docs/workers.md, "Dev reload"). As with Uvicorn, call it under
    ``if __name__ == "__main__":``: the fresh interpreter imports your script.
    """
    from pounce import uvicorn_flags
    from pounce.importer import import_app
    from pounce.logs import LoggingOptions, configure_logging
    from pounce.options import check_value, keywords, option_of
    from pounce.presets import AppOptions, StandardOptions, standard
    from pounce.workers.options import WorkerOptions
    from pounce.workers.reload import RELOAD_KEYWORDS, reload_options, run_reloading

    env_file = options.pop("env_file", None)  # Uvicorn's: variables the environment lacks
    if env_file is not None:
        from pounce import envfile

        envfile.load(Path(str(env_file)), os.environ)
    reloading = {name: options.pop(name) for name in RELOAD_KEYWORDS if name in options}
    reload = reload_options("pounce.run", reloading)
    opts = StandardOptions(uvicorn_flags.run_keywords(options))
    level_option = option_of(AppOptions, "log_level")
    level = check_value("pounce.run(log_level=):", level_option, log_level or level_option.default)
    if reload.reload:
        _check_reloadable(app, opts.keywords(WorkerOptions).get("workers"))
    if isinstance(log_config, dict):  # uvicorn.run() takes a dictConfig dict too
        logging.config.dictConfig({"disable_existing_loggers": False, **log_config})
        log_config = None
    log_values = keywords(
        LoggingOptions,
        "pounce.run",
        {"log_config": log_config, "use_colors": use_colors, "log_format": log_format},
    )
    logs = LoggingOptions(**log_values)
    configure_logging(str(level), access_log=bool(opts["access_log"]), options=logs)
    if reload.reload:
        assert isinstance(app, str)
        code = run_reloading(
            app,
            factory=factory,
            app_dir=app_dir,
            log_level=str(level),
            options=opts,
            reload=reload,
            logging=log_values,
        )
        if code:
            raise SystemExit(code)
        return
    if any(value is not None for value in reloading.values()):
        logging.getLogger("pounce.error").warning(
            "pounce.run(): %s given without reload=True: nothing is watched",
            ", ".join(f"{name}=" for name, value in reloading.items() if value is not None),
        )
    name = app if isinstance(app, str) else None
    loaded = import_app(app, factory=factory, app_dir=app_dir) if isinstance(app, str) else app
    standard(opts).asgi(loaded, name=name).run(**opts.keywords(WorkerOptions))


def _check_reloadable(app: ASGIApp | str, workers: object) -> None:
    """``reload=True`` needs an import string and one worker: `BuildError` otherwise."""
    if not isinstance(app, str):
        raise BuildError(
            "pounce.run(reload=True) needs the app as an import string: each change is "
            "served by a fresh interpreter that imports it again",
            hint='pass "module:attribute" (e.g. pounce.run("myapp:app", reload=True)), '
            'and call pounce.run() under if __name__ == "__main__":',
        )
    if isinstance(workers, int) and workers > 1:
        raise BuildError(
            f"pounce.run(reload=True) serves one worker: it cannot be combined with "
            f"workers={workers}",
            hint="drop workers= while developing, or reload= in production",
        )
