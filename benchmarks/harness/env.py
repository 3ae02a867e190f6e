"""The peers' virtual environment, and what the artifact records about the machine and
the working tree (`pounce.bench.machine` does the machine)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import venv
from pathlib import Path
from typing import Any

from pounce.bench import machine
from pounce.bench.machine import command_output

BENCH_DIR = Path(__file__).resolve().parent.parent
ROOT = BENCH_DIR.parent
PEERS_VENV = BENCH_DIR / ".peers-venv"
PEERS_PY = PEERS_VENV / "bin" / "python"
STAMP = PEERS_VENV / ".bench-installed"

# Lower bounds only: the artifact records the versions that were measured.
PEER_REQUIREMENTS = (
    "uvicorn>=0.30",
    "httptools>=0.6",
    "uvloop>=0.19",
    "hypercorn>=0.17",
    "granian>=2.0",
    "websockets>=13",  # uvicorn --ws websockets / websockets-sansio (ws-echo)
    "wsproto>=1.2",  # uvicorn --ws wsproto, hypercorn, pounce[ws] (ws-echo)
    "starlette>=0.40",  # framework scenarios; StaticFiles and GZipMiddleware (static_bench.py)
    "fastapi>=0.110",
    "brotli>=1.1",  # pounce[br]: static_bench.py's br rows, and their check
    "zstandard>=0.22; python_version < '3.14'",  # pounce[zstd] before 3.14's stdlib
)
REPORTED_PACKAGES = (
    "pounce",
    "uvicorn",
    "httptools",
    "uvloop",
    "hypercorn",
    "granian",
    "h11",
    "websockets",
    "wsproto",
    "starlette",
    "fastapi",
    "pydantic",
)
INSTALL_TIMEOUT_S = 900
PROBE_TIMEOUT_S = 60


def _stamp_text() -> str:
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    return json.dumps({"pyproject": digest, "peers": PEER_REQUIREMENTS, "python": sys.version})


def ensure_peers_venv(*, reinstall: bool) -> Path:
    """Create benchmarks/.peers-venv with the peers and Pounce (editable) on this Python."""
    want = _stamp_text()
    if not reinstall and PEERS_PY.exists() and STAMP.exists() and STAMP.read_text() == want:
        return PEERS_PY
    if not PEERS_PY.exists():
        print(f"creating {PEERS_VENV.relative_to(ROOT)} on {sys.executable}", flush=True)
        venv.create(PEERS_VENV, with_pip=True)
    print("installing the peers and Pounce into it (pip)", flush=True)
    cmd = [str(PEERS_PY), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    if reinstall:
        cmd.append("--upgrade")
    subprocess.run(
        [*cmd, "-e", str(ROOT), *PEER_REQUIREMENTS],
        check=True,
        timeout=INSTALL_TIMEOUT_S,
    )
    STAMP.write_text(want)
    return PEERS_PY


def _git_info() -> dict[str, Any]:
    commit = command_output(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    dirty = command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "pounce"])
    return {"commit": commit or None, "pounce_tree_dirty": bool(dirty)}


def machine_info(python: Path) -> dict[str, Any]:
    """CPU, cores, kernel, Python and package versions, wrk and the git commit."""
    return {**machine.machine_info(python, REPORTED_PACKAGES), "git": _git_info()}


def load_average() -> tuple[float, float, float]:
    return machine.load_average()
