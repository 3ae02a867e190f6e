"""Run wrk once and read its counters."""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from pounce.bench.procs import pinned

WRK_THREADS = 1
WRK_REQUEST_TIMEOUT = "5s"  # wrk's per-request timeout; slower answers count as errors
WRK_EXTRA_WAIT_S = 60  # on top of the duration before the harness gives up on wrk
_MARKER = "BENCH_JSON "
_RPS_TEXT = re.compile(r"^Requests/sec:\s+([0-9.]+)", re.MULTILINE)


class WrkFailed(Exception):
    """wrk did not run to the end or printed nothing we can read."""


@dataclass(frozen=True, slots=True)
class WrkResult:
    rps: float
    requests: int
    duration_s: float
    bytes_read: int
    p50_ms: float
    p90_ms: float
    p99_ms: float
    mean_ms: float
    max_ms: float
    errors: dict[str, int]  # connect, read, write, timeout (socket errors), status (non-2xx/3xx)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["error_count"] = self.error_count
        return out


def wrk_command(
    *,
    url: str,
    lua: Path,
    connections: int,
    duration_s: int,
    cpu: int | str | None,
    threads: int = WRK_THREADS,
) -> list[str]:
    argv = [
        "wrk",
        f"-t{threads}",
        f"-c{connections}",
        f"-d{duration_s}s",
        "--latency",
        "--timeout",
        WRK_REQUEST_TIMEOUT,
        "-s",
        str(lua),
        url,
    ]
    return pinned(cpu, argv)


def parse_output(stdout: str) -> WrkResult:
    line = next((ln for ln in stdout.splitlines() if ln.startswith(_MARKER)), None)
    if line is None:
        raise WrkFailed("no BENCH_JSON line in wrk's output:\n" + stdout[-2000:])
    data = json.loads(line[len(_MARKER) :])
    duration_s = data["duration_us"] / 1e6
    latency = data["latency_us"]
    result = WrkResult(
        rps=data["requests"] / duration_s if duration_s else 0.0,
        requests=data["requests"],
        duration_s=duration_s,
        bytes_read=data["bytes"],
        p50_ms=latency["p50"] / 1000,
        p90_ms=latency["p90"] / 1000,
        p99_ms=latency["p99"] / 1000,
        mean_ms=latency["mean"] / 1000,
        max_ms=latency["max"] / 1000,
        errors={name: int(count) for name, count in data["errors"].items()},
    )
    _cross_check(result, stdout)
    return result


def _cross_check(result: WrkResult, stdout: str) -> None:
    """wrk's printed Requests/sec must agree with the counters the script printed."""
    match = _RPS_TEXT.search(stdout)
    if match is None:
        return
    printed = float(match.group(1))
    if printed and abs(printed - result.rps) / printed > 0.02:
        raise WrkFailed(f"wrk printed {printed} req/s but its counters give {result.rps:.2f}")


def run_wrk(argv: list[str], duration_s: int) -> tuple[WrkResult, str]:
    """Run wrk, return its result and its raw output."""
    try:
        done = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=duration_s + WRK_EXTRA_WAIT_S,
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkFailed(f"wrk ran past {duration_s + WRK_EXTRA_WAIT_S}s") from exc
    if done.returncode != 0:
        raise WrkFailed(f"wrk exited {done.returncode}: {done.stderr.strip()[-2000:]}")
    return parse_output(done.stdout), done.stdout
