"""The connection cap (`.max_connections()`, ``--limit-max-connections``), over real sockets.

At the cap a worker stops calling ``accept()``: the clients past it are
connected (the kernel completed their handshake into the listen backlog)
but not served — no byte back, not closed — and each is served once a
connection closes. Run on asyncio and uvloop.
"""

from __future__ import annotations

import logging
import socket

import pytest

from pounce.asgi.types import Receive, Scope, Send
from pounce.net.accept import AT_CAP
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, HeldApp, builder, read_response, send_request, wait_for

CLOSE = b"connection: close\r\n"


class PeakApp(HeldApp):
    """`HeldApp` that also records the most requests inside it at once."""

    def __init__(self) -> None:
        super().__init__()
        self.inside = 0
        self.peak = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        self.inside += 1
        self.peak = max(self.peak, self.inside)
        try:
            await super().__call__(scope, receive, send)
        finally:
            self.inside -= 1


def _silent(sock: socket.socket, seconds: float) -> bool:
    """Nothing arrives on `sock` (no byte, no close) for `seconds`."""
    sock.settimeout(seconds)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(TIMEOUT)
    return False


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_past_the_cap_clients_wait_in_the_backlog_and_are_served_after(
    loop: str, caplog: pytest.LogCaptureFixture
) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    app = PeakApp()
    server = builder().max_connections(2).loop(loop).asgi(app)  # type: ignore[arg-type]
    with (
        TestServer(server, loop=loop) as ts,
        caplog.at_level(logging.WARNING, logger="pounce.error"),
    ):
        socks = [send_request(ts.port, f"/hold/{n}", CLOSE) for n in range(5)]
        wait_for(lambda: len(app.entered) == 2, "two requests inside the app")
        # The other three connected (the kernel holds them) but nothing serves them:
        # not answered, not closed — and not let into the app.
        assert all(_silent(sock, 0.3) for sock in socks[2:])
        assert len(app.entered) == 2
        app.release.set()
        for sock in socks:
            assert read_response(sock)[0] == 200
            sock.close()
        assert sorted(app.entered) == [f"/hold/{n}" for n in range(5)]
        assert app.peak <= 2
    paused = [r.message for r in caplog.records if AT_CAP in r.message]
    assert len(paused) == 1, paused  # counted on every pause, logged once per interval
    assert "listener refused: 1 " + AT_CAP in paused[0]


def test_below_the_cap_accepting_never_pauses(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = HeldApp()
    app.release.set()
    server = builder().max_connections(4).asgi(app)
    with TestServer(server) as ts, caplog.at_level(logging.WARNING, logger="pounce.error"):
        for n in range(3):  # one at a time, never at the cap with anyone waiting
            sock = send_request(ts.port, f"/{n}", CLOSE)
            assert read_response(sock)[0] == 200
            sock.close()
    assert not [r for r in caplog.records if AT_CAP in r.message]


def test_describe_and_bad_values() -> None:
    from pounce import BuildError

    server = builder().max_connections(100).asgi(HeldApp())
    assert "listen   at most 100 open connections per worker (then accepting pauses)" in (
        server.describe()
    )
    assert "open connections" not in builder().asgi(HeldApp()).describe()
    for bad in (0, -1, 1.5, "10", True):
        with pytest.raises(BuildError, match=r"\.max_connections"):
            builder().max_connections(bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("worker_class", ["process", "thread"])
def test_workers_accept_through_the_cap_from_the_shared_sockets(worker_class: str) -> None:
    """Each worker caps its own connections on the supervisor's shared sockets (dup'd)."""
    from tests.workers.harness import answers_from_every_worker, launched

    argv = ["-m", "pounce", "tests.workers.serve_app:app", "--host", "127.0.0.1", "--port", "0"]
    argv += ["--no-access-log", "--workers", "2", "--worker-class", worker_class]
    argv += ["--limit-max-connections", "1"]
    with launched(argv) as running:
        assert len(answers_from_every_worker(running, 2)) == 2
