"""HTTP/3: the UDP endpoint that routes datagrams to QUIC connections, and its certificate.

`HTTP3Endpoint` is the `DatagramHandler` of one UDP socket per serve. It
reads the destination connection id of each datagram (the routing facts
only, `pounce.protocols.h3.read_header`) and hands the datagram to the
connection (`pounce.drivers.http3.HTTP3Connection`) that issued that id; an
Initial with an unknown id opens a new connection (or, while many
handshakes are pending, gets a stateless Retry), an unsupported version
gets Version Negotiation (RFC 9000 §6), anything else is dropped — as a
QUIC server must, silently. `HTTP3Listener` is what `Server.serve()` opens:
the socket, the endpoint and the live certificate (`QuicCertificate`,
reloaded with the TLS listener's on SIGHUP).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import threading
from collections.abc import Mapping, Sequence

from pounce.conn import peer_name
from pounce.drivers.bridge import ProtocolFactory
from pounce.drivers.http3 import HTTP3Connection
from pounce.drivers.http3_options import HTTP3Service
from pounce.drivers.service import ServiceContext
from pounce.errors import TLSError
from pounce.net.udp import DatagramEndpoint
from pounce.protocols.h3 import (
    MIN_INITIAL_SIZE,
    Address,
    CertificateError,
    Credentials,
    H3Core,
    PacketHeader,
    RetryTokens,
    load_credentials,
    read_header,
    version_negotiation,
)

error_log = logging.getLogger("pounce.error")

# Connections in their handshake (state kept for an address nobody has proved)
# above which a new client must first echo a Retry token (RFC 9000 §8.1.2): a
# flood of spoofed Initials then costs one small stateless packet each.
RETRY_ABOVE_HANDSHAKES = 100  # connections


# -- the certificate, shared with the TLS listener --------------------------------------------


class QuicCertificate:
    """The live certificate of one serve's HTTP/3 endpoint; `reload` swaps it (SIGHUP).

    The same files as ``.tls()``; connections that start later use the new
    certificate, established ones keep theirs (as `ServerTLS`).
    """

    __slots__ = ("_files", "_lock", "current")

    def __init__(self, cert: str, key: str | None, password: str | None) -> None:
        self._files = (cert, key, password)
        self._lock = threading.Lock()
        self.current = self._load()

    def _load(self) -> Credentials:
        try:
            return load_credentials(*self._files)
        except CertificateError as exc:
            raise TLSError(f"HTTP/3: {exc}") from exc

    def reload(self) -> None:
        """Re-read certificate and key; on failure keep serving the old ones (`TLSError`)."""
        with self._lock:
            self.current = self._load()


# -- the endpoint ------------------------------------------------------------------------------


class HTTP3Endpoint:
    """Routes the datagrams of one UDP socket to their QUIC connections (one per serve)."""

    def __init__(
        self,
        service: HTTP3Service,
        context: ServiceContext,
        certificate: QuicCertificate,
        tunnels: Mapping[bytes, ProtocolFactory] | None = None,
    ) -> None:
        """`tunnels`: the protocols that run on one stream by extended CONNECT (RFC 9220
        WebSocket), by ``:protocol`` token."""
        self._settings = service.options.settings()
        self.tunnels: Mapping[bytes, ProtocolFactory] = tunnels or {}
        self._context = context
        self._certificate = certificate
        self._routes: dict[bytes, HTTP3Connection] = {}
        self._connections: set[HTTP3Connection] = set()
        self.handshaking: set[HTTP3Connection] = set()
        self._retry = RetryTokens()
        self._loop = asyncio.get_running_loop()
        self._closed = asyncio.Event()
        self._closed.set()
        self._shutting_down = False
        self._socket: DatagramEndpoint | None = None
        self.server: tuple[str, int | None] | None = None

    def attach(self, socket: DatagramEndpoint, server: tuple[str, int | None]) -> None:
        self._socket = socket
        self.server = server

    def send(self, data: bytes, addr: Address) -> None:
        if self._socket is not None:
            self._socket.send(data, addr)

    def send_batch(self, datagrams: Sequence[tuple[bytes, Address]]) -> None:
        """A connection's flight, in order (segmented by the kernel where it can)."""
        if self._socket is not None:
            self._socket.send_batch(datagrams)

    def datagram_received(self, data: bytes, addr: Address) -> None:
        header = read_header(data, self._settings.connection_id_length)
        if header is None:
            return
        connection = self._routes.get(header.destination_cid)
        if connection is None:
            # RFC 9000 §14.1: an Initial, and every packet answered before a
            # connection exists, comes in a datagram of 1200 bytes or more.
            if len(data) < MIN_INITIAL_SIZE or self._shutting_down:
                return
            if not header.version_supported:
                if not header.is_version_negotiation:  # never answer one (a reflection loop)
                    self.send(version_negotiation(header), addr)
                return
            if not header.is_initial:
                return
            connection = self._accept(header, addr)
            if connection is None:
                return
        try:
            connection.datagram_received(data, addr)
        except Exception as exc:  # a bug, here or in aioquic: one line, and that connection goes
            error_log.error("HTTP/3 connection from %s failed: %r", peer_name(addr[:2]), exc)
            with contextlib.suppress(Exception):
                connection.abort()
            self.forget(connection)

    def _accept(self, header: PacketHeader, addr: Address) -> HTTP3Connection | None:
        """A new connection for a client's first Initial, or a Retry when many handshakes
        are pending and the client has not yet proved its address."""
        now = self._loop.time()
        original = self._retry.original_cid(header, addr, now) if header.token else None
        if original is None and len(self.handshaking) >= RETRY_ABOVE_HANDSHAKES:
            self.send(self._retry.retry(header, addr, now), addr)
            return None
        if original is None:
            core = H3Core(self._certificate.current, self._settings, header.destination_cid)
        else:  # the client echoed our Retry token: its address is proved
            core = H3Core(
                self._certificate.current, self._settings, original, header.destination_cid
            )
        connection = HTTP3Connection(self, core, self._context, addr)
        self._connections.add(connection)
        self.handshaking.add(connection)
        self._closed.clear()
        self.route(connection, (header.destination_cid, core.host_cid), ())
        return connection

    def route(
        self, connection: HTTP3Connection, issued: tuple[bytes, ...], retired: tuple[bytes, ...]
    ) -> None:
        for cid in issued:
            self._routes[cid] = connection
            connection.cids.add(cid)
        for cid in retired:
            if self._routes.get(cid) is connection:
                del self._routes[cid]
            connection.cids.discard(cid)

    def forget(self, connection: HTTP3Connection) -> None:
        for cid in connection.cids:
            if self._routes.get(cid) is connection:
                del self._routes[cid]
        connection.cids.clear()
        self._connections.discard(connection)
        self.handshaking.discard(connection)
        if not self._connections:
            self._closed.set()

    def __len__(self) -> int:
        return len(self._connections)

    def begin_shutdown(self) -> None:
        """No new connections; GOAWAY on each, which closes once its requests are done."""
        self._shutting_down = True
        for connection in list(self._connections):
            connection.begin_shutdown()

    async def wait_closed(self, timeout: float) -> bool:
        try:
            await asyncio.wait_for(self._closed.wait(), timeout)
        except TimeoutError:
            return False
        return True

    def abort_all(self) -> None:
        for connection in list(self._connections):
            connection.abort()


# -- one serve's HTTP/3 --------------------------------------------------------------------------


class HTTP3Listener:
    """One serve's UDP socket, endpoint and certificate, opened by `Server.serve()`."""

    def __init__(
        self,
        service: HTTP3Service,
        context: ServiceContext,
        sock: socket.socket,
        tunnels: Mapping[bytes, ProtocolFactory] | None = None,
    ) -> None:
        self.sock = sock
        self.certificate = QuicCertificate(service.cert, service.key, service.password)
        self.endpoint = HTTP3Endpoint(service, context, self.certificate, tunnels)
        self._context = context
        self._transport: asyncio.BaseTransport | None = None

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        endpoint = self.endpoint
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: DatagramEndpoint(endpoint, self.sock), sock=self.sock
        )
        self._transport = transport
        name = self.sock.getsockname()
        endpoint.attach(protocol, (str(name[0]), int(name[1])))

    def begin_shutdown(self) -> None:
        self._context.begin_shutdown()
        self.endpoint.begin_shutdown()

    def close(self) -> None:
        """After the graceful shutdown: what is left is closed now, then the socket."""
        self.endpoint.abort_all()
        if self._transport is not None:
            self._transport.close()  # and the socket with it
        else:
            self.sock.close()  # never started
