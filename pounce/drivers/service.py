"""Options of the HTTP service and the per-server context every driver shares.

`HTTPOptions` is frozen configuration set through the builder (timeouts,
default headers, body limits). `ServiceContext` is what one running server —
one worker — hands each of its connection drivers: the wrapped app, the
options, the lifespan state and a cached ``Date`` header. It is created per
server run, never at module level, so thread workers never share it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any

from pounce.asgi.types import ASGIApp
from pounce.protocols.events import Headers

KiB = 1024

# Seconds a request body is given before its average rate is checked against
# `HTTPOptions.request_body_min_rate`; each `request_body_min_rate` bytes
# received buys one more second. Apache mod_reqtimeout's default ``body=20``.
BODY_RATE_GRACE = 20.0  # seconds

SERVER_HEADER = b"pounce"


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPOptions:
    """Behaviour shared by every HTTP protocol driver, each with default and unit."""

    keep_alive_timeout: float = 5.0  # seconds idle between requests; Uvicorn's default
    request_head_timeout: float = 10.0  # seconds to receive a whole request head (slowloris)
    request_body_timeout: float | None = 60.0  # seconds between two reads of a body; nginx's
    # Bytes per second a request body must average once it has had
    # BODY_RATE_GRACE seconds (Apache mod_reqtimeout's body=20,MinRate=500): a
    # body trickled a byte at a time is cut off with 408. None: no minimum.
    request_body_min_rate: int | None = 500
    send_timeout: float | None = 60.0  # seconds our output may make no progress; nginx's
    max_request_body: int | None = None  # bytes; None = unlimited (answer 413 past it)
    body_high_water: int = 64 * KiB  # bytes of unread request body before reading pauses
    root_path: str = ""  # ASGI root_path: where the app is mounted behind a proxy
    server_header: bool = True  # send "server: pounce"
    date_header: bool = True  # send "date: …" (RFC 9110 §6.6.1 says origin servers MUST)
    extra_headers: tuple[tuple[bytes, bytes], ...] = field(default_factory=tuple)


class DateHeader:
    """The ``Date`` value, formatted at most once a second.

    `clock` is injected so tests can control it; per server, so no lock.
    `second` is the second `value()` last formatted (-1: none yet).
    """

    __slots__ = ("_value", "clock", "second")

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self.second = -1
        self._value = b""

    def value(self) -> bytes:
        now = int(self.clock())
        if now != self.second:
            self.second = now
            self._value = formatdate(now, usegmt=True).encode("ascii")
        return self._value


class ServiceContext:
    """The running service as its connection drivers see it."""

    def __init__(
        self,
        app: ASGIApp,
        options: HTTPOptions,
        state: dict[str, Any] | None = None,
        date: DateHeader | None = None,
    ) -> None:
        self.app = app
        self.options = options
        self.state = state
        self.root_path = options.root_path  # read by every request: an attribute, not a property
        self.shutting_down = False
        self._date = date or DateHeader()
        defaults: Headers = []
        if options.server_header:
            defaults.append((b"server", SERVER_HEADER))
        defaults.extend(options.extra_headers)
        self._static_headers = defaults
        names = {name for name, _ in defaults}
        if options.date_header:
            names.add(b"date")
        self._default_names = frozenset(names)
        self._date_header = options.date_header
        # The defaults with the current Date; rebuilt when DateHeader hands out a
        # new value (once a second), recognised by identity.
        self._defaults_cache: Headers = []

    def begin_shutdown(self) -> None:
        """From now on, new requests are answered with ``connection: close``.

        Open connections hear of the shutdown through their handlers'
        ``begin_shutdown()``, which the server calls on each one.
        """
        self.shutting_down = True

    def response_headers(self, app_headers: Headers) -> Headers:
        """Default headers, then the app's; an app header replaces a default of its name.

        Returns a new list the caller may extend.
        """
        if self._date_header:
            defaults = self._defaults_cache
            date = self._date
            if int(date.clock()) != date.second or not defaults:
                defaults = [*self._static_headers, (b"date", date.value())]
                self._defaults_cache = defaults
        else:
            defaults = self._static_headers
        default_names = self._default_names
        for name, _ in app_headers:
            if name in default_names:
                names = {name for name, _ in app_headers}
                result = [pair for pair in defaults if pair[0] not in names]
                result.extend(app_headers)
                return result
        return defaults + app_headers
