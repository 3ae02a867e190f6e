"""A 1 GiB file to 50 slow clients at once: the server's memory stays bounded.

``pounce --static-dir`` runs as its own process (its RSS is what is measured)
and serves a sparse 1 GiB file (no disk cost). Fifty clients each take a few
MiB, slowly, then stop reading with the rest of the file still owed: a server
that buffered what it owes would grow by gigabytes. With ``sendfile`` (the
default asyncio loop) the kernel holds the bytes in flight; on uvloop (no
``sendfile``) the file is read 64 KiB at a time and each read waits for the
client, so memory is a chunk per client either way.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.integration.edge_clients import TIMEOUT, cli
from tests.integration.test_hostile_clients import rss

SIZE = 1 << 30  # 1 GiB, sparse
CLIENTS = 50
TAKEN = 4 * 1024 * 1024  # bytes each client reads before it stops reading
RSS_BOUND = 200 * 1024 * 1024  # bytes of growth allowed (a generous bound: ~4 MiB per client)


def open_clients(port: int) -> list[socket.socket]:
    clients = []
    for _ in range(CLIENTS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
        sock.sendall(b"GET /big.bin HTTP/1.1\r\nhost: test\r\n\r\n")
        sock.setblocking(False)
        clients.append(sock)
    return clients


def read_slowly(clients: list[socket.socket]) -> list[bytes]:
    """Round-robin small reads, a pause between rounds, until each has `TAKEN` bytes."""
    got = [b""] * len(clients)
    sizes = [0] * len(clients)
    deadline = time.monotonic() + 6 * TIMEOUT
    while min(sizes) < TAKEN:
        assert time.monotonic() < deadline, f"stalled: {sorted(sizes)[:3]} bytes"
        for i, sock in enumerate(clients):
            if sizes[i] >= TAKEN:
                continue
            try:
                chunk = sock.recv(32 * 1024)
            except BlockingIOError:
                continue
            assert chunk, "the server closed a slow client"
            if len(got[i]) < 1024:
                got[i] += chunk[:1024]  # the head and the first body bytes, for a check
            sizes[i] += len(chunk)
        time.sleep(0.005)
    return got


@pytest.mark.slow
@pytest.mark.timeout(120)
@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_a_gibibyte_to_fifty_slow_clients_in_bounded_memory(tmp_path: Path, loop: str) -> None:
    if loop == "uvloop":
        pytest.importorskip("uvloop")
    with (tmp_path / "big.bin").open("wb") as big:
        big.truncate(SIZE)  # a hole: no disk blocks
    args = ("--static-dir", str(tmp_path), "--no-access-log", "--loop", loop)
    with cli(*args) as server:
        warm = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
        warm.sendall(b"HEAD /big.bin HTTP/1.1\r\nhost: test\r\n\r\n")
        assert warm.recv(4096).startswith(b"HTTP/1.1 200")  # imports and first request done
        warm.close()
        before = rss(server.proc.pid)
        clients = open_clients(server.port)
        try:
            starts = read_slowly(clients)
            time.sleep(0.5)  # the server has filled what the sockets take, and waits
            grown = rss(server.proc.pid) - before
            for start in starts:
                head, _, body = start.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 200")
                assert b"content-length: %d" % SIZE in head
                assert body.strip(b"\0") == b""
            # Others are still served while fifty responses are in flight.
            other = socket.create_connection(("127.0.0.1", server.port), timeout=TIMEOUT)
            other.sendall(b"GET /nothing HTTP/1.1\r\nhost: test\r\n\r\n")
            assert other.recv(4096).startswith(b"HTTP/1.1 404")
            other.close()
        finally:
            for sock in clients:
                sock.close()
    assert grown < RSS_BOUND, f"server RSS grew by {grown / 2**20:.0f} MiB"
