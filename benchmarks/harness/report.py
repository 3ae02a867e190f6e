"""Results: medians with min/max, Pounce-to-peer ratios, the issue's goals, the JSON file."""

from __future__ import annotations

import json
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.memory import LoadedRss
from harness.procs import CpuShares, Rss
from harness.servers import ServerSpec
from harness.wrk import WrkResult


@dataclass
class Cell:
    """Every timed run of one server in one scenario."""

    scenario: str
    server: ServerSpec
    runs: list[WrkResult] = field(default_factory=list)
    raw: list[str] = field(default_factory=list)
    cpu: list[CpuShares] = field(default_factory=list)  # one per run
    refused: str | None = None  # the correctness check failed: never timed
    failed: str | None = None  # the server died or wrk broke part-way
    warnings: list[str] = field(default_factory=list)  # e.g. wrk read too few bytes

    @property
    def rps(self) -> list[float]:
        return [run.rps for run in self.runs]

    @property
    def median_rps(self) -> float | None:
        return statistics.median(self.rps) if self.runs else None

    def median_of(self, attr: str) -> float | None:
        values = [float(getattr(run, attr)) for run in self.runs]
        return statistics.median(values) if values else None

    def median_cpu(self, attr: str) -> float | None:
        values = [v for v in (getattr(shares, attr) for shares in self.cpu) if v is not None]
        return statistics.median(values) if values else None

    @property
    def errors(self) -> int:
        return sum(run.error_count for run in self.runs)

    @property
    def flagged(self) -> bool:
        return self.errors > 0 or self.failed is not None or bool(self.warnings)

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "server": self.server.key,
            "label": self.server.label,
            "refused": self.refused,
            "failed": self.failed,
            "flagged": self.flagged,
            "warnings": self.warnings,
            "summary": self._summary(),
            "runs": [_run_json(run, cpu) for run, cpu in zip(self.runs, self.cpu, strict=True)],
            "wrk_output": self.raw,
        }

    def _summary(self) -> dict[str, Any] | None:
        if not self.runs:
            return None
        return {
            "rps_median": self.median_rps,
            "rps_min": min(self.rps),
            "rps_max": max(self.rps),
            "p50_ms_median": self.median_of("p50_ms"),
            "p99_ms_median": self.median_of("p99_ms"),
            "errors_total": self.errors,
            "server_cpu_median": _round(self.median_cpu("server"), 3),
            "wrk_cpu_median": _round(self.median_cpu("client"), 3),
            "noise_median": _round(self.median_cpu("noise"), 3),
        }


def _run_json(run: WrkResult, cpu: CpuShares) -> dict[str, Any]:
    return {
        **run.as_json(),
        "cpu": {
            "server": _round(cpu.server, 3),
            "wrk": _round(cpu.client, 3),
            "others_on_server_core": _round(cpu.server_others, 3),
            "others_on_wrk_core": _round(cpu.client_others, 3),
        },
    }


@dataclass
class MemoryCell:
    server: ServerSpec
    idle: Rss | None = None
    loaded: LoadedRss | None = None
    failed: str | None = None

    @property
    def per_connection_kib(self) -> float | None:
        if self.idle is None or self.loaded is None or not self.loaded.held:
            return None
        return (self.loaded.rss.total_kib - self.idle.total_kib) / self.loaded.held

    def as_json(self) -> dict[str, Any]:
        return {
            "server": self.server.key,
            "label": self.server.label,
            "idle": self.idle.as_json() if self.idle else None,
            "with_connections": self.loaded.as_json() if self.loaded else None,
            "per_connection_kib": _round(self.per_connection_kib),
            "failed": self.failed,
        }


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(value, digits)


# --- text tables -------------------------------------------------------------------


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first = cells[0].ljust(widths[0])
        rest = [cell.rjust(width) for cell, width in zip(cells[1:], widths[1:], strict=True)]
        return "  ".join([first, *rest]).rstrip()

    rule = "  ".join("-" * width for width in widths)
    return "\n".join([line(header), rule, *(line(row) for row in rows)])


def _num(value: float | None, fmt: str = ",.0f") -> str:
    return "—" if value is None else format(value, fmt)


def _throughput_row(cell: Cell) -> list[str]:
    if cell.refused is not None:
        return [cell.server.label, "refused", *[""] * 7, cell.refused[:60]]
    note = "FLAGGED: " if cell.flagged else ""
    if cell.failed:
        note += cell.failed[:60]
    elif cell.errors:
        note += f"{cell.errors} errors"
    elif cell.warnings:
        note += cell.warnings[0][:60]
    return [
        cell.server.label,
        _num(cell.median_rps),
        _num(min(cell.rps)) if cell.runs else "—",
        _num(max(cell.rps)) if cell.runs else "—",
        _num(cell.median_of("p50_ms"), ".2f"),
        _num(cell.median_of("p99_ms"), ".2f"),
        _num(cell.median_cpu("server"), ".0%"),
        _num(cell.median_cpu("client"), ".0%"),
        _num(cell.median_cpu("noise"), ".0%"),
        note,
    ]


def throughput_table(title: str, cells: Sequence[Cell]) -> str:
    header = [
        "server",
        "req/s median",
        "min",
        "max",
        "p50 ms",
        "p99 ms",
        "server CPU",
        "wrk CPU",
        "noise",
        "notes",
    ]
    return f"{title}\n" + _table(header, [_throughput_row(cell) for cell in cells])


def ratio(pounce: Cell, peer: Cell) -> float | None:
    mine, theirs = pounce.median_rps, peer.median_rps
    if mine is None or not theirs:
        return None
    return mine / theirs


def ratio_table(cells: Sequence[Cell]) -> str | None:
    """Rows: peers; columns: Pounce variants; cells: Pounce req/s ÷ peer req/s."""
    pounces = [cell for cell in cells if cell.server.is_pounce]
    peers = [cell for cell in cells if not cell.server.is_pounce]
    if not pounces or not peers:
        return None
    header = ["pounce ÷ peer (req/s)", *(cell.server.label for cell in pounces)]
    rows = [
        [peer.server.label, *(_num(ratio(cell, peer), ".2f") + "×" for cell in pounces)]
        for peer in peers
    ]
    return _table(header, rows)


def memory_table(cells: Sequence[MemoryCell], idle_conns: int) -> str:
    header = [
        "server",
        "idle MiB",
        f"{idle_conns:,} conns MiB",
        "held",
        "KiB/conn",
        "procs",
        "notes",
    ]
    rows = []
    for cell in cells:
        loaded = cell.loaded
        rows.append(
            [
                cell.server.label,
                _num(cell.idle.total_mib if cell.idle else None, ".1f"),
                _num(loaded.rss.total_mib if loaded else None, ".1f"),
                f"{loaded.held:,}" if loaded else "—",
                _num(cell.per_connection_kib, ".1f"),
                str(len(cell.idle.processes)) if cell.idle else "—",
                (cell.failed or (loaded.first_error if loaded else None) or "")[:60],
            ]
        )
    return _table(header, rows)


# --- the goals ---------------------------------------------------------------

# (scenario, pounce key, peer key, what the issue asks)
GOALS: tuple[tuple[str, str, str, str], ...] = (
    ("hello", "pounce-fast-uvloop", "uvicorn-httptools-uvloop", "≥ 1.0× (goal 1)"),
    ("hello", "pounce-fast-asyncio", "uvicorn-httptools-asyncio", "≥ 1.0× (goal 2)"),
    ("hello", "pounce-h11-asyncio", "uvicorn-h11-asyncio", "≥ 1.0× (goal 3)"),
    ("stream", "pounce-fast-uvloop", "granian", "≥ 1.0× (goal 6)"),
    ("64k", "pounce-fast-uvloop", "uvicorn-httptools-uvloop", "≥ 1.0× (goal 6)"),
    ("upload", "pounce-fast-uvloop", "uvicorn-httptools-uvloop", "≥ 1.0× (goal 6)"),
    ("hello", "pounce-fast-uvloop", "pounce-minimal-fast-uvloop", "≈ 1.0×, report (goal 5)"),
    ("workers2", "pounce-fast-uvloop-w2", "uvicorn-httptools-uvloop-w2", "≥ 1.0× (workers)"),
)
P99_GOAL = ("hello", "pounce-fast-uvloop", "uvicorn-httptools-uvloop", "≤ 1.2× (goal 1)")
# (pounce key, uvicorn key): each Pounce variant against the Uvicorn on the same loop
MEMORY_GOALS: tuple[tuple[str, str], ...] = (
    ("pounce-fast-uvloop", "uvicorn-httptools-uvloop"),
    ("pounce-fast-asyncio", "uvicorn-httptools-asyncio"),
    ("pounce-h11-asyncio", "uvicorn-h11-asyncio"),
)


def _find(cells: Sequence[Cell], scenario: str, key: str) -> Cell | None:
    return next((c for c in cells if c.scenario == scenario and c.server.key == key), None)


def goal_rows(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    rows = []
    for scenario, mine, theirs, target in GOALS:
        pounce, peer = _find(cells, scenario, mine), _find(cells, scenario, theirs)
        if pounce and peer:
            value = ratio(pounce, peer)
            rows.append(_goal(scenario, "req/s", pounce, peer, value, target))
    scenario, mine, theirs, target = P99_GOAL
    pounce, peer = _find(cells, scenario, mine), _find(cells, scenario, theirs)
    if pounce and peer:
        a, b = pounce.median_of("p99_ms"), peer.median_of("p99_ms")
        value = a / b if a is not None and b else None
        rows.append(_goal(scenario, "p99", pounce, peer, value, target))
    return rows


def memory_goal_rows(cells: Sequence[MemoryCell]) -> list[dict[str, Any]]:
    """Goal 4: RSS idle and with the idle connections, no more than Uvicorn's."""
    by_key = {cell.server.key: cell for cell in cells}
    rows = []
    for mine, theirs in MEMORY_GOALS:
        pounce, peer = by_key.get(mine), by_key.get(theirs)
        if pounce is None or peer is None:
            continue
        if pounce.idle and peer.idle:
            value = pounce.idle.total_kib / peer.idle.total_kib
            rows.append(_goal("memory", "idle RSS", pounce, peer, value, "≤ 1.0× (goal 4)"))
        if pounce.loaded and peer.loaded:
            value = pounce.loaded.rss.total_kib / peer.loaded.rss.total_kib
            rows.append(_goal("memory", "conns RSS", pounce, peer, value, "≤ 1.0× (goal 4)"))
    return rows


def _goal(
    scenario: str,
    metric: str,
    pounce: Cell | MemoryCell,
    peer: Cell | MemoryCell,
    value: float | None,
    target: str,
) -> dict[str, Any]:
    return {
        "scenario": scenario,
        "metric": metric,
        "pounce": pounce.server.key,
        "peer": peer.server.key,
        "ratio": _round(value, 3),
        "target": target,
    }


def goals_table(rows: Sequence[dict[str, Any]]) -> str:
    header = ["scenario", "metric", "pounce", "peer", "ratio", "target"]
    body = [
        [
            row["scenario"],
            row["metric"],
            row["pounce"],
            row["peer"],
            _num(row["ratio"], ".2f") + "×",
            row["target"],
        ]
        for row in rows
    ]
    return _table(header, body)


# --- JSON -----------------------------------------------------------------------------------


def ratio_rows(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    rows = []
    for pounce in (c for c in cells if c.server.is_pounce):
        for peer in (c for c in cells if c.scenario == pounce.scenario and not c.server.is_pounce):
            rows.append(
                {
                    "scenario": pounce.scenario,
                    "pounce": pounce.server.key,
                    "peer": peer.server.key,
                    "ratio": _round(ratio(pounce, peer), 3),
                }
            )
    return rows


def write_json(path: Path, document: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2, ensure_ascii=False) + "\n")
