"""Out of file descriptors: ``accept()`` fails with EMFILE, and the worker backs off.

A server runs in a subprocess with ``RLIMIT_NOFILE`` at `NOFILE`; the test
opens more connections than that, each with a request, and keeps them open
(the server keeps them alive), so ``accept()`` starts failing. The server
must neither crash nor spin (its CPU time while it waits stays well under
the wall time), must log the pause once, not per failed accept, and once
the held connections close it must serve the clients that waited in the
backlog and new ones.
"""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.layers.helpers import TIMEOUT, read_response, wait_for

NOFILE = 64  # descriptors the server may hold
CLIENTS = NOFILE + 30  # more than it can accept
SCRIPT = Path(__file__).with_name("emfile_server.py")
ROOT = Path(__file__).parents[2]


def _start(loop: str, cap: int) -> tuple[subprocess.Popen[str], int]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), loop, str(cap), str(NOFILE)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("port "):
            return proc, int(line.split()[1])
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError(f"the server did not start: {proc.communicate()[0]}")


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _answered(sock: socket.socket, wait: float) -> bool:
    sock.settimeout(wait)
    try:
        return sock.recv(1, socket.MSG_PEEK) != b""
    except TimeoutError:
        return False
    finally:
        sock.settimeout(TIMEOUT)


def _split(socks: list[socket.socket]) -> tuple[list[socket.socket], list[socket.socket]]:
    """Those answered, and those not, once no new answer came for half a second."""
    answered: set[socket.socket] = set()
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        ready, _, _ = select.select([s for s in socks if s not in answered], [], [], 0.5)
        if not ready:
            break
        answered.update(ready)
    return [s for s in socks if s in answered], [s for s in socks if s not in answered]


def _served(port: int) -> bool:
    try:
        return read_response(_get(port))[0] == 200
    except OSError:  # ConnectionError too: closed or reset before an answer
        return False


def _get(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    sock.sendall(b"GET / HTTP/1.1\r\nhost: test\r\n\r\n")
    return sock


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads /proc for CPU time")
@pytest.mark.parametrize(("loop", "cap"), [("asyncio", 0), ("asyncio", 1000), ("uvloop", 1000)])
def test_out_of_descriptors_pauses_accepting_and_the_server_recovers(loop: str, cap: int) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    proc, port = _start(loop, cap)
    socks: list[socket.socket] = []
    began = time.monotonic()
    try:
        socks = [_get(port) for _ in range(CLIENTS)]
        served, waiting = _split(socks)
        assert served and waiting, "accept() should have run out of descriptors"
        before, started = _cpu_seconds(proc.pid), time.monotonic()
        time.sleep(1.0)
        cpu = _cpu_seconds(proc.pid) - before
        assert cpu < 0.5 * (time.monotonic() - started), f"spinning: {cpu:.2f} s of CPU"
        assert proc.poll() is None
        for sock in served:  # the server closes its side, and has descriptors again
            assert read_response(sock)[0] == 200
            sock.close()
        for sock in waiting:  # waited in the backlog: served now, not reset
            assert read_response(sock)[0] == 200
        assert read_response(_get(port))[0] == 200
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        output = proc.communicate(timeout=TIMEOUT)[0]
    lines = [line for line in output.splitlines() if "out of file descriptors" in line]
    # The first failure is logged at once; later ones only as a sum, once per 10 s.
    assert 1 <= len(lines) <= 1 + (time.monotonic() - began) // 10, output[-2000:]
    assert "listener refused: 1 accept paused: out of file descriptors (EMFILE" in lines[0]
    assert "Traceback" not in output


def test_uvloop_without_a_cap_keeps_serving() -> None:
    """libuv's own answer (no cap on uvloop): the waiting clients are closed, serving goes on."""
    pytest.importorskip("uvloop")
    proc, port = _start("uvloop", 0)
    socks: list[socket.socket] = []
    try:
        socks = [_get(port) for _ in range(CLIENTS)]
        wait_for(lambda: all(_answered(sock, 0.05) for sock in socks[:10]), "the first answers")
        for sock in socks:
            sock.close()
        socks = []
        # Until the server has closed its side of those, libuv may still drop a newcomer.
        wait_for(lambda: _served(port), "the server to serve a new connection")
        assert proc.poll() is None
    finally:
        for sock in socks:
            sock.close()
        proc.terminate()
        proc.communicate(timeout=TIMEOUT)
