"""HTTP/3 connections in the lifecycle events and the Prometheus metrics, over real UDP.

QUIC connections bypass the TCP transport adapter that reports the others;
their driver reports them (`pounce.drivers.http3_events`). aioquic's client
drives them; the exposition is parsed with prometheus_client's parser.
"""

from __future__ import annotations

import asyncio
import time

import pytest

pytest.importorskip("aioquic")

from pounce.asgi.types import Receive, Scope, Send
from pounce.events import (
    ConnectionClosed,
    ConnectionOpened,
    ConnectionProtocol,
    RequestCompleted,
    WorkerStopped,
)
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.h3client import h3_connect
from tests.integration.test_events import Recorder
from tests.integration.test_http3 import (
    TIMEOUT,
    builder,
    exchange_one,
    first_initial,
    https_client,
    read_body,
    run,
)

UPLOAD = 50_000  # bytes of request body
DOWNLOAD = 100_000  # bytes of response body


async def sized(scope: Scope, receive: Receive, send: Send) -> None:
    """Reads the body; answers DOWNLOAD bytes (`/small`: 2)."""
    if scope["type"] != "http":
        return
    await read_body(receive)
    body = b"ok" if scope["path"] == "/small" else b"x" * DOWNLOAD
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def test_a_quic_connection_is_opened_named_h3_and_closed_with_its_udp_bytes(pki: PKI) -> None:
    recorder = Recorder()

    async def scenario(port: int) -> None:
        async with h3_connect("127.0.0.1", port, str(pki.ca)) as client:
            reply = await client.request("POST", "/", body=b"u" * UPLOAD)
            assert reply.status == 200 and len(reply.body) == DOWNLOAD

    with TestServer(builder(pki).observe(recorder).asgi(sized)) as ts:
        run(lambda: scenario(ts.port))
        closed = recorder.wait_for(ConnectionClosed, lambda e: e.protocol == "h3")
    (opened,) = [
        e for e in recorder.of(ConnectionOpened) if e.connection_id == closed.connection_id
    ]
    assert opened.scheme == "https" and opened.server == ("127.0.0.1", ts.port)
    assert opened.client is not None and opened.client[0] == "127.0.0.1"
    chosen = [
        (e.previous, e.protocol)
        for e in recorder.of(ConnectionProtocol)
        if e.connection_id == closed.connection_id
    ]
    assert chosen == [(None, "h3")]
    assert (closed.tls_version, closed.alpn) == ("TLSv1.3", "h3")
    # UDP payloads: the bodies, plus QUIC's framing, protection and handshake (no double count).
    assert UPLOAD < closed.bytes_in < UPLOAD * 1.5 + 20_000
    assert DOWNLOAD < closed.bytes_out < DOWNLOAD * 1.5 + 20_000
    assert closed.duration > 0
    # In lifecycle order: opened, then the request, then closed.
    order = [type(e) for e in recorder.events if not isinstance(e, ConnectionProtocol)]
    assert order.index(ConnectionOpened) < order.index(RequestCompleted)
    assert recorder.events.index(closed) > recorder.events.index(
        recorder.wait_for(RequestCompleted)
    )


def test_a_handshake_that_never_finishes_closes_at_the_quic_idle_timeout(pki: PKI) -> None:
    recorder = Recorder()
    server = builder(pki, idle_timeout=0.5).observe(recorder).asgi(sized)
    with TestServer(server) as ts:
        assert exchange_one(ts.port, first_initial(str(pki.ca)))  # answered, never finished
        closed = recorder.wait_for(ConnectionClosed)
        assert not recorder.of(WorkerStopped)  # closed by the idle timeout, not the shutdown
    assert closed.protocol is None and closed.tls_version is None and closed.alpn is None
    assert closed.bytes_in >= 1200 and closed.bytes_out > 0  # RFC 9000 §14.1: a padded Initial
    assert not recorder.of(ConnectionProtocol)


def test_shutdown_closes_an_open_connection_and_reports_it(pki: PKI) -> None:
    recorder = Recorder()
    server = TestServer(builder(pki).observe(recorder).asgi(sized)).start()

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            assert (await client.request("GET", "/small")).status == 200
            server.request_stop()
            await client.closed_event.wait()  # GOAWAY, then CONNECTION_CLOSE

    try:
        run(scenario)
    finally:
        server.stop()
    closed = recorder.wait_for(ConnectionClosed, lambda e: e.protocol == "h3")
    stopped = recorder.wait_for(WorkerStopped)
    assert recorder.events.index(closed) < recorder.events.index(stopped)


def test_prometheus_shows_an_http3_connection_open_then_closed(pki: PKI) -> None:
    pytest.importorskip("prometheus_client")
    from prometheus_client.parser import text_string_to_metric_families

    def scrape(port: int) -> dict[tuple[str, str], float]:
        with https_client(pki) as client:  # HTTP/1.1 over TLS: not the connection counted
            text = client.get(f"https://127.0.0.1:{port}/metrics").text
        return {
            (sample.name, sample.labels.get("protocol", "")): sample.value
            for family in text_string_to_metric_families(text)
            for sample in family.samples
        }

    seen: dict[str, dict[tuple[str, str], float]] = {}

    async def scenario(port: int) -> None:
        async with h3_connect("127.0.0.1", port, str(pki.ca)) as client:
            assert (await client.request("GET", "/")).status == 200
            seen["open"] = await asyncio.to_thread(scrape, port)

    server = builder(pki).metrics(path="/metrics").asgi(sized)
    with TestServer(server) as ts:
        run(lambda: scenario(ts.port))
        deadline = time.monotonic() + TIMEOUT
        after = scrape(ts.port)
        while after.get(("pounce_connections_open", "h3")) != 0:
            assert time.monotonic() < deadline, f"the h3 connection stayed open: {after}"
            time.sleep(0.05)
            after = scrape(ts.port)
    assert seen["open"][("pounce_connections_open", "h3")] == 1
    assert ("pounce_connections_total", "h3") not in seen["open"]
    assert after[("pounce_connections_total", "h3")] == 1
    assert after[("pounce_sent_bytes_total", "")] > DOWNLOAD  # the h3 response's datagrams
    assert after[("pounce_connections_open", "none")] == 0


def test_no_subscriber_no_counting(pki: PKI, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a subscriber of connection events the driver keeps no counts."""
    from pounce.drivers import http3

    made: list[object] = []

    class Spy(http3.QuicConnectionEvents):
        def __init__(self, *args: object) -> None:
            made.append(self)
            super().__init__(*args)  # type: ignore[arg-type]

    async def scenario(port: int) -> None:
        async with h3_connect("127.0.0.1", port, str(pki.ca)) as client:
            assert (await client.request("GET", "/small")).status == 200

    monkeypatch.setattr(http3, "QuicConnectionEvents", Spy)
    with TestServer(builder(pki).asgi(sized)) as ts:
        run(lambda: scenario(ts.port))
    assert made == []
    with TestServer(builder(pki).observe(Recorder()).asgi(sized)) as ts:
        run(lambda: scenario(ts.port))
    assert len(made) == 1
