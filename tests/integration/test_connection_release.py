"""A closed connection's objects are freed by reference counting, not left for the collector.

A reference cycle among a connection's objects (adapter → bridge → driver →
adapter) keeps all of them — the core, its buffers, the timers — alive until
the cyclic garbage collector finds them, and makes the collections that do
come more frequent and longer: on a stream of short connections that is a
few per cent of the server's work and memory that grows between
collections. So the cycles are broken when a connection is lost. With the
collector off, nothing of a closed connection may remain.
"""

from __future__ import annotations

import gc
import logging
import socket
import time
from collections.abc import Iterator

import pytest

from pounce.asgi.types import Receive, Scope, Send
from pounce.drivers.bridge import ProtocolBridge
from pounce.drivers.http import HTTPDriver
from pounce.net.transport import TransportAdapter
from pounce.protocols.h1_fast import FastH1Core
from pounce.testing import TestServer

CONNECTION_TYPES = (TransportAdapter, ProtocolBridge, HTTPDriver, FastH1Core)


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hello"})


def alive() -> int:
    """Connection objects still in memory (tracked by the collector, not collected)."""
    return sum(isinstance(o, CONNECTION_TYPES) for o in gc.get_objects())


@pytest.fixture
def collector_off() -> Iterator[None]:
    # pytest's log capture keeps every record, and a record of a bad request holds
    # the exception, whose traceback holds the connection: not what is tested here.
    logger = logging.getLogger("pounce.error")
    disabled, logger.disabled = logger.disabled, True
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        logger.disabled = disabled


def read_all(sock: socket.socket) -> bytes:
    received = b""
    while chunk := sock.recv(65536):
        received += chunk
    return received


def wait_until_released(before: int) -> int:
    """The count of connection objects once the server has let go (or after 5 s)."""
    deadline = time.monotonic() + 5
    while (now := alive()) > before and time.monotonic() < deadline:
        time.sleep(0.02)
    return now


CLIENTS = {
    # The client asks for the close: the server closes at once.
    "client-close": b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    # HTTP/1.0: the server closes, then lingers until the client's FIN.
    "http10": b"GET / HTTP/1.0\r\n\r\n",
    # A bad request: 400, the server closes and lingers.
    "bad-request": b"GET / HTTP/1.1\r\n\r\n",
}


@pytest.mark.parametrize("client", sorted(CLIENTS))
@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.usefixtures("collector_off")
def test_closed_connections_leave_nothing_for_the_collector(client: str, loop_name: str) -> None:
    with TestServer(hello, loop=loop_name, http2=True) as ts:  # type: ignore[arg-type]
        before = alive()
        for _ in range(5):
            with socket.create_connection((ts.host, ts.port), timeout=5) as sock:
                sock.sendall(CLIENTS[client])
                assert read_all(sock).startswith(b"HTTP/1.")
        assert wait_until_released(before) == before


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
@pytest.mark.usefixtures("collector_off")
def test_keep_alive_connections_the_client_closes_leave_nothing(loop_name: str) -> None:
    with TestServer(hello, loop=loop_name, http2=True) as ts:  # type: ignore[arg-type]
        before = alive()
        for _ in range(5):
            with socket.create_connection((ts.host, ts.port), timeout=5) as sock:
                for _ in range(2):
                    sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    assert sock.recv(65536).startswith(b"HTTP/1.1 200")
        assert wait_until_released(before) == before
