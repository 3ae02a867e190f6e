#!/usr/bin/env python3
"""Set-up and everyday tasks, needing nothing but Python 3.11+.

    python3 dev.py demo    # create .venv, install Pounce, serve the demo app on :8000
    python3 dev.py test    # create .venv, install Pounce + dev tools, run every test
    python3 dev.py lint    # ruff check, ruff format --check, mypy --strict
    python3 dev.py bench   # the benchmark harness (benchmarks/README.md)

Each task creates the virtual environment in .venv when it is missing and
re-installs when pyproject.toml changed, so the first run works from nothing.
Extra arguments go to the tool (``python3 dev.py test -k h1``).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
PY = BIN / "python"
STAMP = VENV / ".pounce-installed"


def _run(*cmd: str | os.PathLike[str]) -> int:
    return subprocess.call([str(c) for c in cmd], cwd=ROOT)


def _check(*cmd: str | os.PathLike[str]) -> None:
    rc = _run(*cmd)
    if rc:
        sys.exit(rc)


def ensure_env(dev: bool) -> None:
    """Create .venv and install Pounce (with [full], and the dev group if `dev`)."""
    if not PY.exists():
        print("creating .venv", flush=True)
        venv.create(VENV, with_pip=True)
    digest = hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()
    want = f"{digest} dev={dev}"
    have = STAMP.read_text() if STAMP.exists() else ""
    if have == want or (not dev and have == f"{digest} dev=True"):
        return
    _check(PY, "-m", "pip", "install", "-q", "--upgrade", "pip>=25.1")
    cmd: list[str | os.PathLike[str]] = [PY, "-m", "pip", "install", "-q", "-e", ".[full]"]
    if dev:
        cmd += ["--group", "dev"]
    _check(*cmd)
    STAMP.write_text(want)


def demo(args: list[str]) -> int:
    ensure_env(dev=False)
    return _run(BIN / "pounce", "pounce.demo:app", *args)


def test(args: list[str]) -> int:
    ensure_env(dev=True)
    rc = _run(PY, "-m", "pytest", *args)
    return 0 if rc == 5 and args else rc  # 5: a -k filter selected nothing


def lint(args: list[str]) -> int:
    ensure_env(dev=True)
    rc = _run(PY, "-m", "ruff", "check", ".")
    rc |= _run(PY, "-m", "ruff", "format", "--check", ".")
    rc |= _run(PY, "-m", "mypy", "--strict", "pounce")
    return rc


def bench(args: list[str]) -> int:
    ensure_env(dev=True)
    return _run(PY, "benchmarks/run.py", *args)


TASKS = {"demo": demo, "test": test, "lint": lint, "bench": bench}


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in TASKS:
        print(__doc__)
        return 2
    return TASKS[sys.argv[1]](sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
