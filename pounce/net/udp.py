"""UDP: a datagram socket opened once, and the protocol object the event loop feeds.

QUIC (HTTP/3) is the only user today. `open_udp` binds the socket before
anything is served, so a port in use is a `TransportError` at start-up, as
for the TCP listeners. `DatagramEndpoint` is the only object the loop talks
to: it hands each datagram, with its sender's address, to a
`DatagramHandler`, and gives the handler `send` — nothing protocol-specific
lives here.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
from typing import Any, Protocol, cast

from pounce.errors import TransportError

error_log = logging.getLogger("pounce.error")

# Bytes of socket receive buffer asked for: a burst of Initials (a page opening
# many connections) must not be dropped by the kernel before we read it. The
# kernel caps it at net.core.rmem_max; quic-go asks for 7 MiB.
RECEIVE_BUFFER = 2 * 1024 * 1024  # bytes


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


class DatagramEndpoint(asyncio.DatagramProtocol):
    """The loop's side of one UDP socket."""

    def __init__(self, handler: DatagramHandler) -> None:
        self._handler = handler
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # (asyncio's own datagram transports are not all DatagramTransport subclasses)
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        self._handler.datagram_received(data, addr)

    def error_received(self, exc: Exception) -> None:
        # ICMP errors (port unreachable …) reach a UDP socket as this; QUIC's
        # own timers find the dead peer, so one debug line is enough.
        error_log.debug("UDP error: %s", exc)

    def send(self, data: bytes, addr: Any) -> None:
        if self._transport is not None and not self._transport.is_closing():
            self._transport.sendto(data, addr)

    def close(self) -> None:
        if self._transport is not None:
            self._transport.close()
