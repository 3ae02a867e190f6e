"""Time servers on a scenario: start, check, agree, warm up, interleave the timed runs.

For each scenario every server is started at once (idle ones cost nothing),
each is checked with the scenario's request, and those whose answer is wrong,
or whose status differs from what most servers answered, are refused and never
timed. Then one untimed warm-up run each, and the timed runs round by round
(run 1 of every server, then run 2 …), so a slow minute on a shared machine
spreads over all servers instead of sinking one. Each run records wrk's
counters and the CPU shares of the server, wrk and everything else on their
cores (the noise). Servers are stopped after the scenario, on errors, on
Ctrl-C and on SIGTERM (see `exit_on_sigterm`).
"""

from __future__ import annotations

import collections
import signal
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import NoReturn

from pounce.bench import report
from pounce.bench.memory import idle_rss, rss_with_connections
from pounce.bench.procs import CpuSample, CpuShares, free_port, tree_rss
from pounce.bench.report import Cell, MemoryCell
from pounce.bench.scenario import CheckFailed, Scenario
from pounce.bench.servers import RunningServer, ServerFailed, ServerSpec
from pounce.bench.wrk import WrkFailed, WrkResult, run_wrk, wrk_command

BUSY_WARNING = 0.10  # CPUs busier than this before the start: warn
NOISY_OTHERS = 0.15  # other work took more of the server's or wrk's core: say so
SATURATED = 0.90  # a server below this share of its core was not the bottleneck


@dataclass(frozen=True, slots=True)
class Settings:
    duration_s: int  # each timed wrk run
    repeat: int  # timed runs per (scenario, server)
    warmup_s: int  # one untimed run first; 0 skips it
    server_cpu: int | None  # None: unpinned
    client_cpu: int | None


@dataclass(frozen=True, slots=True)
class Bench:
    """Where and how the servers of one run are started: the same for every scenario."""

    python: Path  # the interpreter every server runs on
    settings: Settings
    cwd: Path  # the servers' working directory
    env: Mapping[str, str]  # the servers' environment (PYTHONPATH finds the app)
    logs: Path  # server logs go to logs/<scenario>/<server>.log
    lua_dir: Path  # the generated wrk scripts

    def start(
        self, spec: ServerSpec, app: str, log_dir: Path, ready_path: str = "/", pinned: bool = True
    ) -> RunningServer:
        return RunningServer.start(
            spec,
            python=self.python,
            port=free_port(),
            cpu=self.settings.server_cpu if pinned else None,
            log_dir=log_dir,
            app=app,
            cwd=self.cwd,
            env=self.env,
            ready_path=ready_path,
        )


def exit_on_sigterm() -> None:
    """SIGTERM unwinds like Ctrl-C, through every `finally` that stops a server."""

    def handler(signum: int, frame: FrameType | None) -> NoReturn:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def _start_and_check(
    bench: Bench, scenario: Scenario, cells: list[Cell]
) -> dict[str, RunningServer]:
    """Start every server; keep those that answer this scenario's request correctly."""
    running: dict[str, RunningServer] = {}
    statuses: dict[str, int] = {}
    for cell in cells:
        try:
            server = bench.start(
                cell.server,
                scenario.app,
                bench.logs / scenario.slug,
                scenario.path,
                scenario.pinned,
            )
        except ServerFailed as exc:
            cell.failed = str(exc)
            print(f"  {cell.server.label}: did not start: {exc}", flush=True)
            continue
        running[cell.server.key] = server
        try:
            statuses[cell.server.key] = scenario.check(scenario, server.port)
        except CheckFailed as exc:
            cell.refused = str(exc)
            print(f"  {cell.server.label}: REFUSED, wrong answer: {exc}", flush=True)
            running.pop(cell.server.key).stop()
    _refuse_disagreeing(scenario, cells, statuses, running)
    return running


def _refuse_disagreeing(
    scenario: Scenario,
    cells: list[Cell],
    statuses: dict[str, int],
    running: dict[str, RunningServer],
) -> None:
    """Every server must answer the same status: the odd ones out are refused (a tie goes
    to the status of the first server, Pounce)."""
    if len(set(statuses.values())) < 2:
        return
    counts = collections.Counter(statuses.values())
    first = next(iter(statuses.values()))
    want = max(counts, key=lambda status: (counts[status], status == first))
    for cell in cells:
        got = statuses.get(cell.server.key)
        if got is not None and got != want:
            others = f"{counts[want]} other server(s)"
            cell.refused = f"{scenario.key}: status {got}, where {others} answered {want}"
            print(f"  {cell.server.label}: REFUSED, {cell.refused}", flush=True)
            running.pop(cell.server.key).stop()


def _time_once(
    bench: Bench, cell: Cell, server: RunningServer, scenario: Scenario, lua: Path, seconds: int
) -> tuple[WrkResult, str, CpuShares] | None:
    settings = bench.settings
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


def _warm_up(
    bench: Bench,
    cells: list[Cell],
    running: dict[str, RunningServer],
    scenario: Scenario,
    lua: Path,
) -> None:
    for cell in cells:
        server = running[cell.server.key]
        if _time_once(bench, cell, server, scenario, lua, bench.settings.warmup_s) is None:
            print(f"  {cell.server.label}: FAILED in warm-up: {cell.failed}", flush=True)


def _timed_round(
    bench: Bench,
    cells: list[Cell],
    running: dict[str, RunningServer],
    scenario: Scenario,
    lua: Path,
    round_no: int,
) -> None:
    for cell in cells:
        if cell.failed:
            continue
        server = running[cell.server.key]
        outcome = _time_once(bench, cell, server, scenario, lua, bench.settings.duration_s)
        if outcome is None:
            print(f"  {cell.server.label}: FAILED: {cell.failed}", flush=True)
            continue
        result, raw, shares = outcome
        _check_bytes(cell, result, scenario)
        cell.runs.append(result)
        cell.raw.append(raw)
        cell.cpu.append(shares)
        print(_progress(cell, round_no, bench.settings), flush=True)


def run_scenario(bench: Bench, scenario: Scenario, specs: Sequence[ServerSpec]) -> list[Cell]:
    """All servers up at once (idle ones cost nothing); runs interleaved round by round."""
    where = "" if scenario.pinned else ", unpinned"
    print(
        f"\n== {scenario.key}: {scenario.title} "
        f"(-t{scenario.wrk_threads} -c{scenario.connections}{where})",
        flush=True,
    )
    lua = scenario.write_lua(bench.lua_dir)
    cells = [Cell(scenario.key, spec) for spec in specs]
    running = _start_and_check(bench, scenario, cells)
    try:
        live = [cell for cell in cells if cell.server.key in running]
        if bench.settings.warmup_s:
            _warm_up(bench, live, running, scenario, lua)
        for round_no in range(1, bench.settings.repeat + 1):
            _timed_round(bench, live, running, scenario, lua, round_no)
        for cell in live:
            server = running[cell.server.key]
            if server.alive():
                cell.rss = tree_rss(server.pid)
    finally:
        for server in running.values():
            server.stop()
    return cells


# --- memory -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MemoryProbe:
    """What the memory reading asks each idle connection: a GET of `path` on `app`."""

    app: str
    path: str
    body: bytes  # the exact answer


def run_memory(
    bench: Bench, specs: Sequence[ServerSpec], idle_conns: int, probe: MemoryProbe
) -> list[MemoryCell]:
    """Fresh server each: RSS idle after start, then with N idle keep-alive connections."""
    print(f"\n== memory: RSS idle, and with {idle_conns:,} idle keep-alive connections")
    cells = []
    for spec in specs:
        cell = MemoryCell(spec)
        cells.append(cell)
        try:
            server = bench.start(spec, probe.app, bench.logs / "memory", probe.path)
        except ServerFailed as exc:
            cell.failed = str(exc)
            continue
        try:
            cell.idle = idle_rss(server.pid)
            if idle_conns:
                cell.loaded = rss_with_connections(
                    server.pid, server.port, idle_conns, probe.path, probe.body
                )
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


# --- output -------------------------------------------------------------------------------


def print_tables(cells: Sequence[Cell], scenarios: Sequence[Scenario]) -> None:
    """Per scenario: the throughput table, then Pounce ÷ each peer."""
    for scenario in scenarios:
        these = [cell for cell in cells if cell.scenario == scenario.key]
        if not these:
            continue
        print("\n" + report.throughput_table(f"{scenario.key}: {scenario.title}", these))
        ratios = report.ratio_table(these)
        if ratios:
            print("\n" + ratios)


def print_notes(cells: Sequence[Cell]) -> None:
    """What makes numbers less comparable: noise, an unsaturated server, errors."""
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


def warn_if_busy(busy: float) -> None:
    if busy > BUSY_WARNING:
        print(
            f"warning: the CPUs were {busy:.0%} busy before the run started (other work);"
            " the numbers will be noisy",
            file=sys.stderr,
            flush=True,
        )
