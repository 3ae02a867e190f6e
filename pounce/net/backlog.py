"""`BacklogDrain`: catching up with a burst of new connections on uvloop's own server.

uvloop accepts in C through libuv, and libuv accepts one connection per turn
of the loop (since 1.45, libuv/libuv#3696: it relies on the listening socket
staying readable to hear of the next one). On an idle loop a turn takes
microseconds and a burst is accepted at once. On a busy loop a turn takes as
long as the work in it — 64 connections streaming 100 KiB responses make it
15 ms and more — so the 40th client of a burst waits 40 turns before its
first byte is read: hundreds of milliseconds. That was the p99 tail of the
stream scenario on uvloop (docs/performance.md, "The streaming tail on
uvloop"); Uvicorn on uvloop has it too. asyncio's own server and Pounce's
`Acceptor` accept up to a batch per turn and never had it.

So a serve on uvloop's own server (no connection cap) wraps its protocol
factory in a `BacklogDrain` per listening socket. Every connection uvloop
accepts calls `factory`; when the one before came more than `BUSY_GAP`
earlier (the turns are long, or a burst begins), it polls the listening
socket — one system call — and, if more clients wait, accepts up to
`ACCEPT_BATCH` of them itself and hands each to the loop with
``loop.connect_accepted_socket`` (`pounce.net.accept.adopt`, as Pounce's own
`Acceptor` does: the transport is made at once, and its ``connection_made``
comes in the next turn, as for uvloop's own). Connections that arrive
faster than one per `BUSY_GAP` are left to uvloop (its turns are short
then, so each waits little), and after a drain
the next waits `DRAIN_HOLDOFF`, so the `Connection: close` path stays
uvloop's and pays one clock read per connection.

Invariants: the drain never blocks (the listening socket is non-blocking and
polled with a zero timeout); any error of ``accept()`` but a client that left
in the backlog (descriptors running out, above all) ends the drain and leaves
the socket to uvloop, whose C path has libuv's own answer to ``EMFILE``; a
drained connection is made with the same factory as uvloop's own, so it is
the same connection from the first byte on (``TCP_NODELAY`` included: uvloop
sets it on every TCP transport it makes).
"""

from __future__ import annotations

import asyncio
import logging
import select
import socket
import time
from collections.abc import Callable

from pounce.net.accept import ACCEPT_BATCH, adopt

error_log = logging.getLogger("pounce.error")

BUSY_GAP = 0.001  # seconds between two accepts by uvloop beyond which the backlog is polled
"""One poll per millisecond at most: 0.1 % of a core where each is a microsecond."""
DRAIN_HOLDOFF = 0.1  # seconds after a drain before the next one
"""A drain makes the next turn long (every connection it took is set up in it), which
would look like a busy loop and drain again: on a stream of `Connection: close`
clients every connection would then take our dearer path (about 78,000 more
instructions each, docs/performance.md) instead of uvloop's. The hold-off breaks
that loop and bounds the cost at one batch of 64 per 0.1 s (about 2 % of a core).
The clients of a burst already waiting are taken by its first drain; stragglers
within the hold-off are uvloop's, one per turn."""

ProtocolFactory = Callable[[], asyncio.BaseProtocol]


class BacklogDrain:
    """Wraps the protocol factory of uvloop's server on one listening socket (see above)."""

    __slots__ = (
        "_factory",
        "_last",
        "_loop",
        "_poll",
        "_quiet_until",
        "_sock",
        "drained",
    )

    def __init__(self, sock: socket.socket, factory: ProtocolFactory) -> None:
        sock.setblocking(False)  # uvloop made the descriptor so; the object must agree
        self._sock = sock
        self._factory = factory
        self._loop = asyncio.get_running_loop()
        self._poll = select.poll()
        self._poll.register(sock.fileno(), select.POLLIN)
        self._last = 0.0  # when uvloop last accepted on this socket (time.monotonic)
        self._quiet_until = 0.0  # no drain before this (time.monotonic): `DRAIN_HOLDOFF`
        self.drained = 0
        """Connections this drain accepted itself, not uvloop."""

    def factory(self) -> asyncio.BaseProtocol:
        """uvloop's protocol factory: it has just accepted a connection on our socket."""
        now = time.monotonic()
        busy = now - self._last > BUSY_GAP and now >= self._quiet_until
        if busy and self._poll.poll(0) and self._drain():
            self._quiet_until = now + DRAIN_HOLDOFF
        self._last = now
        return self._factory()

    def _drain(self) -> bool:
        """Accept what waits in the backlog, up to a batch, and give each to the loop;
        True if there was any."""
        took = False
        for _ in range(ACCEPT_BATCH):
            try:
                conn, _ = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                break  # none left (or another worker took it)
            except ConnectionAbortedError:
                continue  # the client left while in the backlog
            except OSError as exc:  # out of descriptors: uvloop's C path copes
                error_log.debug("accept() while catching up failed: %s", exc)
                break
            took = True
            self.drained += 1
            # Its connection_made comes in the next turn, as for the one uvloop accepted.
            adopt(self._loop, self._factory, conn, _nothing)
        return took


def _nothing() -> None:
    """A drained connection needs no bookkeeping once made (uvloop's server has no cap)."""
