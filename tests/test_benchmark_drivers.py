"""The in-process benchmark drivers still run: they build stacks through Server's internals,
so a refactor that moves those must move them too (a broken driver fails here, not in a
benchmark session)."""

from __future__ import annotations

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
        ["h2_inproc.py", "path", "20"],
        ["ws_inproc.py", "--messages", "50"],
        ["static_inproc.py", "-n", "50"],
        ["static_inproc.py", "-n", "50", "--zero-copy"],
    ],
)
def test_driver_runs(argv: list[str]) -> None:
    done = subprocess.run(
        [sys.executable, *argv], cwd=BENCHMARKS, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
