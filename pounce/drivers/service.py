"""Options of the HTTP service and the per-server context every driver shares.

`Timeouts`, `ResponseHeaders` and `RequestOptions` are the option definitions
of `.timeouts()`, `.response_headers()`, `.limit_request_body()` and
`.root_path()` (see `pounce.options`). `HTTPOptions` is the flat, frozen view
the drivers read per request, assembled from them when the server is built.
`ServiceContext` is what one running server —
one worker — hands each of its connection drivers: the wrapped app, the
options, the lifespan state and a cached ``Date`` header. It is created per
server run, never at module level, so thread workers never share it.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from typing import Any, Protocol

from pounce.asgi.exchange import RequestIds
from pounce.asgi.types import ASGIApp
from pounce.events import EventBus
from pounce.net.idle_clock import IdleClock
from pounce.net.sweep import Sweep
from pounce.options import Check, option, seconds, whole
from pounce.protocols.events import Headers

KiB = 1024

# Seconds a request body is given before its average rate is checked against
# `HTTPOptions.request_body_min_rate`; each `request_body_min_rate` bytes
# received buys one more second. Apache mod_reqtimeout's default ``body=20``.
BODY_RATE_GRACE = 20.0  # seconds

SERVER_HEADER = b"pounce"

HeaderPairs = tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class Timeouts:
    """The options of `.timeouts()`; each keyword left out keeps its value."""

    builder_call = ".timeouts"
    options_group = "timeouts"

    keep_alive: float = option(
        5.0,
        unit="s",
        name="timeout_keep_alive",
        help="an idle keep-alive connection stays open this long (Uvicorn's default), "
        "to a quarter more",
        check=seconds(),
    )
    request_head: float = option(
        10.0,
        unit="s",
        name="timeout_request_head",
        help="to pick a protocol and send a whole request head (slowloris guard)",
        check=seconds(),
    )
    request_body: float = option(
        60.0,
        unit="s",
        name="timeout_request_body",
        help="a request body may go silent this long while it is read (HTTP/1.1: 408); nginx's",
        check=seconds(),
    )
    graceful_shutdown: float = option(
        30.0,
        unit="s",
        name="timeout_graceful_shutdown",
        help="in-flight requests get this long to finish on shutdown (Hypercorn: 5 s)",
        check=seconds(),
    )
    shutdown_idle: float = option(
        1.0,
        unit="s",
        name="timeout_shutdown_idle",
        help="on a graceful shutdown an idle keep-alive connection stays open up to this long "
        "(never past its keep-alive timeout) to answer a request already on its way, with "
        "connection: close; 0: close it at once (Uvicorn)",
        check=Check("a finite number of seconds, 0 or more", lambda v: 0 <= v < math.inf),
    )
    send: float = option(
        60.0,
        unit="s",
        name="timeout_send",
        help="a client may read none of our output this long, then the connection is "
        "aborted (nginx's send_timeout)",
        check=seconds(),
    )
    request_body_min_rate: int = option(
        500,
        unit="B/s",
        help=f"a request body must average this after a {BODY_RATE_GRACE:g} s grace "
        "(HTTP/1.1: 408; Apache's MinRate); 0: no minimum",
        check=whole(0, text="a whole number of bytes per second, 0 for no minimum"),
    )


def _first_head_timed_out(driver: HeadWaiter) -> None:
    driver.first_head_timed_out()


def header_pair(text: str) -> tuple[str, str]:
    """``NAME:VALUE`` (the CLI's ``--header``) → a pair."""
    name, sep, content = text.partition(":")
    if not sep or not name.strip():
        raise ValueError(f"expected NAME:VALUE, got {text!r}")
    return name.strip(), content.strip()


def header_pairs(value: object) -> HeaderPairs:
    """Extra response headers: (name, value) pairs or ``NAME:VALUE`` strings, checked."""
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise ValueError("must be a list of (name, value) pairs")
    pairs = []
    for pair in value:
        if isinstance(pair, str):
            pair = header_pair(pair)
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ValueError(f"{pair!r} is not a (name, value) pair")
        name, content = pair
        if not isinstance(name, str) or not isinstance(content, str):
            raise ValueError(f"{pair!r} is not a (name, value) pair")
        bad_name = not name or any(c in name for c in " \t:\r\n")
        if bad_name or any(c in content for c in "\r\n\0"):
            raise ValueError(f"invalid header {name!r}: {content!r}")
        pairs.append((name, content))
    return tuple(pairs)


@dataclass(frozen=True, slots=True, kw_only=True)
class ResponseHeaders:
    """The options of `.response_headers()`: default headers on every response."""

    builder_call = ".response_headers"
    options_group = "HTTP"

    server: bool = option(True, name="server_header", help="send 'server: pounce'")
    date: bool = option(
        True, name="date_header", help="send Date (RFC 9110 §6.6.1: origin servers must)"
    )
    extra: HeaderPairs = option(
        (),
        name="headers",
        flag="--header",
        help="extra default response headers, NAME:VALUE; repeat the flag, or comma-separate",
        shown="none",
        convert=header_pairs,
        parse=header_pair,
        repeat=True,
        show=lambda pairs: _toml_headers(header_pairs(pairs)),
    )


def _toml_headers(pairs: HeaderPairs) -> str:
    return "[" + ", ".join(f'"{name}: {value}"' for name, value in pairs) + "]"


def check_root_path(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError("must be a string")
    if value and (not value.startswith("/") or value.endswith("/")):
        raise ValueError("must start with '/' and not end with it (e.g. \"/api\")")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestOptions:
    """The options of `.limit_request_body()` and `.root_path()`."""

    options_group = "HTTP"

    limit_request_body: int | None = option(
        None,
        unit="bytes",
        help="answer 413 to larger request bodies",
        shown="no limit",
        check=whole(0, text="bytes >= 0 or None"),
        call=".limit_request_body(n)",
    )
    root_path: str = option(
        "",
        help="ASGI root_path: the prefix the app is mounted under behind a proxy (/api)",
        convert=check_root_path,
        call=".root_path(path)",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTPOptions:
    """Behaviour shared by every HTTP protocol driver, each with default and unit."""

    keep_alive_timeout: float = 5.0  # seconds idle between requests; Uvicorn's default
    request_head_timeout: float = 10.0  # seconds to receive a whole request head (slowloris)
    # Seconds an idle keep-alive connection stays open once a graceful shutdown
    # begins, to answer (with connection: close) a request already on its way.
    shutdown_idle_timeout: float = 1.0
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


class HeadWaiter(Protocol):
    """A connection driver waiting for its first request head (`ServiceContext.head_clock`)."""

    def first_head_timed_out(self) -> None:
        """No whole request head within the request-head timeout of the connection's start."""


class ServiceContext:
    """The running service as its connection drivers see it."""

    def __init__(
        self,
        app: ASGIApp,
        options: HTTPOptions,
        state: dict[str, Any] | None = None,
        date: DateHeader | None = None,
        events: EventBus | None = None,
        request_ids: RequestIds | None = None,
    ) -> None:
        self.app = app
        self.events = events  # None: nobody subscribes, so nothing is emitted
        self.request_ids = request_ids
        self.options = options
        self.state = state
        self.root_path = options.root_path  # read by every request: an attribute, not a property
        self.shutting_down = False
        self._date = date or DateHeader()
        # The clock of the connections whose first request head has not come
        # whole: one sweep per serve instead of a timer handle per connection,
        # which a connection whose request comes in its first read never needs.
        self.head_clock: Sweep[HeadWaiter] = Sweep(
            options.request_head_timeout, _first_head_timed_out
        )
        # The clock of idle keep-alive connections: one mark a request instead of a timer.
        self.idle_clock = IdleClock(options.keep_alive_timeout)
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
        # The defaults with the current Date, and the second they are good for (a
        # clock that steps back is a new second too).
        self._defaults_cache: Headers = []
        self._defaults_from = math.inf
        self._defaults_until = -math.inf

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
            clock = self._date.clock  # (read, then called: as ``date.clock()`` it would be
            now = clock()  # looked up as a method, which a slot holding a function is not)
            if not self._defaults_from <= now < self._defaults_until:  # another second
                date = self._date
                self._defaults_cache = [*self._static_headers, (b"date", date.value())]
                self._defaults_from = date.second
                self._defaults_until = date.second + 1
            defaults = self._defaults_cache
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
