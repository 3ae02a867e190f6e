"""Presets: thin compositions of public builder calls.

`standard()` is what ``pounce.run()`` and the ``pounce`` CLI serve. Its
options are not restated here: they are the options of the builder calls it
makes (each defined once on its options dataclass, `pounce.options`), plus the
preset's own choices (`StackOptions`: which of those calls to make), all keyed
by their outside names — the ``pounce.run()`` keywords. `STANDARD` lists
them; `StandardOptions` is a checked mapping of them. Anything the preset does
can be written by hand with `Server.builder()`.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from pounce.builder import ServeOptions, ServerBuilder
from pounce.drivers.http1 import H1Options
from pounce.drivers.http2_options import HTTP2Options
from pounce.drivers.http3_options import HTTP3Options
from pounce.drivers.service import RequestOptions, ResponseHeaders, Timeouts
from pounce.drivers.websocket_options import WebSocketOptions
from pounce.errors import BuildError
from pounce.layers.compression import Compression
from pounce.layers.debug import Debug
from pounce.layers.health import Health
from pounce.layers.limit import ConcurrencyLimit
from pounce.layers.proxy.options import ProxyHeadersOptions, ProxyProtocolOptions
from pounce.layers.proxy.trust import DEFAULT_TRUSTED
from pounce.layers.rate_limit import RateLimit
from pounce.layers.sentry import Sentry
from pounce.layers.static import StaticMounts, StaticOptions
from pounce.layers.tls.config import TLSConfig
from pounce.logs import LOG_LEVELS, LoggingOptions
from pounce.net.binds import ListenOptions, systemd_fds
from pounce.observe.access_log import AccessLogOptions
from pounce.observe.metrics_options import MetricsOptions
from pounce.observe.request_id import RequestIdOptions
from pounce.options import Option, did_you_mean, one_of, option, options_of, outside_values
from pounce.workers.options import WorkerOptions
from pounce.workers.reload import ReloadOptions

T = TypeVar("T")

WSChoice = Literal["auto", "wsproto", "none"]
WS_CHOICES: tuple[WSChoice, ...] = ("auto", "wsproto", "none")


def h2_installed() -> bool:
    """Is the ``h2`` package (the ``pounce[h2]`` extra) importable?"""
    return importlib.util.find_spec("h2") is not None


def wsproto_installed() -> bool:
    """Is the ``wsproto`` package (the ``pounce[ws]`` extra) importable?"""
    return importlib.util.find_spec("wsproto") is not None


@dataclass(frozen=True, slots=True, kw_only=True)
class AppOptions:
    """What the CLI and ``pounce.run()`` need before there is a stack: the app and logging."""

    options_group = "app"

    app: str | None = option(
        None,
        flag="APP",
        help='the ASGI app as "module:attribute", e.g. myapp:app; the attribute may be dotted',
    )
    factory: bool = option(False, help="APP is a zero-argument callable that returns the app")
    app_dir: str = option(".", help="directory put first on sys.path to import APP from")
    log_level: str = option(
        "info", help="level of the pounce loggers", check=one_of(LOG_LEVELS), group="logging"
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class StackOptions:
    """The standard preset's own choices: which layers and protocols it adds."""

    options_group = "server"

    http2: bool | None = option(
        h2_installed(),
        help="serve HTTP/2 too (ALPN h2, prior knowledge on cleartext); needs pounce[h2]",
        shown="on when h2 is installed",
        group="HTTP/2",
    )
    http3: bool = option(
        False,
        help="serve HTTP/3 on UDP too (needs --ssl-certfile and pounce[h3]); docs/http3.md",
        group="HTTP/3",
    )
    ws: WSChoice = option(
        "auto",
        help="WebSocket: wsproto (pounce[ws]), none; auto = wsproto if installed. Over HTTP/1.1 "
        "Upgrade, and HTTP/2 streams (RFC 8441) when HTTP/2 is on",
        group="WebSocket",
    )
    proxy_headers: bool = option(
        True,
        help="client, scheme, host from Forwarded / X-Forwarded-* of trusted proxies (as Uvicorn)",
        group="proxies",
    )
    forwarded_allow_ips: tuple[str, ...] = option(
        DEFAULT_TRUSTED,
        env=("POUNCE_FORWARDED_ALLOW_IPS", "FORWARDED_ALLOW_IPS"),
        help="trusted proxies for both proxy options: IPs, CIDR networks, * (any peer), unix",
        group="proxies",
    )
    proxy_protocol: bool = option(
        False,
        help="every connection starts with a HAProxy PROXY v1/v2 header from a trusted proxy",
        group="proxies",
    )
    health: bool = option(
        False,
        help="answer the liveness and readiness paths (not logged, metered or counted)",
        group="health",
    )
    access_log: bool = option(True, help="log one line per response", group="logging")
    otel: bool = option(
        False,
        help="an OpenTelemetry server span per request, in the caller's trace (traceparent), "
        "with the tracer provider the app configured; needs pounce[otel]",
        group="logging",
    )
    request_id: bool = option(
        False,
        help="give each request an id: X-Request-ID from a trusted proxy (forwarded_allow_ips) "
        "or a random one; in the scope, the events and every log line",
        group="logging",
    )
    compression: bool = option(
        False,
        help="compress responses (br, zstd, gzip as the client accepts; docs/compression.md)",
        group="compression",
    )
    debug: bool = option(
        False,
        help="development error pages: an app failure answers its traceback and request "
        "(secrets masked); loopback listeners only unless --debug-allow-remote",
        group="devtools",
    )
    server_timing: bool = option(
        False,
        help="add a Server-Timing header (queue wait, app time to the response start) to "
        "every HTTP response, for browser devtools",
        group="devtools",
    )


STANDARD: tuple[Option, ...] = tuple(
    opt
    for owner in (
        ListenOptions,
        Timeouts,
        RequestOptions,
        ResponseHeaders,
        H1Options,
        StackOptions,
        HTTP2Options,
        HTTP3Options,
        WebSocketOptions,
        TLSConfig,
        ProxyProtocolOptions,
        ProxyHeadersOptions,
        Health,
        RateLimit,
        ConcurrencyLimit,
        Compression,
        AccessLogOptions,
        RequestIdOptions,
        MetricsOptions,
        StaticMounts,
        StaticOptions,
        Debug,
        Sentry,
        ServeOptions,
        WorkerOptions,
    )
    for opt in options_of(owner)
)
"""Every option of the standard stack and of how it is run (`WorkerOptions`:
``Server.run()``'s keywords), in docs order (grouped)."""

_GROUPS: tuple[str, ...] = ("app", "listen", "timeouts", "HTTP", "HTTP/1.1", "HTTP/2", "HTTP/3")
_GROUPS += (
    "WebSocket",
    "TLS",
    "proxies",
    "health",
    "limits",
    "compression",
    "static",
    "devtools",
    "server",
    "workers",
    "reload",
    "logging",
)

FRONT_END: tuple[Option, ...] = tuple(
    sorted(
        (
            *options_of(AppOptions),
            *options_of(LoggingOptions),
            *STANDARD,
            *options_of(ReloadOptions),
        ),
        key=lambda o: _GROUPS.index(o.group),
    )
)
"""The CLI's, the environment's and the config file's options: the app's, `STANDARD`
and dev reload's."""

_NAMED = {opt.name: opt for opt in STANDARD if opt.meta.outside}


class StandardOptions(Mapping[str, Any]):
    """The standard preset's options by name (``pounce.run()``'s keywords), checked.

    Values not given, and None for an option that has no None value (as
    ``uvicorn.run()`` passes them: ``headers=None``), are the definitions'
    defaults. An unknown name or a bad
    value is a `BuildError` naming it. ``options.port`` reads like ``options["port"]``.
    """

    __slots__ = ("_values",)

    def __init__(self, values: Mapping[str, object] | None = None, /, **options: object) -> None:
        given = {**(values or {}), **options}
        unknown = sorted(set(given) - set(_NAMED))
        if unknown:
            raise BuildError(
                f"pounce.run(): unknown option(s) {', '.join(unknown)}",
                hint=did_you_mean(unknown[0], _NAMED),
            )
        resolved: dict[str, object] = {}
        for name, opt in _NAMED.items():
            if name not in given:
                resolved[name] = None if opt.required else opt.default
                continue
            value = given[name]
            if value is None and not opt.optional:  # Uvicorn's run() passes None for "unset"
                resolved[name] = None if opt.required else opt.default
                continue
            try:
                resolved[name] = opt.coerce(value)
            except ValueError as exc:
                raise BuildError(f"option {name}={value!r}: {exc}") from None
        self._values = resolved

    def __getitem__(self, name: str) -> Any:
        return self._values[name]

    def __getattr__(self, name: str) -> Any:
        if name.startswith("_"):
            raise AttributeError(name)
        try:
            return self._values[name]
        except KeyError:
            raise AttributeError(name) from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        changed = {k: v for k, v in self._values.items() if v != _NAMED[k].default}
        return f"StandardOptions({changed!r})"

    def of(self, owner: type[T]) -> T:
        """`owner`'s options dataclass with these values (the preset's typed view)."""
        return owner(**outside_values(owner, self._values))

    def keywords(self, owner: type) -> dict[str, Any]:
        """The keywords of `owner`'s builder call, from these values."""
        return outside_values(owner, self._values)


def standard(options: StandardOptions | None = None) -> ServerBuilder:
    """The standard stack, ready for ``.asgi(app)``."""
    o = options if options is not None else StandardOptions()
    listen = o.of(ListenOptions)
    stack = o.of(StackOptions)
    builder = _listeners(listen)
    if stack.proxy_protocol:
        timeout = o.of(ProxyProtocolOptions).header_timeout
        builder = builder.proxy_protocol(trusted=stack.forwarded_allow_ips, header_timeout=timeout)
    if o["ssl_certfile"] is not None or o["ssl_keyfile"] is not None:
        builder = builder.tls(**{**o.keywords(TLSConfig), "cert": o["ssl_certfile"] or ""})
    serve = o.of(ServeOptions)
    requests = o.of(RequestOptions)
    builder = (
        builder.backlog(listen.backlog)
        .max_connections(listen.max_connections)
        .h1(**o.keywords(H1Options))
        .timeouts(**o.keywords(Timeouts))
        .response_headers(**o.keywords(ResponseHeaders))
        .limit_request_body(requests.limit_request_body)
        .root_path(requests.root_path)
        .lifespan(serve.lifespan)
        .loop(serve.loop)
    )
    if stack.proxy_headers:
        builder = builder.proxy_headers(trusted=stack.forwarded_allow_ips)
    if stack.otel:  # after the forwarded headers (the real client), before every refusal
        builder = builder.otel()
    if stack.http2 if stack.http2 is not None else h2_installed():
        builder = builder.h2(**o.keywords(HTTP2Options))
    if stack.http3:
        builder = builder.h3(**o.keywords(HTTP3Options))
    if stack.ws == "wsproto" or (stack.ws == "auto" and wsproto_installed()):
        builder = builder.websocket(**o.keywords(WebSocketOptions))
    if stack.health:  # outside the access log and the limits: probes pass unlogged, uncounted
        builder = builder.health(**o.keywords(Health))
    if stack.access_log:  # an event subscriber: it logs the limits' 503s and 429s too
        builder = builder.access_log(**o.keywords(AccessLogOptions))
    if o["metrics_path"] is not None or o["metrics_bind"] is not None:
        builder = builder.metrics(**o.keywords(MetricsOptions))
    if stack.request_id:
        ids = o.keywords(RequestIdOptions)
        builder = builder.request_id(**ids, trusted=stack.forwarded_allow_ips)
    if stack.server_timing:  # outside the limit, which reports its queue wait to it
        builder = builder.server_timing()
    if o["rate_limit"] is not None:  # before the limit: a metered client takes no place
        builder = builder.rate_limit(**o.keywords(RateLimit))
    if o["limit_concurrency"] is not None:
        builder = builder.limit(**o.keywords(ConcurrencyLimit))
    if stack.compression:  # inside the limits (their answers and health stay plain), outside static
        builder = builder.compress(**o.keywords(Compression))
    elif o["decompress_requests"]:
        raise BuildError(
            "decompress_requests needs the compression layer", hint="add --compression"
        )
    builder = _static(builder, o)
    if o["sentry_dsn"] is not None:  # outside the debug page, which passes the exception on
        builder = builder.sentry(**o.keywords(Sentry))
    elif o["sentry_environment"] is not None or o["sentry_release"] is not None:
        raise BuildError(
            "sentry_environment and sentry_release need a DSN", hint="add --sentry-dsn"
        )
    if stack.debug:  # innermost: next to the app, whose failures it shows
        builder = builder.debug(**o.keywords(Debug))
    elif o["debug_allow_remote"]:
        raise BuildError("debug_allow_remote needs the debug pages", hint="add --debug")
    return builder


def _static(builder: ServerBuilder, o: StandardOptions) -> ServerBuilder:
    """One `.static()` per ``--static PREFIX=DIR``, then ``--static-dir`` at /; innermost,
    so the files are logged and counted like the app's answers."""
    mounts = o.of(StaticMounts)
    pairs = [mount.partition("=")[::2] for mount in mounts.static]
    if mounts.static_dir is not None:
        pairs.append(("/", mounts.static_dir))
    for prefix, directory in pairs:
        builder = builder.static(prefix, directory, **o.keywords(StaticOptions))
    return builder


def _listeners(listen: ListenOptions) -> ServerBuilder:
    """``uds``, else ``fd``, else systemd's sockets, else ``host``:``port``."""
    builder = ServerBuilder()
    if listen.uds is not None:
        builder = builder.bind_unix(listen.uds, mode=listen.uds_mode)
    if listen.fd is not None:
        builder = builder.bind_fd(listen.fd)
    if listen.uds is None and listen.fd is None:
        activated = systemd_fds()  # socket activation replaces host/port
        for fd in activated:
            builder = builder.bind_fd(fd)
        if not activated:
            builder = builder.bind(listen.host, listen.port)
    return builder
