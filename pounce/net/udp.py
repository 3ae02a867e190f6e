"""UDP: a datagram socket opened once, and the protocol object the event loop feeds.

QUIC (HTTP/3) is the only user today. `open_udp` binds the socket before
anything is served, so a port in use is a `TransportError` at start-up, as
for the TCP listeners. `DatagramEndpoint` is the only object the loop talks
to: it hands each datagram, with its sender's address, to a
`DatagramHandler`, and gives the handler `send` and `send_batch` — nothing
protocol-specific lives here.

`send_batch` sends a QUIC flight (aioquic hands over up to a congestion
window's worth of equal-size datagrams at once) with UDP generic
segmentation offload where the kernel has it (Linux ≥ 4.18, ``UDP_SEGMENT``):
one ``sendmsg`` carries a run of datagrams of one size (the last may be
shorter) to one address, and the kernel cuts it into datagrams, so the
receiver sees exactly what one ``sendto`` each would have sent. A flight of
eight costs one system call and one pass through the stack instead of eight.
Without GSO (another OS, an old kernel, a device that refuses it: the first
``EIO`` turns it off for the socket) every datagram goes through the loop's
transport, as before. Receiving stays one datagram per call: Python has no
``recvmmsg``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import sys
from collections.abc import Callable, Sequence
from typing import Any, Protocol, cast

from pounce.errors import TransportError

error_log = logging.getLogger("pounce.error")

# Bytes of socket receive buffer asked for: a burst of Initials (a page opening
# many connections) must not be dropped by the kernel before we read it. The
# kernel caps it at net.core.rmem_max; quic-go asks for 7 MiB.
RECEIVE_BUFFER = 2 * 1024 * 1024  # bytes

# linux/udp.h: the socket option (and control message) that sets the segment size.
SOL_UDP = getattr(socket, "SOL_UDP", 17)
UDP_SEGMENT = getattr(socket, "UDP_SEGMENT", 103)
# Segments in one GSO send: the kernel's UDP_MAX_SEGMENTS was 64 before Linux 5.x
# raised it to 128; the payload must also fit one IP datagram (65 535 bytes less headers).
MAX_SEGMENTS = 64
MAX_GSO_BYTES = 65_000  # bytes; under IPv6's 65 527 and IPv4's 65 507 of UDP payload
# What a kernel or device that cannot segment answers (the route's device lacks
# checksum offload: EIO; a kernel without UDP_SEGMENT: ENOPROTOOPT / EINVAL).
_NO_GSO = frozenset({errno.EIO, errno.EINVAL, errno.ENOPROTOOPT, errno.EOPNOTSUPP})

Datagram = tuple[bytes, Any]
"""A datagram and its destination address, as aioquic's ``datagrams_to_send`` gives them."""


class DatagramHandler(Protocol):
    """What the endpoint forwards to."""

    def datagram_received(self, data: bytes, addr: Any) -> None: ...


def open_udp(host: str, port: int) -> socket.socket:
    """A bound, non-blocking UDP socket; `TransportError` saying what to do on failure."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_DGRAM)
    with contextlib.suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RECEIVE_BUFFER)
    if family == socket.AF_INET6:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
        raise TransportError(
            f"cannot bind udp {where}: {exc.strerror or exc}",
            hint="is another server using the UDP port? pick another --http3-bind",
        ) from exc
    sock.setblocking(False)
    return sock


def gso_supported(sock: socket.socket) -> bool:
    """True when the kernel can segment UDP sends on `sock` (Linux ≥ 4.18).

    quic-go's probe: the option reads back only where the kernel knows it.
    """
    if sys.platform != "linux" or sock.type != socket.SOCK_DGRAM:
        return False
    try:
        sock.getsockopt(SOL_UDP, UDP_SEGMENT)
    except OSError:
        return False
    return True


def segment_runs(datagrams: Sequence[Datagram]) -> list[tuple[int, int]]:
    """Split a flight into ``[start, stop)`` runs that one GSO send can carry.

    A run goes to one address, its datagrams all of the first one's size
    except the last, which may be shorter (the kernel's rule), at most
    `MAX_SEGMENTS` of them and `MAX_GSO_BYTES` in all.
    """
    runs: list[tuple[int, int]] = []
    start, count = 0, len(datagrams)
    while start < count:
        first, addr = datagrams[start]
        size = len(first)
        limit = min(start + MAX_SEGMENTS, start + max(1, MAX_GSO_BYTES // max(size, 1)), count)
        stop = start + 1
        while stop < limit and datagrams[stop][1] == addr:
            length = len(datagrams[stop][0])
            if length > size:
                break
            stop += 1
            if length < size:
                break  # a shorter one ends the run
        runs.append((start, stop))
        start = stop
    return runs


class DatagramEndpoint(asyncio.DatagramProtocol):
    """The loop's side of one UDP socket.

    `sock`: the socket the loop was given, for GSO sends beside the
    transport (`send_batch`); without it every datagram goes through the
    transport. `gso`: None finds out (`gso_supported`), False never tries.
    """

    def __init__(
        self, handler: DatagramHandler, sock: socket.socket | None = None, gso: bool | None = None
    ) -> None:
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None
        self._queued: Callable[[], int] = lambda: 0
        self._sock = sock
        if sock is None:
            gso = False
        elif gso is None:
            gso = gso_supported(sock)
        self.gso = gso

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's own datagram transports are not all DatagramTransport subclasses)
        self._transport = cast(asyncio.DatagramTransport, transport)
        # Bytes it holds that the socket refused; asyncio's and uvloop's both say
        # (typeshed's DatagramTransport does not list it).
        self._queued = getattr(transport, "get_write_buffer_size", lambda: 0)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._handler.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable …) reach a UDP socket as this; QUIC's
        # own timers find the dead peer, so one debug line is enough.
        error_log.debug("UDP error: %s", exc)

    def send(self, data: bytes, addr: Any) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, addr)

    def send_batch(self, datagrams: Sequence[Datagram]) -> None:
        """Send `datagrams` in order: runs of one size with GSO, the rest one by one."""
        transport = self._transport
        if transport is None or transport.is_closing():
            return
        # The transport holds datagrams the socket refused (EAGAIN): ours go behind them.
        if not self.gso or len(datagrams) < 2 or self._queued():
            for data, addr in datagrams:
                transport.sendto(data, addr)
            return
        for start, stop in segment_runs(datagrams):
            if stop - start > 1 and self.gso and not self._queued():
                self._send_segments(datagrams[start:stop])
            else:  # one alone, or behind what the transport now holds
                for data, addr in datagrams[start:stop]:
                    transport.sendto(data, addr)

    def _send_segments(self, run: Sequence[Datagram]) -> None:
        """One GSO ``sendmsg`` for `run`; what it cannot send goes through the transport."""
        assert self._sock is not None and self._transport is not None
        size, addr = len(run[0][0]), run[0][1]
        ancillary = [(SOL_UDP, UDP_SEGMENT, size.to_bytes(2, sys.byteorder))]
        try:
            self._sock.sendmsg([b"".join(data for data, _ in run)], ancillary, 0, addr)
            return
        except BlockingIOError:
            pass  # the socket buffer is full: the transport queues them and waits
        except OSError as exc:
            if exc.errno in _NO_GSO:
                self.gso = False
                error_log.debug("UDP: no segmentation offload here (%s); one send each", exc)
        for data, to in run:
            self._transport.sendto(data, to)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
