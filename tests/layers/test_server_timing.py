"""`.server_timing()` over real sockets (HTTP/1.1 and HTTP/2, with httpx), with and
without the concurrency limit's queue; the figures themselves with a fake clock."""

from __future__ import annotations

import asyncio
import re
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from pounce import BuildError, Server
from pounce.asgi import phases
from pounce.asgi.types import Message, Receive, Scope, Send
from pounce.layers.server_timing import ServerTiming, header_value
from pounce.presets import StandardOptions, standard
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, HeldApp, wait_for

APP_ONLY = re.compile(r"^app;dur=\d+\.\d$")
QUEUED = re.compile(r"^queue;dur=(\d+\.\d), app;dur=\d+\.\d$")


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    headers = [(b"content-type", b"text/plain")]
    if scope["path"] == "/own":
        headers.append((b"server-timing", b"db;dur=2"))
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"hello"})


@pytest.mark.parametrize("http2", [False, True])
def test_every_response_carries_the_app_phase(http2: bool) -> None:
    with TestServer(hello, server_timing=True, http2=http2) as ts, ts.client() as client:
        response = client.get("/")
        assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
        assert APP_ONLY.match(response.headers["server-timing"])
        own = client.get("/own").headers.get_list("server-timing")
        assert own[0] == "db;dur=2" and APP_ONLY.match(own[1])


def test_off_by_default() -> None:
    with TestServer(hello) as ts, ts.client() as client:
        assert "server-timing" not in client.get("/").headers


@pytest.mark.parametrize("http2", [False, True])
def test_the_queue_wait_is_reported_behind_the_limit(http2: bool) -> None:
    app = HeldApp()
    built = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .h2()
        .health()
        .server_timing()
        .limit(max_in_flight=1, queue=1)
        .asgi(app)
    )
    with TestServer(built) as ts, ts.client(http2=http2) as client, ThreadPoolExecutor(2) as pool:
        held = pool.submit(client.get, "/hold/1")
        wait_for(lambda: app.entered == ["/hold/1"], "the first request in the app")
        queued = pool.submit(client.get, "/queued")
        # /readyz turns 503 exactly when the one place in the queue is taken.
        ready = f"{ts.url}/readyz"
        wait_for(lambda: httpx.get(ready, timeout=TIMEOUT).status_code == 503, "a full queue")
        app.release.set()
        first, second = held.result(TIMEOUT), queued.result(TIMEOUT)
    assert APP_ONLY.match(first.headers["server-timing"])  # it never waited
    match = QUEUED.match(second.headers["server-timing"])
    assert match is not None, second.headers["server-timing"]
    assert float(match[1]) > 0


def test_server_timing_must_come_before_the_limit() -> None:
    with pytest.raises(BuildError, match=r"\.server_timing\(\) comes after limit") as caught:
        Server.builder().bind("127.0.0.1", 0).h1().limit(max_in_flight=1).server_timing().asgi(
            hello
        )
    assert caught.value.hint == "call .server_timing() before .limit()"


def test_the_preset_puts_it_outside_the_limit() -> None:
    options = StandardOptions(server_timing=True, limit_concurrency=2)
    lines = standard(options).asgi(hello).describe().splitlines()
    timing = next(i for i, line in enumerate(lines) if "server timing" in line)
    limit = next(i for i, line in enumerate(lines) if "limit 2 in flight" in line)
    assert timing < limit


# -- the figures, with a fake clock -----------------------------------------------------------


def test_the_figures_are_milliseconds_of_each_phase() -> None:
    now = [100.0]
    sent: list[Message] = []

    async def waits_then_answers(scope: Scope, receive: Receive, send: Send) -> None:
        phases.note(scope, phases.QUEUE, 0.0125)  # what the limit would report
        now[0] += 0.0125 + 0.0034
        await send({"type": "http.response.start", "status": 200, "headers": []})
        now[0] += 1.0  # the body's time is not the app's time to first byte
        await send({"type": "http.response.body", "body": b""})

    async def record(message: Message) -> None:
        sent.append(message)

    async def no_body() -> Message:
        return {"type": "http.request", "body": b""}

    timed = ServerTiming(clock=lambda: now[0]).wrap(waits_then_answers)
    scope: Scope = {"type": "http", "headers": [], "extensions": {}}
    asyncio.run(timed(scope, no_body, record))
    assert sent[0]["headers"] == [(b"server-timing", b"queue;dur=12.5, app;dur=3.4")]
    assert scope["extensions"][phases.EXTENSION] == {"queue": 0.0125}


def test_without_a_queue_wait_there_is_only_the_app() -> None:
    assert header_value({}, 0.0021) == b"app;dur=2.1"
    phases.note({"type": "http"}, phases.QUEUE, 1.0)  # nobody asked: nothing happens
