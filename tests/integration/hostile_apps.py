"""The app the hostile-client tests serve (loaded by name by the CLI there too).

``/`` answers ``hello``; ``/16k`` 16 KiB in one body message (the
final one, which a server may write without waiting); ``/upload`` reads
the whole body and answers its size; ``/stream`` streams 8 MiB in 16 KiB
chunks (each send waits for drain, as every ASGI send does); a WebSocket
is accepted and then never read, so pings are the only thing the server
answers.
"""

from __future__ import annotations

import asyncio

from pounce.asgi.types import Receive, Scope, Send

CHUNK = b"x" * 16384
STREAM_CHUNKS = 512  # 8 MiB


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        await asyncio.sleep(3600)  # never reads: pings are all the server answers
        return
    path = scope["path"]
    if path == "/upload":
        size = 0
        while True:
            message = await receive()
            size += len(message.get("body", b""))
            if not message.get("more_body"):
                break
        await _plain(send, b"%d" % size)
    elif path == "/16k":
        await _plain(send, CHUNK)
    elif path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(STREAM_CHUNKS):
            await send({"type": "http.response.body", "body": CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    else:
        await _plain(send, b"hello")


async def _plain(send: Send, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))],
        }
    )
    await send({"type": "http.response.body", "body": body})
