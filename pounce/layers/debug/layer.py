"""`.debug()`: the development error page instead of an opaque 500.

An `AppLayer` innermost in the stack, next to the app. When the app raises
before its response has started, the client gets `page.render_html` (a
client that accepts ``text/html``) or `page.render_text`, status 500, and
the exception goes on outward unchanged: the server logs it as it always
does, outer layers (the access log, Sentry) see it as before.

To know that "the response has not started" the layer holds the app's
``http.response.start`` until the first body message, as the server itself
holds a head (pounce/asgi/exchange.py): an app that fails between the two
still gets the page. A 500 is held whole until the app ends, so a
framework that answers its own 500 and then re-raises (Starlette, FastAPI)
gets the page too. Once the start has gone through, a failure is the
server's business as without ``--debug`` (the stream is reset or the
connection closed).

A traceback and request headers are for the developer's own eyes: the
builder refuses the layer on a listener that is not on a loopback address
or a Unix socket unless `allow_remote` is set (`check_binds`). Without the
layer the server's 500 stays opaque.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from collections.abc import Iterable
from dataclasses import dataclass

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.errors import BuildError, ClientDisconnectedError
from pounce.layer import AppLayer
from pounce.layers.debug.page import (
    COMMON_HEADERS,
    HTML_HEADERS,
    TEXT_HEADERS,
    render_html,
    render_text,
    wants_html,
)
from pounce.net.binds import Bind, FdBind, TCPBind, UnixBind
from pounce.options import check_fields, option

HOLD_LIMIT = 1024 * 1024  # bytes of an app's own 500 held for the page to replace


@dataclass(frozen=True, slots=True, kw_only=True)
class Debug(AppLayer):
    """`.debug()`: tracebacks to the client for app failures; see the module docstring."""

    builder_call = ".debug"
    options_group = "devtools"

    allow_remote: bool = option(
        False,
        name="debug_allow_remote",
        help="allow --debug on a listener that is not loopback or a Unix socket: anyone who "
        "can reach it reads tracebacks and request headers",
    )

    def __post_init__(self) -> None:
        check_fields(self, self.builder_call)

    def check_binds(self, binds: Iterable[Bind]) -> None:
        """Refuse a listener other people can reach, unless `allow_remote`."""
        if self.allow_remote:
            return
        for bind in binds:
            if not _local(bind):
                raise BuildError(
                    f".debug(): error pages show tracebacks and request headers, and "
                    f"{bind.describe()} is not a loopback address or a Unix socket",
                    hint="bind 127.0.0.1 (or ::1, a Unix socket) while debugging, or pass "
                    "--debug-allow-remote (.debug(allow_remote=True)) on a network you trust",
                )

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def debugged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            held = _HeldStart(send)
            try:
                await inner(scope, receive, held.send)
            except Exception as exc:
                if not held.passed and not isinstance(exc, ClientDisconnectedError):
                    await _show(exc, scope, send)
                raise
            await held.flush()

        return debugged

    def describe(self) -> str:
        where = "any listener" if self.allow_remote else "loopback only"
        return f"debug: error pages with tracebacks ({where})"


class _HeldStart:
    """The app's `send`, holding ``http.response.start`` until the first body message,
    and a whole 500 response until the app has ended (up to `HOLD_LIMIT` bytes).

    Frameworks answer an exception with their own plain 500 and then re-raise it
    (Starlette's ``ServerErrorMiddleware``, hence FastAPI): held, that answer can
    still be replaced by the page; the app returning normally lets it through.
    """

    __slots__ = ("_held", "_held_bytes", "_send", "_start", "passed")

    def __init__(self, send: Send) -> None:
        self._send = send
        self._start: Message | None = None
        self._held: list[Message] = []
        self._held_bytes = 0
        self.passed = False  # the server accepted the start: the response has begun

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "http.response.start" and not self.passed and self._start is None:
            self._start = message
            return
        start = self._start
        if start is not None and start.get("status") == 500 and kind == "http.response.body":
            self._held_bytes += len(message.get("body", b""))
            if self._held_bytes <= HOLD_LIMIT:
                self._held.append(message)
                return
        await self.flush()
        await self._send(message)

    async def flush(self) -> None:
        """Let what is held through: the app went on, or ended without an exception."""
        start, self._start = self._start, None
        if start is not None:
            await self._send(start)
            self.passed = True
        held, self._held = self._held, []
        for message in held:
            await self._send(message)


async def _show(exc: Exception, scope: Scope, send: Send) -> None:
    """Answer 500 with the page; a client already gone is no error of its own."""
    html = wants_html(scope)
    body = render_html(exc, scope) if html else render_text(exc, scope)
    kind = HTML_HEADERS if html else TEXT_HEADERS
    headers = [*kind, *COMMON_HEADERS, (b"content-length", b"%d" % len(body))]
    try:
        await send({"type": "http.response.start", "status": 500, "headers": headers})
        await send({"type": "http.response.body", "body": body})
    except ClientDisconnectedError:
        pass


def _local(bind: Bind) -> bool:
    if isinstance(bind, UnixBind):
        return True
    if isinstance(bind, TCPBind):
        return _loopback(bind.host)
    assert isinstance(bind, FdBind)
    try:  # an inherited socket: look at what it is bound to, on a copy of the descriptor
        with socket.socket(fileno=os.dup(bind.fd)) as sock:
            if sock.family == socket.AF_UNIX:
                return True
            return _loopback(str(sock.getsockname()[0]))
    except OSError:
        return False


def _loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name: cannot tell before it resolves
