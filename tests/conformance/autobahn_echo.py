"""The echo app the Autobahn cases run against (`test_autobahn`), served in a subprocess.

Every WebSocket on every path is accepted and each message is sent back as it
came, text as text and binary as binary; plain HTTP gets a one-line answer, so
the test can tell the server is up.
"""

from __future__ import annotations

from pounce.asgi.types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"autobahn echo\n"})
        return
    if scope["type"] != "websocket":
        return
    await receive()  # websocket.connect
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return  # websocket.disconnect
        await send(
            {"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")}
        )
