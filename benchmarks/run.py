#!/usr/bin/env python3
"""Pounce against its peers, side by side, on this machine (see benchmarks/README.md).

    python3 dev.py bench                       # everything: ~15 minutes on 9 servers
    python3 dev.py bench --quick               # smoke: 1 s runs, 1 repeat
    python3 dev.py bench --scenarios hello --servers pounce,uvicorn
    python3 dev.py bench --scenarios ws-echo   # WebSocket echo (not in the default set)
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
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NoReturn

from harness import env, h2load, report, wsecho
from harness.memory import idle_rss, raise_fd_limit, rss_with_connections
from harness.procs import CpuSample, CpuShares, free_port
from harness.report import Cell, MemoryCell
from harness.scenarios import (
    ALL_KEYS,
    DEFAULT_KEYS,
    MEMORY_KEY,
    SCENARIOS,
    WS_KEY,
    CheckFailed,
    Scenario,
)
from harness.servers import (
    RunningServer,
    ServerFailed,
    ServerSpec,
    all_servers,
    for_workers,
    select,
)
from harness.wrk import WrkFailed, WrkResult, run_wrk, wrk_command

RESULTS_DIR = env.BENCH_DIR / "results"
LUA_DIR = env.BENCH_DIR / "lua"
DEFAULT_IDLE_CONNS = 10_000
QUICK_IDLE_CONNS = 1_000
BUSY_WARNING = 0.10  # CPUs busier than this before the start: warn
NOISY_OTHERS = 0.15  # other work took more of the server's or wrk's core: say so
SATURATED = 0.90  # a server below this share of its core was not the bottleneck


@dataclass(frozen=True, slots=True)
class Settings:
    duration_s: int
    repeat: int
    warmup_s: int
    idle_conns: int
    server_cpu: int | None
    client_cpu: int | None
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
        help=f"comma-separated, from: {','.join(ALL_KEYS)} (default: all but {WS_KEY})",
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


def pick_cpus() -> tuple[int | None, int | None]:
    """Server on the first allowed CPU, load generator on the second."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        print("warning: fewer than 2 CPUs or no taskset: nothing is pinned", file=sys.stderr)
        return None, None
    return cpus[0], cpus[1]


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
    server_cpu, client_cpu = pick_cpus()
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


# --- timed scenarios ------------------------------------------------------------------


def _start(
    spec: ServerSpec, python: Path, settings: Settings, log_dir: Path, pinned: bool = True
) -> RunningServer:
    cpu = settings.server_cpu if pinned else None
    return RunningServer.start(spec, python=python, port=free_port(), cpu=cpu, log_dir=log_dir)


def _start_and_check(
    scenario: Scenario, cells: list[Cell], python: Path, settings: Settings, log_dir: Path
) -> dict[str, RunningServer]:
    """Start every server; keep those that answer this scenario's request correctly."""
    running: dict[str, RunningServer] = {}
    for cell in cells:
        try:
            server = _start(cell.server, python, settings, log_dir, scenario.pinned)
        except ServerFailed as exc:
            cell.failed = str(exc)
            print(f"  {cell.server.label}: did not start: {exc}", flush=True)
            continue
        running[cell.server.key] = server
        try:
            scenario.check(scenario, server.port)
        except CheckFailed as exc:
            cell.refused = str(exc)
            print(f"  {cell.server.label}: REFUSED, wrong answer: {exc}", flush=True)
            running.pop(cell.server.key).stop()
    return running


def _time_once(
    cell: Cell,
    server: RunningServer,
    scenario: Scenario,
    lua: Path,
    settings: Settings,
    seconds: int,
) -> tuple[WrkResult, str, CpuShares] | None:
    server_cpu, client_cpu = (
        (settings.server_cpu, settings.client_cpu) if scenario.pinned else (None, None)
    )
    argv = wrk_command(
        url=f"http://127.0.0.1:{server.port}{scenario.path}",
        lua=lua,
        connections=scenario.connections,
        duration_s=seconds,
        cpu=client_cpu,
        threads=scenario.wrk_threads,
    )
    before = CpuSample.take(server.pid, server_cpu, client_cpu)
    try:
        result, raw = run_wrk(argv, seconds)
    except WrkFailed as exc:
        cell.failed = str(exc)
        return None
    after = CpuSample.take(server.pid, server_cpu, client_cpu)
    shares = CpuShares.between(before, after)
    if not server.alive():
        cell.failed = "server died during the run:\n" + server.process.log_tail()
        return None
    return result, raw, shares


def _check_bytes(cell: Cell, result: WrkResult, scenario: Scenario) -> None:
    """Every answer carries its body: wrk must have read at least that much per response."""
    if result.bytes_read < result.requests * scenario.response_size:
        cell.warnings.append(
            f"short answers: {result.bytes_read:,} bytes read for {result.requests:,} responses"
            f" of {scenario.response_size:,}-byte bodies"
        )


def _progress(cell: Cell, round_no: int, settings: Settings) -> str:
    run, cpu = cell.runs[-1], cell.cpu[-1]
    flag = f"  {run.error_count} ERRORS {run.errors}" if run.error_count else ""
    noise = f", noise {cpu.noise:4.0%}" if cpu.noise is not None else ""
    return (
        f"  [{round_no}/{settings.repeat}] {cell.server.label:<30} {run.rps:>10,.0f} req/s"
        f"  p50 {run.p50_ms:6.2f} ms  p99 {run.p99_ms:6.2f} ms"
        f"  (server CPU {cpu.server:4.0%}, wrk {cpu.client:4.0%}{noise}){flag}"
    )


def run_scenario(
    scenario: Scenario, specs: Sequence[ServerSpec], python: Path, settings: Settings, logs: Path
) -> list[Cell]:
    """All servers up at once (idle ones cost nothing); runs interleaved round by round."""
    where = "" if scenario.pinned else ", unpinned"
    print(
        f"\n== {scenario.key}: {scenario.title} "
        f"(-t{scenario.wrk_threads} -c{scenario.connections}{where})",
        flush=True,
    )
    lua = scenario.write_lua(LUA_DIR)
    cells = [Cell(scenario.key, spec) for spec in specs]
    running = _start_and_check(scenario, cells, python, settings, logs / scenario.key)
    try:
        live = [cell for cell in cells if cell.server.key in running]
        if settings.warmup_s:
            for cell in live:
                server = running[cell.server.key]
                if _time_once(cell, server, scenario, lua, settings, settings.warmup_s) is None:
                    print(f"  {cell.server.label}: FAILED in warm-up: {cell.failed}", flush=True)
        for round_no in range(1, settings.repeat + 1):
            for cell in live:
                if cell.failed:
                    continue
                outcome = _time_once(
                    cell, running[cell.server.key], scenario, lua, settings, settings.duration_s
                )
                if outcome is None:
                    print(f"  {cell.server.label}: FAILED: {cell.failed}", flush=True)
                    continue
                result, raw, shares = outcome
                _check_bytes(cell, result, scenario)
                cell.runs.append(result)
                cell.raw.append(raw)
                cell.cpu.append(shares)
                print(_progress(cell, round_no, settings), flush=True)
    finally:
        for server in running.values():
            server.stop()
    return cells


# --- memory -------------------------------------------------------------------------------


def run_memory(
    specs: Sequence[ServerSpec], python: Path, settings: Settings, logs: Path
) -> list[MemoryCell]:
    """Fresh server each: RSS idle after start, then with N idle keep-alive connections."""
    print(f"\n== memory: RSS idle, and with {settings.idle_conns:,} idle keep-alive connections")
    cells = []
    for spec in specs:
        cell = MemoryCell(spec)
        cells.append(cell)
        try:
            server = _start(spec, python, settings, logs / MEMORY_KEY)
        except ServerFailed as exc:
            cell.failed = str(exc)
            continue
        try:
            cell.idle = idle_rss(server.pid)
            if settings.idle_conns:
                cell.loaded = rss_with_connections(server.pid, server.port, settings.idle_conns)
            if not server.alive():
                cell.failed = "server died:\n" + server.process.log_tail()
        except (OSError, TimeoutError) as exc:
            cell.failed = f"{type(exc).__name__}: {exc}"
        finally:
            server.stop()
        print("  " + _memory_progress(cell), flush=True)
    return cells


def _memory_progress(cell: MemoryCell) -> str:
    idle = f"{cell.idle.total_mib:.1f} MiB idle" if cell.idle else "idle ?"
    loaded = ""
    if cell.loaded:
        loaded = (
            f", {cell.loaded.rss.total_mib:.1f} MiB with {cell.loaded.held:,} conns"
            f" (opened {cell.loaded.opened:,} in {cell.loaded.open_seconds:.1f}s)"
        )
    failed = f"  FAILED: {cell.failed}" if cell.failed else ""
    return f"{cell.server.label:<30} {idle}{loaded}{failed}"


# --- output -----------------------------------------------------------------------------------


def run_h2(
    specs: Sequence[ServerSpec], python: Path, settings: Settings, logs: Path
) -> list[tuple[str, h2load.H2Result | str]]:
    """h2load -c16 -m10 against every server that speaks HTTP/2; ratios to Hypercorn."""
    print(f"\n== {h2load.H2_HELLO}: h2load -c{h2load.CONNECTIONS} -m{h2load.STREAMS}", flush=True)
    if not h2load.available():
        print(h2load.missing_message(), flush=True)
        return []
    rows: list[tuple[str, h2load.H2Result | str]] = []
    for spec in h2load.h2_specs(list(specs)):
        try:
            server = _start(spec, python, settings, logs / h2load.H2_HELLO)
        except ServerFailed as exc:
            rows.append((spec.label, f"did not start: {exc}"))
            continue
        try:
            h2load.run(server.port, 1, settings.client_cpu)  # warm-up and check
            best = max(
                (
                    h2load.run(server.port, settings.duration_s, settings.client_cpu)
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


def print_h2(rows: list[tuple[str, h2load.H2Result | str]]) -> None:
    if not rows:
        return
    base = next(
        (r.rps for label, r in rows if label.startswith("hypercorn") and not isinstance(r, str)),
        None,
    )
    print(f"\n{h2load.H2_HELLO}: h2load -c{h2load.CONNECTIONS} -m{h2load.STREAMS}, best run")
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
                server = _start(spec, python, settings, logs / WS_KEY)
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
    for scenario in SCENARIOS:
        these = [cell for cell in cells if cell.scenario == scenario.key]
        if not these:
            continue
        print("\n" + report.throughput_table(f"{scenario.key}: {scenario.title}", these))
        ratios = report.ratio_table(these)
        if ratios:
            print("\n" + ratios)
    goals = report.goal_rows(cells) + report.memory_goal_rows(memory)
    if goals:
        print("\nIssue goals (ratio of medians)\n" + report.goals_table(goals))
    if memory:
        print("\nMemory (VmRSS of the server's process tree)")
        print(report.memory_table(memory, settings.idle_conns))
    noisy = [c for c in cells if (c.median_cpu("noise") or 0.0) > NOISY_OTHERS]
    if noisy:
        print(
            f"\nNOISY: in {len(noisy)} rows other work took over {NOISY_OTHERS:.0%} of the"
            " server's or wrk's core (the `noise` column); compare those numbers with care."
        )
    starved = [c for c in cells if (c.median_cpu("server") or 1.0) < SATURATED]
    if starved:
        print(
            f"\nNOT SATURATED: in {len(starved)} rows the server used under {SATURATED:.0%} of"
            " its core (`server CPU`): wrk or the machine limited those rows, not the server."
        )
    if any(cell.flagged for cell in cells):
        print("\nFLAGGED rows had errors (non-2xx answers or socket errors) or failed; see JSON.")


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
                "argv": s.argv(python, 0)[2:],
            }
            for s in specs
        ],
        "scenarios": {
            s.key: {
                "title": s.title,
                "method": s.method,
                "path": s.path,
                "connections": s.connections,
                "wrk_threads": s.wrk_threads,
                "pinned": s.pinned,
                "workers": s.workers,
                "lua": str(LUA_DIR / f"{s.key}.lua"),
            }
            for s in SCENARIOS
            if s.key in settings.scenarios
        },
        "throughput": [cell.as_json() for cell in cells],
        "ratios": report.ratio_rows(cells),
        "goals": report.goal_rows(cells) + report.memory_goal_rows(memory),
        "memory": [cell.as_json() for cell in memory],
        "ws_echo": [cell.as_json() for cell in ws_cells],
        "load_average_at_end": env.load_average(),
    }


# --- main ---------------------------------------------------------------------------------


def _on_sigterm(signum: int, frame: object) -> NoReturn:
    raise SystemExit(128 + signum)  # unwinds through every `finally` that stops a server


def list_everything(specs: Sequence[ServerSpec]) -> None:
    print("servers:")
    for spec in specs:
        print(f"  {spec.key:<28} {spec.label}")
    print("scenarios:")
    print(f"  {MEMORY_KEY:<28} RSS idle and with N idle keep-alive connections")
    for scenario in SCENARIOS:
        print(f"  {scenario.key:<28} {scenario.title} (-c{scenario.connections})")
    print(f"  {h2load.H2_HELLO:<28} h2load -c{h2load.CONNECTIONS} -m{h2load.STREAMS} GET /hello")
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
    signal.signal(signal.SIGTERM, _on_sigterm)
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


def _warn_if_busy(busy: float) -> None:
    if busy > BUSY_WARNING:
        print(
            f"warning: the CPUs were {busy:.0%} busy before the run started (other work);"
            " the numbers will be noisy",
            file=sys.stderr,
            flush=True,
        )


def run_all(settings: Settings, specs: Sequence[ServerSpec], python: Path, out: Path | None) -> int:
    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    logs = RESULTS_DIR / "logs" / stamp
    out = out or RESULTS_DIR / f"{stamp}.json"
    print(f"servers: {', '.join(spec.label for spec in specs)}")
    print(f"scenarios: {', '.join(settings.scenarios)}")
    print(f"estimated time: ~{estimate_s(settings, len(specs)) / 60:.1f} min", flush=True)
    machine = env.machine_info(python)
    _warn_if_busy(machine["cpu_busy_before_start"])
    cells: list[Cell] = []
    memory: list[MemoryCell] = []
    h2_rows: list[tuple[str, h2load.H2Result | str]] = []
    ws_cells: list[wsecho.WsCell] = []
    complete = False
    began = time.monotonic()
    try:
        if MEMORY_KEY in settings.scenarios:
            memory = run_memory(specs, python, settings, logs)
        for scenario in SCENARIOS:
            if scenario.key in settings.scenarios:
                these = for_workers(specs, scenario.workers)
                cells += run_scenario(scenario, these, python, settings, logs)
        if h2load.H2_HELLO in settings.scenarios:
            h2_rows = run_h2(specs, python, settings, logs)
        if WS_KEY in settings.scenarios:
            ws_cells = run_ws(specs, python, settings, logs)
        complete = True
    finally:
        ran = list(specs)  # and the several-worker variants the scenarios ran
        for scenario in SCENARIOS:
            if scenario.key in settings.scenarios and scenario.workers > 1:
                ran += for_workers(specs, scenario.workers)
        doc = document(settings, machine, ran, python, cells, memory, started, complete, ws_cells)
        report.write_json(out, doc)
        print_summary(cells, memory, settings)
        print_h2(h2_rows)
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
