#!/usr/bin/env python3
"""Scaling with workers: hello keep-alive at 1, 4 and 8 workers, Pounce beside its peers.

    python3 benchmarks/scaling.py           # the 16-core run (docs/performance.md, "Scaling")
    python3 benchmarks/scaling.py --smoke   # proves the script on a small machine: 1 CPU for
                                            # the servers, 1 for wrk, 1 and 2 workers, 1 s runs

The full run puts every server on CPUs 0-7 (``taskset``), and ``wrk -t8 -c512``
on CPUs 8-15, for 1, 4 and 8 workers: Pounce (fast parser, uvloop), Uvicorn
(httptools, uvloop) and Granian, in the same run, each started fresh for each
worker count. It prints req/s per worker count, the scaling efficiency (req/s at
N workers ÷ N × req/s at 1 worker; the issue's goal is ≥ 0.9 at 8) and Pounce ÷
Uvicorn at each count (goal ≥ 1.0 at 8), and writes the whole record to
benchmarks/results/scaling-<UTC time>.json. It uses the peers' virtual
environment of ``python3 dev.py bench`` (benchmarks/.peers-venv, made on the
first run).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

# The harness is pounce.bench from this working tree, as for benchmarks/run.py.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

from harness import env  # noqa: E402
from harness.scenarios import SCENARIOS  # noqa: E402
from harness.servers import all_servers, server_env  # noqa: E402

from pounce.bench import report  # noqa: E402
from pounce.bench.procs import free_port  # noqa: E402
from pounce.bench.scenario import CheckFailed, Scenario  # noqa: E402
from pounce.bench.servers import (  # noqa: E402
    RunningServer,
    ServerFailed,
    ServerSpec,
    select,
    with_workers,
)
from pounce.bench.wrk import WrkFailed, WrkResult, run_wrk, wrk_command  # noqa: E402

SERVERS = "pounce-fast-uvloop,uvicorn-httptools-uvloop,granian"
UVICORN = "uvicorn-httptools-uvloop"
POUNCE = "pounce-fast-uvloop"
LUA_DIR = env.BENCH_DIR / "lua"
RESULTS_DIR = env.BENCH_DIR / "results"


@dataclass
class Point:
    """One server at one worker count: its runs, or why there are none."""

    server: str
    label: str
    workers: int
    runs: list[WrkResult] = field(default_factory=list)
    failed: str | None = None

    @property
    def rps(self) -> float | None:
        return statistics.median(r.rps for r in self.runs) if self.runs else None

    def as_json(self) -> dict[str, Any]:
        return {
            "server": self.server,
            "workers": self.workers,
            "median_rps": self.rps,
            "runs": [r.as_json() for r in self.runs],
            "failed": self.failed,
        }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Hello keep-alive at several worker counts, servers and wrk on "
        "separate CPUs; Pounce beside Uvicorn and Granian.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--server-cpus", default="0-7", help="taskset CPU list for the servers")
    parser.add_argument("--client-cpus", default="8-15", help="taskset CPU list for wrk")
    parser.add_argument("--workers", default="1,4,8", help="worker counts, comma-separated")
    parser.add_argument("--wrk-threads", type=int, default=8)
    parser.add_argument("--connections", type=int, default=512)
    parser.add_argument("--duration", type=int, default=10, help="seconds per timed run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per point (median)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed wrk seconds first")
    parser.add_argument("--servers", default=SERVERS, help="server keys (run.py --list)")
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="a tiny run that proves the script: the first allowed CPU for the servers, "
        "the second for wrk, 1 and 2 workers, -t1 -c64, one 1 s run",
    )
    parser.add_argument("--json", type=Path, help="artifact (default: results/scaling-<time>.json)")
    return parser.parse_args(argv)


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def cpu_list(text: str) -> set[int]:
    """The CPUs of a taskset list ("0-7", "0,2,4-5")."""
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.strip().partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def apply_smoke(args: argparse.Namespace) -> None:
    allowed = sorted(os.sched_getaffinity(0))
    if len(allowed) < 2:
        _fail("--smoke needs 2 CPUs: one for the servers, one for wrk")
    args.server_cpus, args.client_cpus = str(allowed[0]), str(allowed[1])
    args.workers, args.wrk_threads, args.connections = "1,2", 1, 64
    args.duration, args.repeat, args.warmup = 1, 1, 0


def check_machine(args: argparse.Namespace) -> None:
    allowed = os.sched_getaffinity(0)
    server, client = cpu_list(args.server_cpus), cpu_list(args.client_cpus)
    if server & client:
        _fail(f"--server-cpus {args.server_cpus} and --client-cpus {args.client_cpus} overlap")
    missing = (server | client) - allowed
    if missing:
        _fail(
            f"this machine has {len(allowed)} CPUs ({min(allowed)}-{max(allowed)}): CPUs "
            f"{sorted(missing)} are not there; the full run needs 16 (or use --smoke)"
        )
    for tool in ("wrk", "taskset"):
        if shutil.which(tool) is None:
            _fail(f"{tool} is not on PATH")


def measure(
    spec: ServerSpec,
    workers: int,
    hello: Scenario,
    lua: Path,
    args: argparse.Namespace,
    python: Path,
) -> Point:
    """`spec` started fresh with `workers` workers on the server CPUs, timed with wrk."""
    point = Point(spec.key, spec.label, workers)
    spec = with_workers(spec, workers)
    logs = RESULTS_DIR / "logs" / "scaling"
    try:
        server = RunningServer.start(
            spec,
            python=python,
            port=free_port(),
            cpu=args.server_cpus,
            log_dir=logs,
            app=hello.app,
            cwd=env.BENCH_DIR,
            env=server_env(),
            ready_path=hello.path,
        )
    except ServerFailed as exc:
        point.failed = f"did not start: {exc}"
        return point
    try:
        hello.check(hello, server.port)
        url = f"http://127.0.0.1:{server.port}{hello.path}"
        runs = [args.warmup] if args.warmup else []
        runs += [args.duration] * args.repeat
        for number, seconds in enumerate(runs):
            argv = wrk_command(
                url=url,
                lua=lua,
                connections=args.connections,
                duration_s=seconds,
                cpu=args.client_cpus,
                threads=args.wrk_threads,
            )
            result, _ = run_wrk(argv, seconds)
            if not server.alive():
                point.failed = "server died:\n" + server.process.log_tail()
                break
            if result.error_count:
                point.failed = f"wrk errors: {result.errors}"
            if number or not args.warmup:
                point.runs.append(result)
    except (CheckFailed, WrkFailed) as exc:
        point.failed = str(exc)
    finally:
        server.stop()
    return point


def efficiency(points: Sequence[Point], server: str, workers: int) -> float | None:
    one = next((p.rps for p in points if p.server == server and p.workers == 1), None)
    many = next((p.rps for p in points if p.server == server and p.workers == workers), None)
    return many / (workers * one) if one and many else None


def table(points: Sequence[Point], counts: Sequence[int], specs: Sequence[ServerSpec]) -> str:
    lines = []
    header = ["server", *(f"{n} worker{'s' * (n > 1)} req/s" for n in counts)]
    header += [f"efficiency at {n}" for n in counts if n > 1]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "---|" * len(header))
    for spec in specs:
        row = [spec.label]
        for n in counts:
            point = next(p for p in points if p.server == spec.key and p.workers == n)
            row.append(f"{point.rps:,.0f}" if point.rps else f"FAILED ({point.failed})")
        for n in counts:
            if n > 1:
                value = efficiency(points, spec.key, n)
                row.append(f"{value:.2f}" if value is not None else "—")
        lines.append("| " + " | ".join(row) + " |")
    for n in counts:
        mine = next((p.rps for p in points if p.server == POUNCE and p.workers == n), None)
        theirs = next((p.rps for p in points if p.server == UVICORN and p.workers == n), None)
        if mine and theirs:
            lines.append(f"Pounce ÷ Uvicorn at {n} worker{'s' * (n > 1)}: {mine / theirs:.2f}×")
    return "\n".join(lines)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        _fail("taskset and /proc: Linux only")
    if args.smoke:
        apply_smoke(args)
    check_machine(args)
    counts = sorted({int(n) for n in args.workers.split(",")})
    if counts[0] != 1:
        _fail("--workers must include 1: efficiency is measured against one worker")
    python = env.ensure_peers_venv(reinstall=False)
    specs = select(all_servers(python), [s.strip() for s in args.servers.split(",")])
    if not specs:
        _fail("--servers matched nothing; see benchmarks/run.py --list")
    hello = next(s for s in SCENARIOS if s.key == "hello")
    lua = hello.write_lua(LUA_DIR)
    started = dt.datetime.now(dt.UTC)
    print(
        f"servers on CPUs {args.server_cpus}, wrk -t{args.wrk_threads} -c{args.connections} "
        f"on CPUs {args.client_cpus}; workers {counts}; {args.repeat} × {args.duration} s",
        flush=True,
    )
    points: list[Point] = []
    for n in counts:
        for spec in specs:
            point = measure(spec, n, hello, lua, args, python)
            points.append(point)
            shown = f"{point.rps:,.0f} req/s" if point.rps else ""
            print(f"  {n} × {spec.label:<30} {shown} {point.failed or ''}", flush=True)
    print("\n" + table(points, counts, specs))
    out = args.json or RESULTS_DIR / f"scaling-{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    report.write_json(
        out,
        {
            "started": started.isoformat(timespec="seconds"),
            "settings": {k: v for k, v in vars(args).items() if k != "json"},
            "machine": env.machine_info(python),
            "points": [p.as_json() for p in points],
            "efficiency": {
                spec.key: {n: efficiency(points, spec.key, n) for n in counts if n > 1}
                for spec in specs
            },
        },
    )
    print(f"\nJSON: {out}")
    return 1 if any(p.failed for p in points) else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
