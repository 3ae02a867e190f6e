"""A paced HTTP/1.1 load generator that counts every kind of outcome (the overload scenario).

`clients` connections run at once; each sends one GET, waits for the whole
answer, and sends the next no sooner than `pace` seconds after the last one
went out — so the offered load is at most ``clients / pace`` requests per
second, and less only while the server is slow to answer (a closed loop for
the requests it admits). Each request ends as exactly one `Outcome`:

* ``2xx``, ``429``, ``503``, ``other`` — a whole response with that status
  (latency recorded per status class);
* ``closed`` — the server closed the connection cleanly (FIN) before any
  byte of an answer: a client may retry it;
* ``reset`` — the connection was reset (or broke) before a whole answer;
* ``timeout`` — no whole answer within `request_timeout` (a hung request);
* ``connect`` — the connection could not be opened in `request_timeout`
  (refused, or the backlog full).

A response with ``connection: close`` makes the client open a new
connection for its next request. Standard library only.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from collections import Counter
from dataclasses import dataclass, field

OUTCOMES = ("2xx", "429", "503", "other", "closed", "reset", "timeout", "connect")


class _Closed(Exception):
    """FIN before any byte of the answer."""


class _Broken(Exception):
    """Reset, or FIN in the middle of an answer."""


class _Client(asyncio.Protocol):
    """One connection; `ask` sends a request and waits for (status, closing)."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self._buffer = bytearray()
        self._waiter: asyncio.Future[tuple[int, bool]] | None = None
        self._head: tuple[int, int, bool] | None = None  # status, body end, closing
        self.lost = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def ask(self, request: bytes) -> asyncio.Future[tuple[int, bool]]:
        assert self.transport is not None
        self._waiter = asyncio.get_running_loop().create_future()
        self._buffer.clear()
        self._head = None
        self.transport.write(request)
        return self._waiter

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        if self._head is None:
            end = self._buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).lower()
            status = int(head[9:12])
            length = 0
            at = head.find(b"\r\ncontent-length:")
            if at >= 0:
                stop = head.find(b"\r\n", at + 2)
                length = int(head[at + 17 : stop if stop >= 0 else len(head)])
            closing = b"\r\nconnection: close" in head
            self._head = (status, end + 4 + length, closing)
        status, body_end, closing = self._head
        if len(self._buffer) >= body_end and self._waiter is not None and not self._waiter.done():
            self._waiter.set_result((status, closing))

    def eof_received(self) -> bool | None:
        self._fail(_Closed() if not self._buffer else _Broken("FIN mid-answer"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self._fail(_Broken(str(exc)) if exc is not None else _Closed())

    def _fail(self, exc: Exception) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_exception(exc)


@dataclass
class Tally:
    """Outcomes and latencies of one phase; `bins`: 2xx answers per `bin_s` since `started`."""

    started: float
    bin_s: float = 0.1
    counts: Counter[str] = field(default_factory=Counter)
    latencies: dict[str, list[float]] = field(default_factory=dict)
    bins: Counter[int] = field(default_factory=Counter)
    sent: int = 0

    def record(self, outcome: str, latency: float | None = None, now: float = 0.0) -> None:
        self.counts[outcome] += 1
        if latency is not None:
            self.latencies.setdefault(outcome, []).append(latency)
        if outcome == "2xx":
            self.bins[int((now - self.started) / self.bin_s)] += 1

    def percentile(self, outcome: str, q: float) -> float | None:
        values = sorted(self.latencies.get(outcome, ()))
        if not values:
            return None
        return values[min(len(values) - 1, math.ceil(q * len(values)) - 1)]


def _status_class(status: int) -> str:
    if 200 <= status < 300:
        return "2xx"
    if status in (429, 503):
        return str(status)
    return "other"


async def _one_client(
    host: str,
    port: int,
    request: bytes,
    pace: float,
    until: float,
    timeout: float,
    tally: Tally,
) -> None:
    loop = asyncio.get_running_loop()
    client: _Client | None = None
    await asyncio.sleep(random.random() * pace)  # spread the clients over one pace
    try:
        while loop.time() < until:
            sent = loop.time()
            if client is None or client.lost:
                try:
                    _, client = await asyncio.wait_for(
                        loop.create_connection(_Client, host, port), timeout
                    )
                except (OSError, TimeoutError):
                    tally.record("connect")
                    client = None
                    await asyncio.sleep(max(0.0, sent + pace - loop.time()))
                    continue
            tally.sent += 1
            try:
                status, closing = await asyncio.wait_for(client.ask(request), timeout)
            except TimeoutError:
                tally.record("timeout")
                _drop(client)
                client = None
                continue
            except _Closed:
                tally.record("closed")
                _drop(client)
                client = None
                continue
            except (_Broken, OSError):
                tally.record("reset")
                _drop(client)
                client = None
                continue
            now = loop.time()
            tally.record(_status_class(status), now - sent, now)
            if closing:
                _drop(client, graceful=True)
                client = None
            await asyncio.sleep(max(0.0, sent + pace - now))
    finally:
        if client is not None:
            _drop(client)


def _drop(client: _Client, *, graceful: bool = False) -> None:
    if client.transport is not None:
        with contextlib.suppress(Exception):
            client.transport.close() if graceful else client.transport.abort()


async def run_load(
    host: str,
    port: int,
    *,
    path: str,
    clients: int,
    pace: float,
    duration: float,
    timeout: float,
) -> Tally:
    """`clients` paced clients for `duration` seconds; waits for the last answers too."""
    request = f"GET {path} HTTP/1.1\r\nhost: {host}:{port}\r\n\r\n".encode()
    loop = asyncio.get_running_loop()
    tally = Tally(started=loop.time())
    until = loop.time() + duration
    await asyncio.gather(
        *(_one_client(host, port, request, pace, until, timeout, tally) for _ in range(clients))
    )
    return tally
