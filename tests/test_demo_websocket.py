"""The demo's WebSocket echo (``/websocket`` page, ``/ws`` socket) through a real server."""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterator

import httpx
import pytest
import websockets.exceptions
from websockets.sync.client import connect

from pounce import Server
from pounce.demo import MAX_WS_MESSAGE, DemoApp
from pounce.testing import TestServer

TIMEOUT = 5.0  # seconds, for every network wait


@pytest.fixture(scope="module")
def server() -> Iterator[TestServer]:
    built = Server.builder().bind("127.0.0.1", 0).h1().websocket().lifespan("on").asgi(DemoApp())
    with TestServer(built) as ts:
        yield ts


def test_page_script_is_allowed_by_its_hash_only(server: TestServer) -> None:
    response = httpx.get(server.url + "/websocket", timeout=TIMEOUT)
    assert response.status_code == 200
    csp = response.headers["content-security-policy"]
    script = re.search(r"<script>(.*)</script>", response.text, re.S)
    assert script is not None
    digest = base64.b64encode(hashlib.sha256(script[1].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "unsafe-inline'; connect-src" in csp  # styles only; the script goes by hash
    assert 'new WebSocket(scheme + location.host + "/ws")' in script[1]
    assert "innerHTML" not in script[1]


def test_ws_echoes_text_and_bytes(server: TestServer) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws"
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        ws.send("hello <b>")
        assert ws.recv(timeout=TIMEOUT) == "hello <b>"
        ws.send(b"\x00\x01")
        assert ws.recv(timeout=TIMEOUT) == b"\x00\x01"


def test_ws_refuses_other_paths(server: TestServer) -> None:
    with pytest.raises(websockets.exceptions.InvalidStatus) as info:
        connect(f"ws://127.0.0.1:{server.port}/other", open_timeout=TIMEOUT)
    assert info.value.response.status_code == 403


def test_ws_closes_1009_past_its_message_limit(server: TestServer) -> None:
    url = f"ws://127.0.0.1:{server.port}/ws"
    with connect(url, open_timeout=TIMEOUT, close_timeout=TIMEOUT) as ws:
        ws.send("x" * (MAX_WS_MESSAGE + 1))
        with pytest.raises(websockets.exceptions.ConnectionClosed):
            ws.recv(timeout=TIMEOUT)
        assert ws.close_code == 1009


def test_page_is_linked_from_the_index(server: TestServer) -> None:
    assert 'href="/websocket"' in httpx.get(server.url + "/", timeout=TIMEOUT).text
