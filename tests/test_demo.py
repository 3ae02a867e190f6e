"""The demo app (`pounce.demo`), driven through a real Pounce server with httpx."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
from collections.abc import Iterator

import httpx
import pytest

from pounce import Server
from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.demo import (
    DEFAULT_DOWNLOAD_SIZE,
    MAX_DOWNLOAD_SIZE,
    MAX_ECHO_SIZE,
    DemoApp,
    app,
    download_size,
)
from pounce.testing import TestServer

TIMEOUT = 5.0  # seconds, for every network wait


def _server(asgi_app: ASGIApp) -> Server:
    return Server.builder().bind("127.0.0.1", 0).h1().lifespan("on").asgi(asgi_app)


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    with TestServer(_server(DemoApp(tick=0.01, ticks=3))) as ts:
        yield ts


@pytest.fixture
def client(server: TestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as c:
        yield c


def test_module_app_is_the_default_demo() -> None:
    assert isinstance(app, DemoApp)
    assert (app.tick, app.ticks) == (1.0, 5)


# -- / and /json ---------------------------------------------------------------------


def test_page_shows_the_request(client: httpx.Client) -> None:
    r = client.get("/?q=1", headers={"x-demo": "hello"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert r.headers["x-content-type-options"] == "nosniff"
    assert "script-src" not in r.headers["content-security-policy"]  # default-src 'none'
    for text in ("<td>GET</td>", "<td>q=1</td>", "<th>x-demo</th><td>hello</td>", "<td>1.1</td>"):
        assert text in r.text
    for href in ("/json", "/stream", "/download"):
        assert f'href="{href}' in r.text


def test_page_escapes_a_malicious_header(client: httpx.Client) -> None:
    evil = '<script>alert("x")</script>\'"><img src=x onerror=alert(1)>'
    r = client.get("/", headers={"x-evil": evil})
    assert "<script>" not in r.text
    assert "<img" not in r.text
    assert "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&#x27;&quot;&gt;" in r.text


def test_404_escapes_the_path(client: httpx.Client) -> None:
    r = client.get("/%3Cimg%20src=x%20onerror=alert(1)%3E")
    assert r.status_code == 404
    assert r.headers["content-type"] == "text/html; charset=utf-8"
    assert "<img" not in r.text
    assert "&lt;img src=x onerror=alert(1)&gt;" in r.text


def test_head_page_has_no_body(client: httpx.Client) -> None:
    r = client.head("/")
    assert r.status_code == 200
    assert r.content == b""
    assert int(r.headers["content-length"]) > 0


def test_json_describes_the_request(server: TestServer, client: httpx.Client) -> None:
    r = client.get("/json?a=1&b=%3C", headers={"x-demo": "1"})
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    info = r.json()
    assert info["method"] == "GET"
    assert info["path"] == "/json"
    assert info["query"] == "a=1&b=%3C"
    assert info["http_version"] == "1.1"
    assert info["scheme"] == "http"
    assert info["client"].startswith("127.0.0.1:")
    assert info["server"] == f"{server.host}:{server.port}"
    assert ["x-demo", "1"] in info["headers"]


# -- /stream -------------------------------------------------------------------------------


def _events(text: str) -> list[dict[str, str]]:
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.split("\n"))
        events.append(fields)
    return events


def test_stream_sends_ticks_then_done(client: httpx.Client) -> None:
    with client.stream("GET", "/stream") as r:
        assert r.headers["content-type"] == "text/event-stream"
        assert r.headers["cache-control"] == "no-cache"
        text = r.read().decode()
    events = _events(text)
    assert [e["event"] for e in events] == ["tick", "tick", "tick", "done"]
    assert [e.get("id") for e in events] == ["1", "2", "3", None]
    assert json.loads(events[2]["data"]) == {"n": 3, "of": 3}


def test_stream_stops_when_the_client_leaves() -> None:
    finished = threading.Event()
    demo = DemoApp(tick=60.0)  # the next tick would come long after the test's timeout

    async def watched(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await demo(scope, receive, send)
        finally:
            if scope["type"] == "http":
                finished.set()

    with TestServer(_server(watched)) as ts:
        with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nhost: demo\r\n\r\n")
            received = b""
            while b"event: tick" not in received:
                chunk = sock.recv(4096)
                assert chunk, "closed before the first tick"
                received += chunk
        assert finished.wait(TIMEOUT), "the stream kept going after the client left"


def test_stream_refuses_post(client: httpx.Client) -> None:
    r = client.post("/stream")
    assert r.status_code == 405
    assert r.headers["allow"] == "GET"


# -- /download ----------------------------------------------------------------------------


def test_download_has_the_asked_size(client: httpx.Client) -> None:
    r = client.get("/download", params={"size": 1_000_001})
    assert r.status_code == 200
    assert r.headers["content-length"] == "1000001"
    assert r.headers["content-type"] == "application/octet-stream"
    assert r.headers["content-disposition"] == 'attachment; filename="pounce-demo-1000001.bin"'
    assert r.content == bytes(1_000_001)


def test_download_defaults_to_10_mib(client: httpx.Client) -> None:
    with client.stream("GET", "/download") as r:
        size = sum(len(chunk) for chunk in r.iter_raw())
    assert size == DEFAULT_DOWNLOAD_SIZE == 10 * 1024 * 1024
    assert r.headers["content-length"] == str(size)


@pytest.mark.parametrize("size", [0, 1, 65536, 65537])
def test_download_edge_sizes(client: httpx.Client, size: int) -> None:
    r = client.get(f"/download?size={size}")
    assert len(r.content) == size
    assert r.headers["content-length"] == str(size)


def test_head_download_sends_only_the_length(client: httpx.Client) -> None:
    r = client.head("/download")
    assert r.headers["content-length"] == str(DEFAULT_DOWNLOAD_SIZE)
    assert r.content == b""


@pytest.mark.parametrize(
    "query", ["size=abc", "size=-1", "size=1e3", f"size={MAX_DOWNLOAD_SIZE + 1}"]
)
def test_download_rejects_bad_sizes(client: httpx.Client, query: str) -> None:
    assert client.get(f"/download?{query}").status_code == 400


def test_download_size_parsing() -> None:
    assert download_size(b"") == DEFAULT_DOWNLOAD_SIZE
    assert download_size(b"size=42") == 42
    assert download_size(b"size=%201%20") == 1
    assert download_size(f"size={MAX_DOWNLOAD_SIZE}".encode()) == MAX_DOWNLOAD_SIZE
    assert download_size(b"size=" + b"9" * 40) is None


# -- /echo --------------------------------------------------------------------------------


def test_echo_returns_the_body(client: httpx.Client) -> None:
    body = bytes(range(256)) * 100
    r = client.post("/echo", content=body)
    assert r.status_code == 200
    assert r.content == body
    assert r.headers["x-content-type-options"] == "nosniff"


def test_echo_streams_a_chunked_body(client: httpx.Client) -> None:
    r = client.post("/echo", content=iter([b"one ", b"two ", b"three"]))
    assert r.text == "one two three"


def test_echo_refuses_a_body_past_its_limit(client: httpx.Client) -> None:
    r = client.post("/echo", content=bytes(MAX_ECHO_SIZE + 1))
    assert r.status_code == 413


def test_echo_wants_post(client: httpx.Client) -> None:
    r = client.get("/echo")
    assert r.status_code == 405
    assert r.headers["allow"] == "POST"


# -- lifespan and other scopes -------------------------------------------------------------


def test_lifespan_completes_startup_and_shutdown() -> None:
    async def scenario() -> list[Message]:
        inbox: asyncio.Queue[Message] = asyncio.Queue()
        sent: list[Message] = []
        for kind in ("lifespan.startup", "lifespan.shutdown"):
            inbox.put_nowait({"type": kind})

        async def send(message: Message) -> None:
            sent.append(message)

        scope: Scope = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        await asyncio.wait_for(app(scope, inbox.get, send), TIMEOUT)
        return sent

    sent = asyncio.run(scenario())
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
