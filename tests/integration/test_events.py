"""Lifecycle events (`pounce.events`) over real sockets: HTTP/1.1, HTTP/2, TLS, WebSocket.

Each test serves a real server with a recording subscriber and asserts the
events a real client caused: the bytes each way, the status and body bytes
the client got, and the order (a response is complete at its last byte,
before the app returns).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import ssl
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

import httpx
import pytest
from websockets.sync.client import connect

from pounce import Server, ServerBuilder
from pounce.asgi.types import Receive, Scope, Send
from pounce.events import (
    ConnectionClosed,
    ConnectionOpened,
    ConnectionProtocol,
    Event,
    Refused,
    RequestCompleted,
    RequestDequeued,
    RequestFailed,
    RequestQueued,
    RequestStarted,
    ResponseStarted,
    Subscriber,
    WebSocketClosed,
    WebSocketOpened,
    WorkerStarted,
    WorkerStopped,
)
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_asgi_http import logged

TIMEOUT = 5.0  # seconds for every network wait and every poll
E = TypeVar("E", bound=Event)


class Recorder:
    """A subscriber that keeps every event; the test thread waits for them."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self._changed = threading.Condition()

    def __call__(self, event: Event) -> None:
        with self._changed:
            self.events.append(event)
            self._changed.notify_all()

    def wait_for(self, kind: type[E], where: Callable[[E], bool] = lambda e: True) -> E:
        deadline = time.monotonic() + TIMEOUT
        with self._changed:
            while True:
                for event in self.events:
                    if isinstance(event, kind) and where(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no {kind.__name__}; saw {self.events}")
                self._changed.wait(left)

    def of(self, kind: type[E]) -> list[E]:
        with self._changed:
            return [e for e in self.events if isinstance(e, kind)]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        return
    if scope["type"] == "websocket":
        await _echo(receive, send)
        return
    path = scope["path"]
    if path == "/boom":
        raise ValueError("boom")
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(3):
            await send({"type": "http.response.body", "body": b"abcd", "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    body = b"hello"
    await send({"type": "http.response.start", "status": 201, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _echo(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        await send({"type": "websocket.send", "text": message.get("text") or ""})


def observed(recorder: Recorder) -> ServerBuilder:
    return Server.builder().bind("127.0.0.1", 0).h1().observe(recorder)


def test_http1_request_events_and_connection_bytes() -> None:
    recorder = Recorder()
    request = b"GET /hello?x=1 HTTP/1.1\r\nhost: t\r\nuser-agent: ua\r\nconnection: close\r\n\r\n"
    with TestServer(observed(recorder).asgi(app)) as ts:
        with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
            local = sock.getsockname()
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        closed = recorder.wait_for(ConnectionClosed)
    assert received.startswith(b"HTTP/1.1 201 ")
    opened = recorder.wait_for(ConnectionOpened)
    assert opened.client == (local[0], local[1]) and opened.scheme == "http"
    started = recorder.wait_for(RequestStarted)
    assert (started.method, started.path, started.http_version) == ("GET", "/hello", "1.1")
    head = recorder.wait_for(ResponseStarted)
    assert head.status == 201
    done = recorder.wait_for(RequestCompleted)
    assert (done.status, done.bytes, done.complete) == (201, 5, True)
    assert done.path == "/hello?x=1" and done.client == (local[0], local[1])
    assert (b"user-agent", b"ua") in done.headers
    assert done.ttfb is not None and 0 <= done.ttfb <= done.duration
    assert done.queue_wait == 0.0
    # Every byte each way, as the client counted them.
    assert (closed.bytes_in, closed.bytes_out) == (len(request), len(received))
    assert closed.protocol == "http/1.1" and closed.tls_version is None
    assert closed.connection_id == opened.connection_id
    chosen = recorder.wait_for(ConnectionProtocol)
    assert (chosen.protocol, chosen.previous) == ("http/1.1", None)
    assert chosen.connection_id == opened.connection_id
    kinds = [type(e) for e in recorder.events if not isinstance(e, WorkerStarted)]
    assert kinds[:6] == [
        ConnectionOpened,
        ConnectionProtocol,
        RequestStarted,
        ResponseStarted,
        RequestCompleted,
        ConnectionClosed,
    ]


def test_a_500_written_by_the_server_counts_its_bytes() -> None:
    recorder = Recorder()
    with TestServer(observed(recorder).asgi(app)) as ts:
        response = httpx.get(ts.url + "/boom", timeout=TIMEOUT)
        done = recorder.wait_for(RequestCompleted)
    assert response.status_code == 500
    failed = recorder.wait_for(RequestFailed)
    assert failed.exception == "ValueError" and not failed.client_left
    assert isinstance(failed.error, ValueError) and failed.error.__traceback__ is not None
    assert not failed.response_started
    assert (done.status, done.bytes, done.complete) == (500, len(response.content), True)
    assert recorder.events.index(failed) < recorder.events.index(done)


def test_streamed_body_bytes_are_counted() -> None:
    recorder = Recorder()
    with TestServer(observed(recorder).asgi(app)) as ts:
        response = httpx.get(ts.url + "/stream", timeout=TIMEOUT)
        done = recorder.wait_for(RequestCompleted)
    assert response.content == b"abcd" * 3
    assert (done.status, done.bytes) == (200, 12)


def test_completion_is_the_last_byte_not_the_end_of_the_app() -> None:
    """Background work after the response (Starlette's BackgroundTasks) is not the response's."""
    recorder = Recorder()
    app_ended = threading.Event()
    release = threading.Event()

    async def background(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"done"})
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        app_ended.set()

    with TestServer(observed(recorder).asgi(background)) as ts:
        response = httpx.get(ts.url + "/", timeout=TIMEOUT)
        done = recorder.wait_for(RequestCompleted)
        assert not app_ended.is_set()  # reported while the app still works
        release.set()
        assert app_ended.wait(TIMEOUT)
    assert response.content == b"done" and done.bytes == 4


def test_https_http2_events(pki: PKI) -> None:
    recorder = Recorder()
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .observe(recorder)
        .asgi(app)
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    with TestServer(server) as ts:
        url = f"https://127.0.0.1:{ts.port}/hello"
        with httpx.Client(http2=True, verify=context, timeout=TIMEOUT) as client:
            response = client.get(url)
        closed = recorder.wait_for(ConnectionClosed)
    assert response.http_version == "HTTP/2" and response.status_code == 201
    done = recorder.wait_for(RequestCompleted)
    assert (done.http_version, done.scheme, done.status, done.bytes) == ("2", "https", 201, 5)
    assert closed.protocol == "h2" and closed.alpn == "h2"
    assert closed.tls_version in ("TLSv1.2", "TLSv1.3")
    assert closed.bytes_in > 0 and closed.bytes_out > len(response.content)
    assert recorder.wait_for(ConnectionOpened).scheme == "http"  # before the handshake


def test_https_http1_events(pki: PKI) -> None:
    recorder = Recorder()
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .observe(recorder)
        .asgi(app)
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    with TestServer(server) as ts:
        response = httpx.get(f"https://127.0.0.1:{ts.port}/x", verify=context, timeout=TIMEOUT)
        closed = recorder.wait_for(ConnectionClosed)
    done = recorder.wait_for(RequestCompleted)
    assert response.status_code == 201
    assert (done.scheme, done.http_version, done.bytes) == ("https", "1.1", 5)
    assert closed.protocol == "http/1.1" and closed.tls_version is not None


def test_websocket_events() -> None:
    recorder = Recorder()
    server = observed(recorder).websocket().asgi(app)
    with TestServer(server) as ts:
        with connect(f"ws://127.0.0.1:{ts.port}/ws", open_timeout=TIMEOUT) as ws:
            for text in ("a", "b", "c"):
                ws.send(text)
                assert ws.recv(timeout=TIMEOUT) == text
        closed = recorder.wait_for(WebSocketClosed)
        connection = recorder.wait_for(ConnectionClosed)
    opened = recorder.wait_for(WebSocketOpened)
    assert (opened.status, opened.path, opened.http_version) == (101, "/ws", "1.1")
    assert closed.accepted and closed.status == 101 and closed.code == 1000
    assert (closed.messages_in, closed.messages_out) == (3, 3)
    assert connection.protocol == "websocket"
    # Chosen, then switched by the upgrade: the last one named is the one closed.
    chosen = [(e.previous, e.protocol) for e in recorder.of(ConnectionProtocol)]
    assert chosen == [(None, "http/1.1"), ("http/1.1", "websocket")]
    assert not recorder.of(RequestCompleted)  # a WebSocket is not an HTTP response


def test_the_end_of_a_request_carries_its_scope_extensions() -> None:
    """The correlation key: RequestCompleted (and RequestFailed) carry the request's own
    extensions dict, another for each request; what a layer leaves there is seen."""
    recorder = Recorder()
    scopes: dict[str, dict[str, object]] = {}

    async def marking(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            scope["extensions"]["test.mark"] = scope["path"]
            scopes[scope["path"]] = scope["extensions"]
        await app(scope, receive, send)

    with TestServer(observed(recorder).asgi(marking)) as ts, httpx.Client() as client:
        for path in ("/a", "/b", "/boom"):
            client.get(ts.url + path, timeout=TIMEOUT)
        recorder.wait_for(RequestCompleted, lambda e: e.path == "/boom")
    for path in ("/a", "/b", "/boom"):
        (done,) = [e for e in recorder.of(RequestCompleted) if e.path == path]
        assert done.extensions is scopes[path] and done.extensions["test.mark"] == path
    assert recorder.wait_for(RequestFailed).extensions is scopes["/boom"]
    assert len({id(e.extensions) for e in recorder.of(RequestCompleted)}) == 3


def test_websocket_closed_carries_the_sessions_extensions_and_a_failures_code() -> None:
    recorder = Recorder()
    seen: list[object] = []

    async def failing(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        seen.append(scope["extensions"])
        await receive()
        await send({"type": "websocket.accept"})
        await receive()
        raise ValueError("boom")

    with TestServer(observed(recorder).websocket().asgi(failing)) as ts:
        with connect(f"ws://127.0.0.1:{ts.port}/ws", open_timeout=TIMEOUT) as ws:
            ws.send("a")
            with pytest.raises(Exception, match="1011"):
                ws.recv(timeout=TIMEOUT)
        closed = recorder.wait_for(WebSocketClosed)
    assert closed.extensions is seen[0]
    assert closed.code == 1011  # what the server sent, not a normal close


def test_websocket_refused_before_accept() -> None:
    recorder = Recorder()

    async def gatekeeper(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "websocket":
            await send({"type": "websocket.close"})

    with TestServer(observed(recorder).websocket().asgi(gatekeeper)) as ts:
        with pytest.raises(Exception, match="403"):
            connect(f"ws://127.0.0.1:{ts.port}/no", open_timeout=TIMEOUT)
        closed = recorder.wait_for(WebSocketClosed)
    assert not closed.accepted and closed.status == 403 and closed.code is None
    assert not recorder.of(WebSocketOpened)


def test_overload_refusals_are_events() -> None:
    recorder = Recorder()
    held = threading.Event()
    release = threading.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        held.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = observed(recorder).limit(max_in_flight=1).asgi(slow)
    with TestServer(server) as ts, httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client:
        with ThreadedGet(ts.url + "/first") as first:
            assert held.wait(TIMEOUT)
            refused = client.get("/second")
            release.set()
        assert first.result().status_code == 200
        event = recorder.wait_for(Refused)
    assert refused.status_code == 503
    assert (event.layer, event.reason, event.status, event.path) == (
        "concurrency limit",
        "at capacity",
        503,
        "/second",
    )
    done = recorder.wait_for(RequestCompleted, lambda e: e.path == "/second")
    assert done.status == 503


def test_rate_limit_refusal_is_an_event() -> None:
    recorder = Recorder()
    server = observed(recorder).rate_limit(rate="1/m").asgi(app)
    with TestServer(server) as ts, httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client:
        assert client.get("/one").status_code == 201
        assert client.get("/two").status_code == 429
        event = recorder.wait_for(Refused)
    assert (event.layer, event.status, event.path) == ("rate limit", 429, "/two")


def test_queue_wait_is_reported() -> None:
    recorder = Recorder()
    held = threading.Event()
    release = threading.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/first":
            held.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = observed(recorder).limit(max_in_flight=1, queue=1).asgi(slow)
    with TestServer(server) as ts:
        with ThreadedGet(ts.url + "/first") as first:
            assert held.wait(TIMEOUT)
            with ThreadedGet(ts.url + "/second") as second:
                recorder.wait_for(RequestStarted, lambda e: e.path == "/second")
                release.set()
            assert second.result().status_code == 200
        assert first.result().status_code == 200
        waited = recorder.wait_for(RequestCompleted, lambda e: e.path == "/second")
        direct = recorder.wait_for(RequestCompleted, lambda e: e.path == "/first")
    assert waited.queue_wait > 0 and direct.queue_wait == 0
    # Only the request that waited was queued, and it left the queue once, admitted.
    (queued,) = recorder.of(RequestQueued)
    (left,) = recorder.of(RequestDequeued)
    assert queued.path == left.path == "/second"
    assert left.outcome == "admitted" and left.waited == waited.queue_wait
    assert recorder.events.index(queued) < recorder.events.index(left)


def test_a_request_that_waits_too_long_leaves_the_queue_timed_out() -> None:
    recorder = Recorder()
    held = threading.Event()
    release = threading.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        held.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = observed(recorder).limit(max_in_flight=1, queue=1, queue_timeout=0.05).asgi(slow)
    with TestServer(server) as ts:
        with ThreadedGet(ts.url + "/first") as first:
            assert held.wait(TIMEOUT)
            second = httpx.get(ts.url + "/second", timeout=TIMEOUT)
            release.set()
        assert first.result().status_code == 200
    assert second.status_code == 503
    left = recorder.wait_for(RequestDequeued)
    assert (left.path, left.outcome) == ("/second", "timeout") and left.waited > 0
    assert [e.path for e in recorder.of(RequestQueued)] == ["/second"]


def test_a_client_that_leaves_the_queue_is_dequeued_gone() -> None:
    recorder = Recorder()
    held = threading.Event()
    release = threading.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        held.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = observed(recorder).limit(max_in_flight=1, queue=1).asgi(slow)
    with TestServer(server) as ts:
        with ThreadedGet(ts.url + "/first") as first:
            assert held.wait(TIMEOUT)
            with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
                sock.sendall(b"GET /leaves HTTP/1.1\r\nhost: test\r\n\r\n")
                recorder.wait_for(RequestQueued)
            left = recorder.wait_for(RequestDequeued)
            release.set()
        assert first.result().status_code == 200
    assert (left.path, left.outcome) == ("/leaves", "gone")


def test_worker_events_bracket_the_serve() -> None:
    recorder = Recorder()
    with TestServer(observed(recorder).asgi(app)):
        started = recorder.wait_for(WorkerStarted)
    stopped = recorder.wait_for(WorkerStopped)
    assert started.worker == stopped.worker and str(started.worker)


def test_a_failing_subscriber_never_breaks_a_request() -> None:
    calls: list[str] = []

    def broken(event: Event) -> None:
        calls.append(type(event).__name__)
        raise RuntimeError("subscriber bug")

    recorder = Recorder()
    server = Server.builder().bind("127.0.0.1", 0).h1().observe(broken).observe(recorder)
    with logged("pounce.error") as log, TestServer(server.asgi(app)) as ts:
        with httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client:
            assert client.get("/a").status_code == 201
            assert client.get("/b").status_code == 201
        recorder.wait_for(RequestCompleted, lambda e: e.path == "/b")
        failures = [r for r in log.records if "Event subscriber" in r.getMessage()]
    assert "RequestCompleted" in calls and len(calls) > 5
    # Logged once, with its traceback; later failures wait for a summary line a minute on.
    assert len(failures) == 1 and failures[0].exc_info is not None


def test_subscriber_class_dispatches_by_kind() -> None:
    class Counts(Subscriber):
        def __init__(self) -> None:
            self.done: list[int] = []
            self.lock = threading.Lock()

        def on_request_completed(self, event: RequestCompleted) -> None:
            with self.lock:
                self.done.append(event.status)

    counts = Counts()
    recorder = Recorder()
    server = observed(recorder).observe(counts).asgi(app)
    with TestServer(server) as ts:
        httpx.get(ts.url + "/", timeout=TIMEOUT)
        recorder.wait_for(RequestCompleted)
    assert counts.done == [201]


def test_observe_refuses_what_cannot_be_called() -> None:
    from pounce import BuildError

    with pytest.raises(BuildError, match="callable"):
        Server.builder().observe("not a subscriber")  # type: ignore[arg-type]


def test_events_are_frozen() -> None:
    event = WorkerStarted(worker="1")
    with pytest.raises(AttributeError):
        event.worker = "2"  # type: ignore[misc]


def test_no_subscriber_means_no_bus() -> None:
    server = Server.builder().bind("127.0.0.1", 0).h1().asgi(app)
    assert server.events is None
    assert server.describe().count("observe") == 0


class ThreadedGet:
    """A GET on its own thread, for a request that must wait while the test goes on."""

    def __init__(self, url: str) -> None:
        self._url = url
        self._result: Any = None
        self._thread = threading.Thread(target=self._run)

    def _run(self) -> None:
        try:
            self._result = httpx.get(self._url, timeout=TIMEOUT)
        except Exception as exc:
            self._result = exc

    def __enter__(self) -> ThreadedGet:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._thread.join(TIMEOUT)

    def result(self) -> httpx.Response:
        self._thread.join(TIMEOUT)
        if isinstance(self._result, Exception):
            raise self._result
        assert isinstance(self._result, httpx.Response)
        return self._result


def test_request_ids_reach_the_scope_the_events_and_the_response(pki: PKI) -> None:
    recorder = Recorder()
    seen: list[str] = []

    async def tell(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return
        seen.append(scope["extensions"]["pounce.request_id"]["id"])
        if scope["type"] == "websocket":
            await send({"type": "websocket.accept"})
            await send({"type": "websocket.close"})
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": seen[-1].encode()})

    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .websocket()
        .request_id(echo=True)
        .observe(recorder)
        .asgi(tell)
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    with TestServer(server) as ts:
        url = f"https://127.0.0.1:{ts.port}/"
        with httpx.Client(http2=True, verify=context, timeout=TIMEOUT) as client:
            proxied = client.get(url, headers={"x-request-id": "edge-7"})
            fresh = client.get(url)
        plain = ssl.create_default_context(cafile=str(pki.ca))  # httpx set h2 on the other
        with connect(f"wss://127.0.0.1:{ts.port}/ws", ssl=plain, open_timeout=TIMEOUT):
            pass  # accepted, then closed by the app
        closed = recorder.wait_for(WebSocketClosed)
        done = recorder.wait_for(RequestCompleted, lambda e: e.request_id == "edge-7")
    assert proxied.http_version == "HTTP/2"
    assert proxied.text == proxied.headers["x-request-id"] == "edge-7"
    assert fresh.text == fresh.headers["x-request-id"] and len(fresh.text) == 32
    assert done.request_id == "edge-7"
    assert closed.request_id == seen[-1] and len(seen) == 3


def test_websocket_over_http2_events() -> None:
    from wsproto.events import CloseConnection, TextMessage

    from tests.integration.h2ws import h2_websocket

    recorder = Recorder()
    server = observed(recorder).h2().websocket().asgi(app)
    with TestServer(server) as ts, h2_websocket(ts.port) as client:
        sid, status, _ = client.open(b"/chat")
        assert status == 200
        client.send_text(sid, "hi")
        echoed = client.receive(sid)
        assert isinstance(echoed, TextMessage) and echoed.data == "hi"
        client.send(sid, CloseConnection(code=1000))
        closed = recorder.wait_for(WebSocketClosed)
    opened = recorder.wait_for(WebSocketOpened)
    assert (opened.status, opened.http_version, opened.path) == (200, "2", "/chat")
    assert closed.accepted and closed.code == 1000
    assert (closed.messages_in, closed.messages_out) == (1, 1)


def test_a_file_sent_by_sendfile_is_counted(tmp_path: Any) -> None:
    """A pathsend body goes by loop.sendfile on plain HTTP/1.1 (asyncio): no write() sees
    it, yet the request's and the connection's byte counts include every byte."""
    path = tmp_path / "big.bin"
    path.write_bytes(b"x" * (1024 * 1024))

    async def file_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        size = str(path.stat().st_size).encode()
        await send(
            {"type": "http.response.start", "status": 200, "headers": [(b"content-length", size)]}
        )
        await send({"type": "http.response.pathsend", "path": str(path)})

    recorder = Recorder()
    request = b"GET /f HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"
    builder = observed(recorder).loop("asyncio")
    with TestServer(builder.asgi(file_app)) as ts:
        with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(request)
            received = b""
            while chunk := sock.recv(65536):
                received += chunk
        closed = recorder.wait_for(ConnectionClosed)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 ") and len(body) == 1024 * 1024
    done = recorder.wait_for(RequestCompleted)
    assert (done.status, done.bytes, done.complete) == (200, 1024 * 1024, True)
    assert closed.bytes_out == len(received)


def test_the_access_log_follows_its_level_changed_while_serving() -> None:
    """Off (logger at WARNING): no event is built for it. Lowered to INFO while serving:
    lines appear within the bus's refresh interval (one second), no restart needed."""
    logger = logging.getLogger("pounce.access")
    lines: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: lines.append(record.getMessage())  # type: ignore[method-assign]
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    logger.setLevel(logging.WARNING)
    try:
        with TestServer(app, access_log=True) as ts, ts.client() as client:
            assert ts.server.events is not None
            assert client.get("/").status_code == 201
            assert not ts.server.events.requests  # the exchange built no event
            assert lines == []
            logger.setLevel(logging.INFO)
            deadline = time.monotonic() + TIMEOUT
            while not lines and time.monotonic() < deadline:
                assert client.get("/seen").status_code == 201
                time.sleep(0.05)
            assert lines and '"GET /seen HTTP/1.1" 201' in lines[-1]
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate
