"""The pytest plugin's fixtures, and `TestServer` given a plain ASGI app.

docs/testing.md shows the fixture examples as excerpts of this file.
"""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.sync.client import connect

import pounce.testing.pytest_plugin
from pounce import BuildError, Server
from pounce.testing import TestServer
from pounce.testing.pytest_plugin import ServerFactory

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "recipes"))  # recipes/djangosite, a Django project

api = FastAPI()


@api.post("/items")
def create_item(item: dict[str, int]) -> dict[str, int]:
    return {"total": sum(item.values())}


async def hello(request: Request) -> JSONResponse:
    return JSONResponse({"scheme": request.url.scheme, "http": request.scope["http_version"]})


async def echo(websocket: WebSocket) -> None:
    await websocket.accept()
    await websocket.send_text(await websocket.receive_text())
    await websocket.close()


site = Starlette(routes=[Route("/", hello), WebSocketRoute("/ws", echo)])


def test_fastapi_app(pounce_server: ServerFactory) -> None:
    server = pounce_server(api)
    with server.client() as client:
        assert client.post("/items", json={"a": 1, "b": 2}).json() == {"total": 3}


def test_django_with_channels(pounce_server: ServerFactory) -> None:
    from djangosite.asgi import application  # Django views; Channels for WebSocket

    server = pounce_server(application, http2=True)
    with server.client() as client:
        assert client.get("/items/3").json() == {"item_id": 3, "q": None}
        assert client.get("/sync").json() == {"sync": True, "on_event_loop": False}
    with connect(server.ws_url + "/ws") as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"


def test_starlette_over_http2_and_tls(pounce_server: ServerFactory) -> None:
    server = pounce_server(site, http2=True, tls=True)
    with server.client() as client:
        assert client.get("/").json() == {"scheme": "https", "http": "2"}
    with connect(server.ws_url + "/ws", ssl=server.ssl_context()) as ws:
        ws.send("hi")
        assert ws.recv(timeout=5) == "hi"


def test_http2_over_cleartext_is_prior_knowledge(pounce_server: ServerFactory) -> None:
    server = pounce_server(site, http2=True)
    with server.client() as client:
        assert client.get("/").json() == {"scheme": "http", "http": "2"}
    assert server.ws_url.startswith("ws://127.0.0.1:")


def test_options_reach_the_standard_stack(pounce_server: ServerFactory) -> None:
    server = pounce_server(site, headers=["x-served-by:pounce"], server_header=False)
    with server.client() as client:
        response = client.get("/")
    assert response.headers["x-served-by"] == "pounce"
    assert "server" not in response.headers


def test_a_built_server_is_served_as_it_is(pounce_server: ServerFactory) -> None:
    built = Server.builder().bind("127.0.0.1", 0).h1().asgi(site)
    server = pounce_server(built)
    with server.client() as client:
        assert client.get("/").json()["http"] == "1.1"
    with pytest.raises(BuildError, match="for a plain ASGI app"):
        TestServer(built, http2=True)


@pytest.fixture(scope="module")
def shared(pounce_session_server: ServerFactory) -> TestServer:
    return pounce_session_server(site)


PORTS: list[int] = []


@pytest.mark.parametrize("round", [1, 2])
def test_the_session_server_is_shared(shared: TestServer, round: int) -> None:
    with shared.client() as client:
        assert client.get("/").status_code == 200
    PORTS.append(shared.port)
    assert len(set(PORTS)) == 1


def test_async_client(pounce_server: ServerFactory) -> None:
    import asyncio

    server = pounce_server(api)

    async def post() -> object:
        async with server.async_client() as client:
            return (await client.post("/items", json={"a": 5})).json()

    assert asyncio.run(asyncio.wait_for(post(), 10)) == {"total": 5}


def test_tls_without_trustme_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "trustme", None)
    with pytest.raises(ImportError, match="pip install trustme"):
        TestServer(site, tls=True)


def test_the_plugin_is_registered_by_entry_point_and_adds_only_fixtures() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["entry-points"]["pytest11"] == {"pounce": "pounce.testing.pytest_plugin"}
    hooks = [name for name in vars(pounce.testing.pytest_plugin) if name.startswith("pytest_")]
    assert hooks == []  # no hooks: a suite that asks for no fixture is untouched
    for name in ("pounce_server", "pounce_session_server"):
        marker = getattr(pounce.testing.pytest_plugin, name)._fixture_function_marker
        assert not marker.autouse
