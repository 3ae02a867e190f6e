#!/usr/bin/env python3
"""What the workers' supervisor costs: its memory, and how long a rolling restart takes.

    python3 benchmarks/supervisor_overhead.py                  # 2 workers, 5 SIGHUPs, both modes
    python3 benchmarks/supervisor_overhead.py --workers 4 --rolls 10 --mode cli

Serves benchmarks/apps.py with process workers under a supervisor, in either
mode of docs/workers.md: ``cli`` (``pounce apps:app --workers N``: each worker
a fresh interpreter that imports the app, the supervisor never does) and
``fork`` (``pounce.run(app, workers=N)``: the supervisor imports the app and
forks). It reports

* the supervisor's own memory once every first worker serves, and again after
  the restarts: VmRSS and PSS (``/proc/PID/smaps_rollup``: shared pages
  divided among their sharers, the honest share of a forked family), with one
  worker's for scale;
* for each SIGHUP, the time until every worker of the new generation has
  reported ready (each accepts from then on; the old generation serves until
  then), and until the old generation has exited (drained);
* the CPU time a worker had used when it reported ready (what a start costs,
  whatever else the machine is doing).

These are not throughput figures: a busy machine stretches them somewhat but
they stay meaningful (docs/performance.md, "Supervisor overhead"). Runs on
the interpreter that runs it, with this checkout's Pounce.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
ROOT = BENCH_DIR.parent
TIMEOUT_S = 60.0
STARTED = re.compile(r"Pounce running on http://127\.0\.0\.1:(\d+)")
FORKED = """
import sys
from apps import app
import pounce
pounce.run(app, workers=int(sys.argv[1]), host="127.0.0.1", port=0, access_log=False)
"""


READY = re.compile(r"Worker pid (\d+) \(generation \d+\) ready")
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of a process so far."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / TICKS


class Log:
    """The server's stderr, line by line, each with the monotonic time it arrived; and
    the CPU time each worker had used when its "ready" line came."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[tuple[float, str]] = []
        self.ready_cpu: dict[int, float] = {}
        self._changed = threading.Condition()
        self._proc = proc
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self._proc.stderr is not None
        for line in self._proc.stderr:
            ready = READY.search(line)
            used = cpu_seconds(int(ready[1])) if ready else None
            with self._changed:
                if ready and used is not None:
                    self.ready_cpu[int(ready[1])] = used
                self.lines.append((time.monotonic(), line))
                self._changed.notify_all()

    def wait(self, pattern: str, count: int = 1, after: int = 0) -> float:
        """The arrival time of the `count`-th line from index `after` matching `pattern`."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + TIMEOUT_S
        with self._changed:
            while True:
                hits = [t for t, line in self.lines[after:] if regex.search(line)]
                if len(hits) >= count:
                    return hits[count - 1]
                if self._proc.poll() is not None or time.monotonic() > deadline:
                    tail = "".join(line for _, line in self.lines[-20:])
                    raise RuntimeError(f"no {count} lines {pattern!r}; the server said:\n{tail}")
                self._changed.wait(0.5)

    def mark(self) -> int:
        with self._changed:
            return len(self.lines)


def memory_kib(pid: int) -> tuple[int, int]:
    """(VmRSS, PSS) of one process, KiB."""
    rss = pss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        if line.startswith("Pss:"):
            pss = int(line.split()[1])
    return rss, pss


def command(mode: str, workers: int) -> list[str]:
    if mode == "cli":
        return [
            *(sys.executable, "-m", "pounce", "apps:app", "--workers", str(workers)),
            *("--host", "127.0.0.1", "--port", "0", "--no-access-log", "--log-level", "info"),
        ]
    return [sys.executable, "-c", FORKED, str(workers)]


def measure(mode: str, workers: int, rolls: int) -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), str(BENCH_DIR)])}
    proc = subprocess.Popen(
        command(mode, workers),
        cwd=BENCH_DIR,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    log = Log(proc)
    try:
        log.wait(STARTED.pattern)
        time.sleep(0.5)  # settled
        start_rss, start_pss = memory_kib(proc.pid)
        worker_rss, worker_pss = memory_kib(next(iter(log.ready_cpu)))
        ready_s: list[float] = []
        drained_s: list[float] = []
        for generation in range(2, rolls + 2):
            mark = log.mark()
            sent = time.monotonic()
            proc.send_signal(signal.SIGHUP)
            ready = log.wait(rf"\(generation {generation}\) ready", workers, mark)
            old = log.wait(rf"\(generation {generation - 1}\) exited", workers, mark)
            ready_s.append(ready - sent)
            drained_s.append(old - sent)
        end_rss, end_pss = memory_kib(proc.pid)
        ready_cpu = list(log.ready_cpu.values())
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)
    return {
        "mode": mode,
        "workers": workers,
        "supervisor_rss_kib": start_rss,
        "supervisor_pss_kib": start_pss,
        "supervisor_rss_kib_after": end_rss,
        "supervisor_pss_kib_after": end_pss,
        "worker_rss_kib": worker_rss,
        "worker_pss_kib": worker_pss,
        "sighup_to_ready_s": ready_s,
        "sighup_to_old_exited_s": drained_s,
        "worker_cpu_s_until_ready": ready_cpu,
    }


def show(result: dict[str, object]) -> str:
    ready = result["sighup_to_ready_s"]
    drained = result["sighup_to_old_exited_s"]
    cpu = result["worker_cpu_s_until_ready"]
    assert isinstance(ready, list) and isinstance(drained, list) and isinstance(cpu, list)

    def mib(key: str) -> str:
        value = result[key]
        assert isinstance(value, int)
        return f"{value / 1024:.1f}"

    def spread(values: list[float]) -> str:
        return (
            f"median {statistics.median(values) * 1000:.0f} ms "
            f"(min {min(values) * 1000:.0f}, max {max(values) * 1000:.0f})"
        )

    return "\n".join(
        [
            f"{result['mode']} mode, {result['workers']} process workers, {len(ready)} SIGHUPs",
            f"  supervisor: RSS {mib('supervisor_rss_kib')} MiB, PSS {mib('supervisor_pss_kib')}"
            f" MiB at start; RSS {mib('supervisor_rss_kib_after')} MiB,"
            f" PSS {mib('supervisor_pss_kib_after')} MiB after the restarts",
            f"  one worker: RSS {mib('worker_rss_kib')} MiB, PSS {mib('worker_pss_kib')} MiB",
            f"  SIGHUP → every new worker ready: {spread(ready)}",
            f"  SIGHUP → old generation exited:  {spread(drained)}",
            f"  CPU time a worker used until ready: {spread(cpu)}",
        ]
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser(
        description="The supervisor's memory and the time from SIGHUP to the new generation "
        "serving.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rolls", type=int, default=5, help="SIGHUPs, one after another")
    parser.add_argument("--mode", choices=["cli", "fork", "both"], default="both")
    args = parser.parse_args(argv)
    if args.workers < 2 or args.rolls < 1:
        parser.error(
            "--workers must be at least 2 (one worker runs without a supervisor)"
            " and --rolls at least 1"
        )
    if sys.platform != "linux":
        print("error: reads /proc: Linux only", file=sys.stderr)
        return 2
    modes = ["cli", "fork"] if args.mode == "both" else [args.mode]
    for mode in modes:
        print(show(measure(mode, args.workers, args.rolls)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
