"""What static_bench.py serves: the files, the JSON answer, and the peers' apps.

The site (made by `make_site` into ``$BENCH_SITE``)::

    small.bin   1 KiB        static, not compressible by type
    large.bin   10 MiB       static
    page.html   100 KiB      static HTML, compressed on the way (no .gz sibling)

and from the app: ``/api.json``, a JSON answer of about 20 KiB; ``/events``, a
server-sent-event stream of `EVENT_COUNT` events of about 100 bytes, each its own
body message, sent as fast as the server takes them; ``/ticks?n=N&ms=M``, N events
one every M milliseconds, each carrying the server's ``time.monotonic()`` at the
moment it was handed to the server (stream_latency.py reads it on the client).

`app` is what Pounce runs (``--static /s=$BENCH_SITE --compression``: its own
layers serve /s/ and compress); `starlette_app` is Starlette's StaticFiles at
/s, a JSONResponse-like route and two StreamingResponse routes under
GZipMiddleware, what Uvicorn runs. Both are asked to compress event streams,
which each skips by default (Pounce ``--compression-event-stream``, Starlette
``exclude_content_types`` without it). nginx serves the same files and
``api.json`` as a file (it has no app, so no stream).
"""

from __future__ import annotations

import asyncio
import inspect
import json
import os
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

SMALL = bytes(range(256)) * 4  # 1 KiB
LARGE = bytes(range(256)) * 4096 * 10  # 10 MiB
PAGE = b"".join(
    b"<li class='row'>row %05d: pounce serves static files and compresses them</li>\n" % i
    for i in range(1340)
)  # ~100 KiB of HTML
API = json.dumps(
    [{"id": i, "name": f"item {i}", "tags": ["a", "b", "c"], "price": i * 1.25} for i in range(280)]
).encode()  # ~20 KiB of JSON
EVENT_COUNT = 100
EVENTS = [
    b'data: {"seq": %03d, "text": "pounce streams server-sent events, each one flushed"}\n\n' % i
    for i in range(EVENT_COUNT)
]  # ~85 B each
STREAM = b"".join(EVENTS)
FILES = {"small.bin": SMALL, "large.bin": LARGE, "page.html": PAGE, "api.json": API}
MINIMUM_SIZE = 500  # bytes: every server's compression threshold here
GZIP_LEVEL = 6  # every server's gzip level here (nginx's default is 1)
BROTLI_LEVEL = 4  # Pounce's defaults, named so the command lines say them
ZSTD_LEVEL = 3
_TICK_PAD = b"x" * 60


def tick(seq: int) -> bytes:
    """One paced event: its number and the server's monotonic clock (shared by every
    process on the machine), padded to about 100 bytes."""
    return b"data: %d %.6f %s\n\n" % (seq, time.monotonic(), _TICK_PAD)


def tick_params(query: bytes) -> tuple[int, float]:
    """(events, seconds between them) from ``n=..&ms=..``."""
    params = parse_qs(query.decode("latin-1"))
    return int(params.get("n", ["100"])[0]), float(params.get("ms", ["10"])[0]) / 1000


def make_site(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in FILES.items():
        path = directory / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)


_API_HEAD = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(API))]
_SSE_HEAD = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Pounce's app: only /api.json (its static layer answers /s/)."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/api.json":
        await send({"type": "http.response.start", "status": 200, "headers": _API_HEAD})
        await send({"type": "http.response.body", "body": API})
        return
    if scope["path"] in ("/events", "/ticks"):
        await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEAD})
        if scope["path"] == "/events":
            for event in EVENTS:
                await send({"type": "http.response.body", "body": event, "more_body": True})
        else:
            count, interval = tick_params(scope["query_string"])
            for seq in range(count):
                await asyncio.sleep(interval)
                body = tick(seq)
                await send({"type": "http.response.body", "body": body, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.responses import Response, StreamingResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def api(request: Any) -> Response:
        return Response(API, media_type="application/json")

    async def events(request: Any) -> StreamingResponse:
        async def body() -> Any:
            for event in EVENTS:
                yield event

        return StreamingResponse(body(), media_type="text/event-stream")

    async def ticks(request: Any) -> StreamingResponse:
        count, interval = tick_params(request.scope["query_string"])

        async def body() -> Any:
            for seq in range(count):
                await asyncio.sleep(interval)
                yield tick(seq)

        return StreamingResponse(body(), media_type="text/event-stream")

    site = os.environ.get("BENCH_SITE", "site")
    routes = [
        Route("/api.json", api),
        Route("/events", events),
        Route("/ticks", ticks),
        Mount("/s", StaticFiles(directory=site)),
    ]
    options: dict[str, Any] = {"minimum_size": MINIMUM_SIZE, "compresslevel": GZIP_LEVEL}
    if "exclude_content_types" in inspect.signature(GZipMiddleware).parameters:
        options["exclude_content_types"] = ()  # compress text/event-stream too
    gzip = Middleware(GZipMiddleware, **options)
    return Starlette(routes=routes, middleware=[gzip])


def __getattr__(name: str) -> Any:
    if (
        name == "starlette_app"
    ):  # built on import by uvicorn only (Pounce's side needs no Starlette)
        return _starlette()
    raise AttributeError(name)
