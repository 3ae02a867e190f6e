"""The ``ws-echo`` scenario: WebSocket echo, Pounce against Uvicorn, Hypercorn and Granian.

Two loads, each a ping-pong per connection (send, wait for the echo, send again)
driven by ``harness/wsclient.py``, a standard-library client run in its own
process on the client CPU:

* ``small``: 16 connections × 32-byte binary messages (the issue's load);
* ``large``: 4 connections × 1 MiB binary messages.

Servers: the Pounce variants of the run; Uvicorn (httptools) with each of its
WebSocket implementations importable in the peers' venv (``websockets``,
``websockets-sansio``, ``wsproto``); Hypercorn (wsproto); Granian (its own).
No client offers permessage-deflate, so no server compresses. Ratios are
printed as Pounce ÷ each peer, and against Uvicorn's fastest row.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from statistics import median
from typing import Any

from pounce.bench.procs import CpuSample, CpuShares, pinned
from pounce.bench.servers import ServerSpec

WS_ECHO = "ws-echo"
CLIENT = Path(__file__).resolve().parent / "wsclient.py"
CHECK_SECONDS = 0.5
CLIENT_GRACE_S = 30  # seconds past the run before the client is killed
UVICORN_WS = ("websockets", "websockets-sansio", "wsproto")
_IMPORTS = {"websockets": "websockets", "websockets-sansio": "websockets", "wsproto": "wsproto"}


@dataclass(frozen=True, slots=True)
class WsLoad:
    key: str
    connections: int
    size: int  # bytes per message

    @property
    def title(self) -> str:
        size = f"{self.size // 1024} KiB" if self.size >= 1024 else f"{self.size} B"
        return f"{self.key}: {self.connections} connections × {size} messages, ping-pong"


LOADS = (WsLoad("small", 16, 32), WsLoad("large", 4, 1024 * 1024))


class WsFailed(Exception):
    """The client could not run, or the server echoed wrongly."""


@dataclass(frozen=True, slots=True)
class WsRun:
    rate: float  # messages echoed per second
    errors: int
    cpu: CpuShares


@dataclass
class WsCell:
    load: str
    server: ServerSpec
    runs: list[WsRun] = field(default_factory=list)
    failed: str | None = None

    @property
    def rate(self) -> float | None:
        return median(run.rate for run in self.runs) if self.runs else None

    def as_json(self) -> dict[str, Any]:
        return {
            "load": self.load,
            "server": self.server.key,
            "messages_per_s": [round(run.rate, 1) for run in self.runs],
            "median": self.rate,
            "errors": sum(run.errors for run in self.runs),
            "server_cpu": [round(run.cpu.server, 3) for run in self.runs],
            "failed": self.failed,
        }


def has_module(python: Path, module: str) -> bool:
    done = subprocess.run(
        [str(python), "-c", f"import {module}"], capture_output=True, timeout=60, check=False
    )
    return done.returncode == 0


def ws_specs(specs: Sequence[ServerSpec], python: Path) -> list[ServerSpec]:
    """The servers of this run that speak WebSocket, one per Uvicorn implementation."""
    available = {ws for ws in UVICORN_WS if has_module(python, _IMPORTS[ws])}
    missing = sorted(set(UVICORN_WS) - available)
    if missing:
        print(f"  uvicorn --ws {', '.join(missing)}: not importable in the peers' venv, skipped")
    out: list[ServerSpec] = []
    for spec in specs:
        if spec.family == "uvicorn":
            if spec.http == "httptools":  # after the upgrade the HTTP parser is idle
                out += [_uvicorn_ws(spec, ws) for ws in UVICORN_WS if ws in available]
        elif spec.key != "pounce-minimal-fast-uvloop":  # the minimal stack has no .websocket()
            out.append(spec)
    return out


def _uvicorn_ws(spec: ServerSpec, ws: str) -> ServerSpec:
    label = spec.label.replace(")", f", {ws})")
    return replace(spec, key=f"{spec.key}-{ws}", label=label, args=(*spec.args, "--ws", ws))


def client_command(port: int, load: WsLoad, seconds: float, cpu: int | None) -> list[str]:
    argv = [sys.executable, str(CLIENT), "--port", str(port), "--seconds", str(seconds)]
    argv += ["--connections", str(load.connections), "--size", str(load.size)]
    return pinned(cpu, argv)


def run_client(
    pid: int, port: int, load: WsLoad, seconds: float, cpus: tuple[int | None, int | None]
) -> WsRun:
    """One timed run against the server `pid` listening on `port`."""
    argv = client_command(port, load, seconds, cpus[1])
    before = CpuSample.take(pid, *cpus)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=seconds + CLIENT_GRACE_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WsFailed(f"the client ran past {seconds + CLIENT_GRACE_S:.0f} s") from exc
    shares = CpuShares.between(before, CpuSample.take(pid, *cpus))
    for line in done.stdout.splitlines():
        if line.startswith("WS_JSON "):
            result = json.loads(line[len("WS_JSON ") :])
            if result["errors"]:
                raise WsFailed(f"{result['errors']} wrong echoes")
            return WsRun(result["messages"] / result["seconds"], result["errors"], shares)
    raise WsFailed((done.stdout + done.stderr).strip()[-2000:] or f"exit {done.returncode}")


def time_cell(
    cell: WsCell,
    load: WsLoad,
    run: Callable[[float], WsRun],
    settings_repeat: int,
    settings_duration: float,
    warmup: float,
) -> None:
    """Check (a short run), warm up, then `repeat` timed runs into `cell`."""
    try:
        run(CHECK_SECONDS)
        if warmup:
            run(warmup)
        for round_no in range(1, settings_repeat + 1):
            cell.runs.append(run(settings_duration))
            last = cell.runs[-1]
            print(
                f"  [{round_no}/{settings_repeat}] {cell.server.label:<44}"
                f" {last.rate:>10,.0f} msg/s  (server CPU {last.cpu.server:4.0%},"
                f" client {last.cpu.client:4.0%})",
                flush=True,
            )
    except WsFailed as exc:
        cell.failed = str(exc)
        print(f"  {cell.server.label}: FAILED: {exc}", flush=True)


def summary(cells: Sequence[WsCell]) -> str:
    """Per load: median msg/s per server, Pounce ÷ peer, and ÷ Uvicorn's fastest."""
    lines: list[str] = []
    for load in LOADS:
        these = [cell for cell in cells if cell.load == load.key]
        if not these:
            continue
        lines.append(f"\n{WS_ECHO} {load.title}: median msg/s")
        pounces = [c for c in these if c.server.is_pounce and c.rate]
        uvicorns = [c for c in these if c.server.family == "uvicorn" and c.rate]
        fastest = max(uvicorns, key=lambda c: c.rate or 0.0, default=None)
        for cell in these:
            if cell.rate is None:
                lines.append(f"  {cell.server.label:<44} FAILED: {cell.failed or 'no runs'}")
                continue
            ratios = "  ".join(
                f"{p.server.label.removeprefix('pounce ')} {(p.rate or 0) / cell.rate:5.2f}×"
                for p in pounces
                if not cell.server.is_pounce
            )
            lines.append(f"  {cell.server.label:<44} {cell.rate:>10,.0f}  {ratios}")
        if fastest is not None and fastest.rate:
            for p in pounces:
                lines.append(
                    f"  goal: {p.server.label} ÷ fastest uvicorn ({fastest.server.label})"
                    f" = {(p.rate or 0) / fastest.rate:.2f}× (want ≥ 1.00×)"
                )
    return "\n".join(lines)
