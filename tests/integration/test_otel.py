"""OpenTelemetry server spans over real sockets, read back with the SDK's in-memory exporter.

The layer of `.otel()` starts each span and makes it current for the app;
its subscriber sets the server's figures and ends it at the last byte
(`pounce.observe.otel`). These tests check both halves over HTTP/1.1,
HTTP/2 (cleartext and TLS), HTTP/3 and WebSocket, and that no span is left
open however the request ends.
"""

from __future__ import annotations

import asyncio
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from websockets.sync.client import connect

pytest.importorskip("opentelemetry.sdk")

from hyperframe.frame import DataFrame, HeadersFrame, RstStreamFrame
from opentelemetry import baggage, trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.events import EventBus, RequestCompleted
from pounce.layer import Serving
from pounce.observe.otel import CLIENT_LEFT, CLOSE_CODE, NOTE, OtelTracing
from pounce.testing import TestServer
from tests.conformance.h2wire import CANCEL, Wire, request_headers
from tests.integration.conftest import PKI

TIMEOUT = 5.0  # seconds for every network wait and every poll
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"
TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def finished(
    exporter: InMemorySpanExporter, where: Callable[[ReadableSpan], bool] = lambda s: True
) -> ReadableSpan:
    """The first finished span `where` holds, waited for (spans end on the server's thread)."""
    deadline = time.monotonic() + TIMEOUT
    while True:
        for span in exporter.get_finished_spans():
            if where(span):
                return span
        if time.monotonic() > deadline:
            raise AssertionError(f"no such span; finished: {exporter.get_finished_spans()}")
        time.sleep(0.01)


def server_span(exporter: InMemorySpanExporter) -> ReadableSpan:
    return finished(exporter, lambda s: s.kind is SpanKind.SERVER)


def attributes(span: ReadableSpan) -> dict[str, Any]:
    return dict(span.attributes or {})


class App:
    """The app of these tests; `/after` waits for `release` after its response."""

    def __init__(self, provider: TracerProvider) -> None:
        self.tracer = provider.get_tracer("the-app")
        self.release = threading.Event()
        self.done = threading.Event()
        self.baggage: object = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await self.websocket(scope, receive, send)
            return
        if scope["type"] != "http":
            return
        path = scope["path"]
        self.baggage = baggage.get_baggage("tenant")
        with self.tracer.start_as_current_span("app work"):  # no tracing code but its own
            pass
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        if path == "/boom":
            raise ValueError("boom")
        if path == "/forever":
            await self.forever(send)
            return
        status = 404 if path == "/missing" else 200
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b"ok:%d" % len(body)})
        if path == "/after":  # background work after the response
            await asyncio.to_thread(self.release.wait, TIMEOUT)
            self.done.set()

    async def forever(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        while True:  # until the client leaves: send raises then
            await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
            await asyncio.sleep(0.01)

    async def websocket(self, scope: Scope, receive: Receive, send: Send) -> None:
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            text = message.get("text") or ""
            if text == "boom":
                raise ValueError("boom in a session")
            with self.tracer.start_as_current_span("app message"):
                await send({"type": "websocket.send", "text": text})


def traced(provider: TracerProvider) -> Any:
    return (
        Server.builder().bind("127.0.0.1", 0).h1().h2().websocket().otel(tracer_provider=provider)
    )


# -- the caller's trace, and the figures ----------------------------------------------------------


def test_server_span_joins_the_callers_trace_and_parents_the_apps_spans() -> None:
    provider, exporter = tracing()
    app = App(provider)
    with TestServer(traced(provider).asgi(app)) as ts:
        headers = {"traceparent": TRACEPARENT, "user-agent": "ua/1", "baggage": "tenant=acme"}
        response = httpx.post(
            ts.url + "/items?x=1", headers=headers, content=b"abcdef", timeout=TIMEOUT
        )
    assert response.status_code == 200 and response.content == b"ok:6"
    span = server_span(exporter)
    app_span = finished(exporter, lambda s: s.name == "app work")
    assert span.name == "POST"
    assert format(span.context.trace_id, "032x") == TRACE_ID
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_ID
    assert app_span.parent is not None and app_span.parent.span_id == span.context.span_id
    assert app_span.context.trace_id == span.context.trace_id
    assert app.baggage == "acme"  # the caller's baggage is in the app's context too
    found = attributes(span)
    assert found["http.request.method"] == "POST"
    assert found["url.path"] == "/items" and found["url.query"] == "x=1"
    assert found["url.scheme"] == "http"
    assert found["http.response.status_code"] == 200
    assert found["http.response.body.size"] == 4  # b"ok:6"
    assert found["http.request.body.size"] == 6  # from Content-Length
    assert found["user_agent.original"] == "ua/1"
    assert found["network.protocol.name"] == "http"
    assert found["network.protocol.version"] == "1.1"
    assert found["client.address"] == "127.0.0.1" and isinstance(found["client.port"], int)
    assert found["server.address"] == "127.0.0.1" and found["server.port"] == ts.port
    assert CLIENT_LEFT not in found
    assert span.status.status_code is StatusCode.UNSET


def test_the_span_ends_at_the_last_byte_not_after_background_work() -> None:
    provider, exporter = tracing()
    app = App(provider)
    with TestServer(traced(provider).asgi(app)) as ts:
        assert httpx.get(ts.url + "/after", timeout=TIMEOUT).status_code == 200
        span = server_span(exporter)  # ended while the app still works
        assert not app.done.is_set()
        app.release.set()
        assert app.done.wait(TIMEOUT)
    assert attributes(span)["http.response.status_code"] == 200


def test_a_500_written_by_the_server_after_an_app_exception() -> None:
    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts:
        response = httpx.get(ts.url + "/boom", timeout=TIMEOUT)
    assert response.status_code == 500
    span = server_span(exporter)
    assert span.parent is None  # a new trace: no traceparent came
    assert span.status.status_code is StatusCode.ERROR
    (event,) = [e for e in span.events if e.name == "exception"]  # recorded once
    assert dict(event.attributes or {})["exception.type"] == "ValueError"
    found = attributes(span)
    assert found["http.response.status_code"] == 500
    assert found["http.response.body.size"] == len(response.content)  # the server's own 500
    assert found["error.type"] == "ValueError"


def test_a_4xx_is_not_an_error_of_a_server_span() -> None:
    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts:
        assert httpx.get(ts.url + "/missing", timeout=TIMEOUT).status_code == 404
    span = server_span(exporter)
    assert attributes(span)["http.response.status_code"] == 404
    assert span.status.status_code is StatusCode.UNSET
    assert "error.type" not in attributes(span)


def test_http2_over_tls(pki: PKI) -> None:
    provider, exporter = tracing()
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .otel(tracer_provider=provider)
        .asgi(App(provider))
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    with TestServer(server) as ts, httpx.Client(http2=True, verify=context) as client:
        headers = {"traceparent": TRACEPARENT}
        response = client.get(f"https://127.0.0.1:{ts.port}/", headers=headers, timeout=TIMEOUT)
        assert response.status_code == 200 and response.http_version == "HTTP/2"
    span = server_span(exporter)
    found = attributes(span)
    assert found["network.protocol.version"] == "2" and found["url.scheme"] == "https"
    assert found["http.response.status_code"] == 200
    assert format(span.context.trace_id, "032x") == TRACE_ID


# -- spans end however the request ends --------------------------------------------------------


def test_span_ends_when_an_http1_client_leaves_mid_stream() -> None:
    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts:
        with httpx.stream("GET", ts.url + "/forever", timeout=TIMEOUT) as response:
            assert response.status_code == 200
            next(response.iter_raw())  # some of the body, then the client goes
        span = server_span(exporter)
    found = attributes(span)
    assert found[CLIENT_LEFT] is True
    assert found["http.response.status_code"] == 200 and found["http.response.body.size"] > 0
    assert span.status.status_code is StatusCode.UNSET  # the client's leaving is no error
    assert not [e for e in span.events if e.name == "exception"]


def test_span_ends_when_an_http2_client_resets_the_stream_mid_stream() -> None:
    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts, Wire(ts.port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(b"/forever"))
        wire.expect(DataFrame, stream_id=sid)
        wire.send(RstStreamFrame(sid, error_code=CANCEL))
        span = server_span(exporter)
        wire.expect_alive()
    found = attributes(span)
    assert found[CLIENT_LEFT] is True and found["network.protocol.version"] == "2"
    assert found["http.response.status_code"] == 200
    assert span.status.status_code is StatusCode.UNSET


def test_span_ends_when_the_client_resets_before_the_app_runs() -> None:
    """HEADERS and RST_STREAM in one segment: the request is over before its task starts."""
    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts, Wire(ts.port) as wire:
        wire.handshake()
        sid = wire.new_stream()
        block = wire.block(request_headers(b"/"))
        wire.send(
            HeadersFrame(sid, block, flags=["END_HEADERS", "END_STREAM"]),
            RstStreamFrame(sid, error_code=CANCEL),
        )
        span = server_span(exporter)
        wire.expect_alive()
    found = attributes(span)
    assert found[CLIENT_LEFT] is True
    assert "http.response.status_code" not in found  # nothing was sent


def test_an_end_before_the_layer_ends_the_span_when_it_starts() -> None:
    """The order above, forced: the subscriber sees the end before the layer's span exists."""
    provider, exporter = tracing()
    tracing_ = OtelTracing(provider)
    entered = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        entered.append(trace.get_current_span())

    wrapped = tracing_.wrap_serving(app, Serving(EventBus([tracing_])))
    extensions: dict[str, Any] = {}
    tracing_(
        RequestCompleted(
            method="GET",
            path="/",
            http_version="2",
            scheme="http",
            client=None,
            status=0,
            bytes=0,
            ttfb=None,
            duration=0.0,
            queue_wait=0.0,
            complete=False,
            headers=[],
            request_id=None,
            extensions=extensions,
        )
    )
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/",
        "scheme": "http",
        "query_string": b"",
        "headers": [],
        "http_version": "2",
        "extensions": extensions,
    }
    asyncio.run(wrapped(scope, None, None))  # type: ignore[arg-type]
    (span,) = exporter.get_finished_spans()
    assert attributes(span)[CLIENT_LEFT] is True
    assert entered[0].get_span_context() == span.context  # still current for the app
    assert extensions[NOTE].span is None  # nothing is left to end


def test_the_layer_alone_still_ends_its_spans() -> None:
    """Added with `.layer()`, without its subscriber: the span ends with the app."""
    provider, exporter = tracing()
    server = Server.builder().bind("127.0.0.1", 0).h1().layer(OtelTracing(provider))
    with TestServer(server.asgi(App(provider))) as ts:
        assert httpx.get(ts.url + "/", timeout=TIMEOUT).status_code == 200
        assert httpx.get(ts.url + "/boom", timeout=TIMEOUT).status_code == 500
        ok = finished(exporter, lambda s: s.kind is SpanKind.SERVER and s.status.is_ok)
        failed = finished(exporter, lambda s: s.status.status_code is StatusCode.ERROR)
    assert attributes(ok)["url.path"] == "/" and attributes(failed)["url.path"] == "/boom"


def test_otel_is_one_switch_a_layer_and_a_subscriber_replaced_when_called_again() -> None:
    provider, _ = tracing()
    server = traced(provider).otel(tracer_provider=provider).asgi(App(provider))
    spec = server.spec
    layers = [x for x in spec.app_layers if isinstance(x, OtelTracing)]
    observers = [o for o in spec.observers if isinstance(o, OtelTracing)]
    assert len(layers) == len(observers) == 1 and layers[0] is observers[0]
    assert "observe  OpenTelemetry server spans (given tracer provider)" in server.describe()


def test_the_global_provider_is_the_default() -> None:
    server = Server.builder().bind("127.0.0.1", 0).h1().otel().asgi(App(TracerProvider()))
    assert "global tracer provider" in server.describe()
    assert trace.get_tracer_provider() is not None


# -- WebSocket and HTTP/3 ----------------------------------------------------------------------


def test_a_websocket_session_is_one_span_ended_at_its_close() -> None:
    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts:
        headers = {"traceparent": TRACEPARENT}
        with connect(ts.ws_url + "/ws", additional_headers=headers, open_timeout=TIMEOUT) as ws:
            ws.send("hi")
            assert ws.recv(timeout=TIMEOUT) == "hi"
            assert not [s for s in exporter.get_finished_spans() if s.kind is SpanKind.SERVER]
        span = server_span(exporter)
    message = finished(exporter, lambda s: s.name == "app message")
    assert message.parent is not None and message.parent.span_id == span.context.span_id
    assert format(span.context.trace_id, "032x") == TRACE_ID
    found = attributes(span)
    assert found["http.response.status_code"] == 101 and found[CLOSE_CODE] == 1000
    assert found["url.scheme"] == "ws" and found["network.protocol.version"] == "1.1"
    assert span.status.status_code is StatusCode.UNSET


def test_a_websocket_over_http2_session_is_one_span() -> None:
    from wsproto.events import CloseConnection, TextMessage

    from tests.integration.h2ws import h2_websocket

    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts, h2_websocket(ts.port) as client:
        sid, status, _ = client.open(b"/chat", headers=[(b"traceparent", TRACEPARENT.encode())])
        assert status == 200
        client.send_text(sid, "hi")
        echoed = client.receive(sid)
        assert isinstance(echoed, TextMessage) and echoed.data == "hi"
        client.send(sid, CloseConnection(code=1000))
        span = server_span(exporter)
    assert format(span.context.trace_id, "032x") == TRACE_ID
    found = attributes(span)
    assert found["http.response.status_code"] == 200 and found[CLOSE_CODE] == 1000
    assert found["network.protocol.version"] == "2"


def test_a_websocket_app_failure_is_an_error_span() -> None:
    provider, exporter = tracing()
    with TestServer(traced(provider).asgi(App(provider))) as ts:
        with connect(ts.ws_url + "/ws", open_timeout=TIMEOUT) as ws:
            ws.send("boom")
            with pytest.raises(Exception, match="1011"):
                ws.recv(timeout=TIMEOUT)
        span = server_span(exporter)
    assert span.status.status_code is StatusCode.ERROR
    assert attributes(span)[CLOSE_CODE] == 1011
    assert [e.name for e in span.events] == ["exception"]


def test_http3(pki: PKI) -> None:
    pytest.importorskip("aioquic")
    from tests.integration.h3client import h3_connect

    provider, exporter = tracing()
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h3()
        .otel(tracer_provider=provider)
        .asgi(App(provider))
    )

    async def scenario(port: int) -> None:
        async with asyncio.timeout(TIMEOUT), h3_connect("127.0.0.1", port, str(pki.ca)) as client:
            reply = await client.request("GET", "/", [(b"traceparent", TRACEPARENT.encode())])
            assert reply.status == 200

    with TestServer(server) as ts:
        asyncio.run(scenario(ts.port))
        span = server_span(exporter)
    found = attributes(span)
    assert found["network.protocol.version"] == "3" and found["http.response.status_code"] == 200
    assert format(span.context.trace_id, "032x") == TRACE_ID
