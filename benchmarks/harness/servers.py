"""The repo's servers: every peer and Pounce variant of `pounce.bench.servers`, plus the
minimal stack (goal 5), all run on the benchmark apps from benchmarks/."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from harness.env import BENCH_DIR, ROOT
from pounce.bench.servers import (  # re-exported: tests/test_benchmark_drivers.py
    GRANIAN as GRANIAN,
)
from pounce.bench.servers import (
    HOST,
    PEERS,
    ServerSpec,
    pounce_help,
    pounce_variants,
    with_workers,
)

APP = "apps:app"  # the default app; a scenario may name another (framework_apps.py)

# Goal 5: the same parser and loop as pounce (fast, uvloop) through the minimal
# builder stack, to price the standard preset's extra layers.
POUNCE_MINIMAL = ServerSpec(
    key="pounce-minimal-fast-uvloop",
    label="pounce minimal (fast, uvloop)",
    family="pounce",
    http="fast",
    loop="uvloop",
    args=("minimal_server", "{app}", "--host", HOST, "--port", "{port}"),
)


# The servers of a scenario with several workers: Pounce's fast parser (the CLI's
# default), Uvicorn on httptools and uvloop, Granian.
WORKER_SERVERS = (
    "pounce-fast-uvloop",
    "pounce-fast-asyncio",
    "uvicorn-httptools-uvloop",
    "granian",
)


def for_workers(specs: Sequence[ServerSpec], workers: int) -> tuple[ServerSpec, ...]:
    """The selected servers a `workers`-worker scenario runs, with that many workers."""
    if workers == 1:
        return tuple(specs)
    return tuple(with_workers(s, workers) for s in specs if s.key in WORKER_SERVERS)


def all_servers(python: Path) -> tuple[ServerSpec, ...]:
    variants = pounce_variants(pounce_help(python))
    if any(spec.key == "pounce-fast-uvloop" for spec in variants):
        variants += (POUNCE_MINIMAL,)
    return variants + PEERS


def server_env() -> dict[str, str]:
    """The servers' environment: the peers' venv, benchmarks/ to import the apps from, and
    this checkout's Pounce (the venv's editable install may be another worktree's)."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = os.pathsep.join((str(BENCH_DIR), str(ROOT)))  # "apps:app", pounce
    env["PYTHONUNBUFFERED"] = "1"
    return env
