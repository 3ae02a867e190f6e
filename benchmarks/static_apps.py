"""What static_bench.py serves: the files, the JSON answer, and the peers' apps.

The site (made by `make_site` into ``$BENCH_SITE``)::

    small.bin   1 KiB        static, not compressible by type
    large.bin   10 MiB       static
    page.html   100 KiB      static HTML, compressed on the way (no .gz sibling)

and ``/api.json``, a JSON answer of about 20 KiB made by the app.

`app` is what Pounce runs (``--static /s=$BENCH_SITE --compression``: its own
layers serve /s/ and compress); `starlette_app` is Starlette's StaticFiles at
/s and a JSONResponse-like route under GZipMiddleware, what Uvicorn runs.
nginx serves the same files and ``api.json`` as a file (it has no app).
"""

from __future__ import annotations

import json
import os
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

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
FILES = {"small.bin": SMALL, "large.bin": LARGE, "page.html": PAGE, "api.json": API}
MINIMUM_SIZE = 500  # bytes: every server's compression threshold here
GZIP_LEVEL = 6  # every server's gzip level here (nginx's default is 1)


def make_site(directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in FILES.items():
        path = directory / name
        if not path.exists() or path.read_bytes() != data:
            path.write_bytes(data)


_API_HEAD = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(API))]


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Pounce's app: only /api.json (its static layer answers /s/)."""
    if scope["type"] != "http":
        return
    if scope["path"] == "/api.json":
        await send({"type": "http.response.start", "status": 200, "headers": _API_HEAD})
        await send({"type": "http.response.body", "body": API})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _starlette() -> Any:
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.gzip import GZipMiddleware
    from starlette.responses import Response
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    async def api(request: Any) -> Response:
        return Response(API, media_type="application/json")

    site = os.environ.get("BENCH_SITE", "site")
    routes = [Route("/api.json", api), Mount("/s", StaticFiles(directory=site))]
    gzip = Middleware(GZipMiddleware, minimum_size=MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    return Starlette(routes=routes, middleware=[gzip])


def __getattr__(name: str) -> Any:
    if (
        name == "starlette_app"
    ):  # built on import by uvicorn only (Pounce's side needs no Starlette)
        return _starlette()
    raise AttributeError(name)
