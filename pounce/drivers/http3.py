"""HTTP/3: the UDP endpoint that routes datagrams to QUIC connections, and their driver.

`HTTP3Endpoint` is the `DatagramHandler` of one UDP socket per serve. It
reads the destination connection id of each datagram (the routing facts
only, `pounce.protocols.h3.read_header`) and hands the datagram to the
connection that issued that id; an Initial with an unknown id opens a new
connection, an unsupported version gets Version Negotiation (RFC 9000 §6),
anything else is dropped — as a QUIC server must, silently.

`HTTP3Connection` is the driver of one connection: what `HTTP2Driver` is to
a TCP connection, with the same `Exchange` and ASGI adapter per request
stream (``http_version`` ``"3"``). It owns the clock (the core's timer, run
with ``loop.call_at``), writes the datagrams the core produces once per
loop turn, and does flow control both ways: request windows are credited as
the app reads (`body_consumed` → `AcknowledgeData`), and a response ``send``
waits (`drain`) while more than `SEND_HIGH_WATER` bytes of that stream wait
to be sent (the client's window or the congestion window holds them).
Shutdown sends GOAWAY, lets the requests in flight finish, then closes the
connection (CONNECTION_CLOSE, H3_NO_ERROR) once every response is acknowledged.

aioquic is imported only by `pounce.protocols.h3`; importing this module
without it raises ImportError, which the builder turns into a `BuildError`.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
from collections.abc import Mapping

from pounce.asgi.exchange import Exchange
from pounce.conn import ConnectionInfo, TLSInfo, peer_name
from pounce.drivers.bridge import ProtocolFactory
from pounce.drivers.http3_options import HTTP3Service
from pounce.drivers.service import ServiceContext
from pounce.drivers.tunnel import StreamTunnel
from pounce.errors import TLSError
from pounce.net.udp import DatagramEndpoint
from pounce.protocols.events import (
    AcknowledgeData,
    CloseConnection,
    ConnectionLost,
    DataReceived,
    InboundEvent,
    OutboundEvent,
    RejectRequest,
    RequestReceived,
    ResetStream,
    StreamEnded,
    StreamReset,
    UpgradeRequested,
)
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

# Response bytes of one stream queued and not yet sent (held back by the
# client's window or the congestion window) before its app's `send` waits: as
# the asyncio transport's write high-water mark.
SEND_HIGH_WATER = 64 * 1024  # bytes
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
        connection.datagram_received(data, addr)

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


# -- one connection ------------------------------------------------------------------------------


class HTTP3Connection:
    """The driver of one QUIC connection: a `StreamOwner` for its exchanges."""

    def __init__(
        self, endpoint: HTTP3Endpoint, core: H3Core, service: ServiceContext, addr: Address
    ) -> None:
        self._endpoint = endpoint
        self._core = core
        self._service = service
        self._options = service.options
        self._addr = addr
        self._loop = asyncio.get_running_loop()
        self._exchanges: dict[int, Exchange] = {}
        self._tunnels: dict[int, StreamTunnel] = {}  # RFC 9220 streams, by stream id
        self._received: dict[int, int] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_scheduled = False
        self._info: ConnectionInfo | None = None
        self._closed = False
        self.cids: set[bytes] = set()

    # -- datagrams and the clock -------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._addr = addr
        self._handle(self._core.receive_datagram(data, addr, self._loop.time()))
        self._transmit()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._handle(self._core.handle_timer(self._loop.time()))
        self._transmit()

    def _transmit(self) -> None:
        self._flush_scheduled = False
        core = self._core
        for data, addr in core.datagrams_to_send(self._loop.time()):
            self._endpoint.send(data, addr)
        if core.cipher_suite is not None and self in self._endpoint.handshaking:
            self._endpoint.handshaking.discard(self)
        if core.issued_ids or core.retired_ids:
            self._endpoint.route(self, tuple(core.issued_ids), tuple(core.retired_ids))
            core.issued_ids.clear()
            core.retired_ids.clear()
        self._wake_senders()
        if core.terminated:
            self._finish()
            return
        if core.going_away:
            self._maybe_close()  # acknowledgements may have come
        at = core.timer()
        if at != self._timer_at:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = None if at is None else self._loop.call_at(at, self._on_timer)
            self._timer_at = at

    def _schedule_transmit(self) -> None:
        """Frames of every stream answered in one loop turn leave together at its end."""
        if not self._flush_scheduled and not self._closed:
            self._flush_scheduled = True
            self._loop.call_soon(self._transmit)

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._core.excessive_load:
            error_log.warning(
                "HTTP/3 connection from %s closed: too many reset streams (Rapid Reset)",
                peer_name(self._client()),
            )
        if self._timer is not None:
            self._timer.cancel()
        for exchange in self._exchanges.values():
            exchange.disconnect()
        self._exchanges.clear()
        for tunnel in list(self._tunnels.values()):
            tunnel.lost()
        self._wake_senders()
        self._endpoint.forget(self)

    # -- inbound events -------------------------------------------------------------------------

    def _handle(self, events: list[InboundEvent]) -> None:
        for event in events:
            if isinstance(event, RequestReceived):
                self._on_request(event)
            elif isinstance(event, DataReceived):
                self._on_data(event)
            elif isinstance(event, StreamEnded):
                exchange = self._exchanges.get(event.stream_id)
                if exchange is not None:
                    exchange.end_body()
                elif (tunnel := self._tunnels.get(event.stream_id)) is not None:
                    tunnel.peer_ended()
            elif isinstance(event, StreamReset):
                self._on_reset(event.stream_id)
            elif isinstance(event, UpgradeRequested):
                self._on_upgrade(event)
            elif isinstance(event, ConnectionLost):
                for exchange in self._exchanges.values():
                    exchange.disconnect()
                for tunnel in list(self._tunnels.values()):
                    tunnel.lost()

    def _on_request(self, request: RequestReceived) -> None:
        limit = self._options.max_request_body
        length = _content_length(request)
        if limit is not None and length is not None and length > limit:
            self._reject(request.stream_id, 413)
            return
        exchange = Exchange(self, request, self._connection_info(), self._service)
        if self._service.shutting_down or self._core.going_away:
            exchange.keep_alive_refused = True
        self._exchanges[request.stream_id] = exchange
        self._received[request.stream_id] = 0
        self._tasks.add(self._loop.create_task(exchange.run(self._service.app, self._app_exited)))

    def _on_upgrade(self, upgrade: UpgradeRequested) -> None:
        """Extended CONNECT (RFC 9220, as RFC 8441 over HTTP/2): the protocol named by
        ``:protocol`` runs on this stream, through the same `StreamTunnel` as HTTP/2's.

        Nobody registered to run it on a stream: 501 on the stream (RFC 9110
        §15.6.2), and the connection goes on.
        """
        sid = upgrade.stream_id
        info = self._connection_info()
        factory = self._endpoint.tunnels.get(upgrade.protocol.strip().lower())
        if factory is None or not factory.accepts_upgrade(upgrade, info):
            self._reject(sid, 501)
            return
        handler = factory.upgrade(self._service, upgrade)
        tunnel = StreamTunnel(self, sid, info, handler)
        self._tunnels[sid] = tunnel
        handler.connection_made(tunnel)

    def tunnel_closed(self, stream_id: int) -> None:
        self._tunnels.pop(stream_id, None)
        self._schedule_transmit()
        self._maybe_close()

    def _on_data(self, event: DataReceived) -> None:
        sid = event.stream_id
        exchange = self._exchanges.get(sid)
        if exchange is None:
            tunnel = self._tunnels.get(sid)
            if tunnel is not None:
                tunnel.feed(event.data)  # credited as the handler takes it
            else:
                self._core.credit(sid, len(event.data))
            return
        received = self._received[sid] + len(event.data)
        self._received[sid] = received
        limit = self._options.max_request_body
        if limit is not None and received > limit:
            self._reject(sid, 413)
            return
        exchange.feed_body(event.data)

    def _on_reset(self, sid: int) -> None:
        tunnel = self._tunnels.get(sid)
        if tunnel is not None:
            tunnel.lost()
        exchange = self._exchanges.pop(sid, None)
        self._received.pop(sid, None)
        if exchange is not None:
            exchange.disconnect()  # the app hears http.disconnect
        self._wake_senders()

    def _reject(self, sid: int, status: int) -> None:
        """Answer `status` on the stream if no response has started, else reset it."""
        exchange = self._exchanges.pop(sid, None)
        self._received.pop(sid, None)
        if exchange is not None and exchange.response_started:
            self._core.send(ResetStream(stream_id=sid))
        else:
            headers = self._service.response_headers([])
            self._core.send(RejectRequest(stream_id=sid, status=status, headers=headers))
        if exchange is not None:
            exchange.disconnect()
        self._schedule_transmit()
        self._maybe_close()

    def _app_exited(self) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._tasks.discard(task)

    def _client(self) -> tuple[str, int] | None:
        addr = self._addr
        return (str(addr[0]), int(addr[1])) if addr else None

    def _connection_info(self) -> ConnectionInfo:
        if self._info is None:
            suite = self._core.cipher_suite
            tls = TLSInfo(
                version="TLSv1.3",  # RFC 9001 §4.2: QUIC is TLS 1.3 only
                cipher=suite[1] if suite else "",
                cipher_suite=suite[0] if suite else None,
                server_cert=self._core.server_cert,
            )
            self._info = ConnectionInfo(
                client=self._client(),
                server=self._endpoint.server,
                scheme="https",
                alpn="h3",
                tls_version=tls.version,
                cipher=tls.cipher,
                tls=tls,
            )
        return self._info

    # -- StreamOwner (called by exchanges) ---------------------------------------------------

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None:
        if self._closed:
            return
        self._core.send(event)
        if flush:
            self._schedule_transmit()

    async def drain(self, stream_id: int = 0) -> None:
        """Wait while more than `SEND_HIGH_WATER` bytes of the stream wait to be sent."""
        while not self._closed and self._core.unsent(stream_id) > SEND_HIGH_WATER:
            waiter = self._waiters.get(stream_id)
            if waiter is None:
                waiter = self._waiters[stream_id] = self._loop.create_future()
            await waiter

    def _wake_senders(self) -> None:
        core = self._core
        for sid, waiter in list(self._waiters.items()):
            if self._closed or core.unsent(sid) <= SEND_HIGH_WATER:
                del self._waiters[sid]
                if not waiter.done():
                    waiter.set_result(None)

    def body_consumed(self, stream_id: int, size: int) -> None:
        self.send_event(AcknowledgeData(stream_id=stream_id, size=size))

    def stream_done(self, stream_id: int) -> None:
        self._exchanges.pop(stream_id, None)
        self._received.pop(stream_id, None)
        self._schedule_transmit()
        self._maybe_close()

    # -- shutdown ------------------------------------------------------------------------------

    def begin_shutdown(self) -> None:
        """GOAWAY: the requests taken finish, newer ones are refused; then close.

        A connection still in its handshake has no request to finish: dropped.
        """
        if self._core.cipher_suite is None:
            self._finish()
            return
        for tunnel in list(self._tunnels.values()):
            tunnel.handler.begin_shutdown()  # WebSocket: close 1001, ahead of the GOAWAY
        self._core.send(CloseConnection())
        for exchange in self._exchanges.values():
            exchange.keep_alive_refused = True
        self._maybe_close()
        self._schedule_transmit()

    def _maybe_close(self) -> None:
        """Going away, no request left, every response acknowledged: CONNECTION_CLOSE."""
        core = self._core
        if self._exchanges or self._tunnels or self._closed or not core.going_away:
            return
        if core.terminated:
            return
        if core.responses_delivered():
            core.close()
            self._schedule_transmit()

    def abort(self) -> None:
        """The graceful timeout ran out: CONNECTION_CLOSE now, and forget the connection."""
        self._core.close()
        self._transmit()
        self._finish()


def _content_length(request: RequestReceived) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value) if value.isdigit() else None
    return None


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
            lambda: DatagramEndpoint(endpoint), sock=self.sock
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
