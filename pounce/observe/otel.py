"""OpenTelemetry tracing: a server span per request, started by a layer, ended by a subscriber.

The only module that imports ``opentelemetry`` (the API only: the
``pounce[otel]`` extra). `OtelTracing` is one object with two halves, and
`.otel()` adds it as both:

* an app layer that starts the ``SERVER`` span — the caller's context taken
  from the request headers with the globally configured propagator (W3C
  ``traceparent``, ``tracestate`` and baggage by default), the request's
  attributes that samplers may read set at the start — and makes it the
  *current* span in the request's own task while the app runs, so spans the
  app opens join the caller's trace with no code in the app. Only code on the
  request's path can do that: a subscriber runs from the exchange, in the
  driver's callbacks, outside the app's context;
* a subscriber of the lifecycle events that sets what the server measured —
  the status it sent (5xx is an error for a server span, 4xx is not:
  HTTP semantic conventions), the response body bytes, the request body
  size when ``Content-Length`` gave it, the protocol version, the exception
  of `RequestFailed`, whether the client left — and ends the span on
  `RequestCompleted` (the last byte of the response, as the access log's
  duration: not the end of background work) or `WebSocketClosed`. So the
  span's figures are the access log's and the metrics' figures.

The two meet in the request scope's ``extensions`` (the events that end or
fail a request carry it, `pounce.events`): under `NOTE` a `_Note` holds the
span, or the end that came before it. Whichever half comes first makes the note, so a
request whose client left before the app even ran still has its span ended
when the layer starts it; nothing is kept anywhere else, so nothing outlives
the request. Added alone (``.layer(OtelTracing())``, not among the server's
subscribers), the layer ends its span itself when the app returns.

A WebSocket session gets one span, from the handshake to the session's end;
no event carries a WebSocket app's exception, so the layer records that one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from pounce.asgi.exchange import is_disconnect_error
from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.errors import BuildError
from pounce.events import (
    Extensions,
    RequestCompleted,
    RequestFailed,
    Subscriber,
    WebSocketClosed,
)
from pounce.layer import AppLayer, Serving

try:
    from opentelemetry import context, propagate, trace
    from opentelemetry.trace import Span, SpanKind, Status, StatusCode
except ImportError as exc:  # pragma: no cover - the extra is in the dev group
    raise BuildError(
        "OpenTelemetry tracing needs the opentelemetry-api package",
        hint="pip install pounce[otel]",
    ) from exc

TRACER_NAME = "pounce"
NOTE = "pounce.otel"  # the scope extension where the layer and the subscriber meet
CLIENT_LEFT = "pounce.client_left"  # True: the client left (or the stream was reset) early
CLOSE_CODE = "pounce.websocket.close_code"

# HTTP semantic conventions: any other method is "_OTHER", its own name in
# http.request.method_original, and the span is named "HTTP".
KNOWN_METHODS = frozenset(
    {"GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH", "QUERY"}
)

error_log = logging.getLogger("pounce.error")


class _Note:
    """One request's meeting place (``scope["extensions"][NOTE]``); one loop thread
    touches it, so it needs no lock."""

    __slots__ = ("end", "failure", "span")

    def __init__(self) -> None:
        self.span: Span | None = None  # started by the layer; None again once ended
        self.end: RequestCompleted | WebSocketClosed | None = None  # came before the span
        self.failure: RequestFailed | None = None


def _note(extensions: Extensions) -> _Note:
    note = extensions.get(NOTE)
    if note is None:
        note = extensions[NOTE] = _Note()
    assert isinstance(note, _Note)
    return note


@dataclass(frozen=True, slots=True)
class OtelTracing(AppLayer, Subscriber):
    """A server span per request: the layer and the subscriber (see the module docstring)."""

    tracer_provider: Any = None
    """None: the global provider (the app's); else an SDK ``TracerProvider``."""

    # -- the layer: the span, current while the app runs -------------------------------------

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        return self.wrap_serving(inner, Serving())

    def wrap_serving(self, inner: ASGIApp, serving: Serving) -> ASGIApp:
        tracer = trace.get_tracer(TRACER_NAME, tracer_provider=self.tracer_provider)
        bus = serving.events
        subscribed = bus is not None and any(s is self for s in bus.subscribers)

        async def traced(scope: Scope, receive: Receive, send: Send) -> None:
            kind = scope["type"]
            if kind != "http" and kind != "websocket":
                await inner(scope, receive, send)
                return
            parent = propagate.extract(_carrier(scope["headers"]))
            name, attributes = request_attributes(scope)
            span = tracer.start_span(
                name, context=parent, kind=SpanKind.SERVER, attributes=attributes
            )
            # None: no subscriber will end it, the layer does when the app returns.
            extensions = scope.get("extensions") if subscribed else None
            if extensions is not None:
                _attach(span, _note(extensions))
            token = context.attach(trace.set_span_in_context(span, parent))
            try:
                await inner(scope, receive, send)
            except Exception as exc:
                # An HTTP app's exception arrives as RequestFailed, with the 500 after it.
                if (kind == "websocket" or extensions is None) and not is_disconnect_error(exc):
                    _record(span, exc)
                raise
            finally:
                context.detach(token)
                if extensions is None:
                    span.end()

        return traced

    def describe(self) -> str:
        provider = "global" if self.tracer_provider is None else "given"
        return f"OpenTelemetry server spans ({provider} tracer provider)"

    # -- the subscriber: the server's figures, and the end -----------------------------------

    def on_request_failed(self, event: RequestFailed) -> None:
        note = _note(event.extensions)
        note.failure = event
        if note.span is not None:
            _failed(note.span, event)

    def on_request_completed(self, event: RequestCompleted) -> None:
        note = _note(event.extensions)
        if note.span is None:
            note.end = event  # the layer has not started it yet (or never will)
            return
        _complete(note.span, event, failed=note.failure is not None)
        note.span = None

    def on_websocket_closed(self, event: WebSocketClosed) -> None:
        note = _note(event.extensions)
        if note.span is None:
            note.end = event
            return
        _closed(note.span, event)
        note.span = None


def _attach(span: Span, note: _Note) -> None:
    """Give the note its span; an end that came first (the client left before the app
    ran) ends it at once."""
    if note.failure is not None:
        _failed(span, note.failure)
    end, note.end = note.end, None
    if isinstance(end, RequestCompleted):
        _complete(span, end, failed=note.failure is not None)
    elif isinstance(end, WebSocketClosed):
        _closed(span, end)
    else:
        note.span = span


def _record(span: Span, exc: BaseException) -> None:
    span.record_exception(exc)
    span.set_attribute("error.type", _type_name(type(exc)))
    span.set_status(Status(StatusCode.ERROR, f"{type(exc).__name__}: {exc}"))


def _failed(span: Span, event: RequestFailed) -> None:
    if event.client_left:  # not a fault of the server's: no error status
        span.set_attribute(CLIENT_LEFT, True)
        return
    if event.error is not None:
        _record(span, event.error)
        return
    span.set_attribute("error.type", "_OTHER")
    span.set_status(Status(StatusCode.ERROR, "the app returned without finishing its response"))


def _complete(span: Span, event: RequestCompleted, *, failed: bool) -> None:
    span.set_attribute("network.protocol.name", "http")
    span.set_attribute("network.protocol.version", event.http_version)
    if event.status:
        span.set_attribute("http.response.status_code", event.status)
        span.set_attribute("http.response.body.size", event.bytes)
        if event.status >= 500 and not failed:  # a server span: 5xx is an error, 4xx is not
            span.set_attribute("error.type", str(event.status))
            span.set_status(Status(StatusCode.ERROR))
    size = _content_length(event.headers)
    if size is not None:
        span.set_attribute("http.request.body.size", size)
    if not event.complete and not failed:
        span.set_attribute(CLIENT_LEFT, True)
    span.end()


def _closed(span: Span, event: WebSocketClosed) -> None:
    span.set_attribute("network.protocol.name", "http")
    span.set_attribute("network.protocol.version", event.http_version)
    span.set_attribute("http.response.status_code", event.status)
    if event.code is not None:
        span.set_attribute(CLOSE_CODE, event.code)
    if event.status >= 500:
        span.set_attribute("error.type", str(event.status))
        span.set_status(Status(StatusCode.ERROR))
    span.end()


def _content_length(headers: Any) -> int | None:
    for name, value in headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


def _type_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


def _carrier(headers: list[tuple[bytes, bytes]]) -> dict[str, str]:
    carrier: dict[str, str] = {}
    for name, value in headers:
        key = name.decode("latin-1")
        text = value.decode("latin-1")
        carrier[key] = f"{carrier[key]},{text}" if key in carrier else text
    return carrier


def request_attributes(scope: Scope) -> tuple[str, dict[str, str | int]]:
    """The span's name and the attributes known when the request arrives: those the HTTP
    semantic conventions ask to have at the span's start, for samplers."""
    method = scope.get("method", "GET")  # a WebSocket scope has none: its handshake is a GET
    attributes: dict[str, str | int] = {
        "http.request.method": method,
        "url.path": scope["path"],
        "url.scheme": scope["scheme"],
    }
    name = method
    if method not in KNOWN_METHODS:
        attributes["http.request.method"] = "_OTHER"
        attributes["http.request.method_original"] = method
        name = "HTTP"
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
    for header, value in scope["headers"]:
        if header == b"user-agent":
            attributes["user_agent.original"] = value.decode("latin-1")
            break
    return name, attributes
