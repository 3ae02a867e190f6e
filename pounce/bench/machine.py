"""The machine a run measures on: CPU, cores, kernel, Python, versions, and how busy it is.

Numbers from another machine, or from a busy one, are not comparable; a run
records what it ran on and prints it, and samples how busy the CPUs are
before it starts (`cpu_busy_fraction`). `pick_cpus` chooses the two CPUs the
server and the load generator are pinned to.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

PROBE_TIMEOUT_S = 60


def package_versions(python: Path, packages: Sequence[str]) -> dict[str, str]:
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
        [str(python), "-c", code, *packages],
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


def command_output(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=PROBE_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout or done.stderr).strip()


def _python_version(python: Path) -> str:
    return command_output([str(python), "-c", "import sys; print(sys.version)"])


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


def machine_info(python: Path, packages: Sequence[str]) -> dict[str, Any]:
    """CPU, cores, kernel, Python and the versions of `packages`, wrk, and the load."""
    wrk = shutil.which("wrk")
    return {
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "kernel": platform.release(),
        "platform": platform.platform(),
        "python": _python_version(python),
        "python_executable": str(python),
        "packages": package_versions(python, packages),
        "wrk": command_output([wrk, "--version"]).splitlines()[0] if wrk else None,
        "load_average_at_start": load_average(),
        "cpu_busy_before_start": round(cpu_busy_fraction(), 3),
    }


def pick_cpus() -> tuple[int, int] | None:
    """(server CPU, load generator CPU): the first two this process may use, or None when
    there are fewer than two or no ``taskset`` to pin with."""
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2 or shutil.which("taskset") is None:
        return None
    return cpus[0], cpus[1]


def describe(info: dict[str, Any]) -> str:
    """The machine in two lines, for the top of a run's output."""
    versions = ", ".join(f"{name} {v}" for name, v in info["packages"].items())
    wrk = str(info["wrk"] or "no wrk").split(" Copyright")[0]
    load = ", ".join(f"{v:.2f}" for v in info["load_average_at_start"])
    return (
        f"machine: {info['cpu_model']}, {info['cpu_count']} CPUs, Linux {info['kernel']},"
        f" Python {info['python'].split()[0]}, {wrk}\n"
        f"versions: {versions or '(none found)'}\n"
        f"CPUs {info['cpu_busy_before_start']:.0%} busy before the start, load average {load}"
    )
