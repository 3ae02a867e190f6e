"""Accepting connections ourselves: a cap on open connections, a back-off when
descriptors run out, and a batch of accepts per turn of the loop.

The event loop's own server (``loop.create_server``) accepts whatever the
kernel has ready — asyncio up to a whole backlog at a time, before a single
protocol is made — and has no public way to pause. Worse, asyncio's answer
to ``EMFILE`` is a flood: its accept loop does not stop at the error but
tries again up to `backlog` times in the same turn, logging a traceback and
scheduling a retry each time (``selector_events._accept_connection``,
CPython 3.6–3.13), so a worker out of descriptors logs thousands of lines a
second and serves nobody. So a serve accepts through an `Acceptor` on
asyncio always, and on uvloop when a connection cap is set
(``--limit-max-connections``): it watches each listening socket with
``loop.add_reader`` (public API on asyncio and uvloop alike), accepts up to
`ACCEPT_BATCH` connections per readiness, and hands each to the loop with
``loop.connect_accepted_socket`` — the same work asyncio's own server does
per connection. uvloop without a
cap keeps its own accept loop, in C, which costs less per connection but
accepts one connection per turn of the loop (libuv ≥ 1.45): a
`BacklogDrain` (pounce/net/backlog.py) catches up when its turns are long.

Invariants:

* at most `cap` connections are open at once — accepted and not yet lost,
  counted from the ``accept()`` (so those whose transport is still being
  made count too). At the cap the listening sockets are not watched, so
  ``accept()`` is not called: further clients wait in the kernel's listen
  backlog (``--backlog``), not accepted and closed; watching resumes when a
  connection closes and the count is below the cap again;
* accepting pauses only when a client is waiting (the socket is readable at
  the cap), and each such pause is one refusal, reported to `refused`;
* ``EMFILE`` / ``ENFILE`` (and ``ENOBUFS`` / ``ENOMEM``) from ``accept()``
  stop watching for a back-off that doubles from `RETRY_FIRST` to
  `RETRY_MAX` seconds (or until a connection closes and frees a
  descriptor), never a busy loop on a socket that stays readable, never a
  crash; each is a refusal too. The refusal log bounds the lines.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import logging
import math
import select
import socket
from collections.abc import Callable, Coroutine, Sequence
from typing import Any

from pounce.net.transport import ConnectionTracker, TransportAdapter

error_log = logging.getLogger("pounce.error")

OUT_OF_DESCRIPTORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})
RETRY_FIRST = 0.05  # seconds before accepting again once descriptors ran out
RETRY_MAX = 1.0  # seconds; the back-off doubles up to this (asyncio waits 1 s)
ACCEPT_BATCH = (
    64  # connections accepted per readiness event, so one listener cannot starve the loop
)

AT_CAP = "accept paused at the connection cap"


def out_of_descriptors(exc: OSError) -> str:
    """The refusal reason for an ``accept()`` that failed for lack of descriptors."""
    name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
    return f"accept paused: out of file descriptors ({name}; raise ulimit -n or lower the cap)"


class _CountingTracker(ConnectionTracker):
    """The serve's tracker, telling its acceptor when a connection is gone."""

    def __init__(self, acceptor: Acceptor) -> None:
        super().__init__()
        self._acceptor = acceptor

    def discard(self, adapter: TransportAdapter) -> None:
        super().discard(adapter)
        self._acceptor.released()


class Acceptor:
    """Accepts on a serve's listening sockets, at most `cap` connections open at once.

    One per serve (per worker), over all its listeners: the cap is the
    worker's (None: no cap, only the back-off). It closes the sockets it is
    given when it closes.
    """

    def __init__(self, cap: int | None, refused: Callable[[str], None]) -> None:
        self.cap = cap if cap is not None else math.inf
        self.tracker: ConnectionTracker = _CountingTracker(self)
        self._refused = refused
        self._pending = 0  # accepted, transport not yet made
        self._sockets: list[socket.socket] = []
        self._queued: dict[socket.socket, Callable[[int], list[Any]]] = {}
        self._factory: Callable[[], asyncio.BaseProtocol] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._watching = False
        self._retry: asyncio.TimerHandle | None = None
        self._delay = RETRY_FIRST
        self._closed = False

    @property
    def open(self) -> int:
        """Connections accepted and not yet lost."""
        return self._pending + len(self.tracker)

    @property
    def accepting(self) -> bool:
        return self._watching

    def start(
        self, sockets: Sequence[socket.socket], factory: Callable[[], asyncio.BaseProtocol]
    ) -> None:
        """Accept on `sockets` (this acceptor's own: it closes them), making each with `factory`."""
        self._loop = asyncio.get_running_loop()
        self._factory = factory
        self._sockets = list(sockets)
        for sock in self._sockets:
            sock.setblocking(False)
            poller = select.poll()
            poller.register(sock, select.POLLIN)
            self._queued[sock] = poller.poll
        self._watch()

    def close(self) -> None:
        """Stop accepting for good (graceful shutdown); open connections are the tracker's."""
        self._closed = True
        self._unwatch()
        if self._retry is not None:
            self._retry.cancel()
            self._retry = None
        for sock in self._sockets:
            sock.close()

    def released(self) -> None:
        """A connection is gone: below the cap again, or a descriptor is free."""
        if self._watching:
            return
        if self._retry is not None:  # backing off: a descriptor just came free
            self._retry.cancel()
            self._retry = None
        self._watch()

    # -- watching the listening sockets ------------------------------------------------

    def _watch(self) -> None:
        if self._watching or self._closed or self._retry is not None or self.open >= self.cap:
            return
        assert self._loop is not None
        for sock in self._sockets:
            self._loop.add_reader(sock.fileno(), self._accept, sock, self._queued[sock])
        self._watching = True

    def _unwatch(self) -> None:
        if not self._watching:
            return
        assert self._loop is not None
        for sock in self._sockets:
            self._loop.remove_reader(sock.fileno())
        self._watching = False

    def _accept(self, sock: socket.socket, queued: Callable[[int], list[Any]]) -> None:
        """`sock` is readable: accept while below the cap, then pause if someone still waits.

        After the first, each ``accept()`` is tried only if `queued` (``poll(0)``
        on `sock`) says another client waits: an ``accept()`` that fails with
        ``EAGAIN`` raises, and the exception costs about ten times the poll —
        on every new connection, as asyncio's own server pays it.
        """
        tracker = self.tracker
        for n in range(ACCEPT_BATCH):
            if n and not queued(0):
                return
            if self._pending + len(tracker) >= self.cap:
                self._unwatch()  # a client is waiting: it stays in the backlog
                self._refused(AT_CAP)
                return
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except ConnectionAbortedError:
                continue  # the client left while in the backlog
            except OSError as exc:
                self._back_off(exc)
                return
            self._delay = RETRY_FIRST
            self._connect(conn)

    def _back_off(self, exc: OSError) -> None:
        """No descriptor (or other failure): stop watching a while instead of spinning."""
        self._unwatch()
        if exc.errno in OUT_OF_DESCRIPTORS:
            self._refused(out_of_descriptors(exc))
        else:
            error_log.warning("accept() failed: %s; retrying in %g s", exc, self._delay)
        assert self._loop is not None
        self._retry = self._loop.call_later(self._delay, self._retry_now)
        self._delay = min(self._delay * 2, RETRY_MAX)

    def _retry_now(self) -> None:
        self._retry = None
        self._watch()

    def _connect(self, conn: socket.socket) -> None:
        assert self._loop is not None and self._factory is not None
        self._pending += 1
        adopt(self._loop, self._factory, conn, self._made)

    def _made(self) -> None:
        """One accepted connection has its transport (or failed): the cap counts it as open."""
        self._pending -= 1
        if not self._watching:
            self._watch()


def adopt(
    loop: asyncio.AbstractEventLoop,
    factory: Callable[[], asyncio.BaseProtocol],
    conn: socket.socket,
    made: Callable[[], None],
) -> None:
    """Hand the accepted `conn` to `loop` (``connect_accepted_socket``); `made()` once it
    has its transport, or failed (then `conn` is closed).

    The transport is made now; its ``connection_made`` comes in the next turn,
    as for the loop's own server. The coroutine is driven here instead of by a
    task: all it waits for is that ``connection_made``, and a task per
    connection (made, scheduled, stepped twice) costs more than the rest of
    accepting on uvloop, whose own server accepts in C.
    """
    _advance(loop, loop.connect_accepted_socket(factory, conn), conn, made)


def _advance(
    loop: asyncio.AbstractEventLoop,
    making: Coroutine[Any, Any, object],
    conn: socket.socket,
    made: Callable[[], None],
    _: object = None,
) -> None:
    """Run `making` on to its next wait, or its end (`adopt`)."""
    try:
        waiting = making.send(None)
    except StopIteration:
        made()
        return
    except OSError as exc:  # the client left before the transport was made
        error_log.debug("could not set up an accepted connection: %s", exc)
        conn.close()
        made()
        return
    except BaseException:
        made()
        raise
    if waiting is None:  # a bare yield (``sleep(0)``): on at the next turn
        loop.call_soon(_advance, loop, making, conn, made)
        return
    # What a task does with a future its coroutine yields (asyncio.Future.__await__).
    waiting._asyncio_future_blocking = False
    waiting.add_done_callback(functools.partial(_advance, loop, making, conn, made))


def loop_accepts_safely(loop: asyncio.AbstractEventLoop) -> bool:
    """May a serve without a cap use `loop`'s own server? uvloop's, yes, with a
    `BacklogDrain` to catch up after long turns (pounce/net/backlog.py)."""
    return type(loop).__module__.startswith("uvloop")
