"""The access log: a subscriber of the lifecycle events, one line per response.

It logs `RequestCompleted` (health probes excepted), so the figures are the
exchange's own: the body bytes really handed to the protocol (a 500 that
Pounce wrote itself counts its 22 bytes) and the time to the response's
last byte (background work the app does afterwards is not counted). A
WebSocket gets one line for its handshake answer: ``101`` (``200`` over
HTTP/2) when accepted (`WebSocketOpened`), else the refusal's status
(`WebSocketClosed` with ``accepted`` False: 403, a denial response, 500).
The request line says ``GET`` (``CONNECT`` over HTTP/2 and HTTP/3), what the client sent.

The line's layout is `AccessLogOptions.access_log_format`, with named
fields (`FIELDS`); the default is close to Uvicorn's. Every field that comes
from the client is escaped: a request for ``/%1b[31m`` must not colour an
operator's terminal (CVE-2020-7694, Uvicorn's log injection). The fields also
travel on the log record (``record.access``) for `pounce.logs.JsonFormatter`.
"""

from __future__ import annotations

import logging
import string
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

from pounce.events import (
    Event,
    Headers,
    RequestCompleted,
    WebSocketClosed,
    WebSocketOpened,
    worker_name,
)
from pounce.options import option

access_log = logging.getLogger("pounce.access")

# C0 controls, DEL and C1 controls → \xNN; the backslash itself is doubled so
# an escaped sequence cannot be forged by sending a literal "\x1b".
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES[ord("\\")] = "\\\\"

FIELDS: dict[str, str] = {
    "client": "the client's address, host:port (the real client behind a trusted proxy)",
    "method": "the request method (GET; a WebSocket: GET, CONNECT over HTTP/2 and HTTP/3)",
    "path": "the path with ?query, as the client sent it (escaped)",
    "status": "the response status (101 for an accepted WebSocket)",
    "bytes": "body bytes sent (a server-written 500 counts; HEAD: 0)",
    "duration": "milliseconds to the last byte of the response, one decimal",
    "protocol": "HTTP/1.0, HTTP/1.1 or HTTP/2",
    "user_agent": "the User-Agent header, - when absent",
    "referer": "the Referer header, - when absent",
    "request_id": "the request id (.request_id()), - when none",
    "worker": "the worker: its pid, and thread name for thread workers",
}
"""The named fields of `--access-log-format`, with what each holds."""

DEFAULT_FORMAT = '{client} - "{method} {path} {protocol}" {status} {bytes} {duration}ms'
"""Today's line, close to Uvicorn's: ``127.0.0.1:50312 - "GET /x HTTP/1.1" 200 5 0.4ms``."""


def escape(text: str) -> str:
    """Make client-supplied text safe to print on a terminal."""
    # Every C0, DEL and C1 control is unprintable, so printable text without a
    # backslash has nothing to escape: two C scans instead of a translate that
    # looks every character up in a dict (~5,000 instructions for an address).
    if text.isprintable() and "\\" not in text:
        return text
    return text.translate(_ESCAPES)


def check_format(value: object) -> str:
    """An access log format: ``{field}`` names from `FIELDS`, literal text between."""
    if not isinstance(value, str) or not value:
        raise ValueError("must be a non-empty format string such as " + repr(DEFAULT_FORMAT))
    try:
        names = [name for _, name, spec, _ in string.Formatter().parse(value) if name is not None]
    except ValueError as exc:
        raise ValueError(f"is not a format string ({exc}); write a literal brace as {{{{") from None
    unknown = [name for name in names if name not in FIELDS]
    if unknown:
        raise ValueError(f"unknown field {{{unknown[0]}}}; the fields are {', '.join(FIELDS)}")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class AccessLogOptions:
    """The options of `.access_log()`."""

    builder_call = ".access_log"
    options_group = "logging"

    format: str = option(
        DEFAULT_FORMAT,
        name="access_log_format",
        help="the access log line, with named fields {client} {method} {path} {status} "
        "{bytes} {duration} {protocol} {user_agent} {referer} {request_id} {worker} "
        "(docs/logging.md)",
        shown="Uvicorn-like",
        convert=check_format,
    )


@dataclass(frozen=True, slots=True)
class AccessLog:
    """Logs each response on ``pounce.access``; an event subscriber (`pounce.events`)."""

    options: AccessLogOptions = AccessLogOptions()
    event_kinds: ClassVar[frozenset[type[Event]]] = frozenset(
        {RequestCompleted, WebSocketOpened, WebSocketClosed}
    )
    """Only these are built for it (`pounce.events.EventBus`): no per-connection cost."""
    _lines: tuple[LineFn, LineFn] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The format, compiled once into a function from an event to its line:
        # one for HTTP responses and one for WebSocket handshakes.
        parsed = list(string.Formatter().parse(self.options.format))
        lines = tuple(
            _plan_line(
                tuple(
                    (literal, None if name is None else table[name])
                    for literal, name, _, _ in parsed
                )
            )
            for table in (_HTTP_TEXT, _WEBSOCKET_TEXT)
        )
        if self.options.format == DEFAULT_FORMAT:
            lines = (_default_http_line, lines[1])  # the common line, in one expression
        object.__setattr__(self, "_lines", lines)

    def enabled(self) -> bool:
        """Would a line be written now? Asked by the event bus when a serve starts and
        once a second (`pounce.events.REFRESH_INTERVAL`): while the ``pounce.access``
        logger is above INFO, no request builds the event that makes a line."""
        return access_log.isEnabledFor(logging.INFO)

    def __call__(self, event: Event) -> None:
        if not access_log.isEnabledFor(logging.INFO):  # changed since the bus last asked
            return
        if type(event) is RequestCompleted:
            assert isinstance(event, RequestCompleted)
            if event.probe:
                return
            line = self._lines[0](event)
        elif isinstance(event, WebSocketOpened | WebSocketClosed):
            if isinstance(event, WebSocketClosed) and event.accepted:
                return  # logged when it opened
            line = self._lines[1](event)
        else:
            return
        _log_line(line, {"access": AccessEntry(event), "request_id": event.request_id})

    def describe(self) -> str:
        custom = self.options.format != DEFAULT_FORMAT
        return "access log (pounce.access" + (", custom format)" if custom else ")")


def _log_line(line: str, extra: dict[str, Any]) -> None:
    """``access_log.info(line, extra=extra)``, less the work that cannot change its record.

    What `logging.Logger._log` does, in the same order and through the same
    overridable methods (`Logger.makeRecord`, so a record factory set with
    `logging.setLogRecordFactory` is used; `Logger.handle`, so filters,
    handlers and propagation apply): only the caller is not searched for on
    the stack (the search is ~7,000 instructions a line), it is this call
    site, which the search would have found too. The line is the record's
    message with no arguments, so it is never %-formatted again.
    """
    # (logging._srcfile None: the application turned caller lookup off.)
    where = _CALL_SITE if logging._srcfile else _NO_CALL_SITE
    record = access_log.makeRecord(
        access_log.name, logging.INFO, where[0], where[1], line, (), None, where[2], extra
    )
    access_log.handle(record)


class AccessEntry:
    """One access line's fields, computed only when a format or a formatter asks.

    On the log record as ``record.access``; `as_dict` is what
    `pounce.logs.JsonFormatter` writes (raw values, None where there is none).
    """

    __slots__ = ("_event", "_getters")

    def __init__(self, event: RequestCompleted | WebSocketOpened | WebSocketClosed) -> None:
        self._event = event
        self._getters = _HTTP if type(event) is RequestCompleted else _WEBSOCKET

    def value(self, name: str) -> Any:
        return self._getters[name](self._event)

    def as_dict(self) -> dict[str, Any]:
        return {name: self.value(name) for name in FIELDS}


Getter = Callable[[Any], Any]


def _client(event: Any) -> str | None:
    client = event.client
    return f"{client[0]}:{client[1]}" if client else None


def _http_status(event: RequestCompleted) -> int:
    # No head sent: the client left first (0), or the server answered 500 itself.
    return event.status or (500 if event.complete else 0)


_COMMON: dict[str, Getter] = {
    "client": _client,
    "path": lambda e: e.path,
    "duration": lambda e: round(e.duration * 1000, 3),
    "protocol": lambda e: f"HTTP/{e.http_version}",
    "user_agent": lambda e: _header(e.headers, b"user-agent"),
    "referer": lambda e: _header(e.headers, b"referer"),
    "request_id": lambda e: e.request_id,
    "worker": lambda e: worker_name(),
}
_HTTP: dict[str, Getter] = {
    **_COMMON,
    "method": lambda e: e.method,
    "status": _http_status,
    "bytes": lambda e: e.bytes,
}
_WEBSOCKET: dict[str, Getter] = {
    **_COMMON,
    "method": lambda e: "CONNECT" if e.http_version in ("2", "3") else "GET",
    "status": lambda e: e.status,
    "bytes": lambda e: e.bytes if isinstance(e, WebSocketClosed) else 0,
}

TextGetter = Callable[[Any], str]
Plan = tuple[tuple[str, TextGetter | None], ...]
LineFn = Callable[[Any], str]


def _as_text(name: str, getter: Getter) -> TextGetter:
    """`getter` as the line prints it: ``-`` for None, escaped when it is text."""
    if name == "duration":
        return lambda e: f"{e.duration * 1000:.1f}"
    if name in ("status", "bytes"):
        return lambda e: str(getter(e))
    if name == "protocol":  # ours, never the client's
        return lambda e: "HTTP/" + e.http_version
    if name in ("method", "path"):  # always text
        return lambda e: escape(getter(e))

    def text(event: Any) -> str:
        value = getter(event)
        return "-" if value is None else escape(value)

    return text


def _plan_line(plan: Plan) -> LineFn:
    """The line of a format parsed into (literal text, field's text getter) pairs."""

    def line(event: Any) -> str:
        return "".join([literal + text(event) if text else literal for literal, text in plan])

    return line


def _default_http_line(e: RequestCompleted) -> str:
    """`DEFAULT_FORMAT` of an HTTP response: what its plan writes (a test compares them),
    with no call per field."""
    client = e.client
    who = escape(f"{client[0]}:{client[1]}") if client else "-"
    status = e.status or (500 if e.complete else 0)
    return (
        f'{who} - "{escape(e.method)} {escape(e.path)} HTTP/{e.http_version}" '
        f"{status} {e.bytes} {e.duration * 1000:.1f}ms"
    )


_HTTP_TEXT = {name: _as_text(name, getter) for name, getter in _HTTP.items()}
_WEBSOCKET_TEXT = {name: _as_text(name, getter) for name, getter in _WEBSOCKET.items()}


def _header(headers: Headers, name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


# Where `logging` would say a line was logged: `AccessLog.__call__`, the caller of `_log_line`.
_CALL_SITE = (
    AccessLog.__call__.__code__.co_filename,
    AccessLog.__call__.__code__.co_firstlineno,
    "__call__",
)
_NO_CALL_SITE = ("(unknown file)", 0, "(unknown function)")
