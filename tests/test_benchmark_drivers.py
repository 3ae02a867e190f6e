"""The in-process benchmark drivers still run: they build stacks through Server's internals,
so a refactor that moves those must move them too (a broken driver fails here, not in a
benchmark session)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.parametrize(
    "argv",
    [
        ["inproc.py", "-n", "50"],
        ["inproc.py", "-n", "50", "--close", "--parser", "h11"],
        # The framework scenarios' apps, in-process (framework_apps.py).
        ["inproc.py", "-n", "50", "--app", "starlette", "--path", "/json"],
        ["inproc.py", "-n", "50", "--app", "fastapi", "--path", "/hello"],
        ["inproc.py", "-n", "20", "--close", "--opcodes"],
        # A browser's request head (browser_head.py), to Pounce and to Uvicorn, each driver.
        ["inproc.py", "-n", "50", "--head", "browser", "--loop", "uvloop"],
        ["inproc.py", "-n", "50", "--head", "browser", "--close", "--server", "uvicorn-h11"],
        ["inproc.py", "-n", "100", "--head", "browser", "--connections", "8", "--parser", "h11"],
        ["inproc.py", "-n", "200", "--connections", "16", "--loop", "uvloop", "--path", "/64k"],
        ["h2_inproc.py", "path", "20"],
        ["accept_inproc.py", "-n", "20", "--stack", "standard"],
        ["accept_inproc.py", "-n", "20", "--loop", "uvloop", "--accept", "drain"],
        ["accept_inproc.py", "-n", "20", "--server", "raw"],
        ["ws_inproc.py", "--messages", "50"],
        # The collector's counts per 1,000 short connections (the server in-process).
        ["gc_close.py", "--protocol", "h2c", "-n", "5"],
        ["gc_close.py", "--protocol", "ws", "-n", "5", "--loop", "asyncio"],
        ["inproc.py", "-n", "50", "--access-log", "--access-log-level", "WARNING"],
        ["supervisor_overhead.py", "--workers", "2", "--rolls", "1", "--mode", "fork"],
        # HTTP/3: one server, one short run (aioquic for the server and the load client).
        [
            "h3_bench.py",
            "--duration",
            "0.5",
            "--clients",
            "1",
            "--connections",
            "1",
            "--streams",
            "2",
            "--servers",
            "pounce-h3",
            "--scenarios",
            "hello",
        ],
        ["static_inproc.py", "-n", "50"],
        ["static_inproc.py", "-n", "50", "--zero-copy"],
        # Per-chunk latency of compressed streams: Pounce alone, identity and each coding,
        # every event decoded incrementally and checked in order.
        [
            "stream_latency.py",
            "--servers",
            "pounce",
            "--events",
            "10",
            "--interval-ms",
            "2",
            "--rounds",
            "1",
            "--no-write",
        ],
    ],
)
def test_driver_runs(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *argv], cwd=BENCHMARKS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_answer_order_records_a_server_under_load() -> None:
    argv = ["answer_order.py", "--servers", "pounce-fast-uvloop", "--duration", "1"]
    argv += ["--connections", "8"]
    done = subprocess.run(
        [sys.executable, *argv], cwd=BENCHMARKS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "answers to others in between: p50 7 " in done.stdout, done.stdout


def test_answers_between_counts_the_answers_to_others() -> None:
    """Two answers to others between A's two, and between B's; a head and a body written apart
    with no read between them are one answer."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from answer_order import answers_between
    finally:
        sys.path.remove(str(BENCHMARKS))
    read, write = 0, 1
    events = [(1, write, 10), (2, write, 20), (3, write, 20), (4, write, 30), (5, read, 10)]
    events += [(6, write, 10), (7, read, 20), (8, write, 20)]
    assert answers_between(events) == [2, 2]


@pytest.mark.skipif(
    shutil.which("gtlsclient") is None or shutil.which("h2load") is None,
    reason="needs gtlsclient and h2load (apt-get install ngtcp2-client nghttp2-client)",
)
def test_h3_bench_with_c_load_clients() -> None:
    """--client gtls: gtlsclient against Pounce's HTTP/3, h2load against its HTTP/2, every
    body checked (a bad one is counted, and the run fails on it here)."""
    argv = ["h3_bench.py", "--client", "gtls", "--duration", "0.5", "--clients", "1"]
    argv += ["--requests", "5", "--downloads", "2", "--servers", "pounce-h3,pounce-h2"]
    done = subprocess.run(
        [sys.executable, *argv], cwd=BENCHMARKS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = [line for line in done.stdout.splitlines() if " ok, " in line]
    assert len(lines) == 4, done.stdout
    assert all(", 0 bad," in line and "(0 ok" not in line for line in lines), done.stdout


@pytest.mark.skipif(
    shutil.which("gtlsclient") is None,
    reason="needs gtlsclient (apt-get install ngtcp2-client)",
)
def test_h3_bench_counts_aioquic_in_both_servers() -> None:
    """--counts: quic_counts.py, loaded into each server through a sitecustomize, counts
    what aioquic did per MiB — in Hypercorn's spawned worker too, not only in its parent."""
    argv = ["h3_bench.py", "--client", "gtls", "--duration", "0.5", "--clients", "1"]
    argv += ["--downloads", "2", "--servers", "pounce-h3,hypercorn-h3", "--scenarios", "1mib"]
    done = subprocess.run(
        [sys.executable, *argv, "--counts"],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    counted = [line for line in done.stdout.splitlines() if "per MiB:" in line]
    assert len(counted) == 2, done.stdout
    for line in counted:
        datagrams_in = int(line.split("per MiB: ")[1].split(" datagrams in")[0])
        sent_mib = int(line.split(" MiB, ")[0].rsplit(" ", 1)[1])
        assert datagrams_in > 0 and sent_mib >= 2, line


def test_the_worker_scenarios_derive_their_servers() -> None:
    """workers2 and scaling.py: each server's own --workers flag, the efficiency arithmetic
    (the runs themselves need wrk and the peers: a quiet window, docs/performance.md)."""
    sys.path.insert(0, str(BENCHMARKS))
    try:
        from harness.servers import GRANIAN, PEERS, POUNCE_MINIMAL, for_workers, with_workers
        from scaling import Point, cpu_list, efficiency
    finally:
        sys.path.remove(str(BENCHMARKS))
    granian = with_workers(GRANIAN, 4)
    assert granian.key == "granian-w4" and granian.args.count("--workers") == 1
    assert granian.args[granian.args.index("--workers") + 1] == "4"
    uvicorn = with_workers(PEERS[0], 2)
    assert uvicorn.key == "uvicorn-httptools-uvloop-w2" and uvicorn.args[-2:] == ("--workers", "2")
    picked = [s.key for s in for_workers((*PEERS, POUNCE_MINIMAL), 2)]
    assert picked == ["uvicorn-httptools-uvloop-w2", "granian-w2"]
    assert cpu_list("0-3,8") == {0, 1, 2, 3, 8}
    points = [Point("p", "p", 1), Point("p", "p", 8)]
    points[0].failed = points[1].failed = None
    assert efficiency(points, "p", 8) is None  # no runs, no figure


@pytest.mark.skipif(
    sys.platform != "linux"
    or shutil.which("wrk") is None
    or shutil.which("taskset") is None
    or len(os.sched_getaffinity(0)) < 2,
    reason="needs Linux, wrk, taskset and two CPUs",
)
def test_the_thread_probe_reads_a_real_run() -> None:
    """threads.py starts a server as the harness does, loads it with wrk, and reads its
    threads and (--gc, through gc_wrap.py) the collector's counts from the server."""
    argv = ["threads.py", "--python", sys.executable, "--servers", "pounce-fast-asyncio"]
    argv += ["--scenarios", "hello", "--duration", "1", "--gc"]
    done = subprocess.run(
        [sys.executable, *argv], cwd=BENCHMARKS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "all threads" in done.stdout
    assert "per 1,000 requests" in done.stdout, done.stdout[-2000:]
