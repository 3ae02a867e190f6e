"""`benchmarks/framework_increment.py` runs and reports every row.

A real run with few requests: the table's timings are noise at this size, so
only its shape and the bytecode counts are checked (the injected work runs
Python, and more of it for the row that adds the response path; the loop runs
many bytecodes from few places).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_script_reports_the_increment_of_every_row() -> None:
    run = subprocess.run(
        [sys.executable, "framework_increment.py", "-n", "60", "--rounds", "1"],
        cwd=BENCHMARKS,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    rows = [line.split("|")[1:-1] for line in run.stdout.splitlines() if line.startswith("| ")]
    names = [cells[0].strip() for cells in rows[1:]]
    assert names == [
        "pounce",
        "uvicorn",
        "uvicorn + parse",
        "uvicorn + parse + head",
        "uvicorn + a loop",
    ]
    added = [int(cells[1]) for cells in rows[1:]]
    assert added[0] == added[1] == 0 < added[2] < added[3]
    assert added[4] > added[2]  # the loop: many bytecodes …
    distinct = [int(cells[2]) for cells in rows[1:]]
    assert distinct[0] == distinct[1] == 0 < distinct[4] < 30 < distinct[2] < distinct[3]
    for cells in rows[1:]:
        lean, framed, increment = (float(cell) for cell in cells[3:])
        assert lean > 0 and framed > 0
        assert abs(framed - lean - increment) < 0.02
