"""A burst of new connections on a busy loop is accepted at once, not one per loop turn.

libuv (under uvloop's own server) accepts one connection per turn of the loop;
`pounce.net.backlog.BacklogDrain` catches up when the turns are long. Here the
loop is held by a request while a burst of clients connects; once it is let go,
the requests of the burst must start within a few turns of one another. The
turns are counted by a task that yields once per turn (no clock in the check).
Without the drain they start one turn apart (the span is at least BURST - 1).
The same holds on asyncio, whose server takes a batch per turn itself.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time

import pytest

from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, builder, read_response, send_request, wait_for

BURST = 16


class TurnApp:
    """``/hold`` holds the loop itself (a blocking wait) until `release`; every other
    path answers the loop turn its request started on, counted since ``/hold``."""

    def __init__(self) -> None:
        self.holding = threading.Event()
        self.release = threading.Event()
        self.turns = 0
        self._counter: asyncio.Task[None] | None = None

    async def _count(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)  # one step per turn of the loop

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            self._counter = asyncio.get_running_loop().create_task(self._count())
            self.holding.set()
            self.release.wait(TIMEOUT)  # blocks the loop: nothing is accepted meanwhile
            body = b"held"
        else:
            body = b"%d" % self.turns
        headers = [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_burst_waiting_on_a_busy_loop_is_accepted_within_a_few_turns(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    app = TurnApp()
    with TestServer(builder().asgi(app), loop=loop) as ts:  # type: ignore[arg-type]
        holder = send_request(ts.port, "/hold")
        wait_for(app.holding.is_set, "the loop to be held")
        burst: list[socket.socket] = [send_request(ts.port, "/turn") for _ in range(BURST)]
        time.sleep(0.02)  # all in the backlog, and the loop held longer than a turn
        app.release.set()
        assert read_response(holder)[2] == b"held"
        turns = []
        for sock in burst:
            status, _, body = read_response(sock)
            assert status == 200
            turns.append(int(body))
            sock.close()
        holder.close()
    span = max(turns) - min(turns)
    assert span < BURST // 2, f"requests of the burst started over {span} loop turns: {turns}"


class _Made(asyncio.Protocol):
    """Records each transport made; the test's protocol factory."""

    def __init__(self, made: list[asyncio.BaseTransport]) -> None:
        self.made = made

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.made.append(transport)


async def _drain_and_read_nodelay(clients: int) -> tuple[int, list[int]]:
    from pounce.net.backlog import BacklogDrain

    made: list[asyncio.BaseTransport] = []
    listener = socket.create_server(("127.0.0.1", 0))  # protocol 0, as a pre-bound socket
    drain = BacklogDrain(listener, lambda: _Made(made))
    waiting = [socket.create_connection(listener.getsockname()[:2]) for _ in range(clients)]
    await asyncio.sleep(0)
    drain.factory()  # as uvloop does on an accept; the backlog waits, long after the last
    deadline = asyncio.get_running_loop().time() + TIMEOUT
    while len(made) < clients and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.005)
    options = []
    for transport in made:
        sock = transport.get_extra_info("socket")
        options.append(sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
        transport.close()
    for sock in waiting:
        sock.close()
    listener.close()
    return drain.drained, options


def test_connections_the_drain_accepts_are_uvloops_own_with_tcp_nodelay() -> None:
    """What the drain takes from the backlog is made by uvloop like its own (TCP_NODELAY on)."""
    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        drained, options = runner.run(_drain_and_read_nodelay(5))
    assert drained == 5
    assert len(options) == 5 and all(options), options
