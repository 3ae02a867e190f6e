"""Prometheus metrics over real sockets, the exposition parsed with prometheus_client.parser."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from websockets.sync.client import connect

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

from pounce import BuildError, Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.events import Refused, RequestCompleted, RequestQueued
from pounce.net.accept import AT_CAP
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_asgi_http import logged
from tests.integration.test_events import Recorder, ThreadedGet, app
from tests.layers.helpers import read_response, send_request

TIMEOUT = 5.0  # seconds for every network wait


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def test_metrics_count_requests_without_counting_the_scrape(pki: PKI) -> None:
    recorder = Recorder()
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .access_log()
        .metrics(path="/metrics")
        .rate_limit(rate="3/m")
        .observe(recorder)
        .asgi(app)
    )
    context = ssl.create_default_context(cafile=str(pki.ca))
    with logged("pounce.access") as log, TestServer(server) as ts:
        base = f"https://127.0.0.1:{ts.port}"
        with httpx.Client(http2=True, verify=context, timeout=TIMEOUT) as client:
            assert client.get(base + "/a").status_code == 201
            assert client.get(base + "/boom").status_code == 500
            assert client.post(base + "/a").status_code == 201
            assert client.get(base + "/a").status_code == 429
            recorder.wait_for(RequestCompleted, lambda e: e.status == 429)
            scrape = client.get(base + "/metrics")
            scrape_again = client.get(base + "/metrics")  # never refused by the rate limit
    assert scrape.status_code == 200 and scrape_again.status_code == 200
    assert scrape.headers["content-type"].startswith("text/plain")
    found = samples(scrape.text)

    def requests(method: str, status: str) -> float:
        labels = (("method", method), ("protocol", "HTTP/2"), ("status", status))
        return found[("pounce_requests_total", labels)]

    assert (requests("GET", "2xx"), requests("GET", "5xx"), requests("GET", "4xx")) == (1, 1, 1)
    assert requests("POST", "2xx") == 1
    assert (
        found[("pounce_refused_total", (("reason", "too many requests"), ("status", "429")))] == 1
    )
    assert found[("pounce_request_duration_seconds_count", (("protocol", "HTTP/2"),))] == 4
    assert found[("pounce_requests_in_flight", ())] == 1  # the scrape itself
    assert found[("pounce_connections_open", (("protocol", "h2"),))] == 1  # the scrape's
    assert found[("pounce_worker_starts_total", ())] == 1
    assert not any("/metrics" in r.getMessage() for r in log.records)  # a scrape is not logged
    assert not any("path" in labels for _, labels in found)  # no path label, ever


def test_connection_and_bytes_metrics_after_close() -> None:
    server = Server.builder().bind("127.0.0.1", 0).h1().metrics(path="/m").asgi(app)
    with TestServer(server) as ts:
        httpx.get(ts.url + "/a", timeout=TIMEOUT)  # its own connection, closed after
        with httpx.Client(timeout=TIMEOUT) as client:
            client.get(ts.url + "/a")
            text = client.get(ts.url + "/m").text
    found = samples(text)
    assert found[("pounce_connections_total", (("protocol", "http/1.1"),))] >= 1
    assert found[("pounce_received_bytes_total", ())] > 0
    assert found[("pounce_sent_bytes_total", ())] > 0


def test_connections_open_by_protocol_follow_an_upgrade() -> None:
    server = Server.builder().bind("127.0.0.1", 0).h1().websocket().metrics(path="/m").asgi(app)
    with (
        TestServer(server) as ts,
        connect(ts.url.replace("http", "ws") + "/ws", open_timeout=TIMEOUT) as ws,
    ):
        ws.send("a")
        assert ws.recv(timeout=TIMEOUT) == "a"  # the upgrade is done
        found = samples(httpx.get(ts.url + "/m", timeout=TIMEOUT).text)

    def open_(protocol: str) -> float:
        return found[("pounce_connections_open", (("protocol", protocol),))]

    # The WebSocket moved from http/1.1 to websocket; the scrape's own is http/1.1.
    assert (open_("websocket"), open_("http/1.1"), open_("none")) == (1, 1, 0)
    assert found[("pounce_websockets_open", ())] == 1


def test_requests_queued_is_a_gauge_of_the_limit_queue() -> None:
    recorder = Recorder()
    held = threading.Event()
    release = threading.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/first":
            held.set()
            await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .limit(max_in_flight=1, queue=2)
        .metrics(path="/m")  # answered before the limit: a scrape never waits
        .observe(recorder)
        .asgi(slow)
    )
    with TestServer(server) as ts:
        with ThreadedGet(ts.url + "/first") as first:
            assert held.wait(TIMEOUT)
            with ThreadedGet(ts.url + "/second") as second:
                recorder.wait_for(RequestQueued)
                during = samples(httpx.get(ts.url + "/m", timeout=TIMEOUT).text)
                release.set()
            assert second.result().status_code == 200
        assert first.result().status_code == 200
        recorder.wait_for(RequestCompleted, lambda e: e.path == "/second")
        after = samples(httpx.get(ts.url + "/m", timeout=TIMEOUT).text)
    assert during[("pounce_requests_queued", ())] == 1
    assert after[("pounce_requests_queued", ())] == 0
    assert after[("pounce_request_queue_wait_seconds_count", ())] == 1


def test_accept_paused_at_the_connection_cap_is_a_refusal() -> None:
    recorder = Recorder()
    release = threading.Event()

    async def held(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/hold":
            await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})

    close = b"connection: close\r\n"
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .max_connections(1)
        .metrics(path="/m")
        .observe(recorder)
        .asgi(held)
    )
    with TestServer(server) as ts:
        first = send_request(ts.port, "/hold", close)
        waiting = send_request(ts.port, "/next", close)  # at the cap: left in the backlog
        event = recorder.wait_for(Refused)
        release.set()
        for sock in (first, waiting):
            assert read_response(sock)[0] == 200
            sock.close()
        scrape = httpx.get(ts.url + "/m", timeout=TIMEOUT)
        pauses = [e for e in recorder.of(Refused) if e.layer == "listener"]
    assert (event.layer, event.reason, event.status, event.client, event.path) == (
        "listener",
        AT_CAP,
        0,
        None,
        "",
    )
    labels = (("reason", AT_CAP), ("status", "0"))
    assert samples(scrape.text)[("pounce_refused_total", labels)] == len(pauses) >= 1


def test_metrics_need_a_path_or_a_listener() -> None:
    with pytest.raises(BuildError, match="path= or bind= is required"):
        Server.builder().metrics()
    with pytest.raises(BuildError, match="/metrics"):
        Server.builder().metrics(path="metrics")
    with pytest.raises(BuildError, match="HOST:PORT"):
        Server.builder().metrics(bind="127.0.0.1:0")


def test_multiprocess_mode_sums_every_worker(tmp_path: Path) -> None:
    """Two process workers, PROMETHEUS_MULTIPROC_DIR set: any scrape answers both's sum."""
    from tests.integration.test_cli import HERE, Running

    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    args = ["--app-dir", str(HERE), "--port", "0", "--workers", "2", "--metrics-path", "/m"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pounce", *args, "cli_apps:app"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    running = Running(proc)
    try:
        running.wait_started()
        sent = 10
        for _ in range(sent):  # a new connection each: the kernel hands each to a worker
            httpx.get(running.url + "/a", timeout=TIMEOUT)
        found = samples(httpx.get(running.url + "/m", timeout=TIMEOUT).text)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    labels = (("method", "GET"), ("protocol", "HTTP/1.1"), ("status", "2xx"))
    assert found[("pounce_requests_total", labels)] == sent
    # Each worker counted its own start: the scrape, answered by one, holds both.
    assert found[("pounce_worker_starts_total", ())] == 2


def test_a_killed_worker_leaves_the_live_gauges_and_counts_as_a_start(tmp_path: Path) -> None:
    """SIGKILL a process worker holding a connection: it never drops its own live gauges;
    the next scrape does (its pid is gone), and its replacement is one more start."""
    from tests.integration.test_cli import HERE, Running

    env = {"PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    args = ["--app-dir", str(HERE), "--port", "0", "--workers", "2", "--metrics-path", "/m"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "pounce", *args, "--timeout-keep-alive", "60", "cli_apps:app"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **env},
    )
    running = Running(proc)
    clients: list[httpx.Client] = []
    try:
        running.wait_started()
        # Keep-alive connections until the two workers each hold one; a pid answers.
        held: dict[str, httpx.Client] = {}
        for _ in range(50):
            client = httpx.Client(base_url=running.url, timeout=TIMEOUT)
            clients.append(client)
            held.setdefault(client.get("/pid").text, client)
            if len(held) == 2:
                break
        assert len(held) == 2, "the kernel never handed a connection to the second worker"
        victim = next(iter(held))
        os.kill(int(victim), signal.SIGKILL)
        for client in clients:
            client.close()
        _wait_until(lambda: running.output().count(" ready") >= 3, running.output)

        def open_connections() -> float:
            found = samples(httpx.get(running.url + "/m", timeout=TIMEOUT).text)
            return sum(v for (n, _), v in found.items() if n == "pounce_connections_open")

        # The survivor counts its closes as it sees them; the victim never will.
        _wait_until(lambda: open_connections() == 1, lambda: str(open_connections()))
        found = samples(httpx.get(running.url + "/m", timeout=TIMEOUT).text)
    finally:
        proc.terminate()
        proc.communicate(timeout=30)
    # Two workers started, one replaced: restarts = starts - workers.
    assert found[("pounce_worker_starts_total", ())] == 3


def _wait_until(condition: Callable[[], bool], why: Callable[[], str]) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        assert time.monotonic() < deadline, why()
        time.sleep(0.05)


def test_a_metrics_listener_of_its_own() -> None:
    with socket.socket() as probe:  # a free port for the metrics listener
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = Server.builder().bind("127.0.0.1", 0).h1().metrics(bind=f"127.0.0.1:{port}").asgi(app)
    with TestServer(server) as ts:
        main_port = ts.addresses[0][1]
        assert httpx.get(f"http://127.0.0.1:{main_port}/a", timeout=TIMEOUT).status_code == 201
        # The main listener has no metrics path; the app answers there.
        assert (
            httpx.get(f"http://127.0.0.1:{main_port}/metrics", timeout=TIMEOUT).status_code == 201
        )
        scrape = httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=TIMEOUT)
        elsewhere = httpx.get(f"http://127.0.0.1:{port}/a", timeout=TIMEOUT)  # not the app
    found = samples(scrape.text)
    labels = (("method", "GET"), ("protocol", "HTTP/1.1"), ("status", "2xx"))
    assert found[("pounce_requests_total", labels)] == 2
    assert elsewhere.text.startswith("# HELP")
    assert "metrics on port" in server.describe()
