"""What the backpressure layer tests share: a held app, raw HTTP/1.1 clients, a server."""

from __future__ import annotations

import asyncio
import socket
import threading
import time

from pounce import Server, ServerBuilder
from pounce.asgi.types import Receive, Scope, Send

TIMEOUT = 5.0  # seconds, for every network wait


class HeldApp:
    """Records each request's path as it enters; paths under /hold wait for `release`."""

    def __init__(self) -> None:
        self.entered: list[str] = []
        self.release = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            return  # lifespan "auto" tolerates it
        self.entered.append(scope["path"])
        if scope["type"] == "websocket":
            await receive()  # websocket.connect
            await send({"type": "websocket.accept"})
            while (await receive())["type"] != "websocket.disconnect":
                pass
            return
        if scope["path"].startswith("/hold"):
            deadline = time.monotonic() + 10 * TIMEOUT
            while not self.release.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)
        body = scope["path"].encode()
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


def builder() -> ServerBuilder:
    return Server.builder().bind("127.0.0.1", 0).h1()


def send_request(port: int, path: str, extra: bytes = b"") -> socket.socket:
    """A connection with one GET of `path` sent; read its answer with `read_response`."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(b"GET %s HTTP/1.1\r\nhost: test\r\n%s\r\n" % (path.encode(), extra))
    return sock


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """Status, headers (lower-case names) and body of one response with Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed before a response head: {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def wait_for(condition: object, what: str, timeout: float = TIMEOUT) -> None:
    """Poll `condition` (a callable) until true; AssertionError naming `what` after `timeout`."""
    assert callable(condition)
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)
