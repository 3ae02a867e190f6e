"""Signals and recycling under load: nothing a client sends may fail.

SIGHUP (a rolling restart) and ``max_requests`` (recycling) both start a new
worker and wait for it to be ready before the old one stops accepting; the
listening socket is shared, so its queue always has a taker. SIGTERM drains:
a slow request in flight is answered. A second SIGINT does not wait.
"""

from __future__ import annotations

import concurrent.futures
import re
import signal
import ssl
import time
from pathlib import Path

import pytest
import trustme

from tests.workers.harness import H2Load, Load, get, pid_of, serving

KINDS = ["process", "thread"]


@pytest.mark.parametrize("kind", KINDS)
def test_rolling_restarts_under_load_fail_no_request(kind: str) -> None:
    """Three SIGHUPs while fresh and keep-alive clients request without pause."""
    with serving(workers=2, worker_class=kind) as running:
        load = Load(running.port, fresh=2, keep_alive=2, limit=50_000, seconds=25)
        try:
            for generation in (2, 3, 4):
                time.sleep(0.3)
                running.signal(signal.SIGHUP)
                running.wait_count(rf"\(generation {generation}\) ready", 2)
                running.wait_count(rf"\(generation {generation - 1}\) exited: code 0", 2)
            time.sleep(0.3)
            assert load.running(), "the load must last across every restart"
        finally:
            load.stop()
        assert load.failures == [], load.failures[:5]
        assert load.ok > 200
        assert running.count(r"\(generation 1\) exited: code 0") == 2
        assert running.count(r"\(generation 3\) exited: code 0") == 2
        if kind == "process":
            latest = {
                int(p) for p in re.findall(r"pid (\d+) \(generation 4\) ready", running.output())
            }
            assert pid_of(get(running.port)[1]) in latest
        print(f"{load.ok} requests, {load.retries} keep-alive retries (RFC 9112 §9.3.1)")


@pytest.mark.parametrize("kind", KINDS)
def test_rolling_restarts_under_http2_load_fail_no_request(kind: str) -> None:
    """Three SIGHUPs while HTTP/2 clients request without pause: httpx
    connections of one stream at a time, and connections that keep four
    streams open. An old worker's connections get their GOAWAY when no stream
    is in flight (or after a grace, if none comes): streams at or below its
    last stream id are answered, newer ones are the client's to retry (RFC
    9113 §6.8), so no request fails."""
    with serving(workers=2, worker_class=kind) as running:
        load = H2Load(running.port, connections=2, multiplexed=2, limit=50_000, seconds=25)
        try:
            for generation in (2, 3, 4):
                time.sleep(0.3)
                running.signal(signal.SIGHUP)
                running.wait_count(rf"\(generation {generation}\) ready", 2)
                running.wait_count(rf"\(generation {generation - 1}\) exited: code 0", 2)
            time.sleep(0.3)
            assert load.running(), "the load must last across every restart"
        finally:
            load.stop()
        assert load.failures == [], load.failures[:5]
        assert load.ok > 200
        assert load.versions == {"HTTP/2"}
        assert running.count(r"\(generation 3\) exited: code 0") == 2
        if kind == "process":
            assert len(load.pids) >= 4  # answers came from more than one generation
        assert load.goaways >= 1  # the multiplexed connections did meet GOAWAYs
        print(f"{load.ok} HTTP/2 requests, {load.goaways} GOAWAYs, {load.retries} retried")


def test_rolling_restarts_under_http2_over_tls_fail_no_request(tmp_path: Path) -> None:
    """The same over TLS, HTTP/2 chosen by ALPN (process workers; the TLS
    path is the same for threads)."""
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", "127.0.0.1")
    cert, key, ca_pem = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_pem))
    client = ssl.create_default_context(cafile=str(ca_pem))
    client.set_alpn_protocols(["h2"])
    tls = {"cert": str(cert), "key": str(key)}
    with serving(workers=2, worker_class="process", tls=tls) as running:
        load = H2Load(
            running.port, connections=2, multiplexed=2, limit=50_000, seconds=25, tls=client
        )
        try:
            for generation in (2, 3, 4):
                time.sleep(0.3)
                running.signal(signal.SIGHUP)
                running.wait_count(rf"\(generation {generation}\) ready", 2)
                running.wait_count(rf"\(generation {generation - 1}\) exited: code 0", 2)
            time.sleep(0.3)
            assert load.running(), "the load must last across every restart"
        finally:
            load.stop()
        assert load.failures == [], load.failures[:5]
        assert load.ok > 100 and load.versions == {"HTTP/2"} and load.goaways >= 1
        print(f"{load.ok} HTTP/2 requests over TLS, {load.goaways} GOAWAYs, {load.retries} retried")


@pytest.mark.parametrize("kind", KINDS)
def test_max_requests_recycles_without_a_failed_request(kind: str) -> None:
    """Each worker asks to be replaced at 40 requests and serves on until its
    replacement is ready; a load running through three recycles fails nothing."""
    with serving(workers=1, worker_class=kind, max_requests=40) as running:
        load = Load(running.port, fresh=1, keep_alive=1, limit=50_000, seconds=20)
        try:
            running.wait_count(r"\(generation 1\) exited: code 0, .*requests served", 3, 15)
            assert load.running(), "the load must last across every recycle"
        finally:
            load.stop()
        assert load.failures == [], load.failures[:5]
        assert running.count(r"served \d+ requests: recycling it") >= 3
        pattern = r"exited: code 0, .*, (\d+) requests served"
        served = [int(n) for n in re.findall(pattern, running.output())]
        assert all(n >= 40 for n in served), served
        if kind == "process":
            assert len(load.pids) >= 4


@pytest.mark.parametrize("kind", KINDS)
def test_sigterm_drains_a_slow_request_then_exits_0(kind: str) -> None:
    with serving(workers=2, worker_class=kind, graceful=10) as running:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(get, running.port, "/slow?s=1.5")
            time.sleep(0.5)
            running.signal(signal.SIGTERM)
            running.wait_for(r"draining", 5)
            assert slow.result(timeout=10)[0] == 200
        assert running.wait(10) == 0
        assert running.count(r"exited: code 0") == 2


@pytest.mark.parametrize("kind", KINDS)
def test_a_second_sigint_exits_at_once(kind: str) -> None:
    with serving(workers=2, worker_class=kind, graceful=30) as running:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(get, running.port, "/slow?s=20", 25)
            time.sleep(0.5)
            running.signal(signal.SIGINT)
            running.wait_for(r"draining", 5)
            started = time.monotonic()
            running.signal(signal.SIGINT)
            running.wait(10)
            assert time.monotonic() - started < 5
            with pytest.raises(OSError):
                slow.result(timeout=10)
        assert "Forced exit" in running.output()
