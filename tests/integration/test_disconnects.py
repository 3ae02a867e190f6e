"""An app that fails *because its client left* is a disconnect, not an app error.

Starlette (ASGI spec 2.4) turns the ``OSError`` a send raises after the
client left into ``ClientDisconnect`` and lets it out of the app. Pounce logs
that once, at INFO, without a traceback; a real app error stays an ERROR with
its traceback. Real Starlette apps, real sockets, clients that go away.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import AsyncIterator

import pytest
from starlette.applications import Starlette
from starlette.background import BackgroundTask
from starlette.requests import Request
from starlette.responses import PlainTextResponse, StreamingResponse
from starlette.routing import Route

from pounce import Server
from pounce.events import RequestCompleted, RequestFailed
from pounce.testing import TestServer
from tests.integration.test_asgi_http import RecordList, logged
from tests.integration.test_events import Recorder

TIMEOUT = 5.0  # seconds for every network wait


def streaming_app(started: threading.Event) -> Starlette:
    async def numbers() -> AsyncIterator[bytes]:
        started.set()
        n = 0
        while True:  # until the client leaves
            n += 1
            yield b"%d\n" % n
            await asyncio.sleep(0.01)

    async def events() -> AsyncIterator[str]:
        started.set()
        while True:
            yield "event: tick\ndata: {}\n\n"
            await asyncio.sleep(0.01)

    async def stream(request: Request) -> StreamingResponse:
        return StreamingResponse(numbers(), media_type="text/plain")

    async def sse(request: Request) -> StreamingResponse:
        return StreamingResponse(events(), media_type="text/event-stream")

    async def broken(request: Request) -> PlainTextResponse:
        raise RuntimeError("a real bug")

    async def database_down() -> None:
        raise ConnectionRefusedError("the database refused the connection")

    async def background(request: Request) -> PlainTextResponse:
        return PlainTextResponse("queued", background=BackgroundTask(database_down))

    routes = [
        Route("/stream", stream),
        Route("/sse", sse),
        Route("/broken", broken),
        Route("/background", background),
    ]
    return Starlette(routes=routes)


def read_then_leave(port: int, path: str, started: threading.Event) -> None:
    """Read the start of a streamed response, then close the socket mid-stream."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nhost: t\r\n\r\n".encode())
        assert started.wait(TIMEOUT)
        assert sock.recv(4096).startswith(b"HTTP/1.1 200 ")


def _disconnect_lines(log: RecordList) -> list[logging.LogRecord]:
    return [r for r in log.records if "Client disconnected" in r.getMessage()]


@pytest.mark.parametrize("path", ["/stream", "/sse"])
def test_a_client_leaving_a_stream_is_logged_once_at_info(path: str) -> None:
    started = threading.Event()
    recorder = Recorder()
    server = Server.builder().bind("127.0.0.1", 0).h1().observe(recorder)
    app = streaming_app(started)
    with logged("pounce.error", logging.DEBUG) as log, TestServer(server.asgi(app)) as ts:
        read_then_leave(ts.port, path, started)
        failed = recorder.wait_for(RequestFailed)
        line = log.wait_for(lambda r: "Client disconnected" in r.getMessage())
    assert line.levelno == logging.INFO and line.exc_info is None
    assert path in line.getMessage() and "ClientDisconnect" in line.getMessage()
    assert len(_disconnect_lines(log)) == 1
    assert not [r for r in log.records if r.levelno >= logging.ERROR]
    assert failed.client_left and failed.response_started
    assert failed.exception is not None and "ClientDisconnect" in failed.exception
    done = recorder.wait_for(RequestCompleted)
    assert not done.complete and done.status == 200 and done.bytes > 0


def test_a_real_app_error_stays_an_error_with_its_traceback() -> None:
    recorder = Recorder()
    server = Server.builder().bind("127.0.0.1", 0).h1().observe(recorder)
    app = streaming_app(threading.Event())
    with logged("pounce.error", logging.DEBUG) as log, TestServer(server.asgi(app)) as ts:
        with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /broken HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        failed = recorder.wait_for(RequestFailed)
        error = log.wait_for(lambda r: r.levelno == logging.ERROR)
    assert answer.startswith(b"HTTP/1.1 500 ")
    assert error.exc_info is not None and "RuntimeError" in repr(error.exc_info[1])
    assert not _disconnect_lines(log)
    assert failed.exception == "RuntimeError" and not failed.client_left


def test_the_apps_own_oserror_after_its_response_stays_an_error() -> None:
    """An OSError is the client's doing only when the client is gone: not a database's."""
    recorder = Recorder()
    server = Server.builder().bind("127.0.0.1", 0).h1().observe(recorder)
    app = streaming_app(threading.Event())
    with logged("pounce.error", logging.DEBUG) as log, TestServer(server.asgi(app)) as ts:
        with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /background HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        failed = recorder.wait_for(RequestFailed)
        error = log.wait_for(lambda r: r.levelno == logging.ERROR)
    assert answer.startswith(b"HTTP/1.1 200 ") and answer.endswith(b"queued")
    assert error.exc_info is not None and not _disconnect_lines(log)
    assert failed.exception == "ConnectionRefusedError" and not failed.client_left
    assert failed.response_started
