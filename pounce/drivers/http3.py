"""HTTP/3: the driver of one QUIC connection.

`HTTP3Connection` is what `HTTP2Driver` is to a TCP connection, with the
same `Exchange` and ASGI adapter per request stream (``http_version``
``"3"``) and the same `StreamTunnel` for an extended CONNECT (RFC 9220). The
endpoint (`pounce.drivers.http3_endpoint`) creates it for a client's first
Initial and hands it that connection's datagrams. It owns the clock (the
core's timer, run with ``loop.call_at``), writes the datagrams the core
produces once per loop turn, and does flow control both ways: request
windows are credited as the app reads (`body_consumed` → `AcknowledgeData`),
and a response ``send`` waits (`drain`) while more than `SEND_HIGH_WATER`
bytes of that stream wait to be sent (the client's window or the congestion
window holds them). Shutdown sends GOAWAY, lets the requests in flight
finish, then closes the connection (CONNECTION_CLOSE, H3_NO_ERROR) once
every response is acknowledged.

aioquic is imported only by `pounce.protocols.h3`; importing this module
without it raises ImportError, which the builder turns into a `BuildError`.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from pounce.asgi.exchange import Exchange
from pounce.conn import ConnectionInfo, TLSInfo, peer_name
from pounce.drivers.http3_events import QuicConnectionEvents
from pounce.drivers.service import ServiceContext
from pounce.drivers.tunnel import StreamTunnel
from pounce.net.deadline import Deadline
from pounce.protocols.events import (
    AcknowledgeData,
    CloseConnection,
    ConnectionLost,
    DataReceived,
    Headers,
    InboundEvent,
    OutboundEvent,
    RejectRequest,
    RequestReceived,
    ResetStream,
    StreamEnded,
    StreamReset,
    UpgradeRequested,
)
from pounce.protocols.h3 import Address, H3Core

if TYPE_CHECKING:
    from pounce.drivers.http3_endpoint import HTTP3Endpoint

error_log = logging.getLogger("pounce.error")

# Response bytes of one stream queued and not yet sent (held back by the
# client's window or the congestion window) before its app's `send` waits: as
# the asyncio transport's write high-water mark.
SEND_HIGH_WATER = 64 * 1024  # bytes


def quic_now() -> float:
    """The time given to aioquic: ``time.monotonic()``, the loop's clock to the nanosecond.

    asyncio's ``loop.time()`` is ``time.monotonic()``; uvloop's is the same
    clock cut to whole milliseconds and read once per loop turn. aioquic's
    pacer refills its bucket by the time that passed, so on a millisecond
    clock it refilled once a millisecond, at most its 16-datagram burst: a
    connection sent at most ~16 datagrams a millisecond (~20 MiB/s), and its
    pacing timer, due in less than a millisecond, fired again and again in
    the same millisecond to find nothing to send (1,800 empty transmits per
    MiB on one connection). RTT samples were whole milliseconds too. The
    timer is still run with ``loop.call_at``: both clocks count from the same
    origin, so it fires at most a millisecond off, and the pacer then sees
    the time that really passed.
    """
    return time.monotonic()


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
        # The exchanges whose apps run, so their tasks (the loop keeps only weak references
        # to a task); each leaves by this set's ``discard`` when its app returns.
        self._running: set[Exchange] = set()
        self._app_exited = self._running.discard
        self._waiters: dict[int, asyncio.Future[None]] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flush_scheduled = False
        self._info: ConnectionInfo | None = None
        self._keep_alive = Deadline(self._loop)  # no request for keep_alive_timeout: close
        self._closed = False
        self.cids: set[bytes] = set()
        # Its connection events, only for a subscriber of them (pounce.drivers.http3_events).
        self._observed: QuicConnectionEvents | None = None
        events = service.events
        if events is not None and events.connections:
            self._observed = QuicConnectionEvents(events, id(self), self._client(), endpoint.server)

    # -- datagrams and the clock -------------------------------------------------------------

    def datagram_received(self, data: bytes, addr: Address) -> None:
        self._addr = addr
        if self._observed is not None:
            self._observed.bytes_in += len(data)
        self._handle(self._core.receive_datagram(data, addr, quic_now()))
        # The loop reads every datagram waiting on the socket before it runs what is
        # scheduled: the acknowledgements of one read answer with one flight.
        self._schedule_transmit()

    def _on_timer(self) -> None:
        self._timer = self._timer_at = None
        self._handle(self._core.handle_timer(quic_now()))
        self._transmit()

    def _transmit(self) -> None:
        self._flush_scheduled = False
        core = self._core
        datagrams = core.datagrams_to_send(quic_now())
        if datagrams:
            self._endpoint.send_batch(datagrams)
        observed = self._observed
        if observed is not None:
            observed.bytes_out += sum(len(data) for data, _ in datagrams)
        if core.cipher_suite is not None and self in self._endpoint.handshaking:
            self._endpoint.handshaking.discard(self)
            if observed is not None:
                observed.handshaken()
            self._maybe_close()  # the keep-alive clock starts with the handshake
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
            self._loop.call_soon(self._flush)

    def _flush(self) -> None:
        try:
            self._transmit()
        except Exception as exc:  # a bug, here or in aioquic: one line, and the connection goes
            error_log.error("HTTP/3 connection from %s failed: %r", peer_name(self._client()), exc)
            self._finish()

    def _finish(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._keep_alive.cancel()
        core = self._core
        if core.excessive_load:
            error_log.warning(
                "HTTP/3 connection from %s closed: too many reset streams (Rapid Reset)",
                peer_name(self._client()),
            )
        elif core.failed and core.close_error is not None:
            code, reason = core.close_error
            error_log.warning(
                "HTTP/3 connection error from %s: 0x%x %s", peer_name(self._client()), code, reason
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
        if self._observed is not None:
            self._observed.closed(self._client())

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
        self._keep_alive.clear()
        exchange = Exchange(self, request, self._connection_info(), self._service)
        if self._service.shutting_down or self._core.going_away:
            exchange.keep_alive_refused = True
        self._exchanges[request.stream_id] = exchange
        self._running.add(exchange)
        exchange.task = self._loop.create_task(exchange.run(self._service.app, self._app_exited))

    def _on_upgrade(self, upgrade: UpgradeRequested) -> None:
        """Extended CONNECT (RFC 9220, as RFC 8441 over HTTP/2): the protocol named by
        ``:protocol`` runs on this stream, through the same `StreamTunnel` as HTTP/2's.

        Nobody registered to run it on a stream: 501 on the stream (RFC 9110
        §15.6.2), and the connection goes on.
        """
        sid = upgrade.stream_id
        self._keep_alive.clear()
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
        received = exchange.received_body = exchange.received_body + len(event.data)
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
        if exchange is not None:
            exchange.disconnect()  # the app hears http.disconnect
        self._wake_senders()
        self._maybe_close()

    def _reject(self, sid: int, status: int) -> None:
        """Answer `status` on the stream if no response has started, else reset it."""
        exchange = self._exchanges.pop(sid, None)
        if exchange is not None and exchange.response_started:
            self._core.send(ResetStream(stream_id=sid))
        else:
            headers = self._service.response_headers([])
            self._core.send(RejectRequest(stream_id=sid, status=status, headers=headers))
        if exchange is not None:
            exchange.disconnect()
        self._schedule_transmit()
        self._maybe_close()

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

    def send_whole(self, status: int, headers: Headers, body: bytes) -> bool:
        return False  # (QUIC frames the head and the body apart: two events)

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
        """No request left: start the keep-alive clock, or, going away and every response
        acknowledged, CONNECTION_CLOSE."""
        core = self._core
        if self._exchanges or self._tunnels or self._closed or core.terminated:
            return
        if not core.going_away:
            if core.cipher_suite is not None:
                self._keep_alive.set(self._options.keep_alive_timeout, self._idle)
            return
        if core.responses_delivered():
            core.close()
            self._schedule_transmit()

    def _idle(self) -> None:
        """No request for the keep-alive timeout (as HTTP/2's): GOAWAY, then close.

        QUIC's own idle timeout counts silence, and a client's PINGs keep it
        from firing; this one counts requests. An exchange ends once its last
        bytes are queued: while responses are still being delivered (a slow
        client, a lossy path) the connection is busy, not idle, and the clock
        starts again.
        """
        if self._exchanges or self._tunnels or self._closed:
            return
        if not self._core.responses_delivered():
            self._keep_alive.set(self._options.keep_alive_timeout, self._idle)
            return
        self._core.send(CloseConnection())
        self._maybe_close()
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
