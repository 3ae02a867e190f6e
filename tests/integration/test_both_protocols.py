"""Behaviour every HTTP version shares, run once per protocol through httpx.

The same `Exchange` serves HTTP/1.1 and HTTP/2, so what the app sees and what
the client gets must not depend on the wire.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer

TIMEOUT = 10.0  # seconds


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if path == "/fail":
        raise RuntimeError("boom")
    if path == "/unfinished":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        return
    headers = [(b"x-path", path.encode()), (b"x-query", scope["query_string"])]
    await send({"type": "http.response.start", "status": 201, "headers": headers})
    host = dict(scope["headers"]).get(b"host", b"")
    await send({"type": "http.response.body", "body": body + b"|" + host, "more_body": True})
    await send({"type": "http.response.body", "body": b"|end"})


@pytest.fixture(scope="module")
def url() -> Iterator[str]:
    server = Server.builder().bind("127.0.0.1", 0).h1().h2().timeouts(graceful_shutdown=2)
    with TestServer(server.asgi(app)) as ts:
        yield ts.url


@pytest.fixture(params=["HTTP/1.1", "HTTP/2"])
def client(request: pytest.FixtureRequest) -> Iterator[httpx.Client]:
    h2 = request.param == "HTTP/2"
    with httpx.Client(http1=not h2, http2=h2, timeout=TIMEOUT) as client:
        yield client


def test_status_headers_body_and_host(client: httpx.Client, url: str) -> None:
    response = client.post(url + "/p?a=1", content=b"data")
    assert response.status_code == 201
    assert response.headers["x-path"] == "/p" and response.headers["x-query"] == "a=1"
    host = url.removeprefix("http://")
    assert response.content == b"data|" + host.encode() + b"|end"
    assert response.headers["server"] == "pounce" and "date" in response.headers


def test_head_has_no_body(client: httpx.Client, url: str) -> None:
    response = client.head(url + "/h")
    assert response.status_code == 201 and response.content == b""


def test_app_error_is_a_500(client: httpx.Client, url: str) -> None:
    assert client.get(url + "/fail").status_code == 500


def test_unfinished_response_is_an_error(client: httpx.Client, url: str) -> None:
    assert client.get(url + "/unfinished").status_code == 500
    assert client.get(url + "/after").status_code == 201  # the server goes on
