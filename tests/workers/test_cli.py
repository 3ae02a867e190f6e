"""The worker options from every front end: ``pounce --workers 2``, ``POUNCE_WORKERS``,
a config file and ``pounce.run(app, workers=2)`` each serve from two workers;
bad values exit 2 naming the flag or the variable, before anything is opened."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.workers.harness import ROOT, answers_from_every_worker, launched

APP = "tests.workers.serve_app:app"
LISTEN = ["--host", "127.0.0.1", "--port", "0", "--no-access-log"]


def pids_serving(argv: list[str], env: dict[str, str] | None = None) -> set[str]:
    with launched(argv, env) as running:
        seen = answers_from_every_worker(running, 2)
        assert running.count(r"Worker .* \(generation 1\) ready") == 2
    return {pid for pid, _ in seen}


def test_the_workers_flag_serves_from_two_processes() -> None:
    pids = pids_serving(["-m", "pounce", APP, *LISTEN, "--workers", "2"])
    assert len(pids) == 2


def test_pounce_workers_variable_and_thread_workers() -> None:
    env = {"POUNCE_WORKERS": "2", "POUNCE_WORKER_CLASS": "thread"}
    with launched(["-m", "pounce", APP, *LISTEN], env) as running:
        seen = answers_from_every_worker(running, 2)
    assert len(seen) == 2  # two thread ids
    assert len({pid for pid, _ in seen}) == 1  # in one process


def test_config_file_keys(tmp_path: Path) -> None:
    config = tmp_path / "pounce.toml"
    config.write_text('workers = 2\nworker-class = "process"\nlimit_max_requests = 1000\n')
    pids = pids_serving(["-m", "pounce", APP, *LISTEN, "--config", str(config)])
    assert len(pids) == 2


def test_pounce_run_with_an_app_object_forks_it_into_two_workers() -> None:
    script = (
        "import pounce; from tests.workers.serve_app import app; "
        "pounce.run(app, host='127.0.0.1', port=0, workers=2, worker_class='process', "
        "access_log=False)"
    )
    assert len(pids_serving(["-c", script])) == 2


def pounce_fails(*args: str, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "pounce", APP, *LISTEN, *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert "Pounce running" not in done.stderr
    return done.stderr


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["--workers", "0"], {}, "workers=0 (command line --workers): must be an integer of at"),
        ([], {"POUNCE_WORKERS": "lots"}, "POUNCE_WORKERS='lots': must be an integer of at least 1"),
        (["--limit-max-requests", "0"], {}, "limit_max_requests=0 (command line --limit-max"),
        (["--timeout-worker-healthcheck", "0"], {}, "a finite positive number of seconds"),
        (["--limit-max-requests-jitter", "5"], {}, "has no effect without max_requests"),
        (["--worker-class", "greenlet"], {}, "invalid choice: 'greenlet'"),
    ],
)  # fmt: skip
def test_a_bad_worker_option_exits_2_with_a_clear_message(
    args: list[str], env: dict[str, str], message: str
) -> None:
    assert message in pounce_fails(*args, env=env)


def test_a_bad_value_for_pounce_run_is_a_build_error() -> None:
    from pounce import BuildError
    from pounce import run as pounce_run

    with pytest.raises(BuildError, match="workers=0"):
        pounce_run(APP, workers=0)


def test_sighup_serves_the_code_on_disk_now(tmp_path: Path) -> None:
    """``pounce APP --workers 2``: each worker imports APP itself, so a rolling restart
    (SIGHUP) serves an edited module — as Gunicorn's workers do without preload_app."""
    import signal
    import time

    from tests.workers.harness import get
    from tests.workers.test_reload import write_app

    write_app(tmp_path, '"one"')
    argv = ["-m", "pounce", "devapp:app", "--app-dir", str(tmp_path), *LISTEN, "--workers", "2"]
    with launched(argv) as running:
        running.wait_for(r"Worker .* \(generation 1\) ready", 10)
        assert get(running.port)[1] == "one"
        write_app(tmp_path, '"two"')
        os.kill(running.proc.pid, signal.SIGHUP)
        running.wait_for(r"\(generation 2\) ready", 20)
        deadline = time.monotonic() + 20
        while get(running.port)[1] != "two":  # the old generation drains meanwhile
            assert time.monotonic() < deadline, running.output()
            time.sleep(0.1)
