"""The peers' virtual environment and what the artifact records about the machine."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

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
    "starlette>=0.40",  # StaticFiles and GZipMiddleware under Uvicorn (static_bench.py)
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


def package_versions(python: Path) -> dict[str, str]:
    """Installed versions of the packages that matter, as the peers' Python sees them."""
    code = (
        "import json, sys\n"
        "from importlib import metadata\n"
        "out = {}\n"
        "for name in sys.argv[1:]:\n"
        "    try:\n"
        "        out[name] = metadata.version(name)\n"
        "    except metadata.PackageNotFoundError:\n"
        "        pass\n"
        "print(json.dumps(out))\n"
    )
    out = subprocess.run(
        [str(python), "-c", code, *REPORTED_PACKAGES],
        capture_output=True,
        text=True,
        check=True,
        timeout=PROBE_TIMEOUT_S,
    ).stdout
    versions: dict[str, str] = json.loads(out)
    return versions


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _command_output(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _git_info() -> dict[str, Any]:
    commit = _command_output(["git", "-C", str(ROOT), "rev-parse", "HEAD"])
    dirty = _command_output(["git", "-C", str(ROOT), "status", "--porcelain", "--", "pounce"])
    return {"commit": commit or None, "pounce_tree_dirty": bool(dirty)}


def _python_version(python: Path) -> str:
    return _command_output([str(python), "-c", "import sys; print(sys.version)"])


def load_average() -> tuple[float, float, float]:
    return os.getloadavg()


def _cpu_times() -> tuple[int, int]:
    """(busy, total) jiffies over all CPUs from /proc/stat."""
    fields = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def cpu_busy_fraction(seconds: float = 1.0) -> float:
    """How busy all CPUs together are over `seconds`, 0..1: others' work makes noise."""
    busy0, total0 = _cpu_times()
    time.sleep(seconds)
    busy1, total1 = _cpu_times()
    return (busy1 - busy0) / max(1, total1 - total0)


def machine_info(python: Path) -> dict[str, Any]:
    """CPU, cores, kernel, Python and package versions, wrk and the git commit."""
    wrk = shutil.which("wrk")
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": _python_version(python),
        "python_executable": str(python),
        "packages": package_versions(python),
        "wrk": _command_output([wrk, "--version"]).splitlines()[0] if wrk else None,
        "git": _git_info(),
        "load_average_at_start": load_average(),
        "cpu_busy_before_start": round(cpu_busy_fraction(), 3),
    }
