"""One small app per framework, each answering the same routes, for the framework matrix.

Every `Site` serves:

* ``GET /items/{item_id}?q=`` → ``{"item_id": int, "q": str | null}`` (routing, path
  and query parameters);
* ``POST /echo`` (JSON) → ``{"got": <the JSON>}``;
* ``POST /count`` → the number of request-body bytes, read as a stream;
* ``GET /stream`` → ``line 0\\n`` … ``line 4\\n``, a streamed response;
* ``GET /crash`` → an unhandled exception in the app (the framework's 500);
* ``POST /upload`` (multipart, field ``file``) → ``{"name": …, "size": …}``;
* ``GET /events?key=K`` → server-sent events: ``data: 0``, then — only once
  ``POST /ack?key=K`` has come — ``data: 1`` and the end (so a server or
  layer that held the stream back would hang the test, not pass it);
* ``GET /forever`` → a body streamed until the client leaves;
* ``GET /background`` → ``later``, then a background task sets
  ``background_done`` (not Django: it has no background tasks);
* ``GET /state`` → ``{"greeting": …}`` set by the framework's lifespan startup
  (not Django: it has no lifespan protocol);
* ``/ws`` → a WebSocket that echoes each message back.

``events`` records the lifespan's ``startup`` and ``shutdown``. The Django site
is the project in ``recipes/djangosite`` (Django views, Channels for
WebSocket). FastAPI and Starlette sites carry more routes, tested on their own
in test_frameworks.py.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import BackgroundTasks, FastAPI, Request, UploadFile, WebSocket
from fastapi.responses import JSONResponse, StreamingResponse
from litestar import Litestar, get, post, websocket_listener
from litestar import Request as LitestarRequest
from litestar.background_tasks import BackgroundTask as LitestarTask
from litestar.datastructures import State
from litestar.datastructures import UploadFile as LitestarUpload
from litestar.enums import RequestEncodingType
from litestar.params import Body, FromPath, FromQuery, JSONBody
from litestar.response import Response as LitestarResponse
from litestar.response import ServerSentEvent, Stream
from pydantic import BaseModel
from quart import Quart, websocket
from quart import request as quart_request
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.datastructures import UploadFile as StarletteUpload
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse, Response
from starlette.responses import StreamingResponse as StarletteStreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.websockets import WebSocket as StarletteWebSocket

from pounce.asgi.types import ASGIApp

RECIPES = Path(__file__).resolve().parents[2] / "recipes"
GREETING = "hello from lifespan"


@dataclass
class Site:
    """A framework's app and what its lifespan and background tasks did."""

    framework: str
    app: ASGIApp
    events: list[str] = field(default_factory=list)
    lifespan: bool = True  # the framework runs ASGI lifespan startup/shutdown
    websocket: str = ""  # what serves /ws, when not the framework itself
    background: bool = True  # the framework runs background tasks after a response
    background_done: threading.Event = field(default_factory=threading.Event)


async def numbered_lines() -> AsyncIterator[str]:
    for i in range(5):
        yield f"line {i}\n"


GATES: dict[str, asyncio.Event] = {}  # /events waits on GATES[key] until /ack opens it


def gate(key: str) -> asyncio.Event:
    return GATES.setdefault(key, asyncio.Event())


async def acked_values(key: str) -> AsyncIterator[str]:
    yield "0"
    await gate(key).wait()
    yield "1"


async def server_sent_events(key: str) -> AsyncIterator[str]:
    async for value in acked_values(key):
        yield f"data: {value}\n\n"


async def until_the_client_leaves() -> AsyncIterator[bytes]:
    for _ in range(5000):  # at most about a minute
        yield b"tick\n" * 100
        await asyncio.sleep(0.01)


class TeapotError(Exception):
    pass


# -- FastAPI -----------------------------------------------------------------------------------


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def fastapi_site() -> Site:
    site = Site("FastAPI", FastAPI())

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        site.events.append("startup")
        yield {"greeting": GREETING}
        site.events.append("shutdown")

    app = site.app = FastAPI(lifespan=lifespan)

    @app.exception_handler(TeapotError)
    async def teapot_handler(request: Request, exc: TeapotError) -> JSONResponse:
        return JSONResponse({"detail": f"teapot: {exc}"}, status_code=418)

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/items", status_code=201)
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "double": item.price * 2, "tags": item.tags}

    @app.post("/echo")
    async def echo(request: Request) -> dict[str, Any]:
        return {"got": await request.json()}

    @app.post("/count")
    async def count(request: Request) -> Response:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return PlainTextResponse(str(total))

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        return StreamingResponse(numbered_lines(), media_type="text/plain")

    @app.get("/state")
    async def state(request: Request) -> dict[str, Any]:
        return {"greeting": request.state.greeting}

    @app.get("/teapot")
    async def teapot() -> None:
        raise TeapotError("short and stout")

    @app.get("/crash")
    async def crash() -> None:
        raise RuntimeError("unhandled in a route")

    @app.get("/where")
    async def where(request: Request) -> dict[str, Any]:
        return {"url": str(request.url), "root_path": request.scope["root_path"]}

    @app.post("/upload")
    async def upload(file: UploadFile) -> dict[str, Any]:
        return {"name": file.filename, "size": len(await file.read())}

    @app.get("/events")
    async def events(key: str) -> StreamingResponse:
        return StreamingResponse(server_sent_events(key), media_type="text/event-stream")

    @app.post("/ack")
    async def ack(key: str) -> Response:
        gate(key).set()
        return PlainTextResponse("ok")

    @app.get("/forever")
    async def forever() -> StreamingResponse:
        return StreamingResponse(until_the_client_leaves())

    @app.get("/background")
    async def background(tasks: BackgroundTasks) -> Response:
        tasks.add_task(site.background_done.set)
        return PlainTextResponse("later")

    @app.websocket("/ws")
    async def ws_echo(ws: WebSocket) -> None:
        await ws.accept()
        async for message in ws.iter_text():
            await ws.send_text(message)

    return site


# -- Starlette -------------------------------------------------------------------------------


def starlette_site() -> Site:
    site = Site("Starlette", Starlette())

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[dict[str, Any]]:
        site.events.append("startup")
        yield {"greeting": GREETING}
        site.events.append("shutdown")

    async def home(request: StarletteRequest) -> Response:
        return PlainTextResponse("home")

    async def user(request: StarletteRequest) -> Response:
        return PlainTextResponse(f"user {request.path_params['name']}")

    async def item(request: StarletteRequest) -> Response:
        found = {"item_id": request.path_params["item_id"], "q": request.query_params.get("q")}
        return Response(json.dumps(found), media_type="application/json")

    async def echo(request: StarletteRequest) -> Response:
        data = await request.json()
        return Response(json.dumps({"got": data}), media_type="application/json")

    async def count(request: StarletteRequest) -> Response:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return PlainTextResponse(str(total))

    async def stream(request: StarletteRequest) -> Response:
        return StarletteStreamingResponse(numbered_lines(), media_type="text/plain")

    async def state(request: StarletteRequest) -> Response:
        return Response(
            json.dumps({"greeting": request.state.greeting}), media_type="application/json"
        )

    async def teapot(request: StarletteRequest) -> Response:
        raise TeapotError("starlette")

    async def teapot_handler(request: StarletteRequest, exc: Exception) -> Response:
        return PlainTextResponse(f"handled {exc}", status_code=418)

    async def crash(request: StarletteRequest) -> Response:
        raise RuntimeError("unhandled in a route")

    async def background(request: StarletteRequest) -> Response:
        return PlainTextResponse("later", background=BackgroundTask(site.background_done.set))

    async def where(request: StarletteRequest) -> Response:
        scope = request.scope
        return Response(
            json.dumps({"path": scope["path"], "root_path": scope["root_path"]}),
            media_type="application/json",
        )

    async def ws_echo(ws: StarletteWebSocket) -> None:
        await ws.accept()
        async for message in ws.iter_text():
            await ws.send_text(message)

    async def upload(request: StarletteRequest) -> Response:
        async with request.form(max_part_size=8 * 1024 * 1024) as form:
            file = form["file"]
            assert isinstance(file, StarletteUpload)
            found = {"name": file.filename, "size": len(await file.read())}
        return Response(json.dumps(found), media_type="application/json")

    async def events(request: StarletteRequest) -> Response:
        key = request.query_params["key"]
        return StarletteStreamingResponse(server_sent_events(key), media_type="text/event-stream")

    async def ack(request: StarletteRequest) -> Response:
        gate(request.query_params["key"]).set()
        return PlainTextResponse("ok")

    async def forever(request: StarletteRequest) -> Response:
        return StarletteStreamingResponse(until_the_client_leaves())

    site.app = Starlette(
        routes=[
            Route("/", home),
            Route("/users/{name}", user),
            Route("/items/{item_id:int}", item),
            Route("/echo", echo, methods=["POST"]),
            Route("/count", count, methods=["POST"]),
            Route("/stream", stream),
            Route("/state", state),
            Route("/teapot", teapot),
            Route("/crash", crash),
            Route("/background", background),
            Route("/upload", upload, methods=["POST"]),
            Route("/events", events),
            Route("/ack", ack, methods=["POST"]),
            Route("/forever", forever),
            Mount("/sub", routes=[Route("/where", where)]),
            WebSocketRoute("/ws", ws_echo),
        ],
        exception_handlers={TeapotError: teapot_handler},
        lifespan=lifespan,
    )
    return site


# -- Litestar --------------------------------------------------------------------------------
# Litestar reads handler signatures (with their annotations resolved in this module), so
# the handlers live at module level; only the lifespan hooks close over the site.


@get("/items/{item_id:int}")
async def litestar_item(item_id: FromPath[int], q: FromQuery[str | None] = None) -> dict[str, Any]:
    return {"item_id": item_id, "q": q}


@post("/echo", status_code=200)
async def litestar_echo(data: JSONBody[Any]) -> dict[str, Any]:
    return {"got": data}


@post("/count", status_code=200)
async def litestar_count(request: LitestarRequest[Any, Any, Any]) -> str:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
    return str(total)


@get("/stream")
async def litestar_stream() -> Stream:
    return Stream(numbered_lines(), media_type="text/plain")


@get("/state")
async def litestar_state(state: State) -> dict[str, Any]:
    return {"greeting": state.greeting}


@get("/crash")
async def litestar_crash() -> None:
    raise RuntimeError("unhandled in a route")


@websocket_listener("/ws")
async def litestar_ws(data: str) -> str:
    return data


@post("/upload", status_code=200)
async def litestar_upload(
    data: Annotated[LitestarUpload, Body(media_type=RequestEncodingType.MULTI_PART)],
) -> dict[str, Any]:
    return {"name": data.filename, "size": len(await data.read())}


@get("/events")
async def litestar_events(key: FromQuery[str]) -> ServerSentEvent:
    return ServerSentEvent(acked_values(key))


@post("/ack", status_code=200)
async def litestar_ack(key: FromQuery[str]) -> str:
    gate(key).set()
    return "ok"


@get("/forever")
async def litestar_forever() -> Stream:
    return Stream(until_the_client_leaves())


@get("/background")
async def litestar_background(state: State) -> LitestarResponse[str]:
    return LitestarResponse("later", background=LitestarTask(state.site.background_done.set))


def litestar_site() -> Site:
    site = Site("Litestar", Starlette())

    def startup(app: Litestar) -> None:
        site.events.append("startup")
        app.state.greeting = GREETING

    def shutdown(app: Litestar) -> None:
        site.events.append("shutdown")

    handlers = [litestar_item, litestar_echo, litestar_count, litestar_stream, litestar_state]
    more = [litestar_upload, litestar_events, litestar_ack, litestar_forever, litestar_background]
    site.app = Litestar(
        route_handlers=[*handlers, *more, litestar_crash, litestar_ws],
        state=State({"site": site}),
        on_startup=[startup],
        on_shutdown=[shutdown],
        logging_config=None,  # its default configures the root logger: every later test's too
    )
    return site


# -- Quart -----------------------------------------------------------------------------------


def quart_site() -> Site:
    app = Quart("quart_site")
    site = Site("Quart", app)

    @app.before_serving
    async def startup() -> None:
        site.events.append("startup")
        app.config["GREETING"] = GREETING

    @app.after_serving
    async def shutdown() -> None:
        site.events.append("shutdown")

    @app.get("/items/<int:item_id>")
    async def item(item_id: int) -> dict[str, Any]:
        return {"item_id": item_id, "q": quart_request.args.get("q")}

    @app.post("/echo")
    async def echo() -> dict[str, Any]:
        return {"got": await quart_request.get_json()}

    @app.post("/count")
    async def count() -> str:
        total = 0
        async for chunk in quart_request.body:
            total += len(chunk)
        return str(total)

    @app.get("/stream")
    async def stream() -> tuple[AsyncIterator[str], int, dict[str, str]]:
        return numbered_lines(), 200, {"content-type": "text/plain"}

    @app.get("/state")
    async def state() -> dict[str, Any]:
        return {"greeting": app.config["GREETING"]}

    @app.get("/crash")
    async def crash() -> str:
        raise RuntimeError("unhandled in a route")

    @app.websocket("/ws")
    async def ws_echo() -> None:
        while True:
            await websocket.send(await websocket.receive())

    @app.post("/upload")
    async def upload() -> dict[str, Any]:
        file = (await quart_request.files)["file"]
        return {"name": file.filename, "size": len(file.read())}

    @app.get("/events")
    async def events() -> tuple[AsyncIterator[str], int, dict[str, str]]:
        key = quart_request.args["key"]
        return server_sent_events(key), 200, {"content-type": "text/event-stream"}

    @app.post("/ack")
    async def ack() -> str:
        gate(quart_request.args["key"]).set()
        return "ok"

    @app.get("/forever")
    async def forever() -> tuple[AsyncIterator[bytes], int]:
        return until_the_client_leaves(), 200

    @app.get("/background")
    async def background() -> str:
        app.add_background_task(site.background_done.set)
        return "later"

    return site


# -- Django ----------------------------------------------------------------------------------


def django_site() -> Site:
    """recipes/djangosite: Django's ASGI handler for HTTP, Channels for WebSocket."""
    if str(RECIPES) not in sys.path:
        sys.path.insert(0, str(RECIPES))
    from djangosite.asgi import application

    return Site("Django", application, lifespan=False, websocket="Channels", background=False)


SITES: dict[str, Callable[[], Site]] = {
    "django": django_site,
    "fastapi": fastapi_site,
    "litestar": litestar_site,
    "quart": quart_site,
    "starlette": starlette_site,
}
