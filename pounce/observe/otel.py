"""OpenTelemetry tracing: a server span per request, current while the app runs.

The only module that imports ``opentelemetry`` (the API only: the
``pounce[otel]`` extra). `OtelLayer` is an app layer, not an event
subscriber, because a span must be the *current* span in the request's own
task for the app's spans to join it, and only code on the request path can
make it so. It extracts the caller's context from the request headers with
the globally configured propagator (W3C ``traceparent`` / ``tracestate`` by
default), starts a ``SERVER`` span named after the method, with the HTTP
semantic conventions' attributes, and runs the app inside it: spans the app
opens — with no code of its own for it — are children of it, in the caller's
trace. The tracer provider is the one the app configured
(``opentelemetry.trace.set_tracer_provider``), unless one is given.

A response of 500 or more marks the span as an error; an exception the app
raises is recorded on it. WebSocket sessions get a span too, for the whole
session.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.errors import BuildError
from pounce.layer import AppLayer

try:
    from opentelemetry import propagate, trace
    from opentelemetry.trace import SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - the extra is in the dev group
    raise BuildError(
        "OpenTelemetry tracing needs the opentelemetry-api package",
        hint="pip install pounce[otel]",
    ) from exc

TRACER_NAME = "pounce"


@dataclass(frozen=True, slots=True)
class OtelLayer(AppLayer):
    """A server span around each request (see the module docstring)."""

    tracer_provider: Any = None
    """None: the global provider (the app's); else an SDK ``TracerProvider``."""

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        tracer = trace.get_tracer(TRACER_NAME, tracer_provider=self.tracer_provider)

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await inner(scope, receive, send)
                return
            parent = propagate.extract(_carrier(scope["headers"]))
            method = scope.get("method", "GET")
            with tracer.start_as_current_span(
                method, context=parent, kind=SpanKind.SERVER, attributes=_attributes(scope)
            ) as span:

                async def send_and_note(message: Message) -> None:
                    if message["type"] == "http.response.start":
                        status = int(message["status"])
                        span.set_attribute("http.response.status_code", status)
                        if status >= 500:
                            span.set_status(Status(StatusCode.ERROR))
                    await send(message)

                await inner(scope, receive, send_and_note)

        return traced

    def describe(self) -> str:
        provider = "global" if self.tracer_provider is None else "given"
        return f"OpenTelemetry server spans ({provider} tracer provider)"


def _carrier(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for name, value in headers:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        carrier[key] = f"{carrier[key]},{text}" if key in carrier else text
    return carrier


def _attributes(scope: Scope) -> dict[str, str | int]:
    """The HTTP server span attributes (OpenTelemetry semantic conventions, stable)."""
    attributes: dict[str, str | int] = {
        "http.request.method": scope.get("method", "GET"),
        "url.path": scope["path"],
        "url.scheme": scope["scheme"],
        "network.protocol.name": "http",
        "network.protocol.version": scope["http_version"],
    }
    if scope.get("query_string"):
        attributes["url.query"] = scope["query_string"].decode("latin-1")
    client = scope.get("client")
    if client:
        attributes["client.address"], attributes["client.port"] = client[0], client[1]
    server = scope.get("server")
    if server:
        attributes["server.address"] = server[0]
        if server[1] is not None:
            attributes["server.port"] = server[1]
    for name, value in scope["headers"]:
        if name == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
            break
    return attributes
