"""A large response body leaves with its head in one gathered write, uncopied (`GatherConn`).

In memory (`MemoryConn`), with the real driver and core; the real transports
are exercised by the integration tests (`writelines` on asyncio and uvloop).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import pytest

from pounce import Server
from pounce.drivers.bridge import ProtocolBridge
from pounce.drivers.http import SEPARATE_WRITE
from pounce.drivers.service import ServiceContext
from pounce.testing import MemoryConn

LARGE = bytes(range(256)) * 256  # 64 KiB
SMALL = b"Hello, world!"


class GatheringConn(MemoryConn):
    """A `MemoryConn` that also writes pieces together, and records how each write came."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.writes: list[list[bytes]] = []

    def write(self, data: bytes) -> None:
        self.writes.append([data])
        super().write(data)

    def writelines(self, pieces: list[bytes]) -> None:
        self.writes.append(list(pieces))
        for piece in pieces:
            super().write(piece)


async def app(scope: Any, receive: Any, send: Any) -> None:
    body = LARGE if scope["path"] == "/large" else SMALL
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def uvloop_factory() -> Callable[[], asyncio.AbstractEventLoop]:
    uvloop = pytest.importorskip("uvloop")
    return uvloop.new_event_loop  # type: ignore[no-any-return]


def serve_on(
    loop_factory: Callable[[], asyncio.AbstractEventLoop], conn_type: type[MemoryConn], path: bytes
) -> MemoryConn:
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        return runner.run(serve(conn_type, path))


async def serve(conn_type: type[MemoryConn], path: bytes) -> MemoryConn:
    server = Server.builder().bind("127.0.0.1", 0).h1().asgi(app)
    bridge = ProtocolBridge(server.spec.protocols, ServiceContext(app, server.spec.http))
    conn = conn_type(bridge).open()
    conn.feed(b"GET " + path + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    for _ in range(10):
        await asyncio.sleep(0)
    return conn


def test_a_large_body_is_gathered_with_its_head_and_not_copied() -> None:
    assert len(LARGE) >= SEPARATE_WRITE
    conn = serve_on(uvloop_factory(), GatheringConn, b"/large")
    assert isinstance(conn, GatheringConn)
    ((head, body),) = conn.writes
    assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"\r\ncontent-length: 65536\r\n" in head and head.endswith(b"\r\n\r\n")
    assert body is LARGE  # the app's own bytes, not a copy


def test_on_asyncio_before_python_3_12_it_is_one_joined_write() -> None:
    """There the transport's writelines() would join them itself: no gain, more calls."""
    conn = serve_on(asyncio.new_event_loop, GatheringConn, b"/large")
    assert isinstance(conn, GatheringConn)
    if sys.version_info >= (3, 12):
        assert [len(piece) for piece in conn.writes[0]][1:] == [len(LARGE)]
    else:
        ((joined,),) = conn.writes
        assert joined.endswith(b"\r\n\r\n" + LARGE)


async def test_a_small_body_leaves_in_one_write_with_its_head() -> None:
    conn = await serve(GatheringConn, b"/hello")
    assert isinstance(conn, GatheringConn)
    ((joined,),) = conn.writes
    assert joined.startswith(b"HTTP/1.1 200 OK\r\n") and joined.endswith(b"\r\n\r\n" + SMALL)
    conn.lose()


@pytest.mark.parametrize("conn_type", [MemoryConn, GatheringConn])
async def test_the_bytes_are_the_same_either_way(conn_type: type[MemoryConn]) -> None:
    conn = await serve(conn_type, b"/large")
    head, _, body = bytes(conn.written).partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK") and body == LARGE
    conn.lose()
