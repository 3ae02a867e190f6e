"""The Starlette and FastAPI apps of the framework scenarios: what users run.

    GET /hello   13 bytes, "Hello, world!" (a PlainTextResponse)
    GET /json    {"message":"Hello, world!"} (Starlette: a JSONResponse; FastAPI: a
                 returned dict, serialised the way FastAPI serialises any return value)

Every server runs these same objects (``framework_apps:starlette_app``,
``framework_apps:fastapi_app``). They do what a user's endpoint does at its
smallest: the framework's routing, request and response objects, its
middleware stack, so the numbers show what a server costs under a real
framework and not only under the leanest raw ASGI app (``apps.py``).
"""

from __future__ import annotations

from typing import Any

from apps import HELLO_BODY, JSON_MESSAGE
from fastapi import FastAPI
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

_HELLO = HELLO_BODY.decode()


async def _starlette_hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse(_HELLO)


async def _starlette_json(request: Request) -> JSONResponse:
    return JSONResponse(JSON_MESSAGE)


starlette_app = Starlette(
    routes=[Route("/hello", _starlette_hello), Route("/json", _starlette_json)]
)

fastapi_app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)


@fastapi_app.get("/hello", response_class=PlainTextResponse)
async def _fastapi_hello() -> str:
    return _HELLO


@fastapi_app.get("/json")
async def _fastapi_json() -> dict[str, Any]:
    return dict(JSON_MESSAGE)
