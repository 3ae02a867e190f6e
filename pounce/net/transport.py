"""asyncio glue of the connection plane: one `TransportAdapter` per socket.

The adapter is the `asyncio.Protocol` the event loop talks to. It presents the
small `Conn` interface to the outermost `ConnectionHandler` and forwards the
loop's callbacks to it, so stream layers and protocol drivers never touch an
asyncio transport directly. It also implements flow control both ways and
the time bounds no protocol can enforce for itself:

* `drain` waits while the transport's buffer is above its high-water mark;
* reading pauses while that buffer is above its high-water mark, whatever
  the handler asked: a client that does not read what we write must not make
  us read (and answer) more of what it sends — pipelined requests, WebSocket
  pings, HTTP/2 PINGs all stop at the socket, not in our memory;
* a connection whose output makes no progress for `send_timeout` seconds is
  aborted (nginx's ``send_timeout``), and one still holding unsent bytes when
  its lingering close ends is aborted rather than closed (asyncio's
  ``close()`` would wait for a reader that never comes).

It sets ``TCP_NODELAY`` explicitly: on a pre-bound listening socket asyncio
does not, and small responses would then wait out Nagle's delay. On uvloop it
hands a small read to the handler one turn of the loop later
(`ConnectionTracker._hand_on`), which keeps a keep-alive load's p99 at one turn.

It is also the `SetupConn` seam for the layers that speak before any protocol
(the PROXY protocol header, the TLS handshake): exact reads that consume
nothing past a header, and the event loop's own ``start_tls`` on the same
connection. Neither is reachable through a plain `Conn`, so those layers must
be outermost (the builder checks it). Invariant: the handler's
``connection_lost`` is called exactly once, even when a handshake fails
before asyncio would report the loss itself.
"""

from __future__ import annotations

import _socket
import asyncio
import contextlib
import logging
import socket
import ssl
import struct
import types
from collections.abc import Coroutine, Generator
from typing import Any, TypeVar, cast

from pounce.conn import (
    GONE,
    ConnectionHandler,
    ConnectionInfo,
    HandlerFactory,
    connection_info,
    peer_name,
)
from pounce.events import ConnectionClosed, ConnectionOpened, ConnectionProtocol, EventBus
from pounce.net import sendfile
from pounce.net.sweep import Sweep

T = TypeVar("T")

error_log = logging.getLogger("pounce.error")


class ConnectionTracker:
    """Every open connection of one server, for graceful shutdown, and the clock of
    those in a lingering close.

    Per server instance (so per worker), never module-level.
    """

    def __init__(self) -> None:
        self._adapters: set[TransportAdapter] = set()
        self._emptied: asyncio.Future[None] | None = None  # only while someone waits
        self.lingering: Sweep[TransportAdapter] = Sweep(LINGER_TIMEOUT, _linger_over)
        # Reads held for the next turn (`hold`), where the loop is uvloop; whether it
        # is, asked at the first connection (one loop per serve).
        self.holds_reads = False
        self._loop_asked = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._held: list[TransportAdapter] = []
        # Connections whose writes of this turn wait for the hand-on (`TransportAdapter.write`).
        self._writing: list[TransportAdapter] = []

    def ask_loop(self) -> bool:
        """Whether this serve's reads are held for the next turn (`hold`): on uvloop."""
        if not self._loop_asked:
            self._loop_asked = True
            try:
                self._loop = asyncio.get_running_loop()
            except RuntimeError:  # driven by hand, outside a loop (a test)
                return False
            self.holds_reads = type(self._loop).__module__.startswith("uvloop")
        return self.holds_reads

    def _hand_on(self) -> None:
        """Hand the turn's held reads to their handlers, after writing the turn's writes.

        A read is held (`TransportAdapter.data_received`) for this callback, made once
        a turn by the turn's first held read.

        uvloop runs a turn's callbacks (the app tasks: every response is
        written there) and then polls at once, so a client whose answer was
        among the last written has not sent its next request yet: it misses
        that poll, and the kernel then lists its socket after every socket it
        reported the turn before (level-triggered epoll puts those back at the
        end of its ready list), so its request waits nearly two turns — the
        p99 of a keep-alive load (docs/performance.md, "Speed round two — 64
        KiB and the hello tail"). Handing a turn's reads on in one ``call_soon``
        puts the parsing of the requests after the writes of the next turn,
        which gives the last clients that time to answer before the poll, as
        asyncio's own loop order does (it runs the reads' callbacks after the
        tasks of the same turn). One callback hands on every read of the
        turn, in the order they came: a callback per read costs twice as
        much. (uvloop runs the reads of every connection of a listener in
        that listener's one context, so this callback's is no different.)

        While reads are held, the tasks' writes wait for this callback too
        (`TransportAdapter.write`), which writes them first, before it parses:
        the turn's apps then run one after the other with no system call
        between them, and the writes follow one after the other — 10–20 %
        more framework requests a second than a write inside each app's
        response (docs/performance.md, "Speed round two — a turn's writes
        together"). No response waits longer than the rest of its turn's tasks.
        """
        writing = self._writing
        if writing:
            self._writing = []
            for adapter in writing:
                try:
                    adapter._write_deferred()
                except Exception as exc:  # that connection's failure, not the others' writes
                    adapter._read_failed(exc)
        held, self._held = self._held, []
        for adapter in held:
            try:
                adapter._hand_on()
            except Exception as exc:  # that connection's failure, not the others' reads
                adapter._read_failed(exc)

    def add(self, adapter: TransportAdapter) -> None:
        self._adapters.add(adapter)

    def discard(self, adapter: TransportAdapter) -> None:
        adapters = self._adapters
        adapters.discard(adapter)
        if not adapters and self._emptied is not None:
            waiter, self._emptied = self._emptied, None
            if not waiter.done():
                waiter.set_result(None)

    def __len__(self) -> int:
        return len(self._adapters)

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until every connection is gone; False if `timeout` (seconds) ran out."""
        if not self._adapters:
            return True
        waiter = self._emptied
        if waiter is None or waiter.done():
            waiter = self._emptied = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait_for(waiter, timeout)
        except TimeoutError:
            return False
        return True

    def begin_shutdown(self) -> None:
        for adapter in list(self._adapters):
            adapter.begin_shutdown()

    def abort_all(self) -> None:
        for adapter in list(self._adapters):
            adapter.abort()


_NO_INFO = ConnectionInfo(client=None, server=None)  # before connection_made (immutable)


def _transport_kind(cls: type) -> tuple[bool, bool]:
    """(may it be TLS, must we set ``TCP_NODELAY``) for a transport class, asked once.

    The loops' own plain socket transports — uvloop's ``TCPTransport`` and
    ``UnixTransport``, asyncio's ``_SelectorSocketTransport`` — are never TLS
    (their TLS transports are other classes), so a new connection on them need
    not ask for an ``sslcontext``. uvloop sets ``TCP_NODELAY`` on every TCP
    transport itself (and its socket object is dear to make: a tenth of a new
    connection's cost there); asyncio sets it only where the listening socket
    object says ``IPPROTO_TCP``, which a pre-bound one made by ``socket.socket()``
    does not, so on asyncio it is set here.
    """
    module, name = cls.__module__, cls.__name__
    if module.startswith("uvloop"):
        return name not in ("TCPTransport", "UnixTransport"), False
    plain = module == "asyncio.selector_events" and name == "_SelectorSocketTransport"
    return not plain, True


# `_transport_kind` per transport class, filled at a class's first connection (a race
# between two threads computes the same value twice; dict writes are atomic).
_KINDS: dict[type, tuple[bool, bool]] = {}


def _peer(transport: asyncio.BaseTransport, listener: tuple[str, int] | None) -> ConnectionInfo:
    """The connection's addresses and scheme; `listener`: its local address where the
    listener says it (`pounce.net.binds.listener_address`), so no ``getsockname``."""
    get = transport.get_extra_info
    peername = get("peername")
    client: tuple[str, int] | None = None
    server: tuple[str, int | None] | None = listener
    # The socket module's own (host, port) pairs, kept as they are; IPv6 adds
    # flow info and scope id, which are not part of the address ASGI reports.
    if type(peername) is tuple:
        client = peername if len(peername) == 2 else peername[:2]
    if server is None:
        sockname = get("sockname")
        if type(sockname) is tuple:
            server = sockname if len(sockname) == 2 else sockname[:2]
        elif isinstance(sockname, str) and sockname:
            server = (sockname, None)
    cls = type(transport)
    kind = _KINDS.get(cls)
    if kind is None:
        kind = _KINDS[cls] = _transport_kind(cls)
    may_be_tls, nodelay = kind
    # A tuple peer name is an IPv4 or IPv6 peer (a Unix socket's is a string).
    if nodelay and client is not None:
        sock = get("socket")
        if sock is not None:
            try:  # (not contextlib.suppress: a context manager per connection)  # noqa: SIM105
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
    if may_be_tls and get("sslcontext") is not None:
        return connection_info(client, server, "https")
    return connection_info(client, server, "http")


def _cork(fd: int, option: int) -> None:
    """``TCP_CORK`` (`option`) on the socket `fd`, through a socket object of our own that
    borrows the descriptor for the call and gives it back (``detach``: never closes it).

    uvloop's own socket object (``PseudoSocket``) makes a `socket.socket` for each call,
    whose Python ``__init__`` and ``detach`` cost more than the option itself; this is
    the C object alone (its constructor still checks the descriptor with a
    ``getsockname``). The borrowing object's family is nominal: a TCP-level option does
    not read it. (``ctypes``' ``setsockopt`` was timed too: no cheaper.)
    """
    borrowed = None
    try:
        borrowed = _socket.socket(socket.AF_INET, socket.SOCK_STREAM, 0, fd)
        borrowed.setsockopt(socket.IPPROTO_TCP, option, 1)
    except OSError:
        pass  # (a PROXY-protocol peer on a Unix socket: written as `write` does)
    finally:
        if borrowed is not None:
            borrowed.detach()


def start_eagerly(coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
    """Run `coro` up to its first suspension now, then as a task (3.12's ``eager_start``).

    ``loop.start_tls()`` swaps the transport's protocol before its first
    ``await``. Done now, inside ``connection_made``, the swap precedes the
    loop's first read; done a loop iteration later, uvloop (which starts
    reading right after ``connection_made`` and ignores a ``pause_reading``
    made there) would hand the ClientHello to the wrong protocol.
    """
    try:
        pending = coro.send(None)
    except StopIteration as done:
        return asyncio.get_running_loop().create_task(_finished(done.value))
    except BaseException as exc:  # failed before suspending: surface it through the task
        return asyncio.get_running_loop().create_task(_failed(exc))
    return asyncio.get_running_loop().create_task(_resume(coro, pending))


def run_eagerly(coro: Coroutine[Any, Any, None]) -> asyncio.Task[None] | None:
    """Run `coro` now; only if it has to wait, finish it in a task (returned).

    The common case — nothing to wait for — then costs no task at all.
    """
    try:
        pending = coro.send(None)
    except StopIteration:
        return None
    except BaseException as exc:  # failed before suspending: surface it through a task
        return asyncio.get_running_loop().create_task(_failed(exc))
    return asyncio.get_running_loop().create_task(_resume(coro, pending))


async def _finished(value: T) -> T:
    return value


async def _failed(exc: BaseException) -> Any:
    raise exc


@types.coroutine
def _resume(coro: Coroutine[Any, Any, T], pending: Any) -> Generator[Any, None, T]:
    """Hand each future `coro` waits on to the task, and resume `coro` when it is done."""
    while True:
        thrown: BaseException | None = None
        try:
            yield pending
        except BaseException as exc:  # the task was cancelled
            thrown = exc
        try:
            pending = coro.send(None) if thrown is None else coro.throw(thrown)
        except StopIteration as done:
            return cast(T, done.value)


class _ExactReader(asyncio.BufferedProtocol):
    """Stands in for the adapter while a header is read: never reads past `size` bytes.

    asyncio (and uvloop) read into the buffer `get_buffer` returns, so a buffer
    of exactly the missing size is what keeps the bytes after a PROXY header
    (say, a TLS ClientHello) in the socket for whoever reads next.
    """

    __slots__ = ("_adapter", "_buffer", "_done", "_transport", "_waiter")

    def __init__(self, adapter: TransportAdapter, transport: asyncio.Transport) -> None:
        self._adapter = adapter
        self._transport = transport
        self._buffer = bytearray()
        self._done = 0
        self._waiter: asyncio.Future[bytes] | None = None

    def expect(self, size: int) -> asyncio.Future[bytes]:
        if self._waiter is not None or size < 1:
            raise RuntimeError("one exact read of at least one byte at a time")
        self._buffer = bytearray(size)
        self._done = 0
        self._waiter = asyncio.get_running_loop().create_future()
        if not self._transport.is_closing():
            self._transport.resume_reading()
        return self._waiter

    def get_buffer(self, sizehint: int) -> memoryview:
        if self._waiter is None:  # never asked for: read one byte and fail below
            self._buffer, self._done = bytearray(1), 0
        return memoryview(self._buffer)[self._done :]

    def buffer_updated(self, nbytes: int) -> None:
        self._done += nbytes
        if self._done < len(self._buffer):
            return
        self._transport.pause_reading()
        waiter, self._waiter = self._waiter, None
        if waiter is None:
            self._transport.abort()  # bytes nobody asked for
        elif not waiter.done():
            waiter.set_result(bytes(self._buffer))

    def eof_received(self) -> bool | None:
        self._fail(ConnectionResetError("the peer closed the connection mid-header"))
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self._fail(exc or ConnectionResetError("the connection closed mid-header"))
        self._adapter.connection_lost(exc)

    def _fail(self, exc: Exception) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


# How long a closing connection keeps reading (and dropping) what the client
# still sends, so its last response is not destroyed by a reset: Apache's
# lingering close waits 2 s as well (RFC 9112 §9.6). Kept by the serve's sweep
# (`ConnectionTracker.lingering`), so a connection lingers 2 to 2.5 s.
LINGER_TIMEOUT = 2.0  # seconds

# The largest read handed on a turn later on uvloop (`ConnectionTracker._hand_on`):
# request heads and small messages. A larger read is bulk (an upload) and goes to the
# handler at once, as does any read behind a held one.
HELD_READ_LIMIT = 16 * 1024  # bytes

# Reads are held only while the serve has at least this many connections open. With
# few, a turn of the loop is short and so is the wait the hold removes, while the
# hold's own cost — a turn of the loop more per read when each turn carries one —
# is a tenth of a lone keep-alive connection's request (docs/performance.md,
# "Speed round two — the wall clock after the fourth pass").
HOLD_FROM_CONNECTIONS = 8
# While reads are held, a connection's writes of a turn wait for the turn's hand-on
# while they come to at most this many bytes (`TransportAdapter.write`): responses, not
# a large body.
HELD_WRITE_LIMIT = 16 * 1024  # bytes

# How long the output of a connection may make no progress (its peer reads
# nothing of it) before the connection is aborted: nginx's send_timeout.
DEFAULT_SEND_TIMEOUT = 60.0  # seconds

# How long closing a TLS connection waits for the peer's close_notify before it
# aborts (asyncio's default is 30 s: an idle client that never answers would hold
# a graceful shutdown that long). As long as a plain connection's lingering close.
TLS_SHUTDOWN_TIMEOUT = 2.0  # seconds

# Our own bound on a TLS handshake, past the loop's ssl_handshake_timeout.
HANDSHAKE_GRACE = 1.0  # seconds

# Linux's option that holds a socket's partial segments until it is uncorked or
# closed (`TransportAdapter.write_last`); None where the platform has none.
_TCP_CORK: int | None = getattr(socket, "TCP_CORK", None)


class _SendStall:
    """Aborts a connection whose write buffer has not shrunk for `timeout` seconds.

    Started when the transport pauses writing; cancelled when it resumes. A
    peer that reads slowly but steadily shrinks the buffer and is given
    another `timeout` each time; one that reads nothing is aborted.
    """

    __slots__ = ("_adapter", "_handle", "_size", "_timeout", "_transport")

    def __init__(self, adapter: TransportAdapter, transport: asyncio.Transport, timeout: float):
        self._adapter = adapter
        self._transport = transport
        self._timeout = timeout
        self._handle: asyncio.TimerHandle | None = None
        self._size = 0

    def start(self) -> None:
        if self._handle is None:
            self._size = self._transport.get_write_buffer_size()
            self._handle = asyncio.get_running_loop().call_later(self._timeout, self._check)

    def cancel(self) -> None:
        if self._handle is not None:
            self._handle.cancel()
            self._handle = None

    def _check(self) -> None:
        self._handle = None
        size = self._transport.get_write_buffer_size()
        if size and size >= self._size:
            self._adapter._send_stalled()
        elif size:
            self.start()  # some of it left: another period


def _linger_over(adapter: TransportAdapter) -> None:
    """The end of a lingering close: close, or reset output nobody reads any more."""
    transport = adapter._transport
    if transport is None or transport.is_closing():
        return
    if transport.get_write_buffer_size():
        reset(transport)
    else:
        transport.close()


def reset(transport: asyncio.Transport) -> None:
    """Abort with a TCP reset: the kernel drops what it still holds for a peer that
    reads nothing, instead of keeping it (and retrying) after we let go."""
    sock = transport.get_extra_info("socket")
    if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
        with contextlib.suppress(OSError, AttributeError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


class TransportAdapter(asyncio.Protocol):
    """Bridges one asyncio transport to a `ConnectionHandler` chain."""

    __slots__ = (
        "_after_file",
        "_close_after_file",
        "_deferred",
        "_deferred_size",
        "_drain_waiter",
        "_file_slice",
        "_handler",
        "_handshake",
        "_held",
        "_holds_reads",
        "_lingering",
        "_listener",
        "_lost",
        "_peer_done",
        "_read_paused",
        "_reader",
        "_send_timeout",
        "_stall",
        "_tracker",
        "_transport",
        "_write_paused",
        "info",
    )

    def __init__(
        self,
        factory: HandlerFactory,
        tracker: ConnectionTracker,
        send_timeout: float | None = DEFAULT_SEND_TIMEOUT,
        listener: tuple[str, int] | None = None,
    ) -> None:
        self._handler: ConnectionHandler = factory()
        self._tracker = tracker
        self._send_timeout = send_timeout
        self._listener = listener  # the local address, where the listener knows it
        self._transport: asyncio.Transport | None = None
        # An attribute, not a property: the driver reads it for every request.
        self.info: ConnectionInfo = _NO_INFO
        self._write_paused = False
        self._read_paused = False  # what the handler asked; writing may pause reading too
        self._drain_waiter: asyncio.Future[None] | None = None
        self._reader: _ExactReader | None = None
        self._handshake: asyncio.Task[ssl.SSLObject] | None = None
        self._lost = False
        self._peer_done = False  # the peer half-closed, or said it sends nothing more
        self._lingering = False  # our write side is shut; reading and dropping until the end
        self._stall: _SendStall | None = None  # times output that makes no progress
        self._after_file: list[bytes] | None = None  # writes held while a file is sent
        self._close_after_file = False
        self._file_slice: asyncio.Task[int] | None = None
        self._holds_reads = False  # reads after the first go to the handler a turn later
        self._held: bytes | None = None  # a read not yet handed on
        self._deferred: list[bytes] | None = None  # writes waiting for the turn's hand-on
        self._deferred_size = 0  # their bytes

    # -- asyncio.Protocol callbacks -------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment]  # (a stream transport)
        self.info = _peer(transport, self._listener)
        tracker = self._tracker
        tracker._adapters.add(self)  # (`ConnectionTracker.add` inline: once per connection)
        if not tracker._loop_asked:
            tracker.ask_loop()
        self._handler.connection_made(self)

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # closing; what the client still sends is dropped
        if self._held is None:
            tracker = self._tracker
            if (
                self._holds_reads
                and len(data) <= HELD_READ_LIMIT
                and len(tracker._adapters) >= HOLD_FROM_CONNECTIONS
            ):
                self._held = data  # to the handler a turn later
                # (made once a turn: `ConnectionTracker._hand_on`)
                if not tracker._held:
                    assert tracker._loop is not None  # (`ask_loop` said this serve holds reads)
                    tracker._loop.call_soon(tracker._hand_on)
                tracker._held.append(self)
                return
        else:
            # A second read before the first was handed on (the loop read again at
            # once: a large request, an upload): both now, in order, so the
            # handler's flow control sees every byte as it comes.
            self._hand_on()
            if self._lingering:
                return
        self._handler.data_received(data)
        # A connection's first read goes at once: a new connection's request (every
        # one under `Connection: close`) waits for no other; the later ones are held.
        self._holds_reads = self._tracker.holds_reads

    def _hand_on(self) -> None:
        """The held read to the handler, unless the connection closed or was lost since."""
        data = self._held
        if data is not None:
            self._held = None
            transport = self._transport
            if (
                not self._lost
                and not self._lingering
                and transport is not None
                and not transport.is_closing()
            ):
                self._handler.data_received(data)

    def _read_failed(self, exc: Exception) -> None:
        """A held read's handler (or a held write) raised: what the loop does when
        ``data_received`` raises (report it, abort this connection), so the turn's other
        reads and writes still go on."""
        asyncio.get_running_loop().call_exception_handler(
            {"message": "data_received() failed", "exception": exc, "protocol": self}
        )
        self.abort()

    def eof_received(self) -> bool | None:
        if self._held is not None:
            self._hand_on()  # the request before the FIN first
        if self._lingering:
            return None  # the client has seen our end and closed too: done
        keep = self._handler.eof_received()
        transport = self._transport
        if keep and transport is not None and self._reader is None and transport.can_write_eof():
            self._peer_done = True
            return True  # half-closed: the response can still go out
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._lingering:
            self._tracker.lingering.discard(self)
        if self._stall is not None:
            self._stall.cancel()
        self._deferred = None  # (nowhere to write it)
        if self._lost:
            return
        self._lost = True
        self._tracker.discard(self)
        if self._drain_waiter is not None:
            self._wake_drain()
        handler, self._handler = self._handler, GONE
        handler.connection_lost(exc)

    def pause_writing(self) -> None:
        """The peer is not reading fast enough: stop reading it too, and time it."""
        self._write_paused = True
        transport = self._transport
        if transport is None or self._reader is not None or self._lingering:
            return
        transport.pause_reading()
        if self._send_timeout is not None:
            if self._stall is None:
                self._stall = _SendStall(self, transport, self._send_timeout)
            self._stall.start()

    def resume_writing(self) -> None:
        self._write_paused = False
        if self._stall is not None:
            self._stall.cancel()
        transport = self._transport
        if (
            transport is not None
            and not self._read_paused
            and self._reader is None
            and not self.is_closing()
        ):
            transport.resume_reading()
        self._wake_drain()

    def _send_stalled(self) -> None:
        who = peer_name(self.info.client, "unix peer")
        error_log.info(
            "Closing %s: it read nothing of our output for %g s", who, self._send_timeout
        )
        if self._transport is not None:
            reset(self._transport)

    def begin_shutdown(self) -> None:
        self._handler.begin_shutdown()

    def _wake_drain(self) -> None:
        waiter, self._drain_waiter = self._drain_waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- SetupConn: PROXY header and TLS handshake on the raw connection ----------

    def update_info(self, **changes: object) -> None:
        self.info = self.info.with_changes(**changes)

    def read_exactly(self, size: int) -> asyncio.Future[bytes]:
        # Safe to call in connection_made: the reader is in place before the first read.
        transport = self._transport
        if transport is None:
            raise RuntimeError("read_exactly() before connection_made()")
        if self._reader is None:
            self._reader = _ExactReader(self, transport)
            transport.set_protocol(self._reader)
        return self._reader.expect(size)

    def end_exact_reads(self) -> None:
        if self._reader is not None and self._transport is not None:
            self._reader = None
            self._transport.set_protocol(self)

    def start_tls(
        self, context: ssl.SSLContext, *, handshake_timeout: float
    ) -> asyncio.Task[ssl.SSLObject]:
        if self._transport is None:
            raise RuntimeError("start_tls() before connection_made()")
        if self._deferred is not None:
            self._write_deferred()  # cleartext written before: it goes before the handshake
        # Eagerly: the SSL protocol must own the socket before the loop reads it.
        task = start_eagerly(self._start_tls(self._transport, context, handshake_timeout))
        if not task.done():
            self._handshake = task
            # Our own deadline too: uvloop never ends the handshake of a client
            # that closed before its ClientHello, whatever its timeout says.
            overdue = asyncio.get_running_loop().call_later(
                handshake_timeout + HANDSHAKE_GRACE, self._handshake_overdue, task
            )
            task.add_done_callback(lambda _: overdue.cancel())
        return task

    def _handshake_overdue(self, task: asyncio.Task[ssl.SSLObject]) -> None:
        who = peer_name(self.info.client, "-")
        error_log.debug("TLS handshake with %s failed: no handshake in time", who)
        task.cancel()

    async def _start_tls(
        self, transport: asyncio.Transport, context: ssl.SSLContext, timeout: float
    ) -> ssl.SSLObject:
        loop = asyncio.get_running_loop()
        self._reader = None
        try:
            tls = await loop.start_tls(
                transport,
                self,
                context,
                server_side=True,
                ssl_handshake_timeout=timeout,
                ssl_shutdown_timeout=TLS_SHUTDOWN_TIMEOUT,
            )
            # None: closed (aborted) while the handshake was under way. uvloop
            # may also hand back a transport already closed and without a
            # session, for a client that left before its ClientHello.
            if tls is None or tls.get_extra_info("ssl_object") is None:
                raise ConnectionResetError("the connection closed during the TLS handshake")
        except BaseException as exc:
            # asyncio does not report a connection lost mid-handshake to us.
            self._handshake = None
            transport.abort()
            self.connection_lost(exc if isinstance(exc, Exception) else None)
            raise
        self._handshake = None
        self._transport = tls
        return cast(ssl.SSLObject, tls.get_extra_info("ssl_object"))

    # -- Conn -------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        deferred = self._deferred
        if deferred is not None:
            # More in the same turn (HTTP/2's streams, pipelined responses): it waits
            # too, while what waits stays within `HELD_WRITE_LIMIT` bytes; else all of
            # it goes now, so a large or long response keeps its backpressure.
            size = self._deferred_size + len(data)
            if size <= HELD_WRITE_LIMIT:
                deferred.append(data)
                self._deferred_size = size
                return
            self._write_deferred()
        elif len(data) <= HELD_WRITE_LIMIT and self._after_file is None:
            tracker = self._tracker
            if tracker._held:
                # A hand-on of held reads waits behind this turn's tasks: it writes this,
                # with the other tasks' writes, before it parses (`ConnectionTracker._hand_on`).
                self._deferred = [data]
                self._deferred_size = len(data)
                tracker._writing.append(self)
                return
        self._write_through(data)

    def _write_through(self, data: bytes) -> None:
        transport = self._transport
        if self._after_file is not None:
            self._after_file.append(data)  # asyncio refuses writes during a sendfile
        elif transport is not None and not self._lingering and not transport.is_closing():
            transport.write(data)  # (`is_closing` inline: once per response)

    def _write_deferred(self) -> None:
        """What `write` held for the turn's hand-on, now; before anything else this
        connection writes or closes, so its bytes keep their order."""
        pieces, self._deferred = self._deferred, None
        if pieces is not None:
            self._write_through(pieces[0] if len(pieces) == 1 else b"".join(pieces))

    def writelines(self, pieces: list[bytes]) -> None:
        """`GatherConn`: the pieces in order, in one write where the loop can gather them."""
        if self._deferred is not None:
            self._write_deferred()
        transport = self._transport
        if self._after_file is not None:
            self._after_file.extend(pieces)
        elif transport is not None and not self._lingering and not transport.is_closing():
            transport.writelines(pieces)  # (`is_closing` inline, as in `write`)

    def close(self) -> None:
        """Close after flushing: send FIN, then linger, reading and dropping.

        Closing a socket with unread input makes the kernel send RST, and a
        RST can destroy the response still in flight (a 413 before the body
        was read, an HTTP/2 GOAWAY). So the write side ends first, and the
        socket closes when the client closes or after `LINGER_TIMEOUT`.
        """
        if self._deferred is not None:
            self._write_deferred()
        transport = self._transport
        if transport is None or self._lingering or transport.is_closing():
            return
        if self._after_file is not None:
            self._close_after_file = True  # after the file, as a write would be
            return
        if self._peer_done or self._reader is not None or not transport.can_write_eof():
            # A peer that half-closed, or said it sends nothing more
            # (`input_finished`), has nothing left to drain; TLS has no
            # half-close; exact reads own the protocol.
            transport.close()
            return
        try:
            transport.write_eof()
        except OSError:
            # The peer is already gone (ENOTCONN: its reset arrived before the
            # loop reported it): nothing left to flush or to linger for.
            transport.abort()
            return
        transport.resume_reading()
        self._lingering = True
        self._tracker.lingering.add(self)

    def write_last(self, data: bytes) -> None:
        """`write` for the connection's last bytes: its `close` is the caller's next step
        (a response that ends the connection).

        On plain TCP under Linux they wait in the kernel for that close (``TCP_CORK``),
        which sends them with the FIN in one segment instead of two: one segment, and
        one wake-up of the client, fewer for every connection that ends with a response
        — a quarter of a ``Connection: close`` request's cost on loopback
        (docs/performance.md, "Speed round two — the response and the FIN in one
        segment"). Nothing waits long: the close, or the half-close `close` makes before
        lingering, sends what waits (the loop carries it out at once or at its next
        turn), and the kernel never holds a corked segment past 200 ms. TLS, a Unix
        socket and a file being sent write as `write` does.
        """
        transport = self._transport
        if (
            _TCP_CORK is not None
            and transport is not None
            and self._after_file is None
            and self.info.client is not None  # (TCP: a Unix socket has no peer address)
            and transport.can_write_eof()  # (not TLS, whose close writes more after this)
        ):
            sock = transport.get_extra_info("socket")
            if sock is not None:
                _cork(sock.fileno(), _TCP_CORK)
        self.write(data)

    def input_finished(self) -> None:
        """The peer sends nothing more: its protocol said so and all of it was read
        (HTTP/1.1: a last request with ``Connection: close``, whole, nothing after it).

        A `close` that follows then closes at once, as after the peer's own
        half-close, instead of lingering: no byte can arrive to turn the close
        into a reset, so there is nothing to linger for (RFC 9112 §9.6). A
        client that sends more anyway breaks its own promise (RFC 9112 §9.6:
        it MUST NOT) and risks only its own response.
        """
        self._peer_done = True

    def abort(self) -> None:
        self._deferred = None  # (an abort drops what is unsent)
        if self._file_slice is not None:
            self._file_slice.cancel()  # first: it takes its writer off the socket
        handshake, self._handshake = self._handshake, None
        if handshake is not None and not handshake.done():
            # Mid-handshake the socket belongs to the loop's TLS protocol, which
            # may never report a peer that already left: end the handshake,
            # which aborts the socket and reports the loss (exactly once).
            handshake.cancel()
            return
        if self._transport is not None:
            self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport is None or self._lingering or self._transport.is_closing()

    def pause_reading(self) -> None:
        self._read_paused = True
        if self._transport is not None and not self.is_closing():
            self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._read_paused = False
        if self._transport is not None and not self._write_paused and not self.is_closing():
            self._transport.resume_reading()

    async def drain(self) -> None:
        if self._deferred is not None:
            self._write_deferred()  # (a transport that sees it can pause us)
        if not self._write_paused or self.is_closing():
            return
        if self._drain_waiter is None:
            self._drain_waiter = asyncio.get_running_loop().create_future()
        await self._drain_waiter

    # -- FileConn: a file's bytes by the kernel (pounce/net/sendfile.py) ------------

    def can_send_file(self) -> bool:
        transport = self._transport
        return transport is not None and self._reader is None and sendfile.native(transport)

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        if self._deferred is not None:
            self._write_deferred()  # (the head before the file)
        transport = self._transport
        if transport is None or self.is_closing():
            raise ConnectionResetError("the connection closed before a file was sent")
        self._after_file = []
        try:
            sent = await sendfile.send(
                transport, fd, offset, count, timeout=self._send_timeout, track=self._track_slice
            )
            if sent < count:
                await sendfile.copy(self._write_now, self.drain, fd, offset + sent, count - sent)
        except sendfile.Stalled:
            self._send_stalled()
            raise
        finally:
            held, self._after_file = self._after_file, None
            for data in held:
                self.write(data)
            if self._close_after_file:
                self._close_after_file = False
                self.close()

    def _track_slice(self, task: asyncio.Task[int] | None) -> None:
        self._file_slice = task

    def _write_now(self, data: bytes) -> None:
        if self._transport is None or self.is_closing():
            raise ConnectionResetError("the connection closed while a file was sent")
        self._transport.write(data)


class ObservedTransportAdapter(TransportAdapter):
    """A `TransportAdapter` that reports `ConnectionOpened` / `ConnectionClosed`.

    Used only when the server has subscribers, so an unobserved server pays
    nothing for the byte counts. Bytes are those of the served protocol as
    they cross this adapter: after TLS decryption, before encryption.
    """

    __slots__ = ("_bytes_in", "_bytes_out", "_events", "_opened", "_opened_at", "protocol")

    def __init__(
        self,
        factory: HandlerFactory,
        tracker: ConnectionTracker,
        send_timeout: float | None,
        events: EventBus,
        listener: tuple[str, int] | None = None,
    ) -> None:
        super().__init__(factory, tracker, send_timeout, listener)
        self._events = events
        self._bytes_in = 0
        self._bytes_out = 0
        self._opened_at = 0.0
        self._opened = False  # ConnectionOpened emitted
        self.protocol: str | None = None
        """Set by the protocol bridge (`note_protocol`) when it picks or switches one."""

    def note_protocol(self, name: str) -> None:
        previous, self.protocol = self.protocol, name
        if self._opened:  # else chosen inside connection_made: reported after ConnectionOpened
            self._note_protocol_event(previous)

    def _note_protocol_event(self, previous: str | None) -> None:
        if self._events.connection_protocol and self.protocol is not None:
            self._events.emit(
                ConnectionProtocol(
                    connection_id=id(self), protocol=self.protocol, previous=previous
                )
            )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._opened_at = self._events.clock()
        super().connection_made(transport)
        info = self.info
        self._events.emit(
            ConnectionOpened(
                connection_id=id(self), client=info.client, server=info.server, scheme=info.scheme
            )
        )
        self._opened = True
        self._note_protocol_event(None)

    def data_received(self, data: bytes) -> None:
        self._bytes_in += len(data)
        super().data_received(data)

    def write(self, data: bytes) -> None:
        if self._transport is not None and not self.is_closing():
            self._bytes_out += len(data)
        super().write(data)  # held while a file goes out (send_file)

    def writelines(self, pieces: list[bytes]) -> None:
        if self._transport is not None and not self.is_closing():
            self._bytes_out += sum(map(len, pieces))
        super().writelines(pieces)

    async def send_file(self, fd: int, offset: int, count: int) -> None:
        await super().send_file(fd, offset, count)
        self._bytes_out += count  # the kernel's copy passes no write()

    def connection_lost(self, exc: Exception | None) -> None:
        first = not self._lost
        super().connection_lost(exc)
        if first:
            info = self.info
            self._events.emit(
                ConnectionClosed(
                    connection_id=id(self),
                    client=info.client,
                    protocol=self.protocol,
                    tls_version=info.tls_version,
                    alpn=info.alpn,
                    bytes_in=self._bytes_in,
                    bytes_out=self._bytes_out,
                    duration=self._events.clock() - self._opened_at,
                )
            )
