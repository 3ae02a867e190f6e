"""The concurrency limit and its waiting queue, over real sockets.

Each test holds requests inside the app (`HeldApp`, paths under /hold) to
fill the places, then shows what the next ones get: a place in FIFO order,
503 with Retry-After at once when the queue is full, 503 after the queue
timeout, nothing at all (and no app call) when the client left while queued.
HTTP/2 streams and WebSocket handshakes take places too.
"""

from __future__ import annotations

import logging
import time

import httpx
import pytest
import websockets
from websockets.sync.client import connect

from pounce import BuildError
from pounce.layers.limit import ConcurrencyLimit
from pounce.layers.refusal import RefusalLog
from pounce.testing import TestServer
from tests.conformance.h2wire import Wire, request_headers
from tests.layers.helpers import TIMEOUT, HeldApp, builder, read_response, send_request, wait_for


def test_places_are_given_in_arrival_order_and_a_full_queue_sheds_at_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = HeldApp()
    server = builder().limit(max_in_flight=1, queue=3).asgi(app)
    with TestServer(server) as ts, caplog.at_level(logging.WARNING, logger="pounce.error"):
        first = send_request(ts.port, "/hold/first")
        wait_for(lambda: app.entered == ["/hold/first"], "the first request to enter")
        queued = []
        for name in ("a", "b", "c"):
            queued.append(send_request(ts.port, f"/hold/{name}"))
            time.sleep(0.1)  # each is in the queue before the next arrives
        started = time.monotonic()
        status, headers, body = read_response(send_request(ts.port, "/shed"))
        assert time.monotonic() - started < 1.0  # shed at once, not after the queue timeout
        assert (status, headers["retry-after"]) == (503, "1")
        assert b"at capacity" in body
        assert app.entered == ["/hold/first"]  # nobody overtook, nobody else got in
        app.release.set()
        for sock, path in zip([first, *queued], ["first", "a", "b", "c"], strict=True):
            assert read_response(sock)[:1] == (200,), path
            sock.close()
        assert app.entered == ["/hold/first", "/hold/a", "/hold/b", "/hold/c"]
    assert any("concurrency limit refused: 1 at capacity" in r.message for r in caplog.records)


def test_a_request_that_waits_too_long_gets_503_and_never_reaches_the_app() -> None:
    app = HeldApp()
    server = builder().limit(max_in_flight=1, queue=1, queue_timeout=0.3).asgi(app)
    with TestServer(server) as ts:
        held = send_request(ts.port, "/hold")
        wait_for(lambda: app.entered == ["/hold"], "the held request")
        started = time.monotonic()
        status, headers, body = read_response(send_request(ts.port, "/late"))
        waited = time.monotonic() - started
        assert (status, headers["retry-after"]) == (503, "1")
        assert b"no place in time" in body
        assert 0.25 < waited < 3.0
        app.release.set()
        assert read_response(held)[0] == 200
        held.close()
    assert app.entered == ["/hold"]


def test_a_client_that_leaves_the_queue_frees_its_place_at_once() -> None:
    app = HeldApp()
    server = builder().limit(max_in_flight=1, queue=1, queue_timeout=5.0).asgi(app)
    with TestServer(server) as ts:
        held = send_request(ts.port, "/hold/first")
        wait_for(lambda: app.entered == ["/hold/first"], "the held request")
        leaver = send_request(ts.port, "/gone")
        time.sleep(0.1)  # queued
        leaver.close()
        time.sleep(0.2)  # the server sees it leave
        # The queue has room again: the next one waits instead of being shed.
        stayer = send_request(ts.port, "/stays")
        time.sleep(0.2)
        app.release.set()
        assert read_response(held)[0] == 200
        assert read_response(stayer)[:1] == (200,)
        for sock in (held, stayer):
            sock.close()
    assert app.entered == ["/hold/first", "/stays"]  # the leaver never reached the app


def _ended(wire: Wire, sids: list[int]) -> dict[int, bytes]:
    """Each stream's ``:status``, read until every one of `sids` has ended."""
    ended: dict[int, bytes] = {}
    for frame in wire.frames():
        if "END_STREAM" in frame.flags and frame.stream_id in sids:
            ended[frame.stream_id] = dict(wire.received[frame.stream_id])[b":status"]
        if len(ended) == len(sids):
            break
    return ended


def test_http2_streams_take_places() -> None:
    app = HeldApp()
    server = builder().h2().limit(max_in_flight=2).asgi(app)
    with TestServer(server) as ts, Wire(ts.port) as wire:
        wire.handshake()
        held = [wire.headers(request_headers(b"/hold/%d" % i)) for i in range(2)]
        wait_for(lambda: len(app.entered) == 2, "two streams in the app")
        third = wire.headers(request_headers(b"/third"))  # a third stream, same connection
        headers, _ = wire.response(third)
        assert (dict(headers)[b":status"], dict(headers)[b"retry-after"]) == (b"503", b"1")
        app.release.set()
        assert _ended(wire, held) == {held[0]: b"200", held[1]: b"200"}
    assert sorted(app.entered) == ["/hold/0", "/hold/1"]


def test_a_websocket_handshake_over_the_limit_is_refused_with_503() -> None:
    app = HeldApp()
    server = builder().websocket().limit(max_in_flight=1).asgi(app)
    ws_url = "ws://{}:{}/ws"
    with TestServer(server) as ts:
        held = send_request(ts.port, "/hold")
        wait_for(lambda: app.entered == ["/hold"], "the held request")
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            connect(ws_url.format(ts.host, ts.port), open_timeout=TIMEOUT).close()
        response = info.value.response
        assert (response.status_code, response.headers["retry-after"]) == (503, "1")
        app.release.set()
        assert read_response(held)[0] == 200
        held.close()
        # Admitted, an open WebSocket gives its place back once accepted.
        with connect(ws_url.format(ts.host, ts.port), open_timeout=TIMEOUT):
            assert httpx.get(f"{ts.url}/plain", timeout=TIMEOUT).status_code == 200
    assert app.entered == ["/hold", "/ws", "/plain"]


def test_refusals_are_logged_at_most_once_per_interval() -> None:
    now = [100.0]
    log = RefusalLog("kit", interval=10.0, clock=lambda: now[0])
    logger = logging.getLogger("pounce.error")
    records: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: records.append(record.getMessage())  # type: ignore[method-assign]
    logger.addHandler(handler)
    try:
        for _ in range(1000):
            log.refused("at capacity")
        now[0] += 10.0
        log.refused("waited too long")
    finally:
        logger.removeHandler(handler)
    assert records == [
        "kit refused: 1 at capacity (at most one line per 10 s)",
        "kit refused: 999 at capacity, 1 waited too long (at most one line per 10 s)",
    ]
    assert log.counts == {"at capacity": 1000, "waited too long": 1}


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "max_in_flight= is required"),
        ({"max_in_flight": 0}, "at least 1"),
        ({"max_in_flight": 1, "queue": -1}, "at least 0"),
        ({"max_in_flight": 1, "queue_timeout": float("nan")}, "seconds"),
    ],
)
def test_bad_options_are_build_errors(options: dict[str, float], match: str) -> None:
    with pytest.raises(BuildError, match=match):
        builder().limit(**options)  # type: ignore[arg-type]
    if options:  # the layer's own constructor needs max_in_flight (a TypeError)
        with pytest.raises(BuildError, match=match):
            ConcurrencyLimit(**options)  # type: ignore[arg-type]
