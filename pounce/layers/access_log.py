"""Access log: one line per response on the ``pounce.access`` logger.

A WebSocket gets one line for its handshake answer, logged when the answer
is sent (the connection may then stay open for hours): ``101`` (``200`` over
HTTP/2) when accepted, ``403`` for a close before the accept, the denial
response's status and size, or ``500`` when the app ended without answering.
The request line says ``GET`` (``CONNECT`` over HTTP/2), what the client sent.

An `AppLayer`, so a server without it pays nothing. Every part of the line
that comes from the client is escaped: a request for ``/%1b[31m`` must not
colour an operator's terminal (CVE-2020-7694, Uvicorn's log injection).
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.layer import AppLayer

access_log = logging.getLogger("pounce.access")

# C0 controls, DEL and C1 controls → \xNN; the backslash itself is doubled so
# an escaped sequence cannot be forged by sending a literal "\x1b".
_ESCAPES = {code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0xA0))}
_ESCAPES[ord("\\")] = "\\\\"


def escape(text: str) -> str:
    """Make client-supplied text safe to print on a terminal."""
    return text.translate(_ESCAPES)


@dataclass(frozen=True, slots=True)
class AccessLogLayer(AppLayer):
    """Logs client, method, path, version, status, bytes and duration."""

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def logged(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not access_log.isEnabledFor(logging.INFO):
                if scope["type"] == "websocket" and access_log.isEnabledFor(logging.INFO):
                    await _logged_websocket(inner, scope, receive, send)
                    return
                await inner(scope, receive, send)
                return
            started = time.perf_counter()
            counts_body = scope["method"] != "HEAD"
            response = {"status": 0, "bytes": 0}

            async def send_and_count(message: Message) -> None:
                await send(message)  # count only what the server accepted
                if message["type"] == "http.response.start":
                    response["status"] = message["status"]
                elif message["type"] == "http.response.body" and counts_body:
                    response["bytes"] += len(message.get("body", b""))

            try:
                await inner(scope, receive, send_and_count)
            finally:
                # No accepted response start: the server answered 500 itself.
                status = response["status"] or 500
                _log(scope, status, response["bytes"], time.perf_counter() - started)

        return logged

    def describe(self) -> str:
        return "access log (pounce.access)"


async def _logged_websocket(inner: ASGIApp, scope: Scope, receive: Receive, send: Send) -> None:
    started = time.perf_counter()
    method = "CONNECT" if scope["http_version"] in ("2", "3") else "GET"
    answer = {"status": 0, "bytes": 0, "logged": False}

    def log(status: int) -> None:
        answer["logged"] = True
        seconds = time.perf_counter() - started
        _log(scope, status, int(answer["bytes"]), seconds, method=method)

    async def send_and_log(message: Message) -> None:
        await send(message)  # log only what the server accepted
        kind = message["type"]
        if answer["logged"]:
            return
        if kind == "websocket.accept":
            log(200 if method == "CONNECT" else 101)
        elif kind == "websocket.close":
            log(403)  # a close before the accept (after it, `logged` is set)
        elif kind == "websocket.http.response.start":
            answer["status"] = message["status"]
        elif kind == "websocket.http.response.body":
            answer["bytes"] += len(message.get("body", b""))
            if not message.get("more_body", False):
                log(int(answer["status"]))

    try:
        await inner(scope, receive, send_and_log)
    finally:
        if not answer["logged"]:
            log(int(answer["status"]) or 500)


def _log(scope: Scope, status: int, size: int, seconds: float, *, method: str = "") -> None:
    client = scope.get("client")
    who = f"{client[0]}:{client[1]}" if client else "-"
    target = scope["path"]
    if scope.get("query_string"):
        target += "?" + scope["query_string"].decode("latin-1")
    access_log.info(
        '%s - "%s %s HTTP/%s" %d %d %.1fms',
        who,
        escape(method or scope["method"]),
        escape(target),
        scope["http_version"],
        status,
        size,
        seconds * 1000,
    )
