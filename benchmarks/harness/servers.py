"""The repo's servers: every peer and Pounce variant of `pounce.bench.servers`, plus the
minimal stack (goal 5), all run on the benchmark apps from benchmarks/."""

from __future__ import annotations

import os
from pathlib import Path

from harness.env import BENCH_DIR
from pounce.bench.servers import HOST, PEERS, ServerSpec, pounce_help, pounce_variants

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


def all_servers(python: Path) -> tuple[ServerSpec, ...]:
    variants = pounce_variants(pounce_help(python))
    if any(spec.key == "pounce-fast-uvloop" for spec in variants):
        variants += (POUNCE_MINIMAL,)
    return variants + PEERS


def server_env() -> dict[str, str]:
    """The servers' environment: the peers' venv, and benchmarks/ to import the apps from."""
    env = dict(os.environ)
    env.pop("VIRTUAL_ENV", None)
    env["PYTHONPATH"] = str(BENCH_DIR)  # so "apps:app" imports from benchmarks/
    env["PYTHONUNBUFFERED"] = "1"
    return env
