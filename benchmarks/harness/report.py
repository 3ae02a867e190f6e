"""The speed issues' goals, as rows of the goal table (ratios of medians).

The tables and ratios themselves are `pounce.bench.report`, shared with
``pounce bench``; the goals are this repo's: they name its scenarios and servers.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pounce.bench import report
from pounce.bench.report import Cell, MemoryCell

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
# Issue 19, item 5: the goals held for what users run, a browser's request head, an app
# that awaits receive() once and the Starlette and FastAPI endpoints: at least Uvicorn
# httptools+uvloop, and the moonshot of item 4, Granian's req/s with no worse a p99.
USER_APP_SCENARIOS = (
    "browser",
    "receive",
    "starlette-hello",
    "starlette-json",
    "fastapi-hello",
    "fastapi-json",
)
GOALS += tuple(
    goal
    for scenario in USER_APP_SCENARIOS
    for goal in (
        (scenario, "pounce-fast-uvloop", "uvicorn-httptools-uvloop", "≥ 1.0× (#19 item 5)"),
        (scenario, "pounce-fast-uvloop", "granian", "≥ 1.0× (#19 items 4, 5)"),
    )
)
P99_GOALS: tuple[tuple[str, str, str, str], ...] = (
    P99_GOAL,
    *((s, "pounce-fast-uvloop", "granian", "≤ 1.0× (#19 items 4, 5)") for s in USER_APP_SCENARIOS),
)
# (pounce key, uvicorn key): each Pounce variant against the Uvicorn on the same loop
MEMORY_GOALS: tuple[tuple[str, str], ...] = (
    ("pounce-fast-uvloop", "uvicorn-httptools-uvloop"),
    ("pounce-fast-asyncio", "uvicorn-httptools-asyncio"),
    ("pounce-h11-asyncio", "uvicorn-h11-asyncio"),
)


MEMORY_TARGET = "≤ 1.0× (goal 4)"


def goal_rows(cells: Sequence[Cell]) -> list[dict[str, Any]]:
    return report.goal_rows(cells, GOALS, P99_GOALS)


def memory_goal_rows(cells: Sequence[MemoryCell]) -> list[dict[str, Any]]:
    """Goal 4: RSS idle and with the idle connections, no more than Uvicorn's."""
    return report.memory_goal_rows(cells, MEMORY_GOALS, MEMORY_TARGET)
