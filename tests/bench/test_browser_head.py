"""The browser's request head: what wrk puts on the wire, what the in-process drivers feed.

The ``browser`` scenario must send Chromium's fields (benchmarks/browser_head.py)
in their order, once each, after wrk's one Host field: wrk runs the scenario's
own script against a socket that records the raw bytes. ``inproc.py --head
browser`` must hand every field to Pounce and to Uvicorn: an app on each records
the headers its scope got. And the capture tool still reads Chromium's head.
"""

from __future__ import annotations

import asyncio
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest

from pounce.bench.scenario import Scenario

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
sys.path.insert(0, str(BENCHMARKS))  # the harness imports its apps as top-level modules
import inproc  # noqa: E402
from browser_head import BROWSER_FIELDS, request_head  # noqa: E402
from capture_browser_head import capture, fields  # noqa: E402
from harness.scenarios import SCENARIOS  # noqa: E402

TIMEOUT_S = 10.0
BY_KEY = {scenario.key: scenario for scenario in SCENARIOS}
ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 13\r\n\r\nHello, world!"
needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)"
)


def _read_request(conn: socket.socket, body_size: int) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data or len(data.partition(b"\r\n\r\n")[2]) < body_size:
        chunk = conn.recv(1 << 20)
        if not chunk:
            break
        data += chunk
    return data


def _wire(scenario: Scenario, tmp_path: Path) -> tuple[bytes, int]:
    """The first request wrk sends with the scenario's script, as read off a socket."""
    got: list[bytes] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:
        listener.settimeout(TIMEOUT_S)
        port = listener.getsockname()[1]

        def serve() -> None:
            while not got:  # wrk opens (and drops) a connection of its own first
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.settimeout(TIMEOUT_S)
                    data = _read_request(conn, scenario.body_size)
                    if data:
                        got.append(data)
                        conn.sendall(ANSWER)

        server = threading.Thread(target=serve, daemon=True)
        server.start()
        argv = ["wrk", "-t1", "-c1", "-d1s", "-s", str(scenario.write_lua(tmp_path))]
        subprocess.run(
            [*argv, f"http://127.0.0.1:{port}{scenario.path}"],
            capture_output=True,
            timeout=TIMEOUT_S + 5,
            check=False,
        )
        server.join(TIMEOUT_S)
    assert got, "wrk sent no request"
    return got[0], port


@needs_wrk
def test_wrk_sends_the_browser_head_in_order_with_one_host(tmp_path: Path) -> None:
    scenario = BY_KEY["browser"]
    assert scenario.path == "/hello" and scenario.headers == BROWSER_FIELDS
    raw, port = _wire(scenario, tmp_path)
    assert raw == request_head("browser", "/hello", f"127.0.0.1:{port}")
    assert [name for name, _ in fields(raw)] == ["Host", *(name for name, _ in BROWSER_FIELDS)]
    assert 700 <= len(raw) <= 800  # a browser's head, not wrk's ~40 bytes


@needs_wrk
@pytest.mark.parametrize("key", ["close", "upload"])
def test_the_other_scenarios_fields_go_on_the_wire_as_given(key: str, tmp_path: Path) -> None:
    scenario = BY_KEY[key]
    raw, port = _wire(scenario, tmp_path)
    lines = [f"{scenario.method} {scenario.path} HTTP/1.1", f"Host: 127.0.0.1:{port}"]
    lines += [f"{name}: {value}" for name, value in scenario.headers]
    lines += [f"Content-Length: {scenario.body_size}"] if scenario.body else []
    assert raw == ("\r\n".join(lines) + "\r\n\r\n").encode() + scenario.body


@needs_wrk
def test_a_given_host_replaces_wrks(tmp_path: Path) -> None:
    scenario = Scenario(
        key="GET /",
        title="test",
        app="apps:app",
        method="GET",
        path="/",
        connections=1,
        headers=(("Accept", "*/*"), ("Host", "example.com")),
        body=b"",
        response_size=0,
        check=lambda scenario, port: 200,
    )
    raw, _ = _wire(scenario, tmp_path)
    assert raw == b"GET / HTTP/1.1\r\nAccept: */*\r\nHost: example.com\r\n\r\n"


def test_the_lean_head_is_wrks() -> None:
    assert request_head("lean", "/hello", "h:1") == b"GET /hello HTTP/1.1\r\nHost: h:1\r\n\r\n"
    closing = request_head("browser", "/hello", "h:1", close=True)
    assert b"\r\nConnection: close\r\n" in closing and b"keep-alive" not in closing
    with pytest.raises(ValueError, match="want one of lean, browser"):
        request_head("firefox", "/", "h:1")


def _recording_app(seen: list[list[tuple[bytes, bytes]]]) -> Any:
    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        seen.append(list(scope["headers"]))
        await inproc.app(scope, receive, send)

    return app


SERVERS = ["pounce", "uvicorn-h11"]
try:
    import httptools  # noqa: F401
except ImportError:  # the peers' venv has it (benchmarks/.peers-venv); the dev group does not
    pass
else:
    SERVERS.append("uvicorn-httptools")


@pytest.mark.parametrize("server", SERVERS)
@pytest.mark.parametrize("driver", ["drive", "drive_together", "close"])
def test_inproc_feeds_every_browser_field_to_the_server(server: str, driver: str) -> None:
    seen: list[list[tuple[bytes, bytes]]] = []
    maker = inproc.protocol_maker(server, "fast", "standard", asgi_app=_recording_app(seen))
    if driver == "drive_together":
        run = inproc.drive_together(12, "/hello", maker, 4, "browser")
    else:
        run = inproc.drive(5, "/hello", maker, driver == "close", "browser")
    with asyncio.Runner() as runner:
        runner.run(run)  # drive() checks every answer
    want = [(b"host", b"127.0.0.1:8000")]
    want += [(name.lower().encode(), value.encode()) for name, value in BROWSER_FIELDS]
    if driver == "close":
        want[1] = (b"connection", b"close")
    assert len(seen) == (12 if driver == "drive_together" else 5)
    assert all([(n.lower(), v) for n, v in headers] == want for headers in seen)


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs chromium (apt-get install)")
def test_the_capture_reads_chromiums_head_with_the_cookies_last() -> None:
    """Names and order as frozen; if Chromium changed them, recapture (browser_head.py)."""
    head = capture(shutil.which("chromium") or "chromium", ("a=1", "b=2"))
    got = fields(head)
    assert head.startswith(b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:")
    assert [name for name, _ in got[1:]] == [name for name, _ in BROWSER_FIELDS]
    assert got[-1] == ("Cookie", "a=1; b=2")
