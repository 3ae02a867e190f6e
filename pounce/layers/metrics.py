"""The metrics endpoint: ``GET <path>`` answered with a metrics exposition, ahead of the app.

`.metrics()` puts it in front of every other app layer, so a scrape is never
metered, counted by the limits or queued; it marks the request as a probe
(``pounce.probe``), so the access log skips it. What it serves comes from a
callable (`pounce.observe.prometheus` hands it the Prometheus exposition), so
this module imports no metrics library.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pounce.asgi.exchange import PROBE_EXTENSION
from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.layer import AppLayer


@dataclass(frozen=True, slots=True)
class MetricsEndpoint(AppLayer):
    """Answers ``GET``/``HEAD`` `path` with `exposition()`; 405 for other methods."""

    path: str | None
    exposition: Callable[[], bytes] = field(compare=False)
    content_type: str = "text/plain; version=0.0.4; charset=utf-8"
    what: str = "metrics"
    port: int | None = None
    """The metrics listener's port: every request that arrives there is answered here."""

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        path, exposition, content_type = self.path, self.exposition, self.content_type.encode()
        port = self.port

        async def endpoint(scope: Scope, receive: Receive, send: Send) -> None:
            kind = scope["type"]
            on_port = port is not None and kind != "lifespan" and _port(scope) == port
            if kind == "websocket" and on_port:
                await send({"type": "websocket.close"})  # the app is not reachable there
                return
            if kind != "http" or not (on_port or scope["path"] == path):
                await inner(scope, receive, send)
                return
            scope.setdefault("extensions", {})[PROBE_EXTENSION] = {}  # a scrape is not traffic
            if scope["method"] in ("GET", "HEAD"):
                status, body = 200, exposition()
                headers = [(b"content-type", content_type)]
            else:
                status, body = 405, b"method not allowed\n"
                headers = [(b"content-type", b"text/plain"), (b"allow", b"GET, HEAD")]
            headers.append((b"content-length", b"%d" % len(body)))
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": body})

        return endpoint

    def describe(self) -> str:
        where = [f"at {self.path}"] if self.path else []
        where += [f"on port {self.port}"] if self.port is not None else []
        return f"metrics {' and '.join(where)} ({self.what})"


def _port(scope: Scope) -> int | None:
    server = scope.get("server")
    return server[1] if server else None
