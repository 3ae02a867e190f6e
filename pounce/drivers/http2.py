"""The HTTP/2 protocol factory and what the shared driver does differently for it.

`HTTP2Protocol` claims a connection by ALPN ``h2`` or, on cleartext, by the
client preface (prior knowledge, RFC 9113 §3.3) or by ``Upgrade: h2c`` from
HTTP/1.1 (RFC 7540 §3.2): the upgrading request is answered on stream 1. `HTTP2Driver` is the
shared `HTTPDriver` with the overrides many streams on one connection need:

* reading never pauses on unread body: the core credits windows only as the
  app consumes (`body_consumed` → `AcknowledgeData`), which bounds buffering
  per stream and per connection, and reading must go on for PING, RST_STREAM
  and WINDOW_UPDATE;
* ``drain(stream_id)`` waits for the transport *and* for that stream's
  response bytes to fit the peer's window, so one stalled stream never holds
  up another;
* a 413 or a failed app ends one stream, not the connection; shutdown and
  the keep-alive timeout send GOAWAY; a connection error sends GOAWAY, and a
  peer that floods us while not reading is aborted.

h2 is imported only by `pounce.protocols.h2`; importing this module without it
installed raises ImportError, which the builder turns into a `BuildError`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
from dataclasses import dataclass, field

from pounce.conn import Conn, ConnectionHandler, ConnectionInfo, peer_name
from pounce.drivers.bridge import ProtocolFactory
from pounce.drivers.http import HTTPDriver
from pounce.drivers.service import ServiceContext
from pounce.drivers.tunnel import StreamTunnel
from pounce.errors import RemoteProtocolError
from pounce.protocols.events import (
    AcknowledgeData,
    CloseConnection,
    DataReceived,
    InboundEvent,
    OutboundEvent,
    StreamEnded,
    UpgradeRequested,
)
from pounce.protocols.h2 import (
    ENHANCE_YOUR_CALM,
    PREFACE,
    H2Core,
    H2Settings,
    valid_upgrade_settings,
)

error_log = logging.getLogger("pounce.error")

# Seconds a draining connection may go on serving new streams while it waits
# for a moment with none in flight to send its GOAWAY (see `begin_shutdown`).
GOAWAY_GRACE = 1.0


@dataclass(frozen=True, slots=True)
class HTTP2Protocol(ProtocolFactory):
    """HTTP/2 by ALPN ``h2``, prior knowledge (the preface on the first bytes) or h2c upgrade."""

    settings: H2Settings = field(default_factory=H2Settings)
    name = "h2"
    alpn_ids = ("h2",)
    upgrade_tokens = (b"h2c",)
    needs_app = True
    sniff_first_bytes = PREFACE[:1]

    def sniff(self, data: bytes) -> bool | None:
        if len(data) < len(PREFACE):
            return None if PREFACE.startswith(data) else False
        return data.startswith(PREFACE)

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        return HTTP2Driver(H2Core(self.settings), service)

    def accepts_upgrade(self, upgrade: UpgradeRequested, info: ConnectionInfo) -> bool:
        """RFC 7540 §3.2: h2c only on cleartext, and with exactly one valid HTTP2-Settings."""
        if info.tls is not None:
            return False
        values = _settings_headers(upgrade)
        return len(values) == 1 and valid_upgrade_settings(values[0])

    def upgrade(self, service: ServiceContext, upgrade: UpgradeRequested) -> ConnectionHandler:
        core = H2Core(self.settings, upgrade_settings=_settings_headers(upgrade)[0])
        return HTTP2Driver(core, service, upgrade=upgrade)

    def with_tunnels(self, tokens: tuple[bytes, ...]) -> HTTP2Protocol:
        """Offer extended CONNECT (RFC 8441) for `tokens` (WebSocket, when it is served)."""
        if tokens == self.settings.connect_protocols:
            return self
        return dataclasses.replace(
            self, settings=dataclasses.replace(self.settings, connect_protocols=tokens)
        )

    def describe(self) -> str:
        s = self.settings
        tunnels = ""
        if s.connect_protocols:
            names = ", ".join(t.decode("ascii", "replace") for t in s.connect_protocols)
            tunnels = f", extended CONNECT for {names}"
        return (
            f"h2 (max streams {s.max_concurrent_streams}, window {s.initial_window_size} B "
            f"/ connection {s.connection_window_size} B, max frame {s.max_frame_size} B, "
            f"max header list {s.max_header_list_size} B, max resets {s.max_resets}{tunnels})"
        )


class HTTP2Driver(HTTPDriver):
    """`HTTPDriver` over an `H2Core`: many streams, windows, GOAWAY."""

    times_request_bodies = False  # per-stream windows bound them; the timer is the connection's
    sends_files = False  # every byte of a body goes in a DATA frame

    def __init__(
        self, core: H2Core, service: ServiceContext, *, upgrade: UpgradeRequested | None = None
    ) -> None:
        """`upgrade`: the HTTP/1.1 request this connection switched from (h2c)."""
        super().__init__(core, service)
        self._h2 = core
        self._upgrade = upgrade
        self._window_waiters: dict[int, asyncio.Future[None]] = {}
        self._drain_watch: asyncio.Task[None] | None = None
        self._tunnels: dict[int, StreamTunnel] = {}  # RFC 8441 streams, by stream id
        self._going_away = False  # shutting down: GOAWAY when no stream is in flight
        self._goaway_timer: asyncio.TimerHandle | None = None

    def connection_made(self, conn: Conn) -> None:
        super().connection_made(conn)
        upgrade, self._upgrade = self._upgrade, None
        if upgrade is not None:  # h2c: 101, then stream 1 answers the request
            request = self._h2.upgraded(upgrade.request)
            self._handle([request, StreamEnded(stream_id=1)])
        self._flush()  # our SETTINGS: the server preface (RFC 9113 §3.4)
        if upgrade is not None and upgrade.trailing_data:
            self.data_received(upgrade.trailing_data)  # the client preface, already read

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        self._flush()
        self._wake_windows()
        self._close_if_done()
        if self._h2.control_backlog and self._drain_watch is None and self._conn is not None:
            self._drain_watch = asyncio.get_running_loop().create_task(self._watch_drain())

    def connection_lost(self, exc: Exception | None) -> None:
        super().connection_lost(exc)
        self._h2.release()
        self._drop_tunnels()
        self._wake_windows()
        watch, self._drain_watch = self._drain_watch, None  # (its end holds this driver)
        if watch is not None:
            watch.cancel()
        if self._goaway_timer is not None:
            self._goaway_timer.cancel()
            self._goaway_timer = None

    def _handle(self, events: list[InboundEvent]) -> None:
        had_streams = bool(self._exchanges)
        super()._handle(events)
        self._wake_windows()  # a reset stream's sender must not wait on
        if had_streams and not self._exchanges:
            self._maybe_idle()  # the last stream was reset

    # -- RFC 8441 tunnels ------------------------------------------------------------

    def _on_upgrade(self, upgrade: UpgradeRequested) -> bool:
        """Extended CONNECT: run the protocol named by ``:protocol`` on this stream.

        Nobody registered to run it on a stream: 501 on the stream (RFC 9110
        §15.6.2), and the connection goes on.
        """
        self._head_arrived()
        switch = self.protocol_switch
        handler = switch.tunnel(upgrade) if switch is not None else None
        if handler is None or self._conn is None:
            self._end_stream_with(upgrade.stream_id, 501)
            return False
        tunnel = StreamTunnel(self, upgrade.stream_id, self._conn.info, handler)
        self._tunnels[upgrade.stream_id] = tunnel
        handler.connection_made(tunnel)
        return False

    def _other_stream_data(self, event: DataReceived) -> None:
        tunnel = self._tunnels.get(event.stream_id)
        if tunnel is not None:
            tunnel.feed(event.data)

    def _other_stream_ended(self, stream_id: int) -> None:
        tunnel = self._tunnels.get(stream_id)
        if tunnel is not None:
            tunnel.peer_ended()

    def _on_reset(self, stream_id: int) -> None:
        tunnel = self._tunnels.get(stream_id)
        if tunnel is not None:
            tunnel.lost()
        else:
            super()._on_reset(stream_id)

    def tunnel_closed(self, stream_id: int) -> None:
        self._tunnels.pop(stream_id, None)
        self._maybe_idle()

    def _drop_tunnels(self) -> None:
        for tunnel in list(self._tunnels.values()):
            tunnel.lost()
        self._tunnels.clear()

    def _arm_head_timer(self) -> None:
        """Not between streams: a frame that opens none (WINDOW_UPDATE, PING, a SETTINGS
        ACK) on a connection waiting out its keep-alive time is no part of a request
        head, and must not swap that clock for the longer head timeout (whose end was
        then logged as a missing request head)."""
        if self.idle_since is not None and self._h2.opened_a_stream:
            return
        super()._arm_head_timer()

    def _head_timed_out(self) -> None:
        if not self._tunnels:  # an open tunnel keeps its own time (WebSocket pings)
            super()._head_timed_out()

    async def _watch_drain(self) -> None:
        """Tell the core when what we wrote has left, so owed acks stop counting."""
        try:
            if self._conn is not None:
                await self._conn.drain()
            self._h2.output_drained()
        finally:
            self._drain_watch = None

    # -- answers --------------------------------------------------------------------

    def _bad_request(self, exc: RemoteProtocolError) -> None:
        client = self._conn.info.client if self._conn is not None else None
        error_log.warning("HTTP/2 connection error from %s: %s", peer_name(client), exc)
        for exchange in self._exchanges.values():
            exchange.disconnect()
        self._exchanges.clear()
        self._drop_tunnels()
        self._flush()
        if self._conn is not None:
            if exc.error_code == ENHANCE_YOUR_CALM and self._h2.control_backlog:
                self._conn.abort()  # it does not read: the GOAWAY would never leave
            else:
                self._conn.close()

    def _reject(self, stream_id: int, status: int) -> None:
        """Answer `status` (or reset) on this stream only; the connection goes on."""
        self._end_stream_with(stream_id, status)

    # -- StreamOwner ------------------------------------------------------------------

    async def drain(self, stream_id: int = 0) -> None:
        await super().drain(stream_id)
        while self._h2.buffered(stream_id) and not self._closed:
            waiter = self._window_waiters.get(stream_id)
            if waiter is None:
                waiter = asyncio.get_running_loop().create_future()
                self._window_waiters[stream_id] = waiter
            await waiter

    def body_consumed(self, stream_id: int, size: int) -> None:
        self._unread -= size
        self.send_event(AcknowledgeData(stream_id=stream_id, size=size))

    def stream_done(self, stream_id: int) -> None:
        exchange = self._exchanges.pop(stream_id, None)
        if exchange is not None:
            self._unread -= exchange.unread_body
        self._flush()
        self._maybe_idle()

    def _maybe_idle(self) -> None:
        """No stream left: close if we are going away, else start the keep-alive clock."""
        if self._exchanges or self._tunnels or self._closed:
            return
        if self._going_away and not self._h2.going_away and self._h2.opened_a_stream:
            self._go_away()  # the quiet moment a draining connection waited for
        elif self._h2.must_close:
            self._close()
        elif self._h2.idle:
            self._go_idle()

    def _close_if_done(self) -> None:
        if not self._exchanges and not self._tunnels and not self._closed and self._h2.must_close:
            self._close()

    # -- flow control, closing ----------------------------------------------------------

    def _update_reading(self) -> None:
        """Never pause: the windows bound what a peer can send us."""

    def _wake_windows(self) -> None:
        core = self._h2
        for stream_id, waiter in list(self._window_waiters.items()):
            if self._closed or not core.buffered(stream_id) or not core.is_active(stream_id):
                del self._window_waiters[stream_id]
                if not waiter.done():
                    waiter.set_result(None)

    def begin_shutdown(self) -> None:
        """Graceful shutdown: GOAWAY at the first moment no stream is in flight.

        RFC 9113 §6.8 lets a GOAWAY go out with streams in flight (they
        finish; newer ones are the client's to retry), but the Python ``h2``
        library — under httpx and every Python HTTP/2 client — closes its side
        on receiving a GOAWAY and fails the streams still owed an answer
        (python-hyper/h2 #1181). So a draining connection keeps serving until
        it has no stream open, then sends its GOAWAY last: a client stream that
        crosses it is above the last stream id and retried. A connection never
        quiet for `GOAWAY_GRACE` gets its GOAWAY anyway, the RFC's way.
        A connection that has not opened its first stream gets the same grace
        to do so (it was accepted just before the listener closed).
        """
        for tunnel in list(self._tunnels.values()):
            tunnel.handler.begin_shutdown()  # WebSocket: close 1001, ahead of the GOAWAY
        if self._going_away or self._closed:
            return
        self._going_away = True
        if self._h2.opened_a_stream and not self._exchanges and not self._tunnels:
            self._go_away()
        else:
            self._goaway_timer = self._loop.call_later(GOAWAY_GRACE, self._go_away)

    def _go_away(self) -> None:
        """GOAWAY naming the last stream we took; those finish, newer ones are ignored."""
        if self._goaway_timer is not None:
            self._goaway_timer.cancel()
            self._goaway_timer = None
        self.send_event(CloseConnection())
        for exchange in self._exchanges.values():
            exchange.keep_alive_refused = True
        self._maybe_idle()

    def _close(self) -> None:
        self._core.send(CloseConnection())
        super()._close()

    def _flush(self) -> None:
        data = self._core.data_to_send()
        if data and self._conn is not None and not self._closed:
            self._conn.write(data)

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None:
        """As `HTTPDriver.send_event`, but every frame waits for the end of the loop turn.

        Many streams of one connection answer in the same turn; their frames
        then leave in one write instead of a system call per response.
        """
        if self._closed:
            return
        self._core.send(event)
        if flush and not self._flush_scheduled:
            self._flush_scheduled = True
            self._loop.call_soon(self._write_coalesced)


def _settings_headers(upgrade: UpgradeRequested) -> list[bytes]:
    return [value for name, value in upgrade.request.headers if name == b"http2-settings"]
