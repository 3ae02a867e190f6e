"""OpenTelemetry server spans over real sockets, read back with the SDK's in-memory exporter."""

from __future__ import annotations

import ssl

import httpx
import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer
from tests.integration.conftest import PKI

TIMEOUT = 5.0  # seconds for every network wait
TRACE_ID = "0af7651916cd43dd8448eb211c80319c"
PARENT_ID = "b7ad6b7169203331"


def tracing() -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


def app_for(provider: TracerProvider):  # type: ignore[no-untyped-def]
    tracer = provider.get_tracer("the-app")

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/boom":
            raise ValueError("boom")
        with tracer.start_as_current_span("app work"):  # no tracing code beyond its own span
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    return app


def test_server_span_joins_the_callers_trace_and_parents_the_apps_spans() -> None:
    provider, exporter = tracing()
    server = Server.builder().bind("127.0.0.1", 0).h1().otel(tracer_provider=provider)
    with TestServer(server.asgi(app_for(provider))) as ts:
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01", "user-agent": "ua/1"}
        response = httpx.get(ts.url + "/items?x=1", headers=headers, timeout=TIMEOUT)
    assert response.status_code == 200
    spans = {span.name: span for span in exporter.get_finished_spans()}
    server_span, app_span = spans["GET"], spans["app work"]
    assert server_span.kind is SpanKind.SERVER
    assert format(server_span.context.trace_id, "032x") == TRACE_ID
    assert (
        server_span.parent is not None and format(server_span.parent.span_id, "016x") == PARENT_ID
    )
    assert app_span.parent is not None and app_span.parent.span_id == server_span.context.span_id
    assert app_span.context.trace_id == server_span.context.trace_id
    attributes = dict(server_span.attributes or {})
    assert attributes["http.request.method"] == "GET"
    assert attributes["url.path"] == "/items" and attributes["url.query"] == "x=1"
    assert attributes["http.response.status_code"] == 200
    assert attributes["user_agent.original"] == "ua/1"
    assert attributes["network.protocol.version"] == "1.1"


def test_a_failing_app_makes_an_error_span_without_a_caller() -> None:
    provider, exporter = tracing()
    server = Server.builder().bind("127.0.0.1", 0).h1().otel(tracer_provider=provider)
    with TestServer(server.asgi(app_for(provider))) as ts:
        assert httpx.get(ts.url + "/boom", timeout=TIMEOUT).status_code == 500
    (span,) = exporter.get_finished_spans()
    assert span.parent is None  # a new trace: no traceparent came
    assert span.status.status_code is StatusCode.ERROR
    assert any(event.name == "exception" for event in span.events)


def test_http2_over_tls(pki: PKI) -> None:
    provider, exporter = tracing()
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .otel(tracer_provider=provider)
        .asgi(app_for(provider))
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    with TestServer(server) as ts, httpx.Client(http2=True, verify=context) as client:
        headers = {"traceparent": f"00-{TRACE_ID}-{PARENT_ID}-01"}
        assert client.get(f"https://127.0.0.1:{ts.port}/", headers=headers).status_code == 200
    server_span = next(s for s in exporter.get_finished_spans() if s.name == "GET")
    attributes = dict(server_span.attributes or {})
    assert attributes["network.protocol.version"] == "2" and attributes["url.scheme"] == "https"
    assert format(server_span.context.trace_id, "032x") == TRACE_ID


def test_the_global_provider_is_the_default() -> None:
    server = Server.builder().bind("127.0.0.1", 0).h1().otel().asgi(app_for(TracerProvider()))
    assert "global tracer provider" in server.describe()
    assert trace.get_tracer_provider() is not None
