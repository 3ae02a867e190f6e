"""Recipe: an `AppLayer` that adds one header to every HTTP response.

The layer object is immutable configuration — the header's name and value —
and is shared by every worker. Everything per request lives in what `wrap`
returns: each request gets its own ``send`` wrapper, made inside the closure,
which touches only that request's ``http.response.start``.

Run it and look at the headers::

    python recipes/add_header.py
    curl -i http://127.0.0.1:8000/     # ... x-served-by: pounce-recipe

The app sees nothing of this: the header is added on the way out.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pounce import AppLayer, BuildError, Server
from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.demo import app as demo_app

_BAD_NAME = frozenset(b" \t\r\n\0:")  # RFC 9110 §5.1: a field name is a token
_BAD_VALUE = frozenset(b"\r\n\0")  # RFC 9110 §5.5: CR, LF and NUL would split the head


@dataclass(frozen=True, slots=True)
class AddHeader(AppLayer):
    """Append ``name: value`` to every HTTP response; `name` is lower-cased."""

    name: bytes
    value: bytes

    def __post_init__(self) -> None:
        if not self.name or _BAD_NAME.intersection(self.name):
            raise BuildError(f"AddHeader({self.name!r}, ...): not a valid header name")
        if _BAD_VALUE.intersection(self.value):
            raise BuildError(f"AddHeader(..., {self.value!r}): CR, LF and NUL are not allowed")
        object.__setattr__(self, "name", self.name.lower())

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        header = (self.name, self.value)  # read once, at build: the layer never changes

        async def with_header(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":  # lifespan, websocket: pass through untouched
                await inner(scope, receive, send)
                return

            async def send_with_header(message: Message) -> None:  # one per request
                if message["type"] == "http.response.start":
                    headers = [*message.get("headers", ()), header]
                    message = {**message, "headers": headers}  # never mutate the app's dict
                await send(message)

            await inner(scope, receive, send_with_header)

        return with_header

    def describe(self) -> str:
        return f"add header {self.name.decode('latin-1')}: {self.value.decode('latin-1')}"


def build_server(host: str = "127.0.0.1", port: int = 8000) -> Server:
    """The demo app behind `AddHeader`, over HTTP/1.1."""
    return (
        Server.builder()
        .bind(host, port)
        .h1()
        .layer(AddHeader(b"x-served-by", b"pounce-recipe"))
        .asgi(demo_app)
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")
    server = build_server()
    print(server.describe())
    server.run()


if __name__ == "__main__":
    main()
