"""The package as a user gets it: a wheel, installed into a fresh venv, serving the demo.

The editable install the suite runs from hides a file left out of the wheel
(package data, a module outside the package list); this test builds the wheel
(``python -m build`` — sdist first, then the wheel from it — when ``build`` is
installed, else ``pip wheel``), checks its metadata (PEP 639 license, the
console script, the pytest plugin), installs it with ``python -m venv`` and
pip, and serves ``pounce pounce.demo:app`` from outside the checkout. pip and
setuptools need the package index for the build backend and ``h11``; without
it the test skips.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
import venv
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.integration.test_cli import Running

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.slow


def run(*cmd: str | Path, cwd: Path = ROOT) -> str:
    """`cmd`'s output; a failure shows it; a missing package index skips.

    Without PYTHONPATH: a checkout on it (as the suite is often run) carries the
    ``pounce.egg-info`` the build leaves there, and pip would take the wheel's
    project for installed already and install nothing.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    proc = subprocess.run(
        [str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=180, env=env
    )
    output = proc.stdout + proc.stderr
    if proc.returncode and re.search(r"No matching distribution|Could not find a version", output):
        pytest.skip("the package index is out of reach: " + output[-300:])
    assert proc.returncode == 0, output
    return output


def build_wheel(out: Path) -> tuple[Path, str]:
    if importlib.util.find_spec("build") is not None:
        output = run(sys.executable, "-m", "build", "--outdir", str(out), ".")
    else:
        output = run(sys.executable, "-m", "pip", "wheel", "--no-deps", "-w", str(out), ".")
    return next(out.glob("pounce-*.whl")), output


def test_the_wheel_installs_cleanly_and_serves_the_demo(tmp_path: Path) -> None:
    wheel, built = build_wheel(tmp_path / "dist")
    assert not re.search(r"(?i)deprecat", built), built
    with zipfile.ZipFile(wheel) as zf:
        info = next(n for n in zf.namelist() if n.endswith(".dist-info/METADATA"))
        metadata = zf.read(info).decode()
        entry_points = zf.read(info.replace("METADATA", "entry_points.txt")).decode()
        names = zf.namelist()
    assert "License-Expression: MIT" in metadata and "License-File: LICENSE" in metadata
    assert "pounce/py.typed" in names and any(n.endswith("licenses/LICENSE") for n in names)
    assert "pounce = pounce.cli:main" in entry_points
    assert "[pytest11]\npounce = pounce.testing.pytest_plugin" in entry_points

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    bin_dir = env_dir / ("Scripts" if os.name == "nt" else "bin")
    installed = run(bin_dir / "python", "-m", "pip", "install", "-q", str(wheel), cwd=tmp_path)
    assert not re.search(r"(?i)deprecat", installed), installed
    serve_demo(bin_dir / "pounce", tmp_path)


def serve_demo(pounce: Path, cwd: Path) -> None:
    """``pounce pounce.demo:app --port 0`` from `cwd`: started, one request, SIGTERM, exit 0."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_")}
    env.pop("PYTHONPATH", None)  # the installed package, not the checkout
    proc = subprocess.Popen(
        [str(pounce), "pounce.demo:app", "--host", "127.0.0.1", "--port", "0"],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    running = Running(proc)
    try:
        running.wait_started()
        assert httpx.get(running.url + "/", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0, running.output()
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)
