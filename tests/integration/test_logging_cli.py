"""Logs from the ``pounce`` CLI: ``--log-format json``, ``--log-config``, colours,
``--access-log-format`` and request ids, each read from a real server's stderr."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.test_cli import HERE, Running, finish, pounce, serving

TIMEOUT = 5.0  # seconds for every network wait and poll


def wait_for_line(running: Running, predicate: Callable[[str], bool]) -> str:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        for line in list(running.lines):
            if predicate(line):
                return line
        time.sleep(0.02)
    raise AssertionError("no such line in:\n" + running.output())


def json_lines(running: Running) -> list[dict[str, Any]]:
    return [json.loads(line) for line in running.lines if line.strip()]


def test_json_lines_with_request_ids() -> None:
    with serving("cli_apps:app", "--log-format", "json", "--request-id", "--no-use-colors") as ts:
        given = httpx.get(ts.url + "/a?b=1", headers={"x-request-id": "abc-123"}, timeout=5)
        made = httpx.get(ts.url + "/boom", headers={"user-agent": "probe/1"}, timeout=5)
        wait_for_line(ts, lambda line: "/boom" in line and "pounce.access" in line)
        lines = json_lines(ts)  # every line of stderr is one JSON object
    assert given.status_code == 200 and made.status_code == 500
    assert "x-request-id" not in given.headers  # echo is opt-in
    for line in lines:
        assert {"time", "level", "logger", "message", "request_id", "worker", "exception"} <= set(
            line
        )
    access = [line for line in lines if line["logger"] == "pounce.access"]
    first = next(line for line in access if line["path"] == "/a?b=1")
    assert first["request_id"] == "abc-123"  # from a trusted peer (loopback)
    assert (first["method"], first["status"], first["bytes"]) == ("GET", 200, len(given.content))
    assert first["protocol"] == "HTTP/1.1" and isinstance(first["duration"], float)
    boom = next(line for line in access if line["path"] == "/boom")
    assert boom["status"] == 500 and boom["bytes"] == len(made.content)
    assert boom["user_agent"] == "probe/1" and len(boom["request_id"]) == 32
    error = next(line for line in lines if line["level"] == "error")
    assert error["request_id"] == boom["request_id"]  # the app's error line carries it
    assert "RuntimeError: boom" in error["exception"]


def test_request_id_echoed_on_request() -> None:
    args = ("cli_apps:app", "--request-id", "--request-id-response-header")
    with serving(*args) as ts:
        sent = httpx.get(ts.url + "/", headers={"x-request-id": "from-proxy"}, timeout=5)
        bad = httpx.get(ts.url + "/", headers={"x-request-id": "has space"}, timeout=5)
        line = wait_for_line(ts, lambda line: "pounce.access" in line and "[from-proxy]" in line)
    assert sent.headers["x-request-id"] == "from-proxy"
    assert bad.headers["x-request-id"] != "has space" and len(bad.headers["x-request-id"]) == 32
    assert '"GET / HTTP/1.1" 200' in line


def test_access_log_format_fields() -> None:
    fmt = "{method} {path} {status} {bytes}B ua={user_agent} ref={referer} w={worker}"
    with serving("cli_apps:app", "--access-log-format", fmt) as ts:
        headers = {"user-agent": "curl\x1b[31m", "referer": "https://example.test/"}
        size = len(httpx.get(ts.url + "/x", headers=headers, timeout=5).content)
        line = wait_for_line(ts, lambda line: "pounce.access" in line)
    assert f"GET /x 200 {size}B ua=curl\\x1b[31m ref=https://example.test/ w={ts.proc.pid}" in line
    assert "\x1b" not in line  # escaped, never written raw


def test_unknown_access_log_field_is_refused() -> None:
    code, _, err = finish(pounce("cli_apps:app", "--access-log-format", "{nope}"))
    assert code == 2
    assert "unknown field {nope}" in err and "user_agent" in err


def test_colors_on_request() -> None:
    with serving("cli_apps:app", "--use-colors") as ts:
        line = wait_for_line(ts, lambda line: "Pounce running on" in line)
    assert line.startswith("\x1b[32mINFO    \x1b[0m pounce.error:")


def test_no_colors_by_default_off_a_terminal() -> None:
    with serving("cli_apps:app") as ts:
        line = wait_for_line(ts, lambda line: "Pounce running on" in line)
    assert line.startswith("INFO     pounce.error:")


def test_log_config_json(tmp_path: Path) -> None:
    log_file = tmp_path / "pounce.log"
    config = {
        "version": 1,
        "formatters": {"plain": {"format": "CUSTOM %(name)s %(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(log_file),
                "formatter": "plain",
            }
        },
        "loggers": {"pounce": {"handlers": ["file"], "level": "INFO", "propagate": False}},
    }
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(config))
    proc = pounce("--app-dir", str(HERE), "--port", "0", "--log-config", str(path), "cli_apps:app")
    try:
        port = _port_from(log_file)
        httpx.get(f"http://127.0.0.1:{port}/hello", timeout=5)
        _wait(lambda: "pounce.access" in log_file.read_text())
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    text = log_file.read_text()
    assert "CUSTOM pounce.access 127.0.0.1:" in text and '"GET /hello HTTP/1.1" 200' in text


def test_log_config_ini(tmp_path: Path) -> None:
    log_file = tmp_path / "pounce.log"
    path = tmp_path / "logging.ini"
    path.write_text(
        "[loggers]\nkeys=root,pounce\n\n[handlers]\nkeys=file\n\n[formatters]\nkeys=f\n\n"
        "[logger_root]\nlevel=WARNING\nhandlers=\n\n"
        "[logger_pounce]\nlevel=INFO\nhandlers=file\nqualname=pounce\npropagate=0\n\n"
        f"[handler_file]\nclass=FileHandler\nformatter=f\nargs=({str(log_file)!r},)\n\n"
        "[formatter_f]\nformat=INI %(name)s %(message)s\n"
    )
    proc = pounce("--app-dir", str(HERE), "--port", "0", "--log-config", str(path), "cli_apps:app")
    try:
        _port_from(log_file)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    assert "INI pounce.error Pounce running on" in log_file.read_text()


@pytest.mark.parametrize("name", ["missing.json", "broken.json"])
def test_bad_log_config_exits_2(tmp_path: Path, name: str) -> None:
    (tmp_path / "broken.json").write_text("{not json")
    code, _, err = finish(pounce("cli_apps:app", "--log-config", str(tmp_path / name)))
    assert code == 2 and "--log-config" in err


def _wait(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 15
    while not done():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _port_from(log_file: Path) -> int:
    import re

    _wait(lambda: log_file.exists() and "Pounce running on" in log_file.read_text())
    match = re.search(r"http://127\.0\.0\.1:(\d+)", log_file.read_text())
    assert match is not None
    return int(match[1])


def test_log_config_yaml(tmp_path: Path) -> None:
    pytest.importorskip("yaml")  # pounce[yaml]; in the dev group
    log_file = tmp_path / "pounce.log"
    path = tmp_path / "logging.yaml"
    path.write_text(
        "version: 1\n"
        "formatters:\n  json:\n    (): pounce.logs.JsonFormatter\n"
        f"handlers:\n  file:\n    class: logging.FileHandler\n    filename: {log_file}\n"
        "    formatter: json\n"
        "loggers:\n  pounce:\n    handlers: [file]\n    level: INFO\n    propagate: false\n"
    )
    proc = pounce("--app-dir", str(HERE), "--port", "0", "--log-config", str(path), "cli_apps:app")
    try:
        port = _port_from(log_file)
        httpx.get(f"http://127.0.0.1:{port}/y", timeout=5)
        _wait(lambda: "pounce.access" in log_file.read_text())
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    lines = [json.loads(line) for line in log_file.read_text().splitlines()]
    access = next(line for line in lines if line["logger"] == "pounce.access")
    assert (access["path"], access["status"]) == ("/y", 200)
