"""HTTP/3 with several workers: one owns the UDP socket, every one advertises it.

A QUIC connection's datagrams must all reach the worker that holds it, and
neither a shared socket nor SO_REUSEPORT routes by connection id (that needs
eBPF), so the supervisor opens the UDP socket once and one worker serves it
(docs/workers.md, "HTTP/3").
"""

from __future__ import annotations

import asyncio
import re
import signal
import ssl
import subprocess
import sys

import httpx
import pytest

from tests.integration.conftest import PKI
from tests.integration.conftest import pki as pki  # the fixture
from tests.workers.harness import ROOT, Running

pytest.importorskip("aioquic")

from tests.integration.h3client import h3_connect

STARTED = re.compile(r"Pounce running on https://127\.0\.0\.1:(\d+)")
TIMEOUT = 10.0


def test_one_worker_serves_http3_and_every_worker_advertises_it(pki: PKI) -> None:
    command = [sys.executable, "-m", "tests.workers.serve_h3", str(pki.cert), str(pki.key), "2"]
    proc = subprocess.Popen(command, cwd=ROOT, stderr=subprocess.PIPE, text=True)
    running = Running(proc, started=False)
    try:
        port = int(running.wait_for(STARTED, 20)[1])
        running.wait_count(r"Started .*worker", 2)

        async def h3_pids() -> set[bytes]:
            pids = set()
            async with asyncio.timeout(TIMEOUT):
                for _ in range(6):  # a new QUIC connection each time
                    async with h3_connect("127.0.0.1", port, str(pki.ca)) as client:
                        reply = await client.request("GET", "/")
                        assert reply.status == 200
                        pids.add(reply.body)
            return pids

        assert len(asyncio.run(h3_pids())) == 1  # the owner, every time

        verify = ssl.create_default_context(cafile=str(pki.ca))
        adverts = set()
        for _ in range(20):  # new TCP connections land on either worker
            with httpx.Client(verify=verify, timeout=TIMEOUT) as client:
                response = client.get(f"https://127.0.0.1:{port}/")
            adverts.add(response.headers.get("alt-svc"))
        assert adverts == {f'h3=":{port}"; ma=86400'}
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)
