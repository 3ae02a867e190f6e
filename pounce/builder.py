"""`ServerBuilder`: the one way every front end describes a server.

The builder is immutable: each method returns a new builder, so a partial
description can be shared and extended safely. **Call order is wire-to-app
order**: the first layer call is outermost. ``.asgi(app)`` (or ``.build()``
for a server with no ASGI app, e.g. a raw line protocol) checks everything and
returns a `Server`; nothing is bound until it is served.

Example — access log outside a custom header layer::

    Server.builder()
        .bind("127.0.0.1", 8000)      # listener
        .h1()                         # protocol set
        .access_log()                 # an event subscriber (order does not matter)
        .layer(AddHeader(b"x-a", b"1"))  # app layer
        .asgi(app)                    # the app, innermost
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal, Unpack

from pounce.asgi.lifespan import LifespanMode
from pounce.asgi.types import ASGIApp
from pounce.drivers.bridge import ProtocolFactory, offer_tunnels
from pounce.drivers.http1 import H1Options
from pounce.drivers.http2_options import HTTP2Options
from pounce.drivers.http3_options import HTTP3Options, HTTP3Service
from pounce.drivers.service import HTTPOptions, RequestOptions, ResponseHeaders, Timeouts
from pounce.drivers.websocket_options import WebSocketOptions
from pounce.errors import BuildError, TLSError
from pounce.events import SubscriberFn
from pounce.keywords import (
    AccessLogKeywords,
    CompressKeywords,
    DebugKeywords,
    H1Keywords,
    H2Keywords,
    H3Keywords,
    HealthKeywords,
    LimitKeywords,
    MetricsKeywords,
    OtelKeywords,
    ProxyHeadersKeywords,
    ProxyProtocolKeywords,
    RateLimitKeywords,
    RequestIdKeywords,
    ResponseHeaderKeywords,
    SentryKeywords,
    StaticKeywords,
    TimeoutKeywords,
    TLSKeywords,
    WebSocketKeywords,
)
from pounce.layer import AppLayer, StreamLayer
from pounce.layers.compression import Compression
from pounce.layers.debug import Debug
from pounce.layers.health import Health
from pounce.layers.limit import ConcurrencyLimit
from pounce.layers.proxy.headers import ProxyHeadersLayer
from pounce.layers.proxy.options import ProxyHeadersOptions, ProxyProtocolOptions
from pounce.layers.proxy.protocol import ProxyProtocolLayer
from pounce.layers.rate_limit import RateLimit
from pounce.layers.sentry import Sentry
from pounce.layers.server_timing import ServerTiming
from pounce.layers.static import Static, StaticOptions
from pounce.layers.tls.config import TLSConfig
from pounce.layers.tls.layer import TLSLayer
from pounce.net.binds import DEFAULT_BACKLOG, Bind, FdBind, ListenOptions, TCPBind, UnixBind
from pounce.net.loops import LoopChoice, resolve_loop
from pounce.observe.access_log import AccessLog, AccessLogOptions
from pounce.observe.metrics_options import MetricsOptions, OtelOptions, split_bind
from pounce.observe.request_id import RequestIdOptions, RequestIds
from pounce.options import check_value, keywords, option, option_of

if TYPE_CHECKING:
    from pounce.server import Server

Layer = StreamLayer | AppLayer


@dataclass(frozen=True, slots=True, kw_only=True)
class ServeOptions:
    """The options of `.lifespan()` and `.loop()`."""

    options_group = "server"

    lifespan: LifespanMode = option(
        "auto",
        help="ASGI lifespan: auto tolerates apps without it, on requires it, off skips it",
        call=".lifespan(mode)",
    )
    loop: LoopChoice = option(
        "auto",
        help="event loop: asyncio or uvloop (pounce[uvloop]); auto = uvloop if installed",
        call=".loop(choice)",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    """Everything a `Server` is made of; checked and frozen."""

    binds: tuple[Bind, ...]
    backlog: int
    max_connections: int | None
    stream_layers: tuple[StreamLayer, ...]
    protocols: tuple[ProtocolFactory, ...]
    app_layers: tuple[AppLayer, ...]
    app: ASGIApp | None
    app_name: str
    http: HTTPOptions
    lifespan: LifespanMode
    graceful_timeout: float
    loop: Literal["asyncio", "uvloop"]
    h3: HTTP3Service | None = None
    """HTTP/3 on UDP beside the TLS listeners (`.h3()`), with their certificate."""
    observers: tuple[SubscriberFn, ...] = ()
    """Lifecycle event subscribers (`pounce.events`), in `.observe()` order."""
    request_ids: RequestIds | None = None


@dataclass(frozen=True, slots=True)
class ServerBuilder:
    """An immutable, chainable description of a server; see the module docstring.

    Each call's options are defined once, on its options dataclass
    (`pounce.options`): a wrong type (a bool where a number belongs), a value
    out of range, NaN, infinity or an unknown keyword is a `BuildError`
    naming the call, raised by the call itself.
    """

    _binds: tuple[Bind, ...] = ()
    _backlog: int = DEFAULT_BACKLOG
    _max_connections: int | None = None
    _layers: tuple[Layer, ...] = ()
    _protocols: tuple[ProtocolFactory, ...] = ()
    _timeouts: Timeouts = field(default_factory=Timeouts)
    _headers: ResponseHeaders = field(default_factory=ResponseHeaders)
    _requests: RequestOptions = field(default_factory=RequestOptions)
    _serve: ServeOptions = field(default_factory=ServeOptions)
    _h3: HTTP3Options | None = None
    _observers: tuple[SubscriberFn, ...] = ()
    _request_ids: RequestIds | None = None
    _metrics: AppLayer | None = None  # the metrics endpoint: ahead of every app layer

    # -- listeners ----------------------------------------------------------------

    def bind(self, host: str, port: int) -> ServerBuilder:
        """Listen on TCP `host`:`port` (IPv4 or IPv6 literal; port 0 = any free port)."""
        check_value(f".bind({host!r}, {port!r}): port", option_of(ListenOptions, "port"), port)
        if not isinstance(host, str) or not host:
            raise BuildError(".bind(): host must not be empty", hint='use "0.0.0.0" for all')
        return replace(self, _binds=(*self._binds, TCPBind(host.strip("[]"), port)))

    def bind_unix(self, path: str, *, mode: int | None = None) -> ServerBuilder:
        """Listen on a Unix domain socket; `mode` (e.g. ``0o660``) sets the file mode."""
        if not isinstance(path, str) or not path:
            raise BuildError(".bind_unix(): path must not be empty")
        if mode is not None:
            check_value(f".bind_unix(mode={mode!r}):", option_of(ListenOptions, "uds_mode"), mode)
        return replace(self, _binds=(*self._binds, UnixBind(path, mode)))

    def bind_fd(self, fd: int) -> ServerBuilder:
        """Serve on a listening socket inherited as file descriptor `fd`."""
        check_value(f".bind_fd({fd!r}): fd", option_of(ListenOptions, "fd"), fd)
        return replace(self, _binds=(*self._binds, FdBind(fd)))

    def backlog(self, size: int) -> ServerBuilder:
        """Pending-connection queue per listener (connections; default 2048)."""
        check_value(f".backlog({size!r}):", option_of(ListenOptions, "backlog"), size)
        return replace(self, _backlog=size)

    def max_connections(self, cap: int | None) -> ServerBuilder:
        """At most `cap` open connections per worker (None: no cap, the default).

        At the cap the worker stops accepting: further clients wait in the
        listen backlog until a connection closes, instead of being accepted
        and closed (docs/backpressure.md, "The connection cap").
        """
        option = option_of(ListenOptions, "max_connections")
        check_value(f".max_connections({cap!r}):", option, cap)
        return replace(self, _max_connections=cap)

    # -- protocols ------------------------------------------------------------------

    def h1(self, **options: Unpack[H1Keywords]) -> ServerBuilder:
        """Serve HTTP/1.0 and HTTP/1.1 (`H1Options`).

        Limits in bytes: request head 16 KiB (answer 431), request line 8 KiB (414).
        `parser`: ``"fast"`` (pure-Python, the default for ``"auto"``) or
        ``"h11"`` (the reference implementation); both are equally strict.
        """
        h1 = H1Options(**keywords(H1Options, ".h1", options))
        return self.protocol(h1.protocol())

    def h2(self, **options: Unpack[H2Keywords]) -> ServerBuilder:
        """Serve HTTP/2: ALPN ``h2`` over TLS, prior knowledge on cleartext (needs ``h2``).

        Options (`HTTP2Options`): 100 concurrent streams per connection;
        windows of 65 535 B per stream and 1 MiB per connection, credited as
        the app reads; frames up to 16 384 B; decoded header lists up to 64
        KiB; 200 reset streams (beyond half the completed ones) before GOAWAY
        ENHANCE_YOUR_CALM. See docs/http2.md.
        """
        try:
            from pounce.drivers.http2 import HTTP2Protocol
        except ImportError as exc:
            raise BuildError(
                ".h2(): HTTP/2 needs the h2 package", hint="pip install pounce[h2]"
            ) from exc
        h2 = HTTP2Options(**keywords(HTTP2Options, ".h2", options))
        return self.protocol(HTTP2Protocol(h2.settings()))

    def h3(self, **options: Unpack[H3Keywords]) -> ServerBuilder:
        """Serve HTTP/3 over QUIC on UDP too (needs ``aioquic``: ``pounce[h3]``; docs/http3.md).

        Needs `.tls()`: QUIC uses the same certificate and key (and reloads
        them with it). Listens on the TLS listener's host and port (UDP) unless
        `bind` (``"HOST:PORT"``) says otherwise; the TLS listeners then
        advertise it with ``Alt-Svc`` (`alt_svc`). Options (`HTTP3Options`):
        100 concurrent streams; windows of 256 KiB per stream and 1 MiB per
        connection, credited as the app reads; 30 s idle timeout; datagrams up
        to 1350 B; decoded request heads up to 64 KiB; 200 reset streams
        (beyond half the completed ones) before H3_EXCESSIVE_LOAD. 0-RTT is
        never accepted (replay).
        """
        try:
            import pounce.drivers.http3_endpoint  # noqa: F401  (aioquic is importable)
        except ImportError as exc:
            raise BuildError(
                ".h3(): HTTP/3 needs the aioquic package", hint="pip install 'pounce[h3]'"
            ) from exc
        return replace(self, _h3=HTTP3Options(**keywords(HTTP3Options, ".h3", options)))

    def websocket(self, **options: Unpack[WebSocketKeywords]) -> ServerBuilder:
        """Serve WebSocket (RFC 6455) over HTTP/1.1 Upgrade (needs ``wsproto``; docs/websocket.md).

        Options (`WebSocketOptions`): messages up to 16 MiB after
        decompression (`max_size`; larger → close 1009); 32 received messages
        queued for the app before reading pauses (`max_queue`); a ping every
        20 s (`ping_interval`, None: off) and close 1011 when its pong takes
        over 20 s (`ping_timeout`, None: wait forever); permessage-deflate
        accepted when offered (`per_message_deflate`). Needs `.h1()`.
        """
        try:
            from pounce.drivers.websocket import WebSocketProtocol
        except ImportError as exc:
            raise BuildError(
                ".websocket(): WebSocket needs the wsproto package", hint="pip install pounce[ws]"
            ) from exc
        ws = WebSocketOptions(**keywords(WebSocketOptions, ".websocket", options))
        return self.protocol(WebSocketProtocol(ws))

    def protocol(self, factory: ProtocolFactory) -> ServerBuilder:
        """Add a protocol to the set the bridge picks from per connection."""
        if not isinstance(factory, ProtocolFactory):
            raise BuildError(
                f".protocol({factory!r}): expected a ProtocolFactory",
                hint="subclass pounce.ProtocolFactory and implement handler()",
            )
        kept = tuple(p for p in self._protocols if p.name != factory.name)
        return replace(self, _protocols=(*kept, factory))

    # -- layers -----------------------------------------------------------------------

    def layer(self, layer: Layer) -> ServerBuilder:
        """Add a `StreamLayer` or `AppLayer`; call order is wire-to-app order."""
        if not isinstance(layer, StreamLayer | AppLayer):
            raise BuildError(
                f".layer({layer!r}): expected a StreamLayer or AppLayer",
                hint="subclass pounce.StreamLayer (bytes) or pounce.AppLayer (ASGI)",
            )
        return replace(self, _layers=(*self._layers, layer))

    def access_log(self, **options: Unpack[AccessLogKeywords]) -> ServerBuilder:
        """Log one line per response on the ``pounce.access`` logger (docs/logging.md).

        A subscriber of the lifecycle events (`.observe()`), so where it is
        called in the chain does not matter: it logs every response, the
        limits' 503 and 429 included, health probes excepted. `format`: the
        line, with named fields (`pounce.observe.access_log.FIELDS`).
        """
        checked = AccessLogOptions(**keywords(AccessLogOptions, ".access_log", options))
        kept = tuple(o for o in self._observers if not isinstance(o, AccessLog))
        return replace(self, _observers=(*kept, AccessLog(checked)))

    def observe(self, subscriber: SubscriberFn) -> ServerBuilder:
        """Hand every lifecycle event (`pounce.events`) to `subscriber` (docs/observability.md).

        A subscriber is a callable taking one event, or a `pounce.events.Subscriber`
        with ``on_<kind>`` methods. Subscribers run in call order on the worker's
        loop; one that raises is logged and never breaks a request. A server
        with none builds no event at all.
        """
        if not callable(subscriber):
            raise BuildError(
                f".observe({subscriber!r}): a subscriber must be callable with one event",
                hint="pass a function event -> None, or a pounce.events.Subscriber",
            )
        return replace(self, _observers=(*self._observers, subscriber))

    def metrics(self, **options: Unpack[MetricsKeywords]) -> ServerBuilder:
        """Prometheus metrics (``pounce[prometheus]``) from the lifecycle events, served at
        `path` on the main listener ahead of every app layer (docs/observability.md)."""
        checked = MetricsOptions(**keywords(MetricsOptions, ".metrics", options))
        if checked.path is None and checked.bind is None:
            raise BuildError(
                ".metrics(): path= or bind= is required",
                hint='e.g. .metrics(path="/metrics") or .metrics(bind="127.0.0.1:9100")',
            )
        try:
            from pounce.observe.prometheus import metrics_stack
        except ImportError as exc:
            raise BuildError(
                ".metrics(): Prometheus metrics need prometheus-client",
                hint="pip install pounce[prometheus]",
            ) from exc
        port = None
        binds = self._binds
        if checked.bind is not None:
            host, port = split_bind(checked.bind)
            binds = (*binds, TCPBind(host, port))
        subscriber, endpoint = metrics_stack(checked.path, port)
        observers: tuple[SubscriberFn, ...] = (*self._observers, subscriber)
        return replace(self, _observers=observers, _metrics=endpoint, _binds=binds)

    def otel(self, **options: Unpack[OtelKeywords]) -> ServerBuilder:
        """An OpenTelemetry server span per request, current while the app runs, joined to
        the caller's trace (W3C ``traceparent``); needs ``pounce[otel]`` (docs/observability.md).

        One switch, two places: an app layer that starts the span and makes it current
        (call it after `.proxy_headers()` so the span names the real client, and before
        the limits so their refusals are traced too), and a subscriber of the lifecycle
        events that sets the response's figures and ends the span at its last byte.
        Called again, it replaces the first.
        """
        checked = OtelOptions(**keywords(OtelOptions, ".otel", options))
        try:
            from pounce.observe.otel import OtelTracing
        except ImportError as exc:
            raise BuildError(
                ".otel(): tracing needs opentelemetry-api", hint="pip install pounce[otel]"
            ) from exc
        tracing = OtelTracing(checked.tracer_provider)
        layers = tuple(x for x in self._layers if not isinstance(x, OtelTracing))
        observers = tuple(o for o in self._observers if not isinstance(o, OtelTracing))
        return replace(self, _layers=(*layers, tracing), _observers=(*observers, tracing))

    def request_id(self, **options: Unpack[RequestIdKeywords]) -> ServerBuilder:
        """Give each request an id: `header` (``x-request-id``) from a `trusted` peer, or
        a random one; in the scope, the events, the log lines, and with `echo` the response."""
        checked = RequestIdOptions(**keywords(RequestIdOptions, ".request_id", options))
        return replace(self, _request_ids=RequestIds(checked))

    # -- backpressure (docs/backpressure.md) -------------------------------------------

    def health(self, **options: Unpack[HealthKeywords]) -> ServerBuilder:
        """Answer `live` (``/livez``: 200 while the loop turns) and `ready` (``/readyz``:
        503 with ``Connection: close`` while the worker drains or its limit's queue is
        full). Neither reaches the app; call it before `.rate_limit()` and `.limit()`."""
        return self.layer(Health(**keywords(Health, ".health", options)))

    def limit(self, **options: Unpack[LimitKeywords]) -> ServerBuilder:
        """At most `max_in_flight` requests in the app per worker; `queue` more wait.

        HTTP/1.1 requests, HTTP/2 streams and WebSocket handshakes count. Up to
        `queue` (default 0) wait first come first served for at most
        `queue_timeout` seconds (10); the rest, and those that wait too long,
        get 503 with ``Retry-After: 1``. A waiting request whose client leaves
        never reaches the app. An app layer: its place in the call order is
        its place in the stack (after `.rate_limit()`, so a metered client
        takes no place).
        """
        return self.layer(ConcurrencyLimit(**keywords(ConcurrencyLimit, ".limit", options)))

    def rate_limit(self, **options: Unpack[RateLimitKeywords]) -> ServerBuilder:
        """A token bucket per client: `rate` (``"100/s"``, ``"600/m"``), `burst` at once.

        The key is the client address (call `.proxy_headers()` first behind a
        proxy: the builder refuses the other order) or what `key(scope)`
        returns (None: not metered). Past it: 429 with ``Retry-After`` and the
        ``RateLimit-Policy`` / ``RateLimit`` fields, which every response
        carries. At most `max_keys` (10 000) clients are remembered per
        worker, least recently seen forgotten first.
        """
        return self.layer(RateLimit(**keywords(RateLimit, ".rate_limit", options)))

    def compress(self, **options: Unpack[CompressKeywords]) -> ServerBuilder:
        """Compress responses with the best coding the client accepts (docs/compression.md).

        Codings `algorithms` (default br > zstd > gzip, those installed; one named here and
        not installed is a `BuildError`), levels `brotli_level` 4, `gzip_level` 6,
        `zstd_level` 3; bodies of known length under `minimum_size` (500 B), already
        encoded, ranges, ``no-transform``, compressed types and (unless `event_stream`)
        server-sent events pass as they are. Streamed bodies are flushed per chunk.
        `decompress_requests`: inflate request bodies up to `max_request_size` (16 MiB; 413).
        Call it after the limits: it is the innermost of the standard layers.
        """
        return self.layer(Compression(**keywords(Compression, ".compress", options)))

    # -- development and observability (docs/devtools.md) ---------------------------------

    def debug(self, **options: Unpack[DebugKeywords]) -> ServerBuilder:
        """Answer an app failure before its response started with a page showing the
        exception, its traceback and the request (secret headers masked): HTML for
        browsers, text otherwise. For development only: refused at build on a listener
        that is not loopback or a Unix socket unless `allow_remote`. Call it last, next
        to the app."""
        return self.layer(Debug(**keywords(Debug, ".debug", options)))

    def server_timing(self) -> ServerBuilder:
        """Add a ``Server-Timing`` header to every HTTP response: the milliseconds the
        request waited in `.limit()`'s queue (``queue``, when it waited) and spent in the
        app up to its response start (``app``), for browser devtools. Call it before
        `.rate_limit()` and `.limit()`."""
        return self.layer(ServerTiming())

    def sentry(self, **options: Unpack[SentryKeywords]) -> ServerBuilder:
        """Report every exception that leaves the app to Sentry, once, with the request's
        method, URL and headers (secrets masked); failures because the client left are
        not reported (needs ``pounce[sentry]``). `dsn`: default the ``SENTRY_DSN``
        variable; `client_options`: more ``sentry_sdk.Client`` keywords. Pounce's own
        client: ``sentry_sdk.init()`` and its integrations are left to the app."""
        return self.layer(Sentry(**keywords(Sentry, ".sentry", options)))

    # -- static files (docs/static.md) -----------------------------------------------

    def static(
        self, prefix: str, directory: str, **options: Unpack[StaticKeywords]
    ) -> ServerBuilder:
        """Serve the files of `directory` at `prefix` (``"/assets"``) in front of the app.

        GET and HEAD with validators, conditional requests and ranges;
        precompressed ``.br`` / ``.zst`` / ``.gz`` siblings; a miss goes on to
        the app. Paths that try to leave the directory get 404. An app
        layer: call it last to serve files after the limits and the access log.
        """
        checked = StaticOptions(**keywords(StaticOptions, ".static", options))
        return self.layer(Static(prefix, directory, checked))

    # -- the edge: PROXY protocol, TLS, forwarded headers (docs/tls.md, docs/proxies.md) --

    def proxy_protocol(self, **options: Unpack[ProxyProtocolKeywords]) -> ServerBuilder:
        """Read a HAProxy PROXY v1/v2 header first; the client is the one it names.

        `trusted`: peers allowed to send one (IPs, CIDR networks, ``*``,
        ``unix``; default loopback); others are closed unserved.
        `header_timeout`: seconds for the whole header (default 5).
        Must be the first stream layer: it reads the raw connection.
        """
        o = ProxyProtocolOptions(**keywords(ProxyProtocolOptions, ".proxy_protocol", options))
        if self._layers:
            raise BuildError(
                ".proxy_protocol(): must come before every other layer",
                hint="the header is the first thing on the wire: call it first",
            )
        return self.layer(ProxyProtocolLayer(o.trusted, header_timeout=o.header_timeout))

    def tls(self, **options: Unpack[TLSKeywords]) -> ServerBuilder:
        """Serve TLS with the event loop's own TLS; files are loaded and checked now.

        `cert`/`key`: PEM files (`key` may be inside `cert`); `password` for
        an encrypted key. `client_certs`: ``none`` (default), ``optional`` or
        ``required`` (also 0/1/2), checked against `ca` — or the system store
        through truststore (``pounce[tls]``) when `ca` is None. `ciphers`: an
        OpenSSL cipher string for TLS 1.2 (default OpenSSL's). `min_version`:
        ``"1.2"`` (default) or ``"1.3"``. `handshake_timeout`: seconds (10).
        ALPN offers every registered protocol's ids, ``h2`` first.
        Must be the first stream layer, or come right after `.proxy_protocol()`.
        """
        config = TLSConfig(**keywords(TLSConfig, ".tls", options))
        if not config.cert:
            raise BuildError(".tls(): cert= is required", hint="--ssl-certfile PATH on the CLI")
        if any(isinstance(layer, TLSLayer) for layer in self._layers):
            raise BuildError(".tls(): called twice")
        if any(not isinstance(layer, ProxyProtocolLayer) for layer in self._layers):
            raise BuildError(
                ".tls(): must come before every other layer except .proxy_protocol()",
                hint="call order is wire-to-app and TLS is next to the wire",
            )
        return self.layer(TLSLayer(config))

    def proxy_headers(self, **options: Unpack[ProxyHeadersKeywords]) -> ServerBuilder:
        """Take client, scheme and host from a trusted proxy's forwarding headers.

        RFC 7239 ``Forwarded``, else ``X-Forwarded-For/-Proto/-Host``; only
        from peers in `trusted` (IPs, CIDR networks, ``*``, ``unix``; default
        loopback). An app layer: call it before the other app layers (access
        log) so they see the real client.
        """
        o = ProxyHeadersOptions(**keywords(ProxyHeadersOptions, ".proxy_headers", options))
        return self.layer(ProxyHeadersLayer(o.trusted))

    # -- HTTP behaviour -------------------------------------------------------------------

    def timeouts(self, **options: Unpack[TimeoutKeywords]) -> ServerBuilder:
        """Seconds: idle keep-alive (5), whole request head (10), a request body's silence
        while the server is reading it (60; HTTP/1.1: 408), graceful shutdown (30), output
        that a client reads none of (`send`, 60; then the connection is aborted), an idle
        keep-alive connection once a graceful shutdown begins (`shutdown_idle`, 1).

        `request_body_min_rate`: bytes per second a request body must average after
        a 20 s grace (500, Apache's ``MinRate``; HTTP/1.1: 408); 0 turns it off.
        A keyword left out keeps its value (`Timeouts`).
        """
        checked = keywords(Timeouts, ".timeouts", options)
        return replace(self, _timeouts=replace(self._timeouts, **checked))

    def response_headers(self, **options: Unpack[ResponseHeaderKeywords]) -> ServerBuilder:
        """Default headers on every response: ``server``, ``date`` and `extra` pairs."""
        checked = keywords(ResponseHeaders, ".response_headers", options)
        return replace(self, _headers=replace(self._headers, **checked))

    def limit_request_body(self, max_bytes: int | None) -> ServerBuilder:
        """Answer 413 to request bodies over `max_bytes` (None: no limit, the default)."""
        opt = option_of(RequestOptions, "limit_request_body")
        check_value(f".limit_request_body({max_bytes!r}):", opt, max_bytes)
        return replace(self, _requests=replace(self._requests, limit_request_body=max_bytes))

    def root_path(self, path: str) -> ServerBuilder:
        """ASGI ``root_path``: the URL prefix the app is mounted under behind a proxy."""
        check_value(f".root_path({path!r}):", option_of(RequestOptions, "root_path"), path)
        return replace(self, _requests=replace(self._requests, root_path=path))

    def lifespan(self, mode: LifespanMode) -> ServerBuilder:
        """Lifespan protocol: ``auto`` (default), ``on`` or ``off``."""
        check_value(f".lifespan({mode!r}):", option_of(ServeOptions, "lifespan"), mode)
        return replace(self, _serve=replace(self._serve, lifespan=mode))

    def loop(self, choice: LoopChoice) -> ServerBuilder:
        """Event loop for run(): ``auto`` (uvloop if installed), ``asyncio`` or ``uvloop``."""
        check_value(f".loop({choice!r}):", option_of(ServeOptions, "loop"), choice)
        resolve_loop(choice)  # fail here, at the call that asked for it
        return replace(self, _serve=replace(self._serve, loop=choice))

    # -- finishing ---------------------------------------------------------------------------

    def asgi(self, app: ASGIApp, *, name: str | None = None) -> Server:
        """Serve `app` beneath everything configured so far; checks and builds."""
        if not callable(app):
            raise BuildError(
                f".asgi({app!r}): the app must be an ASGI callable",
                hint='to load "module:attr" use pounce.run() or the pounce CLI',
            )
        return self._build(app, name or _app_name(app))

    def build(self) -> Server:
        """Build a server without an ASGI app (its protocols must not need one)."""
        return self._build(None, "(none)")

    def _build(self, app: ASGIApp | None, app_name: str) -> Server:
        from pounce.server import Server

        stream_layers, app_layers = self._split_layers()
        if not self._binds:
            raise BuildError(
                "no listener configured", hint='call .bind("127.0.0.1", 8000) or .bind_unix(path)'
            )
        if not self._protocols:
            raise BuildError("no protocol configured", hint="call .h1() (HTTP/1.1)")
        _check_upgrades(self._protocols)
        for layer in app_layers:
            if isinstance(layer, Debug):
                layer.check_binds(self._binds)
        if app is None:
            _check_no_app_needed(self._protocols, app_layers)
        timeouts = self._timeouts
        spec = ServerSpec(
            binds=self._binds,
            backlog=self._backlog,
            max_connections=self._max_connections,
            stream_layers=_offer_alpn(stream_layers, self._protocols),
            protocols=offer_tunnels(self._protocols),
            app_layers=app_layers if self._metrics is None else (self._metrics, *app_layers),
            app=app,
            app_name=app_name,
            http=self._http_options(),
            lifespan=self._serve.lifespan if app is not None else "off",
            graceful_timeout=timeouts.graceful_shutdown,
            loop=resolve_loop(self._serve.loop),
            h3=self._h3_service(stream_layers),
            observers=self._observers,
            request_ids=self._request_ids,
        )
        return Server(spec)

    def _h3_service(self, stream_layers: tuple[StreamLayer, ...]) -> HTTP3Service | None:
        """`.h3()` checked against the rest: TLS on, no client certificates, a place to listen."""
        if self._h3 is None:
            return None
        tls = next((layer for layer in stream_layers if isinstance(layer, TLSLayer)), None)
        if tls is None:
            raise BuildError(
                ".h3(): HTTP/3 needs .tls() (QUIC always encrypts, with the same certificate)",
                hint="call .tls(cert=...) (--ssl-certfile on the CLI)",
            )
        config = tls.config
        if config.client_certs != "none":
            raise BuildError(
                ".h3(): HTTP/3 cannot ask for client certificates (aioquic's server does not)",
                hint="serve mTLS over TCP only: drop .h3() / --http3",
            )
        if self._h3.bind is None and not isinstance(self._binds[0], TCPBind):
            raise BuildError(
                ".h3(): the first listener is not TCP, so there is no port to share",
                hint='give bind="HOST:PORT" (--http3-bind)',
            )
        from pounce.drivers.http3_endpoint import QuicCertificate

        try:
            QuicCertificate(config.cert, config.key, config.password)
        except TLSError as exc:
            raise BuildError(f".h3(): {exc}") from exc
        return HTTP3Service(self._h3, config.cert, config.key, config.password)

    def _http_options(self) -> HTTPOptions:
        """The flat view the drivers read per request, from the calls' options."""
        t, h, r = self._timeouts, self._headers, self._requests
        extra = tuple((n.lower().encode("latin-1"), v.encode("latin-1")) for n, v in h.extra)
        return HTTPOptions(
            keep_alive_timeout=t.keep_alive,
            request_head_timeout=t.request_head,
            shutdown_idle_timeout=t.shutdown_idle,
            request_body_timeout=t.request_body,
            request_body_min_rate=t.request_body_min_rate or None,
            send_timeout=t.send,
            max_request_body=r.limit_request_body,
            root_path=r.root_path,
            server_header=h.server,
            date_header=h.date,
            extra_headers=extra,
        )

    def _split_layers(self) -> tuple[tuple[StreamLayer, ...], tuple[AppLayer, ...]]:
        stream: list[StreamLayer] = []
        app: list[AppLayer] = []
        for index, layer in enumerate(self._layers):
            _check_edge_position(layer, index, self._layers[:index])
            _check_metered_after_forwarding(layer, self._layers[:index])
            _check_health_before_limits(layer, self._layers[:index])
            _check_timing_before_limits(layer, self._layers[:index])
            if isinstance(layer, StreamLayer):
                if app:
                    raise BuildError(
                        f".layer({layer.describe()}): a stream layer cannot come after "
                        f"the app layer {app[-1].describe()}",
                        hint="call order is wire-to-app: add stream layers before app layers",
                    )
                stream.append(layer)
            else:
                app.append(layer)
        return tuple(stream), tuple(app)


def _check_edge_position(layer: Layer, index: int, before: tuple[Layer, ...]) -> None:
    """PROXY protocol and TLS read the raw connection (`SetupConn`): outermost only."""
    if isinstance(layer, ProxyProtocolLayer) and index != 0:
        raise BuildError(
            f".layer({layer.describe()}): the PROXY protocol layer must be the first layer"
        )
    if isinstance(layer, TLSLayer) and not all(isinstance(b, ProxyProtocolLayer) for b in before):
        raise BuildError(
            f".layer({layer.describe()}): the TLS layer must be first, or right after "
            ".proxy_protocol()"
        )


def _check_metered_after_forwarding(layer: Layer, before: tuple[Layer, ...]) -> None:
    """A rate limit keyed by client address meters the proxy if it runs before the
    forwarded-headers layer has put the real client in the scope."""
    if not isinstance(layer, ProxyHeadersLayer):
        return
    for earlier in before:
        if isinstance(earlier, RateLimit) and earlier.client_keyed:
            raise BuildError(
                f".rate_limit() ({earlier.describe()}) comes before .proxy_headers(): it would "
                "meter the proxy's address, not the client's",
                hint="call .proxy_headers() first, or give .rate_limit() a key= that is not "
                "the client address",
            )


def _check_health_before_limits(layer: Layer, before: tuple[Layer, ...]) -> None:
    """Health probes must not be metered or counted: health comes before the limits."""
    if not isinstance(layer, Health):
        return
    for earlier in before:
        if isinstance(earlier, RateLimit | ConcurrencyLimit):
            raise BuildError(
                f".health() comes after {earlier.describe()}: probes would be metered or "
                "counted, and refused when the server is busy",
                hint="call .health() before .rate_limit() and .limit()",
            )


def _check_timing_before_limits(layer: Layer, before: tuple[Layer, ...]) -> None:
    """The queue wait is reported to a Server-Timing layer outside the limit only."""
    if not isinstance(layer, ServerTiming):
        return
    for earlier in before:
        if isinstance(earlier, ConcurrencyLimit):
            raise BuildError(
                f".server_timing() comes after {earlier.describe()}: the time requests wait "
                "in its queue would be missing from the header",
                hint="call .server_timing() before .limit()",
            )


def _check_upgrades(protocols: tuple[ProtocolFactory, ...]) -> None:
    """A protocol reached by HTTP/1.1 Upgrade (WebSocket) needs HTTP/1.1 to upgrade from."""
    if any(p.name == "http/1.1" for p in protocols):
        return
    for factory in protocols:
        if factory.upgrade_only:
            raise BuildError(
                f"{factory.name}: reached by an HTTP/1.1 Upgrade, but HTTP/1.1 is not served",
                hint="call .h1() too",
            )


def _check_no_app_needed(
    protocols: tuple[ProtocolFactory, ...], app_layers: tuple[AppLayer, ...]
) -> None:
    """`.build()` serves no ASGI app: no protocol or app layer may need one."""
    if app_layers:
        raise BuildError("app layers need an ASGI app", hint="finish with .asgi(app)")
    needy = [p.name for p in protocols if p.needs_app]
    if needy:
        raise BuildError(
            f".build(): {', '.join(needy)} needs an ASGI app to serve",
            hint="finish with .asgi(app); .build() is for protocols that need no app",
        )


def _offer_alpn(
    layers: tuple[StreamLayer, ...], protocols: tuple[ProtocolFactory, ...]
) -> tuple[StreamLayer, ...]:
    """TLS layers offer every registered protocol's ALPN ids, h2 first (RFC 7540 §3.3)."""
    ids: list[str] = []
    for factory in protocols:
        ids.extend(i for i in factory.alpn_ids if i not in ids)
    ids.sort(key=lambda i: i != "h2")  # stable: otherwise registration order
    return tuple(
        layer.for_protocols(ids) if isinstance(layer, TLSLayer) else layer for layer in layers
    )


def _app_name(app: object) -> str:
    module = getattr(app, "__module__", None)
    name = getattr(app, "__qualname__", None) or type(app).__qualname__
    return f"{module}:{name}" if module else str(name)
