"""The overload benchmark (benchmarks/overload.py) still runs, and its counts add up; the
accept-path driver (benchmarks/accept_inproc.py) runs both ways.

A smoke run only — 1 s phases against Pounce with a limit and a queue — on
this busy machine: the figures mean nothing here, but every request must
end as one of the counted outcomes, and Pounce under ten times its capacity
must answer each with 2xx or 503: no reset, no timeout, no failed connect.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def test_overload_smoke_run(tmp_path: Path) -> None:
    out = tmp_path / "overload.json"
    argv = [sys.executable, "overload.py", "--quick", "--limit", "4", "--servers", "pounce-queue"]
    argv += ["--python", sys.executable, "--json", str(out)]
    done = subprocess.run(argv, cwd=BENCHMARKS, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "| pounce (fast, uvloop), limit 4 + queue 4 |" in done.stdout
    (row,) = json.loads(out.read_text())["rows"]
    assert row["alive"]
    for phase in ("unloaded", "overload", "recovery"):
        counts = row[phase]["counts"]
        assert counts["2xx"] > 0, (phase, counts)
        assert counts["reset"] == counts["timeout"] == counts["connect"] == 0, (phase, counts)
    assert row["rss_mib"]["peak_overload"] > 0


@pytest.mark.parametrize(
    "argv",
    [["--accept", "loop"], ["--accept", "acceptor"], ["--accept", "acceptor", "--cap", "3"]],
)
def test_accept_driver_runs(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, "accept_inproc.py", "-n", "40", *argv],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
