"""The app the TLS and proxy tests serve (also loaded by name by the CLI tests)."""

from __future__ import annotations

import json

from pounce.asgi.types import Receive, Scope, Send


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with what the server told it about the connection, as JSON."""
    if scope["type"] != "http":
        return
    tls = scope.get("extensions", {}).get("tls")
    body = {
        "scheme": scope["scheme"],
        "client": scope["client"],
        "server": scope["server"],
        "path": scope["path"],
        "root_path": scope["root_path"],
        "host": next((v.decode() for n, v in scope["headers"] if n == b"host"), None),
        "tls": tls,
    }
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"application/json")],
        }
    )
    await send({"type": "http.response.body", "body": json.dumps(body).encode()})
