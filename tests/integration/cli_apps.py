"""Apps the CLI tests load by name (``--app-dir tests/integration``)."""

from __future__ import annotations

import asyncio
import gc
import os
from typing import Any

from pounce.asgi.types import ASGIApp, Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                scope["state"]["greeting"] = "hi"
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                print("lifespan shutdown ran", flush=True)
                return
    if scope["type"] != "http":
        return
    if scope["path"] == "/slow":
        await asyncio.sleep(1.0)
    if scope["path"] == "/boom":
        raise RuntimeError("boom")
    if scope["path"] in ("/gc-frozen", "/pid"):
        number = gc.get_freeze_count() if scope["path"] == "/gc-frozen" else os.getpid()
        body = str(number).encode()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})
        return
    greeting = scope.get("state", {}).get("greeting", "none")
    body = f"{greeting} {scope['path']}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def failing_startup(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "lifespan":
        await receive()
        await send({"type": "lifespan.startup.failed", "message": "database unreachable"})


def create_app() -> ASGIApp:
    async def made(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"from factory"})

    return made


not_callable: Any = 42
