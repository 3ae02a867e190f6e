"""A supervisor in a subprocess: every worker serves, deaths are replaced, a broken
app is given up on, SIGTTIN / SIGTTOU scale. Each test runs for both worker kinds."""

from __future__ import annotations

import contextlib
import os
import signal
import time
from pathlib import Path

import pytest

from tests.workers.harness import Running, answers_from_every_worker, get, serving

KINDS = ["process", "thread"]


def kill_a_worker(running: Running, kind: str) -> None:
    """SIGKILL a worker process; end a worker thread's serve under it (cancelled)."""
    if kind == "process":
        os.kill(int(running.wait_for(r"Started worker pid (\d+)")[1]), signal.SIGKILL)
        return
    with contextlib.suppress(OSError):
        get(running.port, "/crash", timeout=2)


@pytest.mark.parametrize("kind", KINDS)
def test_every_worker_serves_with_nodelay(kind: str) -> None:
    """Both workers answer, and the kernel says each accepted socket has TCP_NODELAY.

    The app reads TCP_NODELAY with getsockopt on the very socket of the request
    (found in the worker's /proc/self/fd by its peer and local address): the
    setting Uvicorn's workers lacked, checked where it matters, in the worker.
    """
    with serving(workers=2, worker_class=kind) as running:
        seen = answers_from_every_worker(running, 2)
        assert len(seen) == 2, seen
        assert set(seen.values()) == {"1"}, seen
        pids = {pid for pid, _ in seen}
        assert len(pids) == (2 if kind == "process" else 1)
        assert running.count("Pounce running on") == 1
        assert running.count(r"Worker .* \(generation 1\) ready") == 2


def test_reuse_port_workers_each_serve_their_own_socket() -> None:
    with serving(workers=2, worker_class="process", reuse_port=True) as running:
        seen = answers_from_every_worker(running, 2)
        assert len({pid for pid, _ in seen}) == 2
        assert set(seen.values()) == {"1"}


@pytest.mark.parametrize("kind", KINDS)
def test_a_dead_worker_is_replaced_within_a_second(kind: str) -> None:
    with serving(workers=2, worker_class=kind) as running:
        mark = running.mark()
        kill_a_worker(running, kind)
        how = "signal SIGKILL" if kind == "process" else "code 1"
        running.wait_for(rf"exited: {how}", 5, mark)
        died = time.monotonic()
        running.wait_for(r"Started worker .* \(generation 1\)", 1.0, mark)
        running.wait_for(r"ready", 2.0, running.mark() - 1)
        assert time.monotonic() - died < 1.5
        for _ in range(4):
            assert get(running.port)[0] == 200


@pytest.mark.parametrize("kind", KINDS)
def test_a_worker_that_keeps_failing_at_startup_is_given_up_on(kind: str, tmp_path: Path) -> None:
    """Its restarts back off (0.1, 0.2, 0.4, 0.8 s) while the other worker keeps
    serving; after 5 fast failures the supervisor stops everything, exit 3."""
    fail = tmp_path / "fail"
    with serving(workers=2, worker_class=kind, env={"POUNCE_TEST_FAIL_FILE": str(fail)}) as running:
        fail.touch()
        kill_a_worker(running, kind)
        running.wait_for(r"Starting a new worker in 0\.1 s", 5)
        served = 0
        deadline = time.monotonic() + 10
        while "giving up" not in running.output() and time.monotonic() < deadline:
            assert get(running.port)[0] == 200  # the other worker serves on
            served += 1
            time.sleep(0.05)
        assert served > 5
        assert running.wait(15) == 3
        out = running.output()
        assert "Starting a new worker in 0.8 s" in out
        assert "giving up" in out
        assert out.count("Worker failed to start") >= 4  # (+ the kill: 5 fast failures)


@pytest.mark.parametrize("kind", KINDS)
def test_ttin_adds_and_ttou_removes_a_worker(kind: str) -> None:
    with serving(workers=2, worker_class=kind) as running:
        mark = running.mark()
        running.signal(signal.SIGTTIN)
        running.wait_for(r"Adding a worker: 3 now", 5, mark)
        running.wait_for(r"ready", 5, running.mark() - 1)
        assert len(answers_from_every_worker(running, 3)) == 3
        mark = running.mark()
        running.signal(signal.SIGTTOU)
        running.wait_for(r"Removing a worker: 2 now", 5, mark)
        running.wait_for(r"draining", 5, mark)
        running.wait_for(r"exited: code 0", 10, mark)
        for _ in range(4):
            assert get(running.port)[0] == 200
        running.signal(signal.SIGTERM)
        assert running.wait() == 0
        assert running.count(r"exited: code 0") == 3


def test_an_app_that_never_starts_is_given_up_on_with_exit_3(tmp_path: Path) -> None:
    fail = tmp_path / "fail"
    fail.touch()
    env = {"POUNCE_TEST_FAIL_FILE": str(fail)}
    with serving(env=env, started=False, workers=2, worker_class="process") as running:
        assert running.wait(15) == 3
        out = running.output()
    assert "Pounce running on" not in out
    assert "Worker failed to start: lifespan startup failed: told to fail" in out
    assert "Traceback" not in out
    assert "giving up" in out
