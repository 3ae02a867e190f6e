"""The ASGI app every server runs in the benchmarks; the path picks the scenario.

    GET  /hello    13 bytes, "Hello, world!"
    GET  /receive  the same, after awaiting ``receive()`` once, as framework request objects do
    GET  /64k      a 64 KiB body with Content-Length
    GET  /1m       a 1 MiB body with Content-Length, in one message (the HTTP/2 download)
    POST /upload   reads the whole request body, answers its length in bytes
    GET  /stream   100 chunks of 1 KiB, each its own ``more_body`` message
    GET  /work     a fixed service time: 10 ms of ``await asyncio.sleep`` (the overload scenario)
    GET  /cpu      a fixed amount of CPU work, `CPU_ROUNDS` SHA-256 rounds (the overload scenario)
    WS   /ws       WebSocket echo: every message sent back as it came

Standard library only, and as little work per request as an app can do, so the
numbers measure the server. The run harness imports the same constants to
check every response before timing it. The Starlette and FastAPI apps of the
framework scenarios are in ``framework_apps.py`` (not imported here, so the
lean app's memory reading stays free of them); their answers are
``HELLO_BODY`` and ``JSON_BODY``.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO_BODY = b"Hello, world!"
LARGE_BODY = bytes(range(256)) * 256  # 64 KiB; a pattern, so reordering shows
MIB_BODY = bytes(range(256)) * 4096  # 1 MiB
STREAM_CHUNK = b"0123456789abcdef" * 64  # 1 KiB
STREAM_CHUNKS = 100
STREAM_BODY = STREAM_CHUNK * STREAM_CHUNKS
UPLOAD_SIZE = 1024 * 1024
JSON_MESSAGE = {"message": "Hello, world!"}
JSON_BODY = b'{"message":"Hello, world!"}'  # what Starlette's JSONResponse renders
SERVICE_S = 0.010  # seconds /work waits
CPU_ROUNDS = 2000  # SHA-256 rounds /cpu computes: about a millisecond of CPU

_TEXT = (b"content-type", b"text/plain")
_OCTETS = (b"content-type", b"application/octet-stream")


# Messages are built per request: a server may keep or change what it is given.
def _start(headers: list[tuple[bytes, bytes]], status: int = 200) -> Message:
    return {"type": "http.response.start", "status": status, "headers": headers}


def _body(body: bytes, more: bool = False) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": more}


_HELLO_LENGTH = (b"content-length", str(len(HELLO_BODY)).encode())
_LARGE_LENGTH = (b"content-length", str(len(LARGE_BODY)).encode())
_MIB_LENGTH = (b"content-length", str(len(MIB_BODY)).encode())


async def hello(receive: Receive, send: Send) -> None:
    await send(_start([_TEXT, _HELLO_LENGTH]))
    await send(_body(HELLO_BODY))


async def hello_after_receive(receive: Receive, send: Send) -> None:
    """A GET whose app reads the (empty) body first, as a framework's request object does."""
    message = await receive()
    if message["type"] != "http.request":
        return  # the client went away
    await hello(receive, send)


async def large(receive: Receive, send: Send) -> None:
    await send(_start([_OCTETS, _LARGE_LENGTH]))
    await send(_body(LARGE_BODY))


async def download(receive: Receive, send: Send) -> None:
    await send(_start([_OCTETS, _MIB_LENGTH]))
    await send(_body(MIB_BODY))


async def upload(receive: Receive, send: Send) -> None:
    total = 0
    more = True
    while more:
        message = await receive()
        if message["type"] != "http.request":
            return  # the client went away
        total += len(message.get("body", b""))
        more = message.get("more_body", False)
    answer = str(total).encode()
    await send(_start([_TEXT, (b"content-length", str(len(answer)).encode())]))
    await send(_body(answer))


async def stream(receive: Receive, send: Send) -> None:
    await send(_start([_OCTETS]))
    for _ in range(STREAM_CHUNKS):
        await send(_body(STREAM_CHUNK, more=True))
    await send(_body(b""))


async def work(receive: Receive, send: Send) -> None:
    await asyncio.sleep(SERVICE_S)
    await hello(receive, send)


def cpu_work() -> bytes:
    digest = b"pounce"
    for _ in range(CPU_ROUNDS):
        digest = hashlib.sha256(digest).digest()
    return digest


async def cpu(receive: Receive, send: Send) -> None:
    cpu_work()
    await hello(receive, send)


async def not_found(receive: Receive, send: Send) -> None:
    await send(_start([_TEXT, (b"content-length", b"9")], status=404))
    await send(_body(b"not found"))


ROUTES: dict[str, Callable[[Receive, Send], Awaitable[None]]] = {
    "/hello": hello,
    "/receive": hello_after_receive,
    "/64k": large,
    "/1m": download,
    "/upload": upload,
    "/stream": stream,
    "/work": work,
    "/cpu": cpu,
}


async def lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def ws_echo(receive: Receive, send: Send) -> None:
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        await send(
            {"type": "websocket.send", "bytes": message.get("bytes"), "text": message.get("text")}
        )


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await ROUTES.get(scope["path"], not_found)(receive, send)
    elif scope["type"] == "websocket":
        await ws_echo(receive, send)
    elif scope["type"] == "lifespan":
        await lifespan(receive, send)
