"""Pounce: a pure-Python ASGI server built as a composable stack of layers.

``pounce.run("myapp:app")`` serves the standard stack; ``Server.builder()``
composes exactly the layers asked for.
"""

from __future__ import annotations

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
    """
    from pounce import uvicorn_flags
    from pounce.importer import import_app
    from pounce.logs import LoggingOptions, configure_logging
    from pounce.options import check_value, keywords, option_of
    from pounce.presets import AppOptions, StandardOptions, standard
    from pounce.workers.options import WorkerOptions

    env_file = options.pop("env_file", None)  # Uvicorn's: variables the environment lacks
    if env_file is not None:
        from pounce import envfile

        envfile.load(Path(str(env_file)), os.environ)
    opts = StandardOptions(uvicorn_flags.run_keywords(options))
    level_option = option_of(AppOptions, "log_level")
    level = check_value("pounce.run(log_level=):", level_option, log_level or level_option.default)
    if isinstance(log_config, dict):  # uvicorn.run() takes a dictConfig dict too
        import logging.config

        logging.config.dictConfig({"disable_existing_loggers": False, **log_config})
        log_config = None
    logs = LoggingOptions(
        **keywords(
            LoggingOptions,
            "pounce.run",
            {"log_config": log_config, "use_colors": use_colors, "log_format": log_format},
        )
    )
    configure_logging(str(level), access_log=bool(opts["access_log"]), options=logs)
    name = app if isinstance(app, str) else None
    loaded = import_app(app, factory=factory, app_dir=app_dir) if isinstance(app, str) else app
    standard(opts).asgi(loaded, name=name).run(**opts.keywords(WorkerOptions))
