"""The harness's scenarios and checks against a real Pounce serving the benchmark apps.

Every scenario of the repo's harness (benchmarks/harness/scenarios.py), the
Starlette and FastAPI ones included, must pass its own check before timing; the
checks must fail on a wrong answer; a server whose status differs from the
others' is refused.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from pounce.bench.report import Cell
from pounce.bench.runner import _refuse_disagreeing
from pounce.bench.scenario import CheckFailed, Scenario, any_success, keep_alive_check, lua_string
from pounce.bench.servers import PEERS
from pounce.importer import import_app
from pounce.testing import TestServer

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


sys.path.insert(0, str(BENCHMARKS))  # the harness imports its apps as top-level modules
from harness.scenarios import SCENARIOS  # noqa: E402


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.key)
def test_each_scenario_passes_its_check_on_pounce(scenario: Scenario) -> None:
    with TestServer(import_app(scenario.app, app_dir=str(BENCHMARKS))) as server:
        assert scenario.check(scenario, server.port) == 200


def test_the_framework_scenarios_run_the_framework_apps() -> None:
    apps = {s.key: s.app for s in SCENARIOS}
    assert apps["starlette-json"] == "framework_apps:starlette_app"
    assert apps["fastapi-hello"] == "framework_apps:fastapi_app"
    assert apps["receive"] == "apps:app"


def _scenario(path: str, check: object = any_success) -> Scenario:
    return Scenario(
        key=f"GET {path}",
        title="test",
        app="apps:app",
        method="GET",
        path=path,
        connections=1,
        headers=(),
        body=b"",
        response_size=0,
        check=check,  # type: ignore[arg-type]
    )


def test_a_wrong_body_or_status_is_refused() -> None:
    with TestServer(import_app("apps:app", app_dir=str(BENCHMARKS))) as server:
        with pytest.raises(CheckFailed, match="body of 13 bytes"):
            keep_alive_check(_scenario("/hello"), server.port, b"something else")
        with pytest.raises(CheckFailed, match="status 404: wrk counts"):
            any_success(_scenario("/missing"), server.port)
        assert any_success(_scenario("/hello"), server.port) == 200


def test_a_server_whose_status_differs_is_refused() -> None:
    class Stopped:
        stopped = False

        def stop(self) -> None:
            self.stopped = True

    cells = [Cell("GET /", spec) for spec in PEERS[:3]]
    running = {cell.server.key: Stopped() for cell in cells}
    statuses = {cells[0].server.key: 200, cells[1].server.key: 307, cells[2].server.key: 200}
    _refuse_disagreeing(_scenario("/"), cells, statuses, running)  # type: ignore[arg-type]
    assert [cell.refused is not None for cell in cells] == [False, True, False]
    assert "status 307, where 2 other server(s) answered 200" in str(cells[1].refused)
    assert set(running) == {cells[0].server.key, cells[2].server.key}


def test_request_bodies_reach_wrk_byte_for_byte() -> None:
    assert lua_string(b"x" * 5) == 'string.rep("x", 5)'
    assert lua_string(b'{"a": "\\\n"}') == '"{\\034a\\034: \\034\\092\\010\\034}"'
