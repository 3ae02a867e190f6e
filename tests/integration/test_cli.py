"""The ``pounce`` CLI as a subprocess: start, serve, SIGTERM, exit codes."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

HERE = Path(__file__).parent
STARTED = re.compile(r"Pounce running on http://(?P<host>[^ ]+):(?P<port>\d+)")


class Running:
    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.port = 0
        self._started = threading.Event()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            match = STARTED.search(line)
            if match:
                self.port = int(match["port"])
                self._started.set()
        self._started.set()

    def wait_started(self) -> None:
        assert self._started.wait(15), "server did not start: " + "".join(self.lines)
        assert self.port, "server exited: " + "".join(self.lines)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def output(self) -> str:
        return "".join(self.lines)


def pounce(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pounce", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )


@contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    proc = pounce("--app-dir", str(HERE), "--port", "0", *args, env=env)
    running = Running(proc)
    try:
        running.wait_started()
        yield running
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def finish(proc: subprocess.Popen[str], timeout: float = 15) -> tuple[int, str, str]:
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def test_serves_then_exits_zero_on_sigterm() -> None:
    with serving("cli_apps:app") as running:
        response = httpx.get(running.url + "/hello", timeout=5)
        assert response.text == "hi /hello"
        assert response.headers["server"] == "pounce"
        running.proc.send_signal(signal.SIGTERM)
        assert running.proc.wait(15) == 0
        stdout = running.proc.stdout.read() if running.proc.stdout else ""
    assert "lifespan shutdown ran" in stdout
    assert '"GET /hello HTTP/1.1" 200' in running.output()


def test_sigint_also_exits_zero() -> None:
    with serving("cli_apps:app") as running:
        running.proc.send_signal(signal.SIGINT)
        assert running.proc.wait(15) == 0


def test_in_flight_request_finishes_during_graceful_shutdown() -> None:
    with serving("cli_apps:app") as running:
        result: dict[str, httpx.Response] = {}

        def slow() -> None:
            result["r"] = httpx.get(running.url + "/slow", timeout=10)

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.3)  # the request is in flight
        idle = socket.create_connection(("127.0.0.1", running.port), timeout=5)
        running.proc.send_signal(signal.SIGTERM)
        idle.settimeout(5)
        assert idle.recv(1) == b"", "an idle connection is closed at once on shutdown"
        thread.join(10)
        assert result["r"].status_code == 200
        assert result["r"].text == "hi /slow"
        assert result["r"].headers.get("connection") == "close"
        assert running.proc.wait(15) == 0


def test_graceful_timeout_cuts_off_slow_requests() -> None:
    with serving("cli_apps:app", "--timeout-graceful-shutdown", "0.2") as running:
        errors: list[Exception] = []

        def slow() -> None:
            try:
                httpx.get(running.url + "/slow", timeout=10)
            except httpx.HTTPError as exc:
                errors.append(exc)

        thread = threading.Thread(target=slow)
        thread.start()
        time.sleep(0.3)
        running.proc.send_signal(signal.SIGTERM)
        thread.join(10)
        assert running.proc.wait(15) == 0
        assert errors, "the slow request was cut off"
        assert "Graceful shutdown timed out" in running.output()


def test_factory_and_flags() -> None:
    with serving(
        "cli_apps:create_app",
        "--factory",
        "--no-server-header",
        "--no-date-header",
        "--header",
        "X-Team: cats",
        "--no-access-log",
    ) as running:
        response = httpx.get(running.url + "/", timeout=5)
        assert response.text == "from factory"
        assert "server" not in response.headers
        assert "date" not in response.headers
        assert response.headers["x-team"] == "cats"
        running.proc.send_signal(signal.SIGTERM)
        running.proc.wait(15)
        assert '"GET / HTTP/1.1"' not in running.output()


def test_environment_variables_set_flags() -> None:
    env = {"POUNCE_SERVER_HEADER": "false", "POUNCE_ROOT_PATH": "/api"}
    with serving("cli_apps:app", env=env) as running:
        response = httpx.get(running.url + "/x", timeout=5)
        assert "server" not in response.headers
        assert response.text == "hi /api/x"


def test_limit_request_body_flag() -> None:
    with serving("cli_apps:app", "--limit-request-body", "10") as running:
        response = httpx.post(running.url + "/", content=b"x" * 11, timeout=5)
        assert response.status_code == 413


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["nosuchmodule:app"], 1, 'could not import module "nosuchmodule"'),
        (["cli_apps:missing"], 1, 'attribute "missing" not found'),
        (["cli_apps:not_callable"], 1, "not an ASGI application"),
        (["broken_app:app"], 1, "boom at import time"),
        (["no_colon"], 1, "<module>:<attribute>"),
        (["cli_apps:app", "--port", "notanumber"], 2, "invalid int value"),
        (["cli_apps:app", "--bogus"], 2, "unrecognized arguments"),
        (["cli_apps:app", "--lifespan", "sometimes"], 2, "invalid choice"),
        (["cli_apps:failing_startup", "--lifespan", "on"], 3, "database unreachable"),
        (["cli_apps:app", "--root-path", "api"], 2, "must start with '/'"),
    ],
)
def test_startup_failures_are_one_line(args: list[str], code: int, message: str) -> None:
    rc, _, err = finish(pounce("--app-dir", str(HERE), "--port", "0", *args))
    assert rc == code, err
    assert message in err
    assert "Traceback" not in err


def test_debug_log_level_shows_the_traceback() -> None:
    rc, _, err = finish(pounce("--app-dir", str(HERE), "--log-level", "debug", "broken_app:app"))
    assert rc == 1
    assert "Traceback" in err


def test_port_in_use_is_a_clear_error() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    try:
        port = str(holder.getsockname()[1])
        rc, _, err = finish(pounce("--app-dir", str(HERE), "--port", port, "cli_apps:app"))
    finally:
        holder.close()
    assert rc == 1
    assert "cannot bind" in err and "Traceback" not in err


def test_version_and_help() -> None:
    rc, out, _ = finish(pounce("--version"))
    assert rc == 0 and out.startswith("pounce ")
    rc, out, _ = finish(pounce("--help"))
    assert rc == 0
    for flag in (
        "--host",
        "--port",
        "--uds",
        "--fd",
        "--backlog",
        "--lifespan",
        "--root-path",
        "--timeout-keep-alive",
        "--timeout-graceful-shutdown",
        "--header",
        "--server-header",
        "--date-header",
        "--h11-max-incomplete-event-size",
        "--log-level",
        "--access-log",
        "--factory",
        "--app-dir",
        "--timeout-request-head",
        "--limit-request-body",
    ):
        assert flag in out, flag


def test_uds_flag(tmp_path: Path) -> None:
    path = tmp_path / "cli.sock"
    proc = pounce("--app-dir", str(HERE), "--uds", str(path), "--uds-mode", "600", "cli_apps:app")
    try:
        deadline = time.monotonic() + 15
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert oct(path.stat().st_mode & 0o777) == "0o600"
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=5) as client:
            assert client.get("http://x/").text == "hi /"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=10)
    assert not path.exists()


def test_pounce_run_serves_the_standard_stack() -> None:
    code = (
        "import pounce; "
        f"pounce.run('cli_apps:app', app_dir={str(HERE)!r}, port=0, timeout_keep_alive=1)"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    running = Running(proc)
    try:
        running.wait_started()
        assert httpx.get(running.url + "/r", timeout=5).text == "hi /r"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(10)


def test_pounce_run_rejects_unknown_options() -> None:
    import pounce
    from pounce.errors import BuildError

    with pytest.raises(BuildError, match="unknown option\\(s\\) prot") as info:
        pounce.run("cli_apps:app", prot=8000)
    assert info.value.hint and "port" in info.value.hint


def test_run_keeps_start_up_objects_out_of_the_collector() -> None:
    """`Server.run()` freezes the start-up heap, so full GC passes stay short (p99)."""
    with serving("cli_apps:app") as running:
        frozen = int(httpx.get(running.url + "/gc-frozen", timeout=5).text)
    assert frozen > 1000, "gc.freeze() moved the start-up objects to the permanent generation"
