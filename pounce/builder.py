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
        .access_log()                 # app layer, outer
        .layer(AddHeader(b"x-a", b"1"))  # app layer, inner
        .asgi(app)                    # the app, innermost
"""

from __future__ import annotations

import math
import ssl
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Literal

from pounce.asgi.lifespan import LIFESPAN_MODES, LifespanMode
from pounce.asgi.types import ASGIApp
from pounce.drivers.bridge import ProtocolFactory, offer_tunnels
from pounce.drivers.http1 import H1_PARSERS, H1Parser, HTTP1Protocol
from pounce.drivers.service import HTTPOptions
from pounce.errors import BuildError
from pounce.layer import AppLayer, StreamLayer
from pounce.layers.access_log import AccessLogLayer
from pounce.layers.proxy.headers import ProxyHeadersLayer
from pounce.layers.proxy.protocol import DEFAULT_HEADER_TIMEOUT, ProxyProtocolLayer
from pounce.layers.proxy.trust import DEFAULT_TRUSTED
from pounce.layers.tls.config import (
    DEFAULT_HANDSHAKE_TIMEOUT,
    TLSConfig,
    client_certs_mode,
    min_tls_version,
)
from pounce.layers.tls.layer import TLSLayer
from pounce.net.binds import DEFAULT_BACKLOG, Bind, FdBind, TCPBind, UnixBind
from pounce.net.loops import LoopChoice, resolve_loop
from pounce.protocols.h1 import DEFAULT_MAX_HEAD, DEFAULT_MAX_REQUEST_LINE, H1Limits

if TYPE_CHECKING:
    from pounce.server import Server

MiB = 1024 * 1024
# WebSocket defaults (docs/websocket.md), here so the CLI needs no wsproto to show them.
WS_MAX_SIZE = 16 * MiB  # bytes per message after decompression; Uvicorn's and Hypercorn's
WS_MAX_QUEUE = 32  # received messages waiting for the app; Uvicorn's
WS_PING_INTERVAL = 20.0  # seconds; Uvicorn's and daphne's
WS_PING_TIMEOUT = 20.0  # seconds; Uvicorn's
# HTTP/2 defaults (docs/http2.md), here so the CLI needs no h2 to show them.
H2_MAX_CONCURRENT_STREAMS = 100  # streams; h2's, Hypercorn's and nginx's
H2_INITIAL_WINDOW_SIZE = 65_535  # bytes per stream; RFC 9113 §6.9.2
H2_CONNECTION_WINDOW_SIZE = 1 * MiB  # bytes of request body per connection
H2_MAX_FRAME_SIZE = 16_384  # bytes; RFC 9113 §4.2
H2_MAX_HEADER_LIST_SIZE = 64 * 1024  # bytes, decoded; Hypercorn's
H2_MAX_RESETS = 200  # reset streams beyond half the completed ones

Layer = StreamLayer | AppLayer


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerSpec:
    """Everything a `Server` is made of; checked and frozen."""

    binds: tuple[Bind, ...]
    backlog: int
    stream_layers: tuple[StreamLayer, ...]
    protocols: tuple[ProtocolFactory, ...]
    app_layers: tuple[AppLayer, ...]
    app: ASGIApp | None
    app_name: str
    http: HTTPOptions
    lifespan: LifespanMode
    graceful_timeout: float
    loop: Literal["asyncio", "uvloop"]


@dataclass(frozen=True, slots=True)
class ServerBuilder:
    """An immutable, chainable description of a server; see the module docstring."""

    _binds: tuple[Bind, ...] = ()
    _backlog: int = DEFAULT_BACKLOG
    _layers: tuple[Layer, ...] = ()
    _protocols: tuple[ProtocolFactory, ...] = ()
    _http: HTTPOptions = field(default_factory=HTTPOptions)
    _lifespan: LifespanMode = "auto"
    _graceful_timeout: float = 30.0  # seconds; Uvicorn has no default, Hypercorn 5 s
    _loop: LoopChoice = "auto"

    # -- listeners ----------------------------------------------------------------

    def bind(self, host: str, port: int) -> ServerBuilder:
        """Listen on TCP `host`:`port` (IPv4 or IPv6 literal; port 0 = any free port)."""
        if not isinstance(port, int) or not 0 <= port <= 65535:
            raise BuildError(f".bind({host!r}, {port!r}): port must be an integer 0-65535")
        if not host:
            raise BuildError(".bind(): host must not be empty", hint='use "0.0.0.0" for all')
        return replace(self, _binds=(*self._binds, TCPBind(host.strip("[]"), port)))

    def bind_unix(self, path: str, *, mode: int | None = None) -> ServerBuilder:
        """Listen on a Unix domain socket; `mode` (e.g. ``0o660``) sets the file mode."""
        if not path:
            raise BuildError(".bind_unix(): path must not be empty")
        return replace(self, _binds=(*self._binds, UnixBind(path, mode)))

    def bind_fd(self, fd: int) -> ServerBuilder:
        """Serve on a listening socket inherited as file descriptor `fd`."""
        if not isinstance(fd, int) or fd < 0:
            raise BuildError(f".bind_fd({fd!r}): fd must be a non-negative integer")
        return replace(self, _binds=(*self._binds, FdBind(fd)))

    def backlog(self, size: int) -> ServerBuilder:
        """Pending-connection queue per listener (connections; default 2048)."""
        if not isinstance(size, int) or size < 1:
            raise BuildError(f".backlog({size!r}): must be a positive integer")
        return replace(self, _backlog=size)

    # -- protocols ------------------------------------------------------------------

    def h1(
        self,
        *,
        max_incomplete_event_size: int = DEFAULT_MAX_HEAD,
        max_request_line: int = DEFAULT_MAX_REQUEST_LINE,
        parser: H1Parser = "auto",
    ) -> ServerBuilder:
        """Serve HTTP/1.0 and HTTP/1.1 (h11).

        Limits in bytes: request head 16 KiB (answer 431), request line 8 KiB (414).
        `parser`: ``"fast"`` (pure-Python, the default for ``"auto"``) or
        ``"h11"`` (the reference implementation); both are equally strict.
        """
        if parser not in H1_PARSERS:
            raise BuildError(f".h1(parser={parser!r}): must be one of {', '.join(H1_PARSERS)}")
        for name, value in (
            ("max_incomplete_event_size", max_incomplete_event_size),
            ("max_request_line", max_request_line),
        ):
            if not isinstance(value, int) or value < 64:
                raise BuildError(f".h1({name}={value!r}): must be an integer of at least 64 bytes")
        limits = H1Limits(
            max_incomplete_event_size=max_incomplete_event_size,
            max_request_line=max_request_line,
        )
        return self.protocol(HTTP1Protocol(limits, parser))

    def h2(
        self,
        *,
        max_concurrent_streams: int = H2_MAX_CONCURRENT_STREAMS,
        initial_window_size: int = H2_INITIAL_WINDOW_SIZE,
        connection_window_size: int = H2_CONNECTION_WINDOW_SIZE,
        max_frame_size: int = H2_MAX_FRAME_SIZE,
        max_header_list_size: int = H2_MAX_HEADER_LIST_SIZE,
        max_resets: int = H2_MAX_RESETS,
    ) -> ServerBuilder:
        """Serve HTTP/2: ALPN ``h2`` over TLS, prior knowledge on cleartext (needs ``h2``).

        Defaults: 100 concurrent streams per connection; windows of 65 535 B
        per stream and 1 MiB per connection, credited as the app reads; frames
        up to 16 384 B; decoded header lists up to 64 KiB; 200 reset streams
        (beyond half the completed ones) before GOAWAY ENHANCE_YOUR_CALM.
        See docs/http2.md.
        """
        try:
            from pounce.drivers.http2 import HTTP2Protocol
            from pounce.protocols.h2 import H2Settings
        except ImportError as exc:
            raise BuildError(
                ".h2(): HTTP/2 needs the h2 package", hint="pip install pounce[h2]"
            ) from exc
        bounds = {
            "max_concurrent_streams": (max_concurrent_streams, 1, 2**31 - 1),
            "initial_window_size": (initial_window_size, 1, 2**31 - 1),
            "connection_window_size": (connection_window_size, 65_535, 2**31 - 1),
            "max_frame_size": (max_frame_size, 16_384, 2**24 - 1),  # RFC 9113 §6.5.2
            "max_header_list_size": (max_header_list_size, 1024, 2**31 - 1),
            "max_resets": (max_resets, 1, 2**31 - 1),
        }
        for name, (value, low, high) in bounds.items():
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                raise BuildError(f".h2({name}={value!r}): must be an integer {low}-{high}")
        settings = H2Settings(
            max_concurrent_streams=max_concurrent_streams,
            initial_window_size=initial_window_size,
            connection_window_size=connection_window_size,
            max_frame_size=max_frame_size,
            max_header_list_size=max_header_list_size,
            max_resets=max_resets,
        )
        return self.protocol(HTTP2Protocol(settings))

    def websocket(
        self,
        *,
        max_size: int = WS_MAX_SIZE,
        max_queue: int = WS_MAX_QUEUE,
        ping_interval: float | None = WS_PING_INTERVAL,
        ping_timeout: float | None = WS_PING_TIMEOUT,
        per_message_deflate: bool = True,
    ) -> ServerBuilder:
        """Serve WebSocket (RFC 6455) over HTTP/1.1 Upgrade (needs ``wsproto``; docs/websocket.md).

        Defaults: messages up to 16 MiB after decompression (`max_size`,
        bytes; larger → close 1009); 32 received messages queued for the app
        before reading pauses (`max_queue`); a ping every 20 s
        (`ping_interval`, None: off) and close 1011 when its pong takes over
        20 s (`ping_timeout`, None: wait forever); permessage-deflate accepted
        when offered (`per_message_deflate`). Needs `.h1()`.
        """
        try:
            from pounce.drivers.websocket import WebSocketOptions, WebSocketProtocol
        except ImportError as exc:
            raise BuildError(
                ".websocket(): WebSocket needs the wsproto package", hint="pip install pounce[ws]"
            ) from exc
        for name, value, low in (("max_size", max_size, 1), ("max_queue", max_queue, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < low:
                raise BuildError(f".websocket({name}={value!r}): must be a positive integer")
        for name, seconds in (("ping_interval", ping_interval), ("ping_timeout", ping_timeout)):
            if seconds is not None:
                _positive(f".websocket({name}=...)", seconds)
        options = WebSocketOptions(
            max_size=max_size,
            max_queue=max_queue,
            ping_interval=None if ping_interval is None else float(ping_interval),
            ping_timeout=None if ping_timeout is None else float(ping_timeout),
            per_message_deflate=bool(per_message_deflate),
        )
        return self.protocol(WebSocketProtocol(options))

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

    def access_log(self) -> ServerBuilder:
        """Log one line per response on the ``pounce.access`` logger."""
        return self.layer(AccessLogLayer())

    # -- the edge: PROXY protocol, TLS, forwarded headers (docs/tls.md, docs/proxies.md) --

    def proxy_protocol(
        self,
        *,
        trusted: Iterable[str] = DEFAULT_TRUSTED,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    ) -> ServerBuilder:
        """Read a HAProxy PROXY v1/v2 header first; the client is the one it names.

        `trusted`: peers allowed to send one (IPs, CIDR networks, ``*``,
        ``unix``; default loopback); others are closed unserved.
        `header_timeout`: seconds for the whole header (default 5).
        Must be the first stream layer: it reads the raw connection.
        """
        _positive(".proxy_protocol(header_timeout=...)", header_timeout)
        if self._layers:
            raise BuildError(
                ".proxy_protocol(): must come before every other layer",
                hint="the header is the first thing on the wire: call it first",
            )
        layer = ProxyProtocolLayer(trusted, header_timeout=float(header_timeout))
        return self.layer(layer)

    def tls(
        self,
        *,
        cert: str,
        key: str | None = None,
        password: str | None = None,
        client_certs: str | int = "none",
        ca: str | None = None,
        ciphers: str | None = None,
        min_version: str | int | ssl.TLSVersion = "1.2",
        handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT,
    ) -> ServerBuilder:
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
        _positive(".tls(handshake_timeout=...)", handshake_timeout)
        if not cert:
            raise BuildError(".tls(): cert= is required", hint="--ssl-certfile PATH on the CLI")
        if any(isinstance(layer, TLSLayer) for layer in self._layers):
            raise BuildError(".tls(): called twice")
        if any(not isinstance(layer, ProxyProtocolLayer) for layer in self._layers):
            raise BuildError(
                ".tls(): must come before every other layer except .proxy_protocol()",
                hint="call order is wire-to-app and TLS is next to the wire",
            )
        config = TLSConfig(
            cert=str(cert),
            key=None if key is None else str(key),
            password=password,
            client_certs=client_certs_mode(client_certs),
            ca=None if ca is None else str(ca),
            ciphers=ciphers or None,
            min_version=min_tls_version(min_version),
            handshake_timeout=float(handshake_timeout),
        )
        return self.layer(TLSLayer(config))

    def proxy_headers(self, *, trusted: Iterable[str] = DEFAULT_TRUSTED) -> ServerBuilder:
        """Take client, scheme and host from a trusted proxy's forwarding headers.

        RFC 7239 ``Forwarded``, else ``X-Forwarded-For/-Proto/-Host``; only
        from peers in `trusted` (IPs, CIDR networks, ``*``, ``unix``; default
        loopback). An app layer: call it before the other app layers (access
        log) so they see the real client.
        """
        return self.layer(ProxyHeadersLayer(trusted))

    # -- HTTP behaviour -------------------------------------------------------------------

    def timeouts(
        self,
        *,
        keep_alive: float | None = None,
        request_head: float | None = None,
        request_body: float | None = None,
        graceful_shutdown: float | None = None,
        send: float | None = None,
        request_body_min_rate: int | None = None,
    ) -> ServerBuilder:
        """Seconds: idle keep-alive (5), whole request head (10), a request body's silence
        while the server is reading it (60; HTTP/1.1: 408), graceful shutdown (30), output
        that a client reads none of (`send`, 60; then the connection is aborted).

        `request_body_min_rate`: bytes per second a request body must average after
        a 20 s grace (500, Apache's ``MinRate``; HTTP/1.1: 408); 0 turns it off.
        """
        if request_body_min_rate is not None and (
            isinstance(request_body_min_rate, bool)
            or not isinstance(request_body_min_rate, int)
            or request_body_min_rate < 0
        ):
            raise BuildError(
                f".timeouts(request_body_min_rate={request_body_min_rate!r}): "
                "must be a whole number of bytes per second, 0 for no minimum"
            )
        for name, value in (
            ("keep_alive", keep_alive),
            ("request_head", request_head),
            ("request_body", request_body),
            ("graceful_shutdown", graceful_shutdown),
            ("send", send),
        ):
            if value is not None and (not isinstance(value, int | float) or not value > 0):
                raise BuildError(
                    f".timeouts({name}={value!r}): must be a positive number of seconds"
                )
        http = self._http
        if keep_alive is not None:
            http = replace(http, keep_alive_timeout=float(keep_alive))
        if request_head is not None:
            http = replace(http, request_head_timeout=float(request_head))
        if request_body is not None:
            http = replace(http, request_body_timeout=float(request_body))
        if send is not None:
            http = replace(http, send_timeout=float(send))
        if request_body_min_rate is not None:
            http = replace(http, request_body_min_rate=request_body_min_rate or None)
        graceful = self._graceful_timeout if graceful_shutdown is None else float(graceful_shutdown)
        return replace(self, _http=http, _graceful_timeout=graceful)

    def response_headers(
        self,
        *,
        server: bool = True,
        date: bool = True,
        extra: tuple[tuple[str, str], ...] | list[tuple[str, str]] = (),
    ) -> ServerBuilder:
        """Default headers on every response: ``server``, ``date`` and `extra` pairs."""
        pairs: list[tuple[bytes, bytes]] = []
        for pair in extra:
            if len(pair) != 2 or not all(isinstance(part, str) for part in pair):
                raise BuildError(
                    f".response_headers(extra=...): {pair!r} is not a (name, value) pair"
                )
            name, value = pair
            if not name or any(c in name for c in " \t:\r\n") or any(c in value for c in "\r\n\0"):
                raise BuildError(
                    f".response_headers(extra=...): invalid header {name!r}: {value!r}"
                )
            pairs.append((name.lower().encode("latin-1"), value.encode("latin-1")))
        http = replace(
            self._http, server_header=server, date_header=date, extra_headers=tuple(pairs)
        )
        return replace(self, _http=http)

    def limit_request_body(self, max_bytes: int | None) -> ServerBuilder:
        """Answer 413 to request bodies over `max_bytes` (None: no limit, the default)."""
        if max_bytes is not None and (not isinstance(max_bytes, int) or max_bytes < 0):
            raise BuildError(f".limit_request_body({max_bytes!r}): must be bytes >= 0 or None")
        return replace(self, _http=replace(self._http, max_request_body=max_bytes))

    def root_path(self, path: str) -> ServerBuilder:
        """ASGI ``root_path``: the URL prefix the app is mounted under behind a proxy."""
        if path and (not path.startswith("/") or path.endswith("/")):
            raise BuildError(
                f".root_path({path!r}): must start with '/' and not end with it",
                hint='e.g. "/api"',
            )
        return replace(self, _http=replace(self._http, root_path=path))

    def lifespan(self, mode: LifespanMode) -> ServerBuilder:
        """Lifespan protocol: ``auto`` (default), ``on`` or ``off``."""
        if mode not in LIFESPAN_MODES:
            raise BuildError(f".lifespan({mode!r}): must be one of {', '.join(LIFESPAN_MODES)}")
        return replace(self, _lifespan=mode)

    def loop(self, choice: LoopChoice) -> ServerBuilder:
        """Event loop for run(): ``auto`` (uvloop if installed), ``asyncio`` or ``uvloop``."""
        resolve_loop(choice)  # fail here, at the call that asked for it
        return replace(self, _loop=choice)

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
        if app is None and app_layers:
            raise BuildError("app layers need an ASGI app", hint="finish with .asgi(app)")
        if not math.isfinite(self._graceful_timeout):
            raise BuildError(".timeouts(graceful_shutdown=...): must be finite")
        spec = ServerSpec(
            binds=self._binds,
            backlog=self._backlog,
            stream_layers=_offer_alpn(stream_layers, self._protocols),
            protocols=offer_tunnels(self._protocols),
            app_layers=app_layers,
            app=app,
            app_name=app_name,
            http=self._http,
            lifespan=self._lifespan if app is not None else "off",
            graceful_timeout=self._graceful_timeout,
            loop=resolve_loop(self._loop),
        )
        return Server(spec)

    def _split_layers(self) -> tuple[tuple[StreamLayer, ...], tuple[AppLayer, ...]]:
        stream: list[StreamLayer] = []
        app: list[AppLayer] = []
        for index, layer in enumerate(self._layers):
            _check_edge_position(layer, index, self._layers[:index])
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


def _positive(call: str, value: object) -> None:
    if not isinstance(value, int | float) or not 0 < value < math.inf:
        raise BuildError(f"{call}: {value!r} must be a positive number of seconds")


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
