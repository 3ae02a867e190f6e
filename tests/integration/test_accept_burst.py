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
