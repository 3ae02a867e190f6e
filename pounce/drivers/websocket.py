"""The WebSocket protocol factory and its connection driver.

`WebSocketProtocol` registers the ``websocket`` Upgrade token: the HTTP/1.1
driver hands it a connection whose request asked for it (`UpgradeRequested`,
with the bytes already read behind the head), and the HTTP/2 driver one
stream whose extended CONNECT named it (RFC 8441; the handler then writes to
a `StreamConn`, which carries the response head as HEADERS). `WebSocketHandler` then owns
the connection: it checks the handshake (400/426 without asking the app),
runs the app through a `WebSocketSession`, feeds the `WebSocketCore` and
writes what it produces, and owns everything that needs a clock or a socket:

* pings every `ping_interval` seconds; no pong within `ping_timeout` → close
  1011 (Hypercorn has no pong timeout);
* read backpressure: reading pauses while `max_queue` messages wait for the
  app (or bytes wait for an accept), and resumes as the app receives —
  nothing is dropped; it also pauses while the answers we owe the peer
  (pongs, a close frame) wait to drain, so a client that sends pings and
  reads nothing stops being read instead of filling our memory with pongs
  (on a socket the transport pauses too; on an HTTP/2 stream only this
  bounds it, since the pongs then wait for the stream's window);
* closing: the server closes the TCP connection after the close handshake
  (RFC 6455 §7.1.1), or `CLOSE_TIMEOUT` seconds after its own close frame;
  shutdown sends 1001 to every open WebSocket.

wsproto is imported only by `pounce.protocols.ws`; importing this module
without it raises ImportError, which the builder turns into a `BuildError`.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field

from pounce.asgi.session import WebSocketSession
from pounce.conn import Conn, ConnectionHandler, StreamConn, peer_name
from pounce.drivers.bridge import ProtocolFactory
from pounce.drivers.service import ServiceContext
from pounce.drivers.websocket_options import WebSocketOptions as WebSocketOptions
from pounce.errors import RemoteProtocolError
from pounce.net.deadline import Deadline
from pounce.net.transport import run_eagerly
from pounce.protocols.events import UpgradeRequested
from pounce.protocols.ws import (
    ABNORMAL_CLOSURE,
    GOING_AWAY,
    INTERNAL_ERROR,
    AcceptWebSocket,
    CloseReceived,
    CloseWebSocket,
    MessageReceived,
    PongReceived,
    SendPing,
    WebSocketCore,
    WebSocketFailed,
    WSInboundEvent,
    WSOutboundEvent,
    WSSettings,
    WSState,
    check_handshake,
    refusal_bytes,
    refusal_headers,
)

error_log = logging.getLogger("pounce.error")

CLOSE_TIMEOUT = 5.0  # seconds to wait for the peer's close frame after ours
PING_PAYLOAD = b"pounce"


@dataclass(frozen=True, slots=True)
class WebSocketProtocol(ProtocolFactory):
    """WebSocket (RFC 6455): by ``Upgrade: websocket`` from HTTP/1.1, or on an HTTP/2
    stream by extended CONNECT (RFC 8441) when HTTP/2 is served too."""

    options: WebSocketOptions = field(default_factory=WebSocketOptions)
    name = "websocket"
    upgrade_tokens = (b"websocket",)
    upgrade_only = True
    tunnels = True
    needs_app = True

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        raise NotImplementedError("WebSocket connections start as HTTP/1.1: register .h1() too")

    def upgrade(self, service: ServiceContext, upgrade: UpgradeRequested) -> ConnectionHandler:
        return WebSocketHandler(upgrade, self.options, service)

    def describe(self) -> str:
        o = self.options
        ping = "off" if o.ping_interval is None else f"{o.ping_interval:g} s"
        timeout = "none" if o.ping_timeout is None else f"{o.ping_timeout:g} s"
        deflate = "on" if o.per_message_deflate else "off"
        return (
            f"websocket (wsproto; max message {o.max_size} B, queue {o.max_queue}, "
            f"ping {ping} / timeout {timeout}, permessage-deflate {deflate})"
        )


class WebSocketHandler:
    """A `ConnectionHandler` for one upgraded connection; see the module docstring."""

    def __init__(
        self, upgrade: UpgradeRequested, options: WebSocketOptions, service: ServiceContext
    ) -> None:
        self._upgrade = upgrade
        self._options = options
        self._service = service
        self._conn: Conn | None = None
        self._stream: StreamConn | None = None  # the same Conn, over HTTP/2
        self._core: WebSocketCore | None = None
        self._session: WebSocketSession | None = None
        self._task: asyncio.Task[None] | None = None
        loop = asyncio.get_running_loop()
        self._loop = loop
        self._ping_timer = Deadline(loop)
        self._pong_timer = Deadline(loop)
        self._close_timer = Deadline(loop)
        self._reading_paused = False
        self._draining: asyncio.Task[None] | None = None  # our answers, waiting to drain
        self._going_away = False
        self._closed = False

    # -- ConnectionHandler -----------------------------------------------------------

    def connection_made(self, conn: Conn) -> None:
        self._conn = conn
        if isinstance(conn, StreamConn):
            self._stream = conn
        request = self._upgrade.request
        try:
            handshake = check_handshake(request)
        except RemoteProtocolError as exc:
            self._refuse(exc)
            return
        settings = WSSettings(
            max_size=self._options.max_size,
            per_message_deflate=self._options.per_message_deflate,
        )
        self._core = WebSocketCore(handshake, settings)
        self._session = WebSocketSession(self, request, handshake, conn.info, self._service)
        self._going_away = self._service.shutting_down
        self._task = self._loop.create_task(self._session.run(self._service.app))
        if self._upgrade.trailing_data:
            self.data_received(self._upgrade.trailing_data)

    def _refuse(self, exc: RemoteProtocolError) -> None:
        client = self._conn.info.client if self._conn is not None else None
        error_log.info("Invalid WebSocket handshake from %s: %s", peer_name(client), exc)
        headers = self._service.response_headers([])
        if self._stream is not None:
            self._stream.send_head(exc.status, [*headers, *refusal_headers(exc)], end_stream=True)
        elif self._conn is not None:
            self._conn.write(refusal_bytes(exc, headers))
        self._close_now()

    def data_received(self, data: bytes) -> None:
        core, session = self._core, self._session
        if core is None or session is None or self._closed:
            return
        queued = 0
        for event in core.receive_data(data):
            if type(event) is MessageReceived:
                queued = session.feed(event.data)
            else:
                self._on_event(event, session)
        if core.has_output:
            self._flush()
            self._hold_reading_until_drained()
        if core.state is WSState.CLOSED:  # core.must_close
            self._close_now()
        elif queued >= self._options.max_queue or self._reading_paused or core.read_paused:
            self._update_reading()

    def _hold_reading_until_drained(self) -> None:
        """Read no more until what we just wrote in answer (pongs) has drained."""
        if self._draining is not None or self._conn is None or self._closed:
            return
        task = run_eagerly(self._conn.drain())
        if task is None:
            return  # nothing waits: the common case costs no task
        self._draining = task
        task.add_done_callback(self._answers_drained)
        self._update_reading()

    def _answers_drained(self, task: asyncio.Task[None]) -> None:
        self._draining = None
        self._update_reading()

    def _on_event(self, event: WSInboundEvent, session: WebSocketSession) -> None:
        if isinstance(event, MessageReceived):
            session.feed(event.data)
        elif isinstance(event, PongReceived):
            self._pong_timer.clear()
        elif isinstance(event, CloseReceived):
            session.disconnect(event.code, event.reason)
        else:  # WebSocketFailed: the core queued a close frame with the code
            assert isinstance(event, WebSocketFailed)
            client = self._conn.info.client if self._conn is not None else None
            error_log.info(
                "Closing WebSocket from %s (%d): %s", peer_name(client), event.code, event.reason
            )
            session.disconnect(event.code, event.reason)

    def eof_received(self) -> None:
        if self._session is not None:
            self._session.disconnect(ABNORMAL_CLOSURE)
        self._close_now()

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self._cancel_timers()
        session, self._session = self._session, None
        if session is not None:
            session.disconnect(ABNORMAL_CLOSURE)

    def begin_shutdown(self) -> None:
        """Close every open WebSocket with 1001; one still in its handshake, once accepted."""
        self._going_away = True
        core = self._core
        if core is None:
            self._close_now()
        elif core.state is WSState.OPEN:
            self._start_close(GOING_AWAY, "server shutting down")

    # -- WebSocketOwner (called by the session) ---------------------------------------

    def send_event(self, event: WSOutboundEvent) -> None:
        core = self._core
        if core is None or self._closed:
            return
        core.send(event)
        self._flush()
        if isinstance(event, AcceptWebSocket):
            self._accepted()
        elif isinstance(event, CloseWebSocket):
            self._close_timer.set(CLOSE_TIMEOUT, self._close_now)
        if core.must_close:
            self._close_now()

    def send_message(self, data: bytes | str) -> None:
        conn, core = self._conn, self._core
        if core is None or conn is None or self._closed:
            return
        conn.write(core.send_message(data))

    def _accepted(self) -> None:
        self._arm_ping()
        self.data_received(b"")  # messages that came before the accept
        if self._going_away:
            self._start_close(GOING_AWAY, "server shutting down")

    async def drain(self) -> None:
        if self._conn is not None:
            await self._conn.drain()

    def message_consumed(self) -> None:
        if self._reading_paused:  # taking a message off the queue never pauses
            self._update_reading()

    def session_done(self) -> None:
        core = self._core
        if core is None or core.state is not WSState.CLOSING:
            self._close_now()  # else: the close timer is running

    # -- pings, flow control, closing -----------------------------------------------------

    def _arm_ping(self) -> None:
        interval = self._options.ping_interval
        if interval:
            self._ping_timer.set(interval, self._ping)

    def _ping(self) -> None:
        core = self._core
        if core is None or self._closed or core.state is not WSState.OPEN:
            return
        core.send(SendPing(payload=PING_PAYLOAD))
        self._flush()
        timeout = self._options.ping_timeout
        if timeout and not self._pong_timer.active:
            self._pong_timer.set(timeout, self._pong_timed_out)
        self._arm_ping()

    def _pong_timed_out(self) -> None:
        client = self._conn.info.client if self._conn is not None else None
        error_log.info("Closing WebSocket from %s: no pong in time", peer_name(client))
        self._start_close(INTERNAL_ERROR, "keepalive ping timeout")

    def _start_close(self, code: int, reason: str) -> None:
        """We close: the app hears `code` at once, the peer gets CLOSE_TIMEOUT to answer."""
        if self._session is not None:
            self._session.disconnect(code, reason)
        self.send_event(CloseWebSocket(code=code, reason=reason))

    def _update_reading(self) -> None:
        conn, core, session = self._conn, self._core, self._session
        if conn is None or core is None or session is None or self._closed:
            return
        pause = (
            core.read_paused
            or session.queued >= self._options.max_queue
            or self._draining is not None
        )
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                conn.pause_reading()
            else:
                conn.resume_reading()

    def _flush(self) -> None:
        if self._core is None or self._conn is None or self._closed:
            return
        if self._stream is not None:
            head = self._core.take_head()
            if head is not None:
                self._stream.send_head(head[0], head[1], end_stream=head[2])
        data = self._core.data_to_send()
        if data:
            self._conn.write(data)

    def _cancel_timers(self) -> None:
        self._ping_timer.cancel()
        self._pong_timer.cancel()
        self._close_timer.cancel()

    def _close_now(self) -> None:
        self._flush()
        self._closed = True
        self._cancel_timers()
        if self._conn is not None and not self._conn.is_closing():
            self._conn.close()
