"""The options of `.websocket()`, importable without wsproto (the CLI and docs state them).

Names outside are Uvicorn's ``--ws-*``; defaults are Uvicorn's.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from pounce.options import Check, option, seconds, whole

MiB = 1024 * 1024


def seconds_or_off(text: str) -> float | None:
    """Seconds, or ``0`` / ``none`` / ``off`` for no timer (the CLI's and POUNCE_*'s spelling)."""
    if text.strip().lower() in ("0", "none", "off"):
        return None
    value = float(text)
    if not 0 < value < math.inf:
        raise ValueError(f"expected a positive number of seconds, got {text!r}")
    return value


_OPTIONAL_SECONDS: Check = seconds("a finite positive number of seconds, or none (off)")


@dataclass(frozen=True, slots=True, kw_only=True)
class WebSocketOptions:
    """Options of `.websocket()`, each with its default and unit."""

    builder_call = ".websocket"
    options_group = "WebSocket"

    max_size: int = option(
        16 * MiB,
        unit="bytes",
        name="ws_max_size",
        help="largest message after decompression; larger: close 1009 (Uvicorn's, Hypercorn's)",
        check=whole(1, text="a positive integer"),
    )
    max_queue: int = option(
        32,
        unit="messages",
        name="ws_max_queue",
        help="received messages queued for the app before reading pauses (Uvicorn's)",
        check=whole(1, text="a positive integer"),
    )
    ping_interval: float | None = option(
        20.0,
        unit="s",
        name="ws_ping_interval",
        help="between pings; 0 or none: no pings (Uvicorn's and daphne's)",
        check=_OPTIONAL_SECONDS,
        parse=seconds_or_off,
    )
    ping_timeout: float | None = option(
        20.0,
        unit="s",
        name="ws_ping_timeout",
        help="a pong may take this long, then close 1011; 0 or none: no limit (Uvicorn's)",
        check=_OPTIONAL_SECONDS,
        parse=seconds_or_off,
    )
    per_message_deflate: bool = option(
        True,
        name="ws_per_message_deflate",
        help="accept permessage-deflate (RFC 7692) when a client offers it",
    )
