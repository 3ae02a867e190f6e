"""Logging set-up for the CLI and `pounce.run()`: stdlib logging, ``pounce`` tree.

Library code only ever *uses* the ``pounce.error`` and ``pounce.access``
loggers; handlers are installed here, by the front ends, and only where the
user has not configured the ``pounce`` logger already — or from the user's
own file (`LoggingOptions.log_config`, as Uvicorn's ``--log-config``).

Two formatters, both usable from a dictConfig file (``"()":
"pounce.logs.JsonFormatter"``): `TextFormatter`, today's lines with an
optional colour on the level and the request id when there is one, and
`JsonFormatter`, one JSON object per line with stable field names
(`JSON_FIELDS`) for log shippers. Both read the request id from the record
(the access log puts it there) or from `pounce.events.current_request_id`
(set while the request's app runs), so the app's own lines carry it too.
"""

from __future__ import annotations

import json
import logging
import logging.config
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pounce.errors import BuildError
from pounce.events import current_request_id, worker_name
from pounce.options import option

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")
LogFormat = Literal["text", "json"]

TEXT_FORMAT = "%(levelname)-8s %(name)s: %(message)s"

JSON_FIELDS = ("time", "level", "logger", "message", "request_id", "worker", "exception")
"""Every JSON line has these keys (``request_id`` and ``exception`` may be null); an
access line adds the access log's fields (`pounce.observe.access_log.FIELDS`)."""

_COLORS = {
    logging.DEBUG: "\x1b[36m",  # cyan
    logging.INFO: "\x1b[32m",  # green
    logging.WARNING: "\x1b[33m",  # yellow
    logging.ERROR: "\x1b[31m",  # red
    logging.CRITICAL: "\x1b[1;31m",  # bold red
}
_RESET = "\x1b[0m"


@dataclass(frozen=True, slots=True, kw_only=True)
class LoggingOptions:
    """How the front ends set logging up (not a builder call: logging is the process's)."""

    options_group = "logging"

    log_config: str | None = option(
        None,
        help="a logging config file: .json or .yaml/.yml for dictConfig (YAML needs PyYAML), "
        "anything else for fileConfig (INI); as Uvicorn's",
        shown="none",
    )
    use_colors: bool | None = option(
        None,
        help="colour the level of text log lines; default: when stderr is a terminal",
        shown="auto",
    )
    log_format: LogFormat = option(
        "text", help="text lines, or json: one JSON object per line (docs/logging.md)"
    )


def _request_id(record: logging.LogRecord) -> str | None:
    given = getattr(record, "request_id", None)
    return given if isinstance(given, str) else current_request_id.get()


class TextFormatter(logging.Formatter):
    """``LEVEL    logger: message``; the level coloured if `use_colors`, and ``[request id]``
    before the message while a request id is known."""

    def __init__(self, fmt: str | None = None, *, use_colors: bool = False) -> None:
        super().__init__(fmt or TEXT_FORMAT)
        self.use_colors = use_colors

    def formatMessage(self, record: logging.LogRecord) -> str:
        request_id = _request_id(record)
        saved_message, saved_level = record.message, record.levelname
        if request_id is not None:
            record.message = f"[{request_id}] {record.message}"
        if self.use_colors:
            color = _COLORS.get(record.levelno, "")
            padded = f"{record.levelname:<8}"
            record.levelname = f"{color}{padded}{_RESET}" if color else padded
        try:
            return super().formatMessage(record)
        finally:
            record.message, record.levelname = saved_message, saved_level


class JsonFormatter(logging.Formatter):
    """One JSON object per line: `JSON_FIELDS`, plus the access log's fields on its lines."""

    def format(self, record: logging.LogRecord) -> str:
        access = getattr(record, "access", None)
        line: dict[str, Any] = {
            "time": _iso_time(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
            "request_id": _request_id(record),
            "worker": worker_name(),
            "exception": self.formatException(record.exc_info) if record.exc_info else None,
        }
        as_dict = getattr(access, "as_dict", None)
        if as_dict is not None:  # an access line (pounce.observe.access_log.AccessEntry)
            for name, value in as_dict().items():
                line.setdefault(name, value)
        return json.dumps(line, ensure_ascii=False, default=str)


def _iso_time(created: float) -> str:
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))
    return f"{seconds}.{int(created % 1 * 1000):03d}Z"


def configure_logging(
    level: str = "info",
    *,
    access_log: bool = True,
    options: LoggingOptions | None = None,
) -> None:
    """Set up the ``pounce`` loggers for the CLI and `pounce.run()`.

    With `options.log_config` the file configures logging (its levels win;
    `level` applies only where it left the ``pounce`` logger unset), else a
    stderr handler is installed on ``pounce`` unless one is there already.
    """
    options = options or LoggingOptions()
    root = logging.getLogger("pounce")
    numeric = logging.DEBUG if level == "trace" else getattr(logging, level.upper(), logging.INFO)
    if options.log_config is not None:
        load_config(Path(options.log_config))
        if root.level == logging.NOTSET:
            root.setLevel(numeric)
    else:
        root.setLevel(numeric)
        if not root.handlers:
            handler = logging.StreamHandler(sys.stderr)
            handler.setFormatter(formatter(options.log_format, options.use_colors))
            root.addHandler(handler)
            root.propagate = False
    logging.getLogger("pounce.access").disabled = not access_log


def formatter(log_format: LogFormat, use_colors: bool | None = None) -> logging.Formatter:
    """The formatter for `log_format`; colours (text only) when asked, or on a terminal."""
    if log_format == "json":
        return JsonFormatter()
    if use_colors is None:
        use_colors = sys.stderr.isatty()
    return TextFormatter(use_colors=use_colors)


def load_config(path: Path) -> None:
    """Apply a logging config file as Uvicorn does: JSON or YAML → dictConfig, else fileConfig.

    Loggers that exist already stay enabled (``disable_existing_loggers`` is
    False unless the file says otherwise), so Pounce's own keep working.
    """
    if not path.is_file():
        raise BuildError(f"--log-config {path}: no such file")
    try:
        if path.suffix == ".json":
            config = json.loads(path.read_text())
        elif path.suffix in (".yaml", ".yml"):
            config = _read_yaml(path)
        else:
            logging.config.fileConfig(path, disable_existing_loggers=False)
            return
        if isinstance(config, dict):
            config.setdefault("disable_existing_loggers", False)
        logging.config.dictConfig(config)
    except (ValueError, TypeError, KeyError, AttributeError, ImportError, OSError) as exc:
        raise BuildError(f"--log-config {path}: {exc}") from exc


def _read_yaml(path: Path) -> Any:
    try:
        import yaml  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        raise BuildError(
            f"--log-config {path}: a YAML logging config needs PyYAML",
            hint="pip install pounce[yaml], or write the config as JSON",
        ) from None
    return yaml.safe_load(path.read_text())
