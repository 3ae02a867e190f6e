"""Logging set-up for the CLI and `pounce.run()`: stdlib logging, ``pounce`` tree.

Library code only ever *uses* the ``pounce.error`` and ``pounce.access``
loggers; handlers are installed here, by the front ends, and only where the
user has not configured the ``pounce`` logger already.
"""

from __future__ import annotations

import logging
import sys

LOG_LEVELS = ("critical", "error", "warning", "info", "debug", "trace")


def configure_logging(level: str = "info", *, access_log: bool = True) -> None:
    root = logging.getLogger("pounce")
    numeric = logging.DEBUG if level == "trace" else getattr(logging, level.upper(), logging.INFO)
    root.setLevel(numeric)
    if not root.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)-8s %(name)s: %(message)s"))
        root.addHandler(handler)
        root.propagate = False
    logging.getLogger("pounce.access").disabled = not access_log
