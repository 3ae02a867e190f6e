"""A worker whose event loop is blocked is found by the heartbeat, its stack is
logged (file, line, function), and it is replaced while the others serve on.

The app's ``/block?s=30`` calls ``time.sleep(30)`` inside its async handler:
the process and its side threads are alive, only the loop is stuck — what
the heartbeat must tell apart from a slow but turning worker."""

from __future__ import annotations

import contextlib
import re
import threading
import time
from typing import Any

import pytest

from pounce.workers.heartbeat import Heartbeat
from tests.workers.harness import answers_from_every_worker, get, serving

KINDS = ["process", "thread"]
TIMEOUT = 1.0  # seconds: --timeout-worker-healthcheck for these tests


# -- the tick, with a fake clock ---------------------------------------------------------------


class FakeWorker:
    def __init__(self, state: str = "serving", answered_at: float | None = 0.0) -> None:
        self.state, self.answered_at, self.pings = state, answered_at, 0

    def ping(self) -> None:
        self.pings += 1


def beat(workers: list[Any], now: float) -> list[Any]:
    blocked: list[Any] = []
    Heartbeat(TIMEOUT, lambda: workers, blocked.append, clock=lambda: now).beat()
    return blocked


def test_a_worker_silent_for_the_timeout_is_reported_and_not_pinged() -> None:
    silent, fresh = FakeWorker(answered_at=0.0), FakeWorker(answered_at=0.5)
    assert beat([silent, fresh], now=TIMEOUT) == [silent]
    assert (silent.pings, fresh.pings) == (0, 1)


def test_only_ready_serving_workers_are_judged() -> None:
    starting = FakeWorker(state="starting", answered_at=None)
    draining = FakeWorker(state="draining", answered_at=0.0)
    assert beat([starting, draining], now=100.0) == []
    assert starting.pings == draining.pings == 0


def test_the_tick_is_a_fifth_of_the_timeout_at_most_a_second() -> None:
    assert Heartbeat(1.0, list, print).tick == 0.2
    assert Heartbeat(30.0, list, print).tick == 1.0


# -- a real supervisor ------------------------------------------------------------------------


def block_a_worker(port: int) -> None:
    """``/block?s=30`` on a thread; its connection ends when the worker is killed."""

    def request() -> None:
        with contextlib.suppress(OSError):
            get(port, "/block?s=30", timeout=TIMEOUT + 10)

    threading.Thread(target=request, daemon=True).start()


@pytest.mark.parametrize("kind", KINDS)
def test_a_blocked_worker_is_replaced_and_where_it_blocked_is_logged(kind: str) -> None:
    with serving(workers=2, worker_class=kind, timeout_worker_healthcheck=TIMEOUT) as running:
        mark = running.mark()
        blocked_at = time.monotonic()
        block_a_worker(running.port)
        # Let it block first: a loop accepts every connection queued at once, so a
        # request sent together with the blocking one could land on it too.
        time.sleep(0.3)
        served_meanwhile = 0
        while "has not answered the heartbeat" not in running.output():
            assert time.monotonic() - blocked_at < TIMEOUT + 2, running.output()
            assert get(running.port)[0] == 200  # the other worker serves on
            served_meanwhile += 1
            time.sleep(0.05)
        assert served_meanwhile >= 5
        found = running.wait_for(r"(Worker .*) has not answered the heartbeat for 1 s", 1, mark)
        running.wait_for(r"Started worker", TIMEOUT + 2, mark)
        running.wait_count(r"\(generation 1\) ready", 3, TIMEOUT + 2)
        assert time.monotonic() - blocked_at < TIMEOUT + 2  # replaced within S + 2 s
        running.wait_for(r"Stack of .*, blocked", 2, mark)
        out = "".join(running.lines[mark:])
        # faulthandler's format (the thread kind mimics it): file, line, function.
        assert re.search(r'File ".*serve_app\.py", line \d+ in app', out), out
        if kind == "process":
            running.wait_for(rf"{re.escape(found[1])} exited: signal SIGKILL", 5, mark)
        else:
            assert "a thread cannot be killed" in out
        assert len(answers_from_every_worker(running, 2)) == 2  # two serving again
