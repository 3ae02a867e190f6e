"""`Listeners`: the supervisor's listening sockets, opened once, shared by every worker.

Default: every bind (TCP, Unix, inherited fd) is opened once and every worker
serves that same socket (a process worker inherits it by fork, a thread
worker is handed it); the kernel's one accept queue feeds whichever worker
accepts first. A worker that stops accepting leaves the queue to the others,
which is what makes a rolling restart lose no connection.

`reuse_port`: each worker gets a TCP socket of its own with SO_REUSEPORT and
the kernel spreads new connections across them by hash. The supervisor then
keeps one bound, *not listening*, socket per TCP bind: it holds the port
(for port 0, it picks it) and is handed no connections. Caveat, documented in
docs/workers.md: a worker that closes its socket resets the connections still
queued on it unless Linux's ``net.ipv4.tcp_migrate_req`` is 1.
Unix and fd binds cannot be split this way and stay shared.

HTTP/3 (`.h3()`): one UDP socket, opened here once, served by one worker
only (the first slot's; its replacement takes it over). The kernel hands a
UDP datagram to whichever socket reader comes first, and SO_REUSEPORT
spreads datagrams by the 4-tuple hash, while a QUIC connection is named by
its connection id and may change address: either way a connection's packets
would reach workers that do not know it, unless an eBPF program routes them
by connection id. One owner needs no such routing and is correct; the price
is that HTTP/3 uses one worker's CPU.

Invariant: the supervisor closes what it opened, once every worker is done;
`serve()` serves a duplicate and leaves the given socket open.
"""

from __future__ import annotations

import contextlib
import logging
import socket
from collections.abc import Sequence
from pathlib import Path

from pounce.net.binds import Bind, TCPBind, cleanup, display_address, open_socket
from pounce.net.udp import open_udp

error_log = logging.getLogger("pounce.error")

MIGRATE_REQ = Path("/proc/sys/net/ipv4/tcp_migrate_req")


class Listeners:
    def __init__(
        self,
        binds: Sequence[Bind],
        backlog: int,
        *,
        reuse_port: bool,
        udp: tuple[str, int | None] | None = None,
    ) -> None:
        """`udp`: HTTP/3's host and port; port None: the first listener's port."""
        self.binds = tuple(binds)
        self.backlog = backlog
        self.reuse_port = reuse_port
        self.sockets: list[socket.socket] = []
        self.udp: socket.socket | None = None
        try:
            for bind in self.binds:
                split = reuse_port and isinstance(bind, TCPBind)
                self.sockets.append(open_socket(bind, backlog, reuse_port=split, listen=not split))
            if udp is not None:
                host, port = udp
                if port is None:
                    port = int(self.sockets[0].getsockname()[1])
                self.udp = open_udp(host, port)
        except BaseException:
            self.close()
            raise
        if reuse_port:
            _warn_without_migration()

    def addresses(self) -> list[str]:
        """How the start-up line names each listener."""
        return [display_address(sock) for sock in self.sockets]

    def for_worker(self) -> tuple[list[socket.socket], list[socket.socket]]:
        """(the sockets a new worker serves, those of them made for it alone)."""
        if not self.reuse_port:
            return list(self.sockets), []
        served: list[socket.socket] = []
        own: list[socket.socket] = []
        try:
            for bind, sock in zip(self.binds, self.sockets, strict=True):
                if isinstance(bind, TCPBind):
                    host, port = sock.getsockname()[:2]
                    sock = open_socket(TCPBind(host, port), self.backlog, reuse_port=True)
                    own.append(sock)
                served.append(sock)
        except BaseException:
            close_all(own)
            raise
        return served, own

    def close(self) -> None:
        close_all(self.sockets)
        if self.udp is not None:
            close_all([self.udp])
        for bind in self.binds:
            cleanup(bind)


def close_all(sockets: Sequence[socket.socket]) -> None:
    for sock in sockets:
        with contextlib.suppress(OSError):
            sock.close()


def _warn_without_migration() -> None:
    with contextlib.suppress(OSError, ValueError):
        if int(MIGRATE_REQ.read_text().strip()) == 1:
            return
    error_log.warning(
        "reuse_port: a worker that stops resets the connections queued on its own socket; "
        "set net.ipv4.tcp_migrate_req=1 (Linux 5.14+) to hand them to the other workers"
    )
