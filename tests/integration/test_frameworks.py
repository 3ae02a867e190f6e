"""Real FastAPI and Starlette apps served by Pounce, driven with httpx.

Routing, path parameters, JSON bodies, streaming responses, lifespan state
(``yield {...}`` from the app's lifespan context → ``request.state``),
custom exception handlers, 404s, background tasks and ``root_path``.
"""

from __future__ import annotations

import json
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request as StarletteRequest
from starlette.responses import PlainTextResponse, Response
from starlette.responses import StreamingResponse as StarletteStreamingResponse
from starlette.routing import Mount, Route

from pounce import Server
from pounce.asgi.types import ASGIApp
from pounce.testing import TestServer

TIMEOUT = 5.0  # seconds for every network wait


class TeapotError(Exception):
    pass


def serve(app: ASGIApp, *, root_path: str = "") -> TestServer:
    server = Server.builder().bind("127.0.0.1", 0).h1().lifespan("on").root_path(root_path)
    return TestServer(server.asgi(app), timeout=TIMEOUT)


# -- FastAPI -----------------------------------------------------------------------------------


class Item(BaseModel):
    name: str
    price: float
    tags: list[str] = []


def make_fastapi(events: list[str]) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[dict[str, Any]]:
        events.append("startup")
        yield {"greeting": "hello from lifespan"}
        events.append("shutdown")

    app = FastAPI(lifespan=lifespan)

    @app.exception_handler(TeapotError)
    async def teapot_handler(request: Request, exc: TeapotError) -> JSONResponse:
        return JSONResponse({"detail": f"teapot: {exc}"}, status_code=418)

    @app.get("/items/{item_id}")
    async def read_item(item_id: int, q: str | None = None) -> dict[str, Any]:
        return {"item_id": item_id, "q": q}

    @app.post("/items", status_code=201)
    async def create_item(item: Item) -> dict[str, Any]:
        return {"name": item.name, "double": item.price * 2, "tags": item.tags}

    @app.get("/stream")
    async def stream() -> StreamingResponse:
        async def numbers() -> AsyncIterator[str]:
            for i in range(5):
                yield f"line {i}\n"

        return StreamingResponse(numbers(), media_type="text/plain")

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

    return app


@pytest.fixture(scope="module")
def fastapi_url() -> Iterator[str]:
    with serve(make_fastapi([])) as ts:
        yield ts.url


@pytest.fixture
def api(fastapi_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=fastapi_url, timeout=TIMEOUT) as client:
        yield client


def test_fastapi_path_and_query_params(api: httpx.Client) -> None:
    response = api.get("/items/42", params={"q": "blue cheese"})
    assert response.status_code == 200
    assert response.json() == {"item_id": 42, "q": "blue cheese"}


def test_fastapi_path_param_validation(api: httpx.Client) -> None:
    response = api.get("/items/not-a-number")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_fastapi_json_body(api: httpx.Client) -> None:
    response = api.post("/items", json={"name": "Widget", "price": 2.5, "tags": ["a", "b"]})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"name": "Widget", "double": 5.0, "tags": ["a", "b"]}


def test_fastapi_large_json_body(api: httpx.Client) -> None:
    tags = [f"tag-{i}" for i in range(20000)]  # a few hundred KiB, read in many chunks
    response = api.post("/items", json={"name": "Big", "price": 1, "tags": tags})
    assert response.status_code == 201
    assert len(response.json()["tags"]) == 20000


def test_fastapi_invalid_json_body(api: httpx.Client) -> None:
    response = api.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_fastapi_streaming_response(api: httpx.Client) -> None:
    with api.stream("GET", "/stream") as response:
        lines = list(response.iter_lines())
        assert response.headers["transfer-encoding"] == "chunked"
    assert lines == [f"line {i}" for i in range(5)]


def test_fastapi_lifespan_state(api: httpx.Client) -> None:
    assert api.get("/state").json() == {"greeting": "hello from lifespan"}


def test_fastapi_custom_exception_handler(api: httpx.Client) -> None:
    response = api.get("/teapot")
    assert response.status_code == 418
    assert response.json() == {"detail": "teapot: short and stout"}


def test_fastapi_not_found(api: httpx.Client) -> None:
    response = api.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_fastapi_method_not_allowed(api: httpx.Client) -> None:
    assert api.delete("/items/1").status_code == 405


def test_fastapi_unhandled_exception_is_a_500_and_serving_goes_on(api: httpx.Client) -> None:
    response = api.get("/crash")
    assert response.status_code == 500
    assert api.get("/items/1").status_code == 200


def test_fastapi_openapi_schema(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert "/items/{item_id}" in schema["paths"]


def test_fastapi_lifespan_runs_around_serving() -> None:
    events: list[str] = []
    with serve(make_fastapi(events)) as ts:
        assert events == ["startup"]
        assert httpx.get(ts.url + "/state", timeout=TIMEOUT).status_code == 200
    assert events == ["startup", "shutdown"]


def test_fastapi_behind_a_root_path() -> None:
    # The proxy strips /api; the app still routes, and builds URLs with the prefix.
    with (
        serve(make_fastapi([]), root_path="/api") as ts,
        httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client,
    ):
        where = client.get("/where").json()
        assert client.get("/items/7").json() == {"item_id": 7, "q": None}
        openapi = client.get("/openapi.json").json()
    assert where == {"url": f"{ts.url}/api/where", "root_path": "/api"}
    assert openapi["servers"] == [{"url": "/api"}]


# -- Starlette --------------------------------------------------------------------------------


class StarletteApp:
    """A Starlette app and what its lifespan and background tasks did."""

    def __init__(self) -> None:
        self.events: list[str] = []
        self.background_done = threading.Event()
        self.app = Starlette(
            routes=[
                Route("/", self.home),
                Route("/users/{name}", self.user),
                Route("/echo", self.echo, methods=["POST"]),
                Route("/count", self.count, methods=["POST"]),
                Route("/stream", self.stream),
                Route("/state", self.state),
                Route("/teapot", self.teapot),
                Route("/background", self.background),
                Mount("/sub", routes=[Route("/where", self.where)]),
            ],
            exception_handlers={TeapotError: self.teapot_handler},
            lifespan=self.lifespan,
        )

    @asynccontextmanager
    async def lifespan(self, app: Starlette) -> AsyncIterator[dict[str, Any]]:
        self.events.append("startup")
        yield {"db": "connected"}
        self.events.append("shutdown")

    async def home(self, request: StarletteRequest) -> Response:
        return PlainTextResponse("home")

    async def user(self, request: StarletteRequest) -> Response:
        return PlainTextResponse(f"user {request.path_params['name']}")

    async def echo(self, request: StarletteRequest) -> Response:
        data = await request.json()
        return Response(json.dumps({"got": data}), media_type="application/json")

    async def count(self, request: StarletteRequest) -> Response:
        total = 0
        async for chunk in request.stream():
            total += len(chunk)
        return PlainTextResponse(str(total))

    async def stream(self, request: StarletteRequest) -> Response:
        async def parts() -> AsyncIterator[bytes]:
            for word in (b"alpha ", b"beta ", b"gamma"):
                yield word

        return StarletteStreamingResponse(parts(), media_type="text/plain")

    async def state(self, request: StarletteRequest) -> Response:
        return PlainTextResponse(request.state.db)

    async def teapot(self, request: StarletteRequest) -> Response:
        raise TeapotError("starlette")

    async def teapot_handler(self, request: StarletteRequest, exc: Exception) -> Response:
        return PlainTextResponse(f"handled {exc}", status_code=418)

    async def background(self, request: StarletteRequest) -> Response:
        return PlainTextResponse("later", background=BackgroundTask(self.background_done.set))

    async def where(self, request: StarletteRequest) -> Response:
        scope = request.scope
        return Response(
            json.dumps({"path": scope["path"], "root_path": scope["root_path"]}),
            media_type="application/json",
        )


@pytest.fixture(scope="module")
def starlette_app() -> Iterator[tuple[StarletteApp, str]]:
    wrapped = StarletteApp()
    with serve(wrapped.app) as ts:
        yield wrapped, ts.url


@pytest.fixture
def web(starlette_app: tuple[StarletteApp, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=starlette_app[1], timeout=TIMEOUT) as client:
        yield client


def test_starlette_routing_and_path_params(web: httpx.Client) -> None:
    assert web.get("/").text == "home"
    assert web.get("/users/caf%C3%A9").text == "user café"


def test_starlette_json_post(web: httpx.Client) -> None:
    response = web.post("/echo", json={"a": [1, 2, 3], "b": None})
    assert response.json() == {"got": {"a": [1, 2, 3], "b": None}}


def test_starlette_request_stream(web: httpx.Client) -> None:
    chunks = [b"x" * 70000] * 4  # past the body high-water mark
    assert web.post("/count", content=iter(chunks)).text == "280000"


def test_starlette_streaming_response(web: httpx.Client) -> None:
    with web.stream("GET", "/stream") as response:
        body = b"".join(response.iter_bytes())
    assert body == b"alpha beta gamma"


def test_starlette_head_request(web: httpx.Client) -> None:
    response = web.head("/")
    assert response.status_code == 200
    assert response.headers["content-length"] == "4"
    assert response.content == b""
    assert web.get("/").text == "home"


def test_starlette_lifespan_state(web: httpx.Client) -> None:
    assert web.get("/state").text == "connected"


def test_starlette_custom_exception_handler(web: httpx.Client) -> None:
    response = web.get("/teapot")
    assert (response.status_code, response.text) == (418, "handled starlette")


def test_starlette_not_found(web: httpx.Client) -> None:
    response = web.get("/missing")
    assert (response.status_code, response.text) == (404, "Not Found")


def test_starlette_background_task_runs_after_the_response(
    web: httpx.Client, starlette_app: tuple[StarletteApp, str]
) -> None:
    assert web.get("/background").text == "later"
    assert starlette_app[0].background_done.wait(TIMEOUT)


def test_starlette_mount_sees_root_path(web: httpx.Client) -> None:
    assert web.get("/sub/where").json() == {"path": "/sub/where", "root_path": "/sub"}


def test_starlette_lifespan_runs_around_serving() -> None:
    wrapped = StarletteApp()
    with serve(wrapped.app) as ts:
        assert wrapped.events == ["startup"]
        assert httpx.get(ts.url + "/state", timeout=TIMEOUT).text == "connected"
    assert wrapped.events == ["startup", "shutdown"]
