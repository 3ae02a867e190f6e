"""`Server`: a built, checked stack, and the loop that serves it.

Serving goes: lifespan startup → open every listener (a port in use is a
`TransportError` before anything is served) → one asyncio server per listener
whose connections enter the outermost stream layer → wait for a stop signal
→ graceful shutdown: stop accepting, close idle keep-alive connections at
once, let in-flight responses finish up to the graceful timeout, abort the
rest → lifespan shutdown.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Unpack

from pounce.asgi.lifespan import Lifespan
from pounce.asgi.types import ASGIApp
from pounce.builder import ServerBuilder, ServerSpec
from pounce.conn import HandlerFactory
from pounce.drivers.bridge import bridge_factory
from pounce.drivers.service import ServiceContext
from pounce.errors import TLSError
from pounce.events import EventBus, WorkerStarted, WorkerStopped, bus_for, worker_name
from pounce.layer import Serving
from pounce.layers.tls.config import ServerTLS
from pounce.layers.tls.layer import TLSLayer
from pounce.net.binds import Bind, cleanup, display_address, open_socket
from pounce.net.loops import loop_factory
from pounce.net.transport import ConnectionTracker, ObservedTransportAdapter, TransportAdapter

if TYPE_CHECKING:
    from pounce.keywords import WorkerKeywords

error_log = logging.getLogger("pounce.error")

SETTLE_TURNS = 2  # event loop turns between closing the listeners and closing idle connections

ReadyCallback = Callable[[list[Any]], None]
"""Called once listening, with each listener's ``getsockname()``."""


async def _no_app(scope: Any, receive: Any, send: Any) -> None:
    raise RuntimeError("this server has no ASGI app")


class Server:
    """A server description that has passed every check; serve it as often as you like."""

    def __init__(self, spec: ServerSpec) -> None:
        self.spec = spec
        # The TLS contexts of the serves running now (one list per serve), so
        # reload_tls() reaches every worker. Not configuration: bookkeeping that
        # serves on other threads add to and remove from, under this lock.
        self._live_tls: dict[int, list[ServerTLS]] = {}
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
        lines += [f"stream   {layer.describe()}" for layer in spec.stream_layers]
        lines += [f"protocol {factory.describe()}" for factory in spec.protocols]
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
    ) -> None:
        """Serve until `stop` is set, then shut down gracefully.

        Both planes are wrapped afresh for each call — one per worker — while
        this `Server` stays immutable and shareable. `sockets`: listening
        sockets already open (a supervisor opens them once for every worker);
        they are served instead of the binds and left open afterwards.
        `announce`: log the "Pounce running on" line (a supervisor logs it
        once for all its workers instead).
        """
        stop = stop or asyncio.Event()
        serving = Serving(self.events)
        app = self._wrap_app(serving)
        lifespan = Lifespan(app, self.spec.lifespan)
        await lifespan.startup()
        try:
            await self._serve_listening(app, lifespan, stop, ready, sockets, announce, serving)
        finally:
            await lifespan.shutdown()

    async def _serve_listening(
        self,
        app: ASGIApp,
        lifespan: Lifespan,
        stop: asyncio.Event,
        ready: ReadyCallback | None,
        given: Sequence[socket.socket] | None,
        announce: bool = True,
        serving: Serving | None = None,
    ) -> None:
        spec = self.spec
        sockets: list[socket.socket] = list(given or ())
        opened: list[Bind] = []
        live_tls: list[ServerTLS] = []
        try:
            if given is None:
                for bind in spec.binds:
                    sockets.append(open_socket(bind, spec.backlog))
                    opened.append(bind)
            events = self.events
            service = ServiceContext(
                app, spec.http, state=lifespan.state, events=events, request_ids=spec.request_ids
            )
            tracker = ConnectionTracker()
            factory = self._handler_factory(service, live_tls)
            with self._live_lock:
                self._live_tls[id(live_tls)] = live_tls
            loop = asyncio.get_running_loop()
            send_timeout = spec.http.send_timeout

            def adapter() -> TransportAdapter:
                if events is None or not events.connections:
                    return TransportAdapter(factory, tracker, send_timeout)
                return ObservedTransportAdapter(factory, tracker, send_timeout, events)

            servers = [
                await loop.create_server(
                    adapter,
                    # asyncio closes the socket it serves: a given one is shared, so
                    # this serve() gets a duplicate of its own.
                    sock=sock if given is None else sock.dup(),
                    backlog=spec.backlog,
                )
                for sock in sockets
            ]
            for sock in sockets if announce else ():
                address = display_address(sock)
                if self.uses_tls:
                    address = address.replace("http://", "https://", 1)
                error_log.info("Pounce running on %s (Press CTRL+C to quit)", address)
            if ready is not None:
                ready([sock.getsockname() for sock in sockets])
            if events is not None:
                events.emit(WorkerStarted(worker=worker_name()))
            await stop.wait()
            if serving is not None:
                serving.draining = True  # readiness fails first (docs/backpressure.md)
            await self._shut_down(servers, service, tracker)
            if events is not None:
                events.emit(WorkerStopped(worker=worker_name()))
        finally:
            with self._live_lock:
                self._live_tls.pop(id(live_tls), None)
            if given is None:  # ours to close; given sockets are the caller's
                for sock in sockets:
                    with contextlib.suppress(OSError):
                        sock.close()
            for bind in opened:
                cleanup(bind)

    def _handler_factory(
        self, service: ServiceContext, live_tls: list[ServerTLS]
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
        servers: list[asyncio.Server],
        service: ServiceContext,
        tracker: ConnectionTracker,
    ) -> None:
        error_log.info("Shutting down")
        for server in servers:
            server.close()
        # Requests that have reached us are answered, not dropped: a connection
        # accepted just now, or kept alive, may hold a request not read yet (a
        # rolling restart drains workers under load). Two loop turns read it —
        # asyncio runs this task ahead of the reads its next poll schedules.
        for _ in range(SETTLE_TURNS):
            await asyncio.sleep(0)
        service.begin_shutdown()
        tracker.begin_shutdown()
        timeout = self.spec.graceful_timeout
        if len(tracker) and not await tracker.wait_closed(timeout):
            error_log.warning(
                "Graceful shutdown timed out after %g s; closing %d connection(s)",
                timeout,
                len(tracker),
            )
            tracker.abort_all()

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
