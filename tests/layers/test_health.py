"""Liveness and readiness over real sockets: through a draining shutdown, a full queue,
and past the limits without being counted or metered."""

from __future__ import annotations

import socket
import time

import httpx
import pytest

from pounce import BuildError
from pounce.layers.rate_limit import RateLimit
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, HeldApp, builder, read_response, send_request, wait_for


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=TIMEOUT)


def test_live_and_ready_answer_without_the_app() -> None:
    app = HeldApp()
    with TestServer(builder().health().asgi(app)) as ts:
        live, ready = get(f"{ts.url}/livez"), get(f"{ts.url}/readyz")
        assert (live.status_code, live.text) == (200, "ok\n")
        assert (ready.status_code, ready.text) == (200, "ready\n")
        assert ready.headers["cache-control"] == "no-store"
        assert httpx.post(f"{ts.url}/livez", timeout=TIMEOUT).status_code == 405
        assert get(f"{ts.url}/other").status_code == 200
    assert app.entered == ["/other"]


def _partial_head(port: int, path: str) -> socket.socket:
    """A connection holding all of a request head but its last line."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(b"GET %s HTTP/1.1\r\nhost: test\r\n" % path.encode())
    return sock


def test_ready_fails_with_connection_close_while_the_worker_drains() -> None:
    app = HeldApp()
    server = builder().health().asgi(app)
    ts = TestServer(server).start()
    try:
        assert get(f"{ts.url}/readyz").status_code == 200
        ready, live = _partial_head(ts.port, "/readyz"), _partial_head(ts.port, "/livez")
        time.sleep(0.1)  # both connections are the server's before it stops accepting
        ts.request_stop()
        time.sleep(0.2)  # the drain has begun; a head under way is still answered
        for sock in (ready, live):
            sock.sendall(b"\r\n")
        status, headers, body = read_response(ready)
        assert (status, body) == (503, b"not ready: draining\n")
        assert headers["connection"] == "close"
        assert read_response(live)[0] == 200  # the loop still turns
        for sock in (ready, live):
            sock.close()
    finally:
        ts.stop()
    assert app.entered == []


def test_ready_fails_while_the_queue_is_full_and_probes_are_not_counted() -> None:
    app = HeldApp()
    server = builder().health().limit(max_in_flight=1, queue=1).asgi(app)
    with TestServer(server) as ts:
        held = send_request(ts.port, "/hold/1")
        wait_for(lambda: app.entered == ["/hold/1"], "the held request")
        assert get(f"{ts.url}/readyz").status_code == 200  # a place in the queue is left
        queued = send_request(ts.port, "/hold/2")
        time.sleep(0.1)
        ready = get(f"{ts.url}/readyz")
        assert ready.status_code == 503
        assert ready.text == "not ready: concurrency limit: 1 in flight, 1 waiting\n"
        assert [get(f"{ts.url}/livez").status_code for _ in range(3)] == [200] * 3
        assert get(f"{ts.url}/app").status_code == 503  # the app itself is full
        app.release.set()
        for sock in (held, queued):
            assert read_response(sock)[0] == 200
            sock.close()
        assert get(f"{ts.url}/readyz").status_code == 200


def test_probes_are_not_metered() -> None:
    server = builder().health().layer(RateLimit(rate="1/h")).asgi(HeldApp())
    with TestServer(server) as ts:
        assert [get(f"{ts.url}/readyz").status_code for _ in range(5)] == [200] * 5
        assert [get(f"{ts.url}/x").status_code for _ in range(2)] == [200, 429]


def test_health_after_a_limit_is_refused() -> None:
    with pytest.raises(BuildError, match=r"call \.health\(\) before"):
        builder().limit(max_in_flight=1).health().asgi(HeldApp())
    with pytest.raises(BuildError, match=r"call \.health\(\) before"):
        builder().rate_limit(rate="1/s").health().asgi(HeldApp())


@pytest.mark.parametrize(
    ("options", "match"),
    [({"live": "livez"}, "starting with"), ({"live": "/x", "ready": "/x"}, "both")],
)
def test_bad_options_are_build_errors(options: dict[str, str], match: str) -> None:
    with pytest.raises(BuildError, match=match):
        builder().health(**options)  # type: ignore[arg-type]
