"""The driver: where protocol events meet the event loop.

One `HTTPDriver` per connection. It feeds the sans-I/O core the bytes that
arrive, turns each `RequestReceived` into an `Exchange` whose app runs as a
task, writes what the core produces, and owns everything that needs a clock
or a socket: the request-head and keep-alive timers, read-side flow control
(reading pauses while more than `body_high_water` bytes of body are unread, or
while the core holds a pipelined request behind a running response) and the
answers to bad input.
"""

from __future__ import annotations

import asyncio
import logging
import math
import sys
from collections.abc import Callable
from typing import cast

from pounce.asgi.exchange import Exchange
from pounce.conn import Conn, FileConn, GatherConn, peer_name
from pounce.drivers.bridge import SHUTDOWN_HEAD_GRACE, Upgradable
from pounce.drivers.service import BODY_RATE_GRACE, ServiceContext
from pounce.errors import ClientDisconnectedError, RemoteProtocolError
from pounce.net.deadline import Deadline
from pounce.net.transport import TransportAdapter, run_eagerly
from pounce.protocols.base import ProtocolCore
from pounce.protocols.events import (
    DataReceived,
    Headers,
    InboundEvent,
    OutboundEvent,
    RejectRequest,
    RequestReceived,
    ResetStream,
    SendData,
    SendDataAside,
    StreamEnded,
    StreamReset,
    UpgradeRequested,
)

error_log = logging.getLogger("pounce.error")

# Streamed body bytes gathered before a write (below the asyncio transport's
# 64 KiB high-water mark, so `drain()` still sees the backpressure).
COALESCE_LIMIT = 16 * 1024  # bytes
# A body chunk this large leaves with what is queued before it (the head) in one
# gathered write (`GatherConn.writelines`) instead of being copied to join it.
SEPARATE_WRITE = 16 * 1024  # bytes


# Transports whose writelines() sends the pieces uncopied: uvloop's (writev), and
# asyncio's from Python 3.12 (sendmsg); asyncio's before joins them, a copy as ours.
_ASYNCIO_GATHERS = sys.version_info >= (3, 12)


class HTTPDriver(Upgradable):
    """A `ConnectionHandler` that serves HTTP through a protocol core."""

    sends_files = True
    """Body bytes from a file may go around the core, by sendfile (HTTP/1.1). HTTP/2
    turns this off: every byte it sends is framed."""

    _gather: bool | None = None
    """Whether a large body chunk leaves gathered with its head (`_gathers`), once asked."""

    times_request_bodies = True
    """Answer 408 when a request body goes silent while we read it (HTTP/1.1). HTTP/2
    turns this off: its bodies are flow-controlled per stream on a shared connection."""

    def __init__(self, core: ProtocolCore, service: ServiceContext) -> None:
        self._core = core
        # The core's one-call whole response (`FastH1Core.send_whole`), if it has one.
        self._core_whole: Callable[[int, Headers, bytes], bytes | None] | None = getattr(
            core, "send_whole", None
        )
        self._service = service
        self._options = service.options
        self._conn: Conn | None = None
        self._exchanges: dict[int, Exchange] = {}
        # Strong references to the exchanges whose apps run, so to their tasks (the loop
        # keeps only weak ones to a task): each removes itself when its app returns, by
        # this set's own ``discard`` (no Python frame of ours per request). Added before
        # its task is made, so an eager task factory's app that ends at once is gone too.
        self._running: set[Exchange] = set()
        self._app_exited = self._running.discard
        # Other tasks of this connection (a pipelined request waiting for a drain).
        self._tasks: set[asyncio.Task[None]] = set()
        self._unread = 0
        self._reading_paused = False
        self._loop = asyncio.get_running_loop()
        self._coalesced = 0  # bytes of streamed body waiting for the end of this loop turn
        self._flush_scheduled = False
        # Made when first set: a connection whose one request comes whole and closes
        # (`Connection: close`) never times anything with it.
        self._deadline: Deadline | None = None
        self._waiting_for_head = False
        self._head_clocked = False  # in the serve's clock of connections with no first head
        # Keep-alive (`IdleMember`): the serve's idle clock's tick when the connection last
        # went idle, None while it is busy; joined at its first idle spell.
        self.idle_since: int | None = None
        self._idle_clocked = False
        self._body_stream: int | None = None  # whose body the deadline is timing
        # The body's rate clock: when it started (moved on by the time reading
        # was paused for the app, which is not the client's fault) and its bytes.
        self._body_started = 0.0
        self._body_bytes = 0
        self._paused_at = 0.0
        self._closed = False

    # -- ConnectionHandler ---------------------------------------------------------

    def connection_made(self, conn: Conn) -> None:
        self._conn = conn
        # The first head is timed by the serve's sweep (`ServiceContext.head_clock`):
        # a connection whose request comes whole in its first read, as most do,
        # then never makes a timer handle.
        self._waiting_for_head = True
        self._head_clocked = True
        self._service.head_clock.add(self)
        if self._service.shutting_down:
            self.begin_shutdown()

    def data_received(self, data: bytes) -> None:
        try:
            events = self._core.receive_data(data)
        except RemoteProtocolError as exc:
            self._bad_request(exc)
            return
        self._handle(events)
        if not self._exchanges and not self._waiting_for_head and not self._closed:
            # Only part of a head came: its clock starts with its first byte.
            # (A whole request in one read never pays for arming the timer.)
            self._arm_head_timer()

    def eof_received(self) -> None:
        """A FIN means the client is gone (docs/http1.md, "Closing"): the exchanges
        hear a disconnect and the connection closes."""
        self._handle(self._core.receive_eof())

    def connection_lost(self, exc: Exception | None) -> None:
        self._closed = True
        self.protocol_switch = None  # the bridge holds us: no cycle left for the collector
        if self._deadline is not None:
            self._deadline.cancel()
        if self._head_clocked:
            self._end_head_clock()
        if self._idle_clocked:
            self._leave_idle_clock()
        for exchange in self._exchanges.values():
            exchange.disconnect()

    # -- inbound events ------------------------------------------------------------------

    def _handle(self, events: list[InboundEvent]) -> None:
        for event in events:
            # Ordered by frequency: a request head, its end, body chunks.
            if isinstance(event, RequestReceived):
                self._on_request(event)
            elif isinstance(event, StreamEnded):
                exchange = self._exchanges.get(event.stream_id)
                if exchange is not None:
                    exchange.end_body()
                    if self._body_stream == event.stream_id:
                        self._stop_body_timer()
                else:
                    self._other_stream_ended(event.stream_id)
            elif isinstance(event, DataReceived):
                self._on_data(event)
            elif isinstance(event, StreamReset):
                self._on_reset(event.stream_id)
            elif isinstance(event, UpgradeRequested):
                if self._on_upgrade(event):
                    return
            else:  # ConnectionLost
                for exchange in self._exchanges.values():
                    exchange.disconnect()
        if self._reading_paused or self._core.read_paused or self._unread:
            self._update_reading()  # (else reading goes on and nothing could pause it)

    def _on_request(self, request: RequestReceived) -> None:
        self.idle_since = None  # (busy: the idle clock's mark, not a timer to move)
        if self._deadline is not None:
            self._deadline.clear()  # (a head timer; most connections never make one)
        self._waiting_for_head = False
        if self._head_clocked:  # (inline: the first request of every connection)
            self._head_clocked = False
            self._service.head_clock.discard(self)
        if self._options.max_request_body is not None and self._body_too_large(
            _content_length(request)
        ):
            self._reject(request.stream_id, 413)
            return
        # (A request comes only from a connection: no assert, which costs every request.)
        exchange = Exchange(self, request, self._conn.info, self._service)  # type: ignore[union-attr]
        if self._service.shutting_down:
            exchange.keep_alive_refused = True
        self._exchanges[request.stream_id] = exchange
        self._running.add(exchange)
        exchange.task = self._loop.create_task(exchange.run(self._service.app, self._app_exited))
        if request.has_body and not request.expects_continue and self.times_request_bodies:
            self._arm_body_timer(request.stream_id)  # (with 100-continue: at the first byte)

    def _on_upgrade(self, upgrade: UpgradeRequested) -> bool:
        """HTTP/1.1 Upgrade: True when another protocol took the connection over."""
        switch = self.protocol_switch
        if switch is not None and switch.accepts(upgrade):
            self._hand_over(upgrade)
            return True
        self._on_request(upgrade.request)  # nobody speaks it: plain HTTP
        return False

    def _other_stream_ended(self, stream_id: int) -> None:
        """A stream with no exchange ended (HTTP/2 overrides this for its tunnels)."""

    def _hand_over(self, upgrade: UpgradeRequested) -> None:
        """The connection speaks another protocol from here on: step aside for good.

        HTTP/1.1 has no request in flight here (the next one is parsed only
        after the last response), so there is nothing to finish.
        """
        self._closed = True
        if self._deadline is not None:
            self._deadline.cancel()
        if self._head_clocked:
            self._end_head_clock()
        if self._idle_clocked:
            self._leave_idle_clock()
        if self._reading_paused and self._conn is not None:
            self._reading_paused = False
            self._conn.resume_reading()
        assert self.protocol_switch is not None
        self.protocol_switch.switch(upgrade)

    def _on_data(self, event: DataReceived) -> None:
        exchange = self._exchanges.get(event.stream_id)
        if exchange is None:
            self._other_stream_data(event)
            return
        received = exchange.received_body = exchange.received_body + len(event.data)
        if self._body_too_large(received):
            self._reject(event.stream_id, 413)
            return
        self._unread += len(event.data)
        exchange.feed_body(event.data)
        if self.times_request_bodies:
            self._arm_body_timer(event.stream_id, len(event.data))

    def _other_stream_data(self, event: DataReceived) -> None:
        """Data for a stream with no exchange: a rejected one's, or an HTTP/2 tunnel's."""

    def _on_reset(self, stream_id: int) -> None:
        exchange = self._exchanges.pop(stream_id, None)
        if exchange is not None:
            self._unread -= exchange.unread_body
            exchange.disconnect()

    def _body_too_large(self, size: int | None) -> bool:
        limit = self._options.max_request_body
        return limit is not None and size is not None and size > limit

    # -- answers to bad input ------------------------------------------------------------

    def _bad_request(self, exc: RemoteProtocolError) -> None:
        client = self._conn.info.client if self._conn is not None else None
        error_log.warning("Invalid HTTP request from %s: %s", peer_name(client), exc)
        stream_ids = list(self._exchanges) or [0]
        self._reject(stream_ids[-1], exc.status)

    def _reject(self, stream_id: int, status: int) -> None:
        """Answer `status` if no response has started, else reset; then close."""
        self._end_stream_with(stream_id, status)
        self._close()

    def _end_stream_with(self, stream_id: int, status: int) -> None:
        """Answer `status` on the stream if no response has started, else reset it."""
        exchange = self._exchanges.pop(stream_id, None)
        if exchange is not None and exchange.response_started:
            self.send_event(ResetStream(stream_id=stream_id))
        else:
            headers = self._service.response_headers([])
            self.send_event(RejectRequest(stream_id=stream_id, status=status, headers=headers))
        if exchange is not None:
            exchange.disconnect()

    # -- StreamOwner (called by exchanges) ---------------------------------------------

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None:
        """Hand `event` to the core; `flush=False` lets the next event share the write.

        A streamed body chunk is not written at once: chunks sent in one turn
        of the loop leave in one write at its end (or as soon as
        `COALESCE_LIMIT` bytes wait), instead of one system call each. The
        end of a response is written at once.
        """
        if self._closed:
            return
        if type(event) is SendData:
            if len(event.data) >= SEPARATE_WRITE and flush:
                gather = self._gather
                if gather is None:  # asked once per connection, at its first large chunk
                    gather = self._gather = self._gathers()
                if gather:
                    self._write_gathered(event)
                    return
            self._core.send(event)
            if not flush:
                return
            if not event.end_stream:
                self._coalesced += len(event.data)
                if self._coalesced < COALESCE_LIMIT:
                    if not self._flush_scheduled:
                        self._flush_scheduled = True
                        self._loop.call_soon(self._write_coalesced)
                    return
            elif self._core.must_close:
                self._write_last(self._core.data_to_send())  # (it ends the connection)
                return
        else:
            self._core.send(event)
            if not flush:
                return
        self._write_out()

    def send_whole(self, status: int, headers: Headers, body: bytes) -> bool:
        """The held head and the whole body, the response's end, in one write; False,
        with nothing sent, where the core has no such path or declines it (then the
        exchange sends them as two events)."""
        if self._closed:
            return True  # as `send_event` drops both
        whole = self._core_whole
        if whole is None or len(body) >= SEPARATE_WRITE:  # (a large body is not copied)
            return False
        data = whole(status, headers, body)
        if data is None:
            return False
        if self._core.must_close:
            self._write_last(data)  # (it ends the connection)
        else:
            self._coalesced = 0
            if self._conn is not None:
                self._conn.write(data)
        return True

    def _gathers(self) -> bool:
        """Can a large chunk and the head before it leave uncopied (`GatherConn`)?"""
        if not (_ASYNCIO_GATHERS or type(self._loop).__module__ == "uvloop"):
            return False
        return callable(getattr(self._conn, "writelines", None))

    def _write_gathered(self, event: SendData) -> None:
        """A large body chunk: what is queued before it (the head) and its bytes in one
        gathered write, so the body is not copied to join them (`GatherConn`)."""
        self._coalesced = 0
        conn = cast(GatherConn, self._conn)
        core = self._core
        before = core.data_to_send()
        try:
            core.send(event)
        except BaseException:
            if before:  # written as the close would have written it
                conn.write(before)
            raise
        if before:
            conn.writelines([before, core.data_to_send()])
        else:
            data = core.data_to_send()
            if data:
                conn.write(data)

    def _write_coalesced(self) -> None:
        self._flush_scheduled = False
        self._write_out()

    def _write_last(self, data: bytes) -> None:
        """Write the end of a response that ends the connection: `stream_done` closes it
        next (the exchange calls it right after the response's end), so its bytes may wait
        for the FIN and leave with it (`TransportAdapter.write_last`)."""
        self._coalesced = 0
        conn = self._conn
        if not data or conn is None:
            return
        if isinstance(conn, TransportAdapter):
            conn.write_last(data)
        else:
            conn.write(data)

    def _write_out(self) -> None:
        self._coalesced = 0
        if self._closed:
            return
        data = self._core.data_to_send()
        if data and self._conn is not None:
            self._conn.write(data)

    async def drain(self, stream_id: int = 0) -> None:
        """Wait until `stream_id` may send more (HTTP/1.1: the socket's buffer)."""
        if self._conn is not None:
            await self._conn.drain()

    def body_consumed(self, stream_id: int, size: int) -> None:
        self._unread -= size
        self._update_reading()

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> bool:
        """`count` body bytes of `fd` by the kernel (`FileOwner`): False where it cannot copy
        them (TLS, uvloop, a stream layer's own `Conn`, HTTP/2) and nothing was sent.

        The core counts them against the Content-Length (`SendDataAside`); what it
        queued before (the head) is written first.
        """
        conn = self._conn
        if not self.sends_files or self._closed or not isinstance(conn, FileConn):
            return False
        if not conn.can_send_file():
            return False
        self._core.send(SendDataAside(stream_id=stream_id, size=count))
        self._write_out()
        try:
            await conn.send_file(fd, offset, count)
        except ConnectionError as exc:
            raise ClientDisconnectedError(f"the client went away during a file: {exc}") from exc
        return True

    def stream_done(self, stream_id: int) -> None:
        if self._body_stream == stream_id:
            self._stop_body_timer()  # answered before its body was read
        exchange = self._exchanges.pop(stream_id, None)
        if exchange is not None:
            self._unread -= exchange.unread_body
        if self._core.must_close or self._service.shutting_down:
            self._close()
            return
        if self._closed:
            return
        if self._core.idle:
            # (A connection closing under us is lost soon, and leaves the clock then.)
            if not self._exchanges and self._conn is not None:
                # Idle until the next request head: the serve's idle clock's tick, inline
                # (`_go_idle`: once a response). `_waiting_for_head` is False: `_on_request`
                # cleared it, and nothing sets it while an exchange runs.
                clock = self._service.idle_clock
                self.idle_since = clock.tick
                if not self._idle_clocked:
                    self._idle_clocked = True
                    clock.join(self)
            return
        # A pipelined request may wait in the core's buffer. It is parsed once
        # what we wrote has drained below the high-water mark: a client that
        # pipelines and never reads must not fill our memory with responses.
        if self._conn is not None:
            task = run_eagerly(self._next_pipelined(self._conn))
            if task is not None:  # waiting for the client to read: keep it referenced
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)

    async def _next_pipelined(self, conn: Conn) -> None:
        await conn.drain()
        if self._closed or self._exchanges:
            return
        try:
            events = self._core.receive_data(b"")
        except RemoteProtocolError as exc:
            self._bad_request(exc)
            return
        self._handle(events)
        if self._exchanges or self._closed or conn.is_closing():
            return  # (closed: a pipelined Upgrade handed the connection over)
        if self._core.idle:
            self._go_idle()
        else:
            # Part of a pipelined head is already buffered: it gets the head
            # timeout, or a slow client could hold the connection forever.
            self._arm_head_timer()

    # -- flow control, timers, closing -----------------------------------------------------

    def _update_reading(self) -> None:
        conn = self._conn
        if conn is None or self._closed:
            return
        pause = self._core.read_paused or self._unread > self._options.body_high_water
        if pause != self._reading_paused:
            self._reading_paused = pause
            if pause:
                conn.pause_reading()
            else:
                conn.resume_reading()
            body = self._body_stream
            if body is not None:  # a body is not late while we are not reading it
                if pause:
                    if self._deadline is not None:
                        self._deadline.clear()
                    self._paused_at = self._loop.time()
                else:
                    self._body_started += self._loop.time() - self._paused_at
                    self._arm_body_timer(body)

    def _head_arrived(self) -> None:
        """A request head came whole: its clock stops."""
        self.idle_since = None
        if self._deadline is not None:
            self._deadline.clear()
        self._waiting_for_head = False
        if self._head_clocked:
            self._end_head_clock()

    def _end_head_clock(self) -> None:
        self._head_clocked = False
        self._service.head_clock.discard(self)

    def first_head_timed_out(self) -> None:
        """`HeadWaiter`: the serve's head clock ran out before the first head came whole."""
        self._head_clocked = False
        if not self._closed:
            self._head_timed_out()

    def _arm_head_timer(self) -> None:
        self._waiting_for_head = True
        self.idle_since = None  # a head has begun: its own timeout now
        timeout = self._options.request_head_timeout
        if self._service.shutting_down:  # a head begun while draining gets only the grace
            timeout = min(timeout, SHUTDOWN_HEAD_GRACE)
        self._set_timer(timeout, self._head_timed_out)

    def _go_idle(self) -> None:
        """Nothing in flight and no head begun: the keep-alive timeout runs (`IdleClock`)."""
        self._waiting_for_head = False
        if self._deadline is not None:
            self._deadline.clear()  # (no head or body timer runs while idle)
        clock = self._service.idle_clock
        self.idle_since = clock.tick
        if not self._idle_clocked:
            self._idle_clocked = True
            clock.join(self)

    def idle_timed_out(self) -> None:
        """`IdleMember`: idle for the keep-alive timeout (the clock let us go): close."""
        self._idle_clocked = False
        self.idle_since = None
        if not self._closed:
            self._close()

    def _leave_idle_clock(self) -> None:
        self._idle_clocked = False
        self.idle_since = None
        self._service.idle_clock.leave(self)

    def _timer(self) -> Deadline:
        deadline = self._deadline
        if deadline is None:
            deadline = self._deadline = Deadline(self._loop)
        return deadline

    def _set_timer(self, delay: float, callback: Callable[[], None]) -> None:
        self._timer().set(delay, callback)

    def _cancel_timer(self) -> None:
        if self._deadline is not None:
            self._deadline.clear()

    def _arm_body_timer(self, stream_id: int, received: int = 0) -> None:
        """Time the body of `stream_id`, `received` more bytes of which just came.

        Whichever bound comes first sets the deadline: `request_body_timeout`
        from now, or the moment the body falls below `request_body_min_rate`
        bytes per second on average after its `BODY_RATE_GRACE`.
        """
        options = self._options
        timeout = options.request_body_timeout
        rate = options.request_body_min_rate
        if timeout is None and rate is None:
            return
        if self._body_stream != stream_id:
            self._body_stream = stream_id
            self._body_started = self._loop.time()
            self._body_bytes = 0
        self._body_bytes += received
        if self._reading_paused:
            return
        delay = timeout if timeout is not None else math.inf
        if rate is not None:
            due = self._body_started + BODY_RATE_GRACE + self._body_bytes / rate
            delay = min(delay, due - self._loop.time())
        self._timer().set(delay, self._body_timed_out)

    def _stop_body_timer(self) -> None:
        self._body_stream = None
        if self._deadline is not None:
            self._deadline.clear()

    def _body_timed_out(self) -> None:
        """The client stopped sending a body we were reading, or trickles it: 408, then close."""
        stream_id, self._body_stream = self._body_stream, None
        if stream_id is None or stream_id not in self._exchanges or self._reading_paused:
            return
        client = self._conn.info.client if self._conn is not None else None
        rate = self._options.request_body_min_rate
        elapsed = self._loop.time() - self._body_started
        if rate is not None and self._body_bytes < rate * (elapsed - BODY_RATE_GRACE) + rate:
            error_log.info(
                "Closing %s: request body slower than %d B/s (%d B in %.0f s)",
                peer_name(client),
                rate,
                self._body_bytes,
                elapsed,
            )
        else:
            error_log.info(
                "Closing %s: request body silent for %g s",
                peer_name(client),
                self._options.request_body_timeout,
            )
        self._reject(stream_id, 408)

    def _head_timed_out(self) -> None:
        if self._exchanges:
            return
        client = self._conn.info.client if self._conn is not None else None
        error_log.info("Closing %s: no complete request head in time", peer_name(client))
        self._close()

    def begin_shutdown(self) -> None:
        """Graceful shutdown: close when idle, else after the responses in flight.

        A connection waiting for a request head — accepted just before the
        listener closed, or holding part of a head — is owed that request
        (a rolling restart drains workers under load): it gets
        `SHUTDOWN_HEAD_GRACE` more seconds, and the request, if it comes, is
        answered with ``connection: close``. An idle keep-alive connection
        may have a request on the wire, one its client sent before it could
        know: closing at once would lose it (RFC 9112 §9.3.1 lets a client
        retry only idempotent requests). It stays open for
        ``shutdown_idle_timeout`` seconds, never past its own keep-alive
        deadline, and a request that comes is answered with ``connection:
        close`` — a load balancer's keep-alive health check sees the 503 of
        a readiness probe rather than a closed connection.
        """
        if not self._exchanges:
            if self._waiting_for_head:
                grace = min(SHUTDOWN_HEAD_GRACE, self._options.request_head_timeout)
                self._set_timer(grace, self._close)
                return
            since = self.idle_since
            left = self._service.idle_clock.remaining(since) if since is not None else 0.0
            grace = min(self._options.shutdown_idle_timeout, left)
            if grace > 0:
                self._set_timer(grace, self._close)  # (the idle clock may close it later)
                return
            self._close()
            return
        for exchange in self._exchanges.values():
            exchange.keep_alive_refused = True

    def _close(self) -> None:
        if self._deadline is not None:
            self._deadline.clear()
        if self._head_clocked:
            self._end_head_clock()
        if self._idle_clocked:
            self._leave_idle_clock()
        conn = self._conn
        if conn is not None and not conn.is_closing():
            data = self._core.data_to_send()
            if data:
                conn.write(data)
            if self._core.peer_finished() and isinstance(conn, TransportAdapter):
                # The client said this was its last request and sent nothing
                # after it: no lingering close needed (docs/http1.md, "Closing").
                conn.input_finished()
            conn.close()


def _content_length(request: RequestReceived) -> int | None:
    for name, value in request.headers:
        if name == b"content-length":
            return int(value)
    return None
