#!/usr/bin/env python3
"""Pounce against its peers, side by side, on this machine (see benchmarks/README.md).

    python3 dev.py bench                       # everything: ~30 minutes on 10 servers
    python3 dev.py bench --quick               # smoke: 1 s runs, 1 repeat
    python3 dev.py bench --scenarios hello --servers pounce,uvicorn
    python3 dev.py bench --scenarios ws-echo   # WebSocket echo (not in the default set)
    python3 dev.py bench --scenarios h2-hello,h2-1mib  # HTTP/2: hello and 1 MiB downloads
    .venv/bin/python benchmarks/run.py --list  # the server and scenario names

Each server runs with one worker pinned to CPU 0, wrk (or the memory client) runs
on CPU 1. Peers and Pounce are installed into benchmarks/.peers-venv so every
server runs on the same Python. The table goes to stdout, the whole record to
benchmarks/results/<timestamp>.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

# The harness is pounce.bench, from this working tree (the one being measured), whatever
# Pounce the interpreter has installed.
ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(1, str(ROOT))

import apps  # noqa: E402
from harness import env, h2load, report, wsecho  # noqa: E402
from harness.scenarios import (  # noqa: E402
    ALL_KEYS,
    DEFAULT_KEYS,
    MEMORY_KEY,
    SCENARIOS,
    WS_KEY,
)
from harness.servers import APP, all_servers, for_workers, server_env  # noqa: E402

from pounce.bench import report as bench_report  # noqa: E402
from pounce.bench import runner  # noqa: E402
from pounce.bench.machine import pick_cpus  # noqa: E402
from pounce.bench.memory import raise_fd_limit  # noqa: E402
from pounce.bench.report import Cell, MemoryCell  # noqa: E402
from pounce.bench.runner import Bench, MemoryProbe  # noqa: E402
from pounce.bench.servers import ServerFailed, ServerSpec, select  # noqa: E402

RESULTS_DIR = env.BENCH_DIR / "results"
LUA_DIR = env.BENCH_DIR / "lua"
DEFAULT_IDLE_CONNS = 10_000
QUICK_IDLE_CONNS = 1_000
MEMORY_PROBE = MemoryProbe(APP, "/hello", apps.HELLO_BODY)


@dataclass(frozen=True, slots=True)
class Settings(runner.Settings):
    """`pounce.bench.runner`'s settings and what only this harness has."""

    idle_conns: int
    scenarios: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "duration_s": self.duration_s,
            "repeat": self.repeat,
            "warmup_s": self.warmup_s,
            "idle_conns": self.idle_conns,
            "server_cpu": self.server_cpu,
            "client_cpu": self.client_cpu,
            "scenarios": list(self.scenarios),
        }


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark Pounce against Uvicorn, Hypercorn and Granian with wrk.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed wrk run")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per server/scenario")
    parser.add_argument("--warmup", type=int, default=1, help="untimed wrk seconds first")
    parser.add_argument(
        "--idle-conns",
        type=int,
        default=None,
        help=f"keep-alive connections held for the memory reading "
        f"(default {DEFAULT_IDLE_CONNS:,}; {QUICK_IDLE_CONNS:,} with --quick; 0: idle RSS only)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s, 1 repeat, no warm-up")
    parser.add_argument(
        "--servers", help="comma-separated server keys, globs or prefixes (pounce,uvicorn-h*)"
    )
    parser.add_argument(
        "--scenarios",
        help=f"comma-separated, from: {','.join(ALL_KEYS)} (default: {','.join(DEFAULT_KEYS)})",
    )
    parser.add_argument("--list", action="store_true", help="list servers and scenarios")
    parser.add_argument("--json", type=Path, help="artifact path (default: results/<time>.json)")
    parser.add_argument(
        "--reinstall", action="store_true", help="re-run pip in .peers-venv, upgrading peers"
    )
    return parser.parse_args(argv)


def _split(value: str | None) -> list[str] | None:
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def _fail(message: str) -> NoReturn:
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


def _cpus() -> tuple[int | None, int | None]:
    """Server on the first allowed CPU, load generator on the second."""
    cpus = pick_cpus()
    if cpus is None:
        print("warning: fewer than 2 CPUs or no taskset: nothing is pinned", file=sys.stderr)
        return None, None
    return cpus


def build_settings(args: argparse.Namespace) -> Settings:
    scenarios = tuple(_split(args.scenarios) or DEFAULT_KEYS)
    unknown = [key for key in scenarios if key not in ALL_KEYS]
    if unknown:
        _fail(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(ALL_KEYS)}")
    idle = args.idle_conns
    if idle is None:
        idle = QUICK_IDLE_CONNS if args.quick else DEFAULT_IDLE_CONNS
    if min(args.duration, args.repeat) < 1 or min(args.warmup, idle) < 0:
        _fail("--duration and --repeat must be ≥ 1; --warmup and --idle-conns ≥ 0")
    server_cpu, client_cpu = _cpus()
    return Settings(
        duration_s=1 if args.quick else args.duration,
        repeat=1 if args.quick else args.repeat,
        warmup_s=0 if args.quick else args.warmup,
        idle_conns=idle,
        server_cpu=server_cpu,
        client_cpu=client_cpu,
        scenarios=scenarios,
    )


def estimate_s(settings: Settings, servers: int) -> float:
    """A rough total: starts, checks, warm-ups, timed runs, the memory phase."""
    timed = [key for key in settings.scenarios if key != MEMORY_KEY]
    if WS_KEY in settings.scenarios:  # two loads, and up to two more Uvicorns
        timed += [WS_KEY, WS_KEY, WS_KEY]
    per_run = settings.duration_s + 0.3
    per_scenario = servers * (1.0 + settings.warmup_s + settings.repeat * per_run)
    memory = 0.0
    if MEMORY_KEY in settings.scenarios:
        memory = servers * (5.0 + settings.idle_conns / 4000)
    return len(timed) * per_scenario + memory


def _bench(python: Path, settings: Settings, logs: Path) -> Bench:
    return Bench(
        python=python,
        settings=settings,
        cwd=env.BENCH_DIR,
        env=server_env(),
        logs=logs,
        lua_dir=LUA_DIR,
    )


# --- output -----------------------------------------------------------------------------------


def run_h2(
    specs: Sequence[ServerSpec], python: Path, settings: Settings, logs: Path, key: str
) -> list[tuple[str, h2load.H2Result | str]]:
    """h2load -c16 -m10 against every server that speaks HTTP/2; ratios to Hypercorn."""
    path = h2load.PATHS[key]
    print(f"\n== {key}: h2load -c{h2load.CONNECTIONS} -m{h2load.STREAMS} GET {path}", flush=True)
    if not h2load.available():
        print(h2load.missing_message(key), flush=True)
        return []
    rows: list[tuple[str, h2load.H2Result | str]] = []
    for spec in h2load.h2_specs(list(specs)):
        try:
            server = _bench(python, settings, logs).start(spec, APP, logs / key)
        except ServerFailed as exc:
            rows.append((spec.label, f"did not start: {exc}"))
            continue
        try:
            h2load.run(server.port, 1, settings.client_cpu, path)  # warm-up and check
            best = max(
                (
                    h2load.run(server.port, settings.duration_s, settings.client_cpu, path)
                    for _ in range(settings.repeat)
                ),
                key=lambda r: r.rps,
            )
            rows.append((spec.label, best))
        except h2load.H2LoadFailed as exc:
            rows.append((spec.label, str(exc)))
        finally:
            server.stop()
        print(f"  {spec.label}: {rows[-1][1]}", flush=True)
    return rows


def print_h2(rows: list[tuple[str, h2load.H2Result | str]], key: str) -> None:
    if not rows:
        return
    base = next(
        (r.rps for label, r in rows if label.startswith("hypercorn") and not isinstance(r, str)),
        None,
    )
    path = h2load.PATHS[key]
    print(f"\n{key}: h2load -c{h2load.CONNECTIONS} -m{h2load.STREAMS} GET {path}, best run")
    for label, result in rows:
        if isinstance(result, str):
            print(f"  {label:<32} FAILED: {result.splitlines()[0]}")
            continue
        ratio = f"{result.rps / base:5.2f}x hypercorn" if base else ""
        bad = f"  ({result.non_2xx} non-2xx!)" if result.non_2xx else ""
        print(f"  {label:<32} {result.rps:>10,.0f} req/s  {ratio}{bad}")


def run_ws(
    specs: Sequence[ServerSpec], python: Path, settings: Settings, logs: Path
) -> list[wsecho.WsCell]:
    """WebSocket echo, both loads, a fresh server per load (harness/wsecho.py)."""
    print(f"\n== {WS_KEY}: WebSocket echo, a Python client on CPU {settings.client_cpu}")
    cpus = (settings.server_cpu, settings.client_cpu)
    cells: list[wsecho.WsCell] = []
    for load in wsecho.LOADS:
        print(f"-- {load.title}", flush=True)
        for spec in wsecho.ws_specs(specs, python):
            cell = wsecho.WsCell(load.key, spec)
            cells.append(cell)
            try:
                server = _bench(python, settings, logs).start(spec, APP, logs / WS_KEY, "/hello")
            except ServerFailed as exc:
                cell.failed = f"did not start: {exc}"
                print(f"  {spec.label}: {cell.failed}", flush=True)
                continue
            try:
                wsecho.time_cell(
                    cell,
                    load,
                    lambda s, srv=server, ld=load: wsecho.run_client(
                        srv.pid, srv.port, ld, s, cpus
                    ),
                    settings.repeat,
                    settings.duration_s,
                    settings.warmup_s,
                )
            finally:
                server.stop()
    return cells


def print_summary(cells: list[Cell], memory: list[MemoryCell], settings: Settings) -> None:
    print("\n" + "=" * 78)
    if cells:
        print(
            f"Medians of {settings.repeat} × {settings.duration_s}s wrk runs "
            f"(server on CPU {settings.server_cpu}, wrk on CPU {settings.client_cpu}; "
            "workers2: two workers per server, nothing pinned, wrk -t2)"
        )
    runner.print_tables(cells, SCENARIOS)
    goals = report.goal_rows(cells) + report.memory_goal_rows(memory)
    if goals:
        print("\nIssue goals (ratio of medians)\n" + bench_report.goals_table(goals))
    if memory:
        print("\nMemory (VmRSS of the server's process tree)")
        print(bench_report.memory_table(memory, settings.idle_conns))
    runner.print_notes(cells)


def document(
    settings: Settings,
    machine: dict[str, Any],
    specs: Sequence[ServerSpec],
    python: Path,
    cells: list[Cell],
    memory: list[MemoryCell],
    started: dt.datetime,
    complete: bool,
    ws_cells: Sequence[wsecho.WsCell] = (),
) -> dict[str, Any]:
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "complete": complete,
        "settings": settings.as_json(),
        "machine": machine,
        "servers": [
            {
                "key": s.key,
                "label": s.label,
                "http": s.http,
                "loop": s.loop,
                "argv": s.argv(python, 0, "{app}")[2:],
            }
            for s in specs
        ],
        "scenarios": {
            s.key: {
                "title": s.title,
                "app": s.app,
                "method": s.method,
                "path": s.path,
                "connections": s.connections,
                "wrk_threads": s.wrk_threads,
                "pinned": s.pinned,
                "workers": s.workers,
                "lua": str(LUA_DIR / f"{s.slug}.lua"),
            }
            for s in SCENARIOS
            if s.key in settings.scenarios
        },
        "throughput": [cell.as_json() for cell in cells],
        "ratios": bench_report.ratio_rows(cells),
        "goals": report.goal_rows(cells) + report.memory_goal_rows(memory),
        "memory": [cell.as_json() for cell in memory],
        "ws_echo": [cell.as_json() for cell in ws_cells],
        "load_average_at_end": env.load_average(),
    }


# --- main ---------------------------------------------------------------------------------


def list_everything(specs: Sequence[ServerSpec]) -> None:
    print("servers:")
    for spec in specs:
        print(f"  {spec.key:<28} {spec.label}")
    print("scenarios:")
    print(f"  {MEMORY_KEY:<28} RSS idle and with N idle keep-alive connections")
    for scenario in SCENARIOS:
        print(f"  {scenario.key:<28} {scenario.title} (-c{scenario.connections})")
    for key, path in h2load.PATHS.items():
        print(f"  {key:<28} h2load -c{h2load.CONNECTIONS} -m{h2load.STREAMS} GET {path}")
    for load in wsecho.LOADS:
        print(f"  {WS_KEY:<28} {load.title} (optional)")
    print("servers of the workers2 scenario (--workers 2 each):")
    for spec in for_workers(specs, 2):
        print(f"  {spec.key:<28} {spec.label}")


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    if sys.platform != "linux":
        _fail("the harness reads /proc and pins with taskset: Linux only")
    wrk_keys = {scenario.key for scenario in SCENARIOS}
    wants_wrk = not args.scenarios or bool(wrk_keys & set(_split(args.scenarios) or []))
    if wants_wrk and shutil.which("wrk") is None:
        _fail("wrk is not on PATH (Debian/Ubuntu: apt-get install wrk)")
    runner.exit_on_sigterm()
    try:
        python = env.ensure_peers_venv(reinstall=args.reinstall)
        specs = select(all_servers(python), _split(args.servers))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        output = getattr(exc, "stderr", None) or ""
        _fail(f"{' '.join(map(str, exc.cmd))!r} failed: {exc}\n{output}")
    if args.list:
        list_everything(specs)
        return 0
    if not specs:
        _fail("--servers matched nothing; see --list")
    settings = build_settings(args)
    if MEMORY_KEY in settings.scenarios and settings.idle_conns:
        fit = raise_fd_limit(settings.idle_conns)
        if fit < settings.idle_conns:
            print(f"warning: RLIMIT_NOFILE allows only {fit:,} idle connections", file=sys.stderr)
            settings = dataclasses.replace(settings, idle_conns=fit)
    if settings.client_cpu is not None:
        os.sched_setaffinity(0, {settings.client_cpu})  # the memory client and checks
    return run_all(settings, specs, python, args.json)


def run_all(settings: Settings, specs: Sequence[ServerSpec], python: Path, out: Path | None) -> int:
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS_DIR / "logs" / stamp
    out = out or RESULTS_DIR / f"{stamp}.json"
    print(f"servers: {', '.join(spec.label for spec in specs)}")
    print(f"scenarios: {', '.join(settings.scenarios)}")
    print(f"estimated time: ~{estimate_s(settings, len(specs)) / 60:.1f} min", flush=True)
    machine = env.machine_info(python)
    runner.warn_if_busy(machine["cpu_busy_before_start"])
    cells: list[Cell] = []
    memory: list[MemoryCell] = []
    h2_rows: dict[str, list[tuple[str, h2load.H2Result | str]]] = {}
    ws_cells: list[wsecho.WsCell] = []
    complete = False
    began = time.monotonic()
    try:
        bench = _bench(python, settings, logs)
        if MEMORY_KEY in settings.scenarios:
            memory = runner.run_memory(bench, specs, settings.idle_conns, MEMORY_PROBE)
        for scenario in SCENARIOS:
            if scenario.key in settings.scenarios:
                these = for_workers(specs, scenario.workers)
                cells += runner.run_scenario(bench, scenario, these)
        for key in h2load.PATHS:
            if key in settings.scenarios:
                h2_rows[key] = run_h2(specs, python, settings, logs, key)
        if WS_KEY in settings.scenarios:
            ws_cells = run_ws(specs, python, settings, logs)
        complete = True
    finally:
        ran = list(specs)  # and the several-worker variants the scenarios ran
        for scenario in SCENARIOS:
            if scenario.key in settings.scenarios and scenario.workers > 1:
                ran += for_workers(specs, scenario.workers)
        doc = document(settings, machine, ran, python, cells, memory, started, complete, ws_cells)
        bench_report.write_json(out, doc)
        print_summary(cells, memory, settings)
        for key, rows in h2_rows.items():
            print_h2(rows, key)
        if ws_cells:
            print(wsecho.summary(ws_cells))
        if not complete:
            print("\nINTERRUPTED: the tables and the JSON hold what finished")
        print(f"\ntook {(time.monotonic() - began) / 60:.1f} min; JSON: {out}; server logs: {logs}")
    ws_failed = any(cell.failed for cell in ws_cells)
    return 1 if ws_failed or any(cell.flagged or cell.refused for cell in cells) else 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except KeyboardInterrupt:
        sys.exit(130)
