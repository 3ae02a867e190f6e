"""``pounce bench``: its arguments, its refusals, and one real (tiny) run with wrk."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from pounce import cli
from pounce.bench.cli import UsageError, build_parser, scenarios_from, settings_from
from pounce.bench.scenario import any_success

ROOT = Path(__file__).resolve().parents[2]
APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/plain")]})
    await send({"type": "http.response.body", "body": b"bench me"})
"""
RUN_TIMEOUT_S = 120


def test_defaults_one_get_of_the_root() -> None:
    [scenario] = scenarios_from(build_parser().parse_args(["myapp:app"]))
    assert (scenario.app, scenario.method, scenario.path, scenario.body) == (
        "myapp:app",
        "GET",
        "/",
        b"",
    )
    assert scenario.check is any_success
    assert scenario.connections == 64


def test_paths_method_body_and_headers() -> None:
    args = build_parser().parse_args(
        ["m:app", "/items", "/search?q=1", "--method", "post", "--body", "{}", "-H", "X-A: 1"]
    )
    first, second = scenarios_from(args)
    assert [first.path, second.path] == ["/items", "/search?q=1"]
    assert first.key == "POST /items"
    assert first.body == b"{}"
    assert first.headers == (("X-A", "1"), ("Content-Type", "application/octet-stream"))


def test_body_file(tmp_path: Path) -> None:
    (tmp_path / "body.json").write_bytes(b'{"n": 1}')
    args = build_parser().parse_args(
        [
            "m:app",
            "--body-file",
            str(tmp_path / "body.json"),
            "-H",
            "content-type: application/json",
        ]
    )
    [scenario] = scenarios_from(args)
    assert scenario.body == b'{"n": 1}'
    assert scenario.headers == (("content-type", "application/json"),)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["m:app", "items"], "want an absolute path"),
        (["m:app", "-H", "no colon"], "want 'Name: value'"),
        (["m:app", "--method", "GE T"], "want a method name"),
    ],
)
def test_bad_arguments_are_refused(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message):
        scenarios_from(build_parser().parse_args(argv))


def test_quick_and_bad_settings() -> None:
    quick = settings_from(build_parser().parse_args(["m:app", "--quick"]), (0, 1))
    assert (quick.duration_s, quick.repeat, quick.warmup_s) == (1, 1, 0)
    assert (quick.server_cpu, quick.client_cpu) == (0, 1)
    with pytest.raises(UsageError, match="--duration"):
        settings_from(build_parser().parse_args(["m:app", "--duration", "0"]), None)


def test_pounce_bench_is_a_subcommand(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        cli.main(["bench", "--help"])
    assert exc.value.code == 0
    assert "usage: pounce bench" in capsys.readouterr().out


def _bench(
    argv: list[str], cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "PYTHONPATH": str(ROOT), **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "pounce", "bench", *argv],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )


def test_without_wrk_it_says_how_to_get_it(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    done = _bench(["myapp:app"], tmp_path, {"PATH": str(tmp_path)})  # no wrk there
    assert done.returncode == 2, done.stderr
    assert "apt-get install wrk" in done.stderr
    assert "brew install wrk" in done.stderr


needs_tools = pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("taskset") is None or sys.platform != "linux",
    reason="needs Linux, wrk and taskset",
)


@needs_tools
def test_on_one_cpu_it_refuses_unless_unpinned(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    done = subprocess.run(
        [
            *("taskset", "-c", str(min(os.sched_getaffinity(0)))),
            *(sys.executable, "-m", "pounce", "bench", "myapp:app"),
        ],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 2, done.stderr
    assert "this process may use 1 CPU" in done.stderr
    assert "--unpinned" in done.stderr


def test_an_app_that_cannot_be_imported_is_named(tmp_path: Path) -> None:
    if shutil.which("wrk") is None or len(os.sched_getaffinity(0)) < 2:
        pytest.skip("needs wrk and two CPUs to get as far as the import")
    done = _bench(["nosuchmodule:app", "--unpinned", "--servers", "pounce"], tmp_path)
    assert done.returncode == 2, done.stderr
    assert "cannot import 'nosuchmodule:app'" in done.stderr


@needs_tools
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs to pin")
def test_a_real_run_of_one_server(tmp_path: Path) -> None:
    (tmp_path / "myapp.py").write_text(APP)
    out = tmp_path / "bench.json"
    done = _bench(
        [
            *("myapp:app", "/", "--servers", "pounce-fast-asyncio", "--quick"),
            *("--json", str(out), "--logs", str(tmp_path / "logs")),
        ],
        tmp_path,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "machine: " in done.stdout
    assert "GET /: myapp:app" in done.stdout
    record = json.loads(out.read_text())
    [cell] = record["throughput"]
    assert cell["server"] == "pounce-fast-asyncio"
    assert cell["refused"] is None and cell["failed"] is None and not cell["flagged"]
    [run] = cell["runs"]
    assert run["requests"] > 0 and run["error_count"] == 0
    assert cell["summary"]["rss_mib_after"] > 0
    assert record["machine"]["cpu_count"] >= 2
