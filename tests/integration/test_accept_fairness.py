"""New connections are accepted in batches, on asyncio and on uvloop, over real sockets.

libuv (since 1.45, which uvloop ≥ 0.18 bundles) accepts one connection per
turn of the event loop (libuv/libuv#3696). When an app keeps each turn long
— CPU-bound handlers, a loop that is behind — connections queue in the
listen backlog and the last of a burst waits one whole turn per connection
ahead of it: under ten times the capacity, a few clients waited past 10 s
while the p99 of the others stayed under 0.2 s (docs/backpressure.md). A
serve accepts through Pounce's `Acceptor` on every loop, which takes up to
`ACCEPT_BATCH` connections per turn.

The measure is the loop's own clock, not time: a task that yields with
``asyncio.sleep(0)`` counts the turns, and each request records the count
when it reaches the app. The burst is queued while a request blocks the
loop, so it is all in the backlog when the loop turns again.
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

BURST = 40


class TurnCountingApp:
    """``/block`` blocks the loop until `release`; every other path records the turn it came in."""

    def __init__(self) -> None:
        self.turns = 0
        self.arrived: list[int] = []
        self.blocking = threading.Event()
        self.release = threading.Event()
        self._spinner: asyncio.Task[None] | None = None

    async def _spin(self) -> None:
        while True:
            self.turns += 1
            await asyncio.sleep(0)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if self._spinner is None:
            self._spinner = asyncio.get_running_loop().create_task(self._spin())
        if scope["path"] == "/block":
            self.blocking.set()
            self.release.wait(TIMEOUT)  # blocks the whole loop, on purpose
        else:
            self.arrived.append(self.turns)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_burst_queued_behind_a_blocked_loop_is_accepted_in_a_few_turns(loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    app = TurnCountingApp()
    server = builder().loop(loop).asgi(app)  # type: ignore[arg-type]
    with TestServer(server, loop=loop) as ts:  # type: ignore[arg-type]
        warm = send_request(ts.port, "/warm", b"connection: close\r\n")
        assert read_response(warm)[0] == 200  # (starts the turn counter)
        warm.close()
        blocker = send_request(ts.port, "/block", b"connection: close\r\n")
        assert app.blocking.wait(TIMEOUT)
        burst: list[socket.socket] = []
        try:
            for n in range(BURST):  # all in the listen backlog: the loop is blocked
                burst.append(send_request(ts.port, f"/new/{n}", b"connection: close\r\n"))
            time.sleep(0.05)  # (the last requests' bytes reach the server's sockets)
            app.release.set()
            assert read_response(blocker)[0] == 200
            for sock in burst:
                assert read_response(sock)[0] == 200
            wait_for(lambda: len(app.arrived) == BURST + 1, "every request of the burst")
        finally:
            blocker.close()
            for sock in burst:
                sock.close()
    turns = app.arrived[1:]  # (the first is /warm's)
    # One accept per turn spreads the burst over at least BURST turns.
    assert max(turns) - min(turns) < BURST // 4, turns
