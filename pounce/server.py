"""`Server`: a built, checked stack, and the loop that serves it.

Serving goes: lifespan startup → open every listener (a port in use is a
`TransportError` before anything is served) → one asyncio server per listener
whose connections enter the outermost stream layer → wait for a stop signal
→ graceful shutdown: stop accepting, close idle keep-alive connections
(after `timeout_shutdown_idle`, answering a request that arrives meanwhile
with ``connection: close``), let in-flight responses finish up to the
graceful timeout, abort the rest → lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol, Unpack

from pounce.asgi.lifespan import Lifespan
from pounce.asgi.types import ASGIApp
from pounce.builder import ServerBuilder, ServerSpec
from pounce.conn import HandlerFactory
from pounce.drivers.bridge import bridge_factory
from pounce.drivers.http3_options import alt_svc
from pounce.drivers.service import ServiceContext
from pounce.errors import TLSError, TransportError
from pounce.events import (
    REFRESH_INTERVAL,
    EventBus,
    WorkerStarted,
    WorkerStopped,
    bus_for,
    worker_name,
)
from pounce.layer import Serving
from pounce.layers.refusal import RefusalLog
from pounce.layers.tls.config import ServerTLS
from pounce.layers.tls.layer import TLSLayer
from pounce.net.accept import Acceptor, loop_accepts_safely
from pounce.net.backlog import BacklogDrain
from pounce.net.binds import Bind, cleanup, display_address, listener_address, open_socket
from pounce.net.loops import loop_factory
from pounce.net.transport import ConnectionTracker, ObservedTransportAdapter, TransportAdapter
from pounce.net.udp import open_udp

if TYPE_CHECKING:
    from pounce.drivers.http3_endpoint import HTTP3Listener
    from pounce.keywords import WorkerKeywords

error_log = logging.getLogger("pounce.error")

SETTLE_TURNS = 2  # event loop turns between closing the listeners and closing idle connections

ReadyCallback = Callable[[list[Any]], None]
"""Called once listening, with each listener's ``getsockname()``."""


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("this server has no ASGI app")


class _Reloadable(Protocol):
    """A live certificate of one serve: a TLS listener's, or HTTP/3's."""

    def reload(self) -> None: ...


class Server:
    """A server description that has passed every check; serve it as often as you like."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        # The TLS contexts of the serves running now (one list per serve), so
        # reload_tls() reaches every worker. Not configuration: bookkeeping that
        # serves on other threads add to and remove from, under this lock.
        self._live_tls: dict[int, list[_Reloadable]] = {}
        self._live_lock = threading.Lock()
        # The subscribers' bus, shared by every serve (worker) of this server:
        # it holds only immutable tuples. None when nobody subscribes.
        self.events: EventBus | None = bus_for(spec.observers)

    def _wrap_app(self, serving: Serving) -> ASGIApp:
        """The app layers folded around the app: once per `serve()`, so state a
        layer makes in ``wrap`` belongs to one worker and one event loop."""
        app = self.spec.app or _no_app
        for layer in reversed(self.spec.app_layers):
            app = layer.wrap_serving(app, serving)
        return app

    @staticmethod
    def builder() -> ServerBuilder:
        return ServerBuilder()

    # -- TLS ---------------------------------------------------------------------------

    @property
    def uses_tls(self) -> bool:
        """Does every connection start with a TLS handshake (``.tls()``)?"""
        return any(isinstance(layer, TLSLayer) for layer in self.spec.stream_layers)

    def reload_tls(self) -> None:
        """Re-read every TLS certificate and key; new connections use them, open ones keep theirs.

        Raises `TLSError` (and keeps serving the old certificate) when the
        files are now missing or broken. SIGHUP does the same under `run()`.
        """
        with self._live_lock:
            live = [tls for serve in self._live_tls.values() for tls in serve]
        if not live:  # nothing serving: check the files, as the next serve will load them
            for layer in self.spec.stream_layers:
                if isinstance(layer, TLSLayer):
                    ServerTLS(layer.config, layer.alpn).reload()
        for tls in live:
            tls.reload()
        for layer in self.spec.stream_layers:
            if isinstance(layer, TLSLayer):
                error_log.info("Reloaded TLS certificate %s", layer.config.cert)

    def _on_sighup(self) -> None:
        try:
            self.reload_tls()
        except TLSError as exc:
            error_log.error("%s", exc)

    def describe(self) -> str:
        """The stack, outer → inner, one line each (tests pin this)."""
        spec = self.spec
        http = spec.http
        lines = [f"listen   {b.describe()} (backlog {spec.backlog})" for b in spec.binds]
        if spec.max_connections is not None:
            lines.append(
                f"listen   at most {spec.max_connections} open connections per worker "
                "(then accepting pauses)"
            )
        lines += [f"stream   {layer.describe()}" for layer in spec.stream_layers]
        lines += [f"protocol {factory.describe()}" for factory in spec.protocols]
        if spec.h3 is not None:
            lines.append(f"protocol {spec.h3.describe()}")
        headers = [
            name for name, on in (("server", http.server_header), ("date", http.date_header)) if on
        ]
        headers += [name.decode() for name, _ in http.extra_headers]
        body = "none" if http.max_request_body is None else f"{http.max_request_body} B"
        silence = http.request_body_timeout
        rate = http.request_body_min_rate
        send = http.send_timeout
        lines.append(
            f"http     keep-alive {http.keep_alive_timeout:g} s, request head "
            f"{http.request_head_timeout:g} s, "
            f"body silence {'none' if silence is None else f'{silence:g} s'}, "
            f"body rate {'none' if rate is None else f'{rate} B/s'}"
        )
        lines.append(
            f"http     body limit {body}, send {'none' if send is None else f'{send:g} s'}, "
            f"headers [{', '.join(headers)}], root path {http.root_path or '-'!s}"
        )
        if spec.request_ids is not None:
            lines.append(f"observe  {spec.request_ids.describe()}")
        lines += [f"observe  {_describe_subscriber(each)}" for each in spec.observers]
        lines += [f"app      {layer.describe()}" for layer in spec.app_layers]
        lines.append(f"app      {spec.app_name} (lifespan {spec.lifespan})")
        lines.append(f"loop     {spec.loop}")
        return "\n".join(lines)

    # -- serving -----------------------------------------------------------------------

    async def serve(
        self,
        *,
        stop: asyncio.Event | None = None,
        ready: ReadyCallback | None = None,
        sockets: Sequence[socket.socket] | None = None,
        announce: bool = True,
        udp: socket.socket | None = None,
        serve_udp: bool = True,
    ) -> None:
        """Serve until `stop` is set, then shut down gracefully.

        Both planes are wrapped afresh for each call — one per worker — while
        this `Server` stays immutable and shareable. `sockets`: listening
        sockets already open (a supervisor opens them once for every worker);
        they are served instead of the binds and left open afterwards.
        `announce`: log the "Pounce running on" line (a supervisor logs it
        once for all its workers instead). `udp`: with `sockets`, HTTP/3's
        socket, also opened by the caller; `serve_udp` False serves no HTTP/3
        but still advertises its port (a worker that does not own it). With
        `sockets` and no `udp`, HTTP/3 is not served.
        """
        stop = stop or asyncio.Event()
        serving = Serving(self.events)
        app = self._wrap_app(serving)
        try:
            lifespan = Lifespan(app, self.spec.lifespan)
            await lifespan.startup()
            try:
                udp_plan = (udp, serve_udp) if udp is not None else None
                await self._serve_listening(
                    app, lifespan, stop, ready, sockets, announce, serving, udp_plan
                )
            finally:
                await lifespan.shutdown()
        finally:
            serving.close()  # what the layers made for this worker (Sentry's client)

    async def _serve_listening(
        self,
        app: ASGIApp,
        lifespan: Lifespan,
        stop: asyncio.Event,
        ready: ReadyCallback | None,
        given: Sequence[socket.socket] | None,
        announce: bool = True,
        serving: Serving | None = None,
        udp: tuple[socket.socket, bool] | None = None,
    ) -> None:
        spec = self.spec
        sockets: list[socket.socket] = list(given or ())
        opened: list[Bind] = []
        live_tls: list[_Reloadable] = []
        h3: HTTP3Listener | None = None
        acceptor: Acceptor | None = None
        refresher = _keep_fresh(self.events)  # before the first request: who is on
        try:
            if given is None:
                for bind in spec.binds:
                    sockets.append(open_socket(bind, spec.backlog))
                    opened.append(bind)
            http = spec.http
            h3_port: int | None = None
            if spec.h3 is not None and (given is None or udp is not None):
                h3_sock = udp[0].dup() if udp is not None else None
                if udp is None or udp[1]:
                    h3 = self._open_h3(sockets, lifespan, app, live_tls, h3_sock)
                    h3_port = h3.sock.getsockname()[1]
                elif h3_sock is not None:
                    h3_port = h3_sock.getsockname()[1]
                    h3_sock.close()
            if h3_port is not None and spec.h3 is not None and spec.h3.options.alt_svc:
                http = replace(http, extra_headers=(*http.extra_headers, alt_svc(h3_port)))
            events = self.events
            service = ServiceContext(
                app, http, state=lifespan.state, events=events, request_ids=spec.request_ids
            )
            loop = asyncio.get_running_loop()
            if spec.max_connections is not None or not loop_accepts_safely(loop):
                refusals = RefusalLog("listener", events=events)
                acceptor = Acceptor(spec.max_connections, refusals.refused)
            tracker = ConnectionTracker() if acceptor is None else acceptor.tracker
            factory = self._handler_factory(service, live_tls)
            with self._live_lock:
                self._live_tls[id(live_tls)] = live_tls
            send_timeout = spec.http.send_timeout

            # (Partials, not a closure: one Python frame fewer per accepted connection.)
            make_adapter: Callable[[], TransportAdapter]
            if events is None or not events.connections:
                make_adapter = functools.partial(TransportAdapter, factory, tracker, send_timeout)
            else:
                make_adapter = functools.partial(
                    ObservedTransportAdapter, factory, tracker, send_timeout, events
                )

            # Whoever serves a socket closes it: a given one is shared, so this
            # serve() gets a duplicate of its own.
            own = [sock if given is None else sock.dup() for sock in sockets]
            servers: list[asyncio.Server | Acceptor] = []
            if acceptor is None:  # uvloop's own server: its accept loop is in C
                for sock in own:  # one accept per turn: a busy loop catches up (net/backlog.py)
                    listener = listener_address(sock)
                    make = make_adapter
                    if listener is not None:  # (its connections' local address: no getsockname)
                        make = functools.partial(make_adapter, listener=listener)
                    drain = BacklogDrain(sock, make)
                    servers.append(
                        await loop.create_server(drain.factory, sock=sock, backlog=spec.backlog)
                    )
            else:  # accept ourselves: a cap, a back-off on EMFILE (pounce/net/accept.py)
                acceptor.start(own, make_adapter)
                servers.append(acceptor)
            if h3 is not None:
                await h3.start()
            for sock in sockets if announce else ():
                address = display_address(sock)
                if self.uses_tls:
                    address = address.replace("http://", "https://", 1)
                error_log.info("Pounce running on %s (Press CTRL+C to quit)", address)
            if h3 is not None and announce:
                host, port = h3.sock.getsockname()[:2]
                error_log.info("Pounce serving HTTP/3 on udp %s:%d", host, port)
            if ready is not None:
                ready([sock.getsockname() for sock in sockets])
            if events is not None:
                events.emit(WorkerStarted(worker=worker_name()))
            await stop.wait()
            if serving is not None:
                serving.draining = True  # readiness fails first (docs/backpressure.md)
            await self._shut_down(servers, service, tracker, h3)
            if events is not None:
                events.emit(WorkerStopped(worker=worker_name()))
        finally:
            if refresher is not None:
                refresher.cancel()
            if acceptor is not None:
                acceptor.close()
            with self._live_lock:
                self._live_tls.pop(id(live_tls), None)
            if h3 is not None:
                h3.close()
            if given is None:  # ours to close; given sockets are the caller's
                for sock in sockets:
                    with contextlib.suppress(OSError):
                        sock.close()
            for bind in opened:
                cleanup(bind)

    def _open_h3(
        self,
        sockets: list[socket.socket],
        lifespan: Lifespan,
        app: ASGIApp,
        live_tls: list[_Reloadable],
        sock: socket.socket | None = None,
    ) -> HTTP3Listener:
        """HTTP/3's endpoint on `sock` (a supervisor's), or on a UDP socket opened here at
        the TLS listener's host and port (or `.h3(bind=)`)."""
        from pounce.drivers.http3_endpoint import HTTP3Listener

        spec_h3 = self.spec.h3
        assert spec_h3 is not None
        if sock is None:
            name = sockets[0].getsockname() if sockets else None
            tcp = (str(name[0]), int(name[1])) if isinstance(name, tuple) else None
            try:
                host, port = spec_h3.address(tcp)
            except ValueError as exc:
                raise TransportError(str(exc), hint="give --http3-bind HOST:PORT") from exc
            sock = open_udp(host, port)
        context = ServiceContext(
            app,
            self.spec.http,
            state=lifespan.state,
            events=self.events,
            request_ids=self.spec.request_ids,
        )
        tunnels = {
            token: factory
            for factory in self.spec.protocols
            if factory.tunnels
            for token in factory.upgrade_tokens
        }
        listener = HTTP3Listener(spec_h3, context, sock, tunnels)
        live_tls.append(listener.certificate)
        return listener

    def _handler_factory(
        self, service: ServiceContext, live_tls: list[_Reloadable]
    ) -> HandlerFactory:
        """The stream layers folded around the protocol bridge, for one serve.

        A TLS layer's live context is collected in `live_tls`, for reloads.
        """
        factory = bridge_factory(self.spec.protocols, service)
        for layer in reversed(self.spec.stream_layers):
            if isinstance(layer, TLSLayer):
                factory, tls = layer.wrap_serving(factory)
                live_tls.append(tls)
            else:
                factory = layer.wrap(factory)
        return factory

    async def _shut_down(
        self,
        servers: list[asyncio.Server | Acceptor],
        service: ServiceContext,
        tracker: ConnectionTracker,
        h3: HTTP3Listener | None = None,
    ) -> None:
        error_log.info("Shutting down")
        for server in servers:
            server.close()
        if h3 is not None:  # GOAWAY: HTTP/3 requests in flight finish, as the TCP ones do
            h3.begin_shutdown()
        # Requests that have reached us are answered, not dropped: a connection
        # accepted just now, or kept alive, may hold a request not read yet (a
        # rolling restart drains workers under load). Two loop turns read it —
        # asyncio runs this task ahead of the reads its next poll schedules.
        for _ in range(SETTLE_TURNS):
            await asyncio.sleep(0)
        service.begin_shutdown()
        tracker.begin_shutdown()
        timeout = self.spec.graceful_timeout
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        if len(tracker) and not await tracker.wait_closed(timeout):
            error_log.warning(
                "Graceful shutdown timed out after %g s; closing %d connection(s)",
                timeout,
                len(tracker),
            )
            tracker.abort_all()
        if h3 is not None and len(h3.endpoint):
            left = max(0.0, deadline - loop.time())
            if not await h3.endpoint.wait_closed(left):
                error_log.warning(
                    "Graceful shutdown timed out after %g s; closing %d HTTP/3 connection(s)",
                    timeout,
                    len(h3.endpoint),
                )

    def run(self, **options: Unpack[WorkerKeywords]) -> None:
        """Serve until SIGINT or SIGTERM (graceful; a second one forces exit).

        One worker (the default): serve in this process, on a new event loop.
        More (`workers`), or `max_requests`: a supervisor opens the listeners
        once and keeps that many workers serving them — processes (forked)
        or, on a free-threaded Python, threads (`worker_class`), with
        SO_REUSEPORT sockets per worker if `reuse_port`, each replaced after
        `max_requests` (+ up to `max_requests_jitter`) requests, or when its
        event loop does not answer a heartbeat for
        `timeout_worker_healthcheck` seconds. SIGHUP is then a rolling
        restart and SIGTTIN / SIGTTOU add / remove a worker. A supervisor
        that gives up on workers failing at start-up raises
        ``SystemExit(3)``. The options, their defaults and units:
        `pounce.workers.options.WorkerOptions`; docs/workers.md.
        """
        from pounce.workers import from_keywords, needs_supervisor, supervise

        checked = from_keywords(options)
        if needs_supervisor(checked):
            code = supervise(self, checked)
            if code:
                raise SystemExit(code)
            return
        with asyncio.Runner(loop_factory=loop_factory(self.spec.loop)) as runner:
            runner.run(self._serve_until_signalled())

    async def _serve_until_signalled(self) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        task = asyncio.current_task()

        def on_signal() -> None:
            if stop.is_set() and task is not None:
                task.cancel()  # second signal: do not wait for the graceful timeout
            stop.set()

        installed = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
                loop.add_signal_handler(sig, on_signal)
                installed.append(sig)
        if self.uses_tls:
            with contextlib.suppress(NotImplementedError, RuntimeError, ValueError, AttributeError):
                loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
                installed.append(signal.SIGHUP)
        try:
            await self.serve(stop=stop, ready=_freeze_startup_objects)
        except asyncio.CancelledError:
            error_log.warning("Forced exit")
        finally:
            for sig in installed:
                loop.remove_signal_handler(sig)


def _describe_subscriber(subscriber: object) -> str:
    describe = getattr(subscriber, "describe", None)
    if callable(describe):
        return str(describe())
    name = getattr(subscriber, "__qualname__", None) or type(subscriber).__qualname__
    return f"{getattr(subscriber, '__module__', '?')}.{name}"


def _freeze_startup_objects(addresses: list[Any]) -> None:
    """Keep everything alive at start-up (modules, the app, lifespan state) out of GC scans.

    With requests in flight whenever the collector runs, their objects keep
    being promoted, and every full collection then walked the whole heap: a
    pause of several milliseconds that set the p99 latency (measured: 7 ms →
    3 ms with wrk -c64). `gc.freeze()` moves the start-up heap to a permanent
    generation. Only `run()`, which owns the process, does this; `serve()`
    inside someone else's loop leaves the collector alone.
    """
    gc.freeze()


def _keep_fresh(events: EventBus | None) -> asyncio.Task[None] | None:
    """Ask the subscribers that can be off whether they are on (`EventBus.refresh`): now,
    then every `REFRESH_INTERVAL` seconds while this serve runs (None: none can be off)."""
    if events is None or not events.switchable:
        return None
    events.refresh()
    return asyncio.get_running_loop().create_task(_refresh_every(events))


async def _refresh_every(events: EventBus) -> None:
    while True:
        await asyncio.sleep(REFRESH_INTERVAL)
        events.refresh()
