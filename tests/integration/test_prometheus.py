"""Prometheus metrics over real sockets, the exposition parsed with prometheus_client.parser."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

pytest.importorskip("prometheus_client")

from prometheus_client.parser import text_string_to_metric_families

from pounce import BuildError, Server
from pounce.events import RequestCompleted
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_asgi_http import logged
from tests.integration.test_events import Recorder, app

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
    assert found[("pounce_connections_open", ())] == 1
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
