"""The ``pounce`` command: Uvicorn's flag names over the standard preset.

Every flag can also come from the environment as ``POUNCE_<NAME>`` (e.g.
``POUNCE_PORT=9000``), as Uvicorn reads ``UVICORN_<NAME>``; a flag on the
command line wins. Exit codes: 0 after a clean shutdown, 2 for a bad flag,
1 for an app that cannot be imported or a listener that cannot be opened,
3 for a failed lifespan startup.
"""

from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Sequence
from typing import Any

from pounce import __version__
from pounce.asgi.lifespan import LIFESPAN_MODES
from pounce.builder import (
    H2_CONNECTION_WINDOW_SIZE,
    H2_INITIAL_WINDOW_SIZE,
    H2_MAX_CONCURRENT_STREAMS,
    H2_MAX_FRAME_SIZE,
    H2_MAX_HEADER_LIST_SIZE,
    H2_MAX_RESETS,
    WS_MAX_QUEUE,
    WS_MAX_SIZE,
    WS_PING_INTERVAL,
    WS_PING_TIMEOUT,
)
from pounce.drivers.http1 import H1_PARSERS
from pounce.errors import AppImportError, BuildError, LifespanError, PounceError, TransportError
from pounce.importer import import_app
from pounce.layers.proxy.trust import DEFAULT_TRUSTED, split_list
from pounce.layers.tls.config import DEFAULT_HANDSHAKE_TIMEOUT
from pounce.logs import LOG_LEVELS, configure_logging
from pounce.net.binds import DEFAULT_BACKLOG
from pounce.net.loops import LOOP_CHOICES
from pounce.presets import WS_CHOICES, StandardOptions, h2_installed, standard
from pounce.protocols.h1 import DEFAULT_MAX_HEAD

ENV_PREFIX = "POUNCE_"

EXIT_OK = 0
EXIT_STARTUP = 1
EXIT_USAGE = 2
EXIT_LIFESPAN = 3

error_log = logging.getLogger("pounce.error")


def _env(name: str, default: Any) -> Any:
    """Default for flag `name` from ``POUNCE_<NAME>``, else `default`."""
    return os.environ.get(ENV_PREFIX + name.upper().replace("-", "_"), default)


def _env_bool(name: str, default: bool) -> bool:
    raw = _env(name, None)
    if raw is None:
        return default
    return str(raw).strip().lower() in ("1", "true", "yes", "on")


def _header(value: str) -> tuple[str, str]:
    name, sep, content = value.partition(":")
    if not sep or not name.strip():
        raise argparse.ArgumentTypeError(f"expected NAME:VALUE, got {value!r}")
    return name.strip(), content.strip()


def _octal(value: str) -> int:
    try:
        return int(value, 8)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an octal file mode like 660, got {value!r}"
        ) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pounce",
        description="Serve an ASGI application. Every flag may also be set as POUNCE_<FLAG>.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add = parser.add_argument
    add(
        "app",
        metavar="APP",
        nargs="?",
        default=_env("app", None),
        help='the ASGI app as "module:attribute", e.g. myapp:app or pounce.demo:app',
    )
    add(
        "--factory",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("factory", False),
        help="treat APP as a zero-argument callable that returns the app",
    )
    add(
        "--app-dir",
        default=_env("app_dir", "."),
        help="directory put first on sys.path to import APP from",
    )
    add(
        "--host",
        default=_env("host", "127.0.0.1"),
        help="address to bind (IPv4 or IPv6 literal; 0.0.0.0 for all IPv4)",
    )
    add("--port", type=int, default=int(_env("port", 8000)), help="TCP port to bind (0: any free)")
    add("--uds", default=_env("uds", None), help="bind to this Unix domain socket path instead")
    add(
        "--uds-mode",
        type=_octal,
        default=_env("uds_mode", None),
        help="file mode of the --uds socket file, in octal (e.g. 660)",
    )
    add(
        "--fd",
        type=int,
        default=_env("fd", None),
        help="serve on this inherited listening socket file descriptor instead",
    )
    add(
        "--backlog",
        type=int,
        default=int(_env("backlog", DEFAULT_BACKLOG)),
        help="pending-connection queue length per listener",
    )
    add(
        "--lifespan",
        choices=LIFESPAN_MODES,
        default=_env("lifespan", "auto"),
        help="ASGI lifespan: auto tolerates apps without it, on requires it, off skips it",
    )
    add(
        "--root-path",
        default=_env("root_path", ""),
        help="ASGI root_path, the prefix the app is mounted under behind a proxy",
    )
    add(
        "--timeout-keep-alive",
        type=float,
        default=float(_env("timeout_keep_alive", 5.0)),
        help="seconds an idle keep-alive connection stays open",
    )
    add(
        "--timeout-request-head",
        type=float,
        default=float(_env("timeout_request_head", 10.0)),
        help="seconds a client has to send a complete request head (slowloris guard)",
    )
    add(
        "--timeout-request-body",
        type=float,
        default=float(_env("timeout_request_body", 60.0)),
        help="seconds a request body may go silent while the server reads it (then 408)",
    )
    add(
        "--timeout-graceful-shutdown",
        type=float,
        default=float(_env("timeout_graceful_shutdown", 30.0)),
        help="seconds in-flight requests get to finish on shutdown",
    )
    add(
        "--timeout-send",
        type=float,
        default=float(_env("timeout_send", 60.0)),
        help="seconds a client may read none of our output before the connection is aborted",
    )
    add(
        "--request-body-min-rate",
        type=int,
        default=int(_env("request_body_min_rate", 500)),
        help="bytes per second a request body must average after a 20 s grace "
        "(then 408; 0: no minimum)",
    )
    add(
        "--limit-request-body",
        type=int,
        default=_env("limit_request_body", None),
        help="largest request body in bytes; larger ones get 413 (default: no limit)",
    )
    add(
        "--header",
        dest="headers",
        action="append",
        type=_header,
        default=None,
        metavar="NAME:VALUE",
        help="extra default response header; repeat for several",
    )
    add(
        "--server-header",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("server_header", True),
        help="send 'server: pounce'",
    )
    add(
        "--date-header",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("date_header", True),
        help="send the Date header",
    )
    add(
        "--h11-max-incomplete-event-size",
        type=int,
        default=int(_env("h11_max_incomplete_event_size", DEFAULT_MAX_HEAD)),
        help="largest request head in bytes before answering 431",
    )
    add(
        "--http",
        choices=H1_PARSERS,
        default=_env("http", "auto"),
        help="HTTP/1.1 implementation: fast (pure Python) or h11; auto = fast",
    )
    add(
        "--http2",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("http2", h2_installed()),
        help="serve HTTP/2 too (ALPN h2, prior knowledge on cleartext); needs pounce[h2]",
    )
    add(
        "--loop",
        choices=LOOP_CHOICES,
        default=_env("loop", "auto"),
        help="event loop: asyncio or uvloop (pounce[uvloop] extra); auto = uvloop if installed",
    )
    add(
        "--log-level",
        choices=LOG_LEVELS,
        default=_env("log_level", "info"),
        help="log level of the pounce loggers",
    )
    add(
        "--access-log",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("access_log", True),
        help="log one line per response",
    )
    _add_edge_flags(parser)
    _add_http2_flags(parser)
    _add_websocket_flags(parser)
    add("--version", action="version", version=f"pounce {__version__}")
    return parser


def _seconds_or_off(value: str) -> float | None:
    """Seconds, or ``0`` / ``none`` / ``off`` for no timer."""
    if value.strip().lower() in ("0", "none", "off"):
        return None
    try:
        seconds = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds or 'none', got {value!r}") from None
    if not seconds > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {value!r}")
    return seconds


def _add_http2_flags(parser: argparse.ArgumentParser) -> None:
    """HTTP/2 tuning (docs/http2.md); names after Granian's ``--http2-*`` flags."""
    h2 = parser.add_argument_group("HTTP/2 (docs/http2.md)")
    flags = (
        ("max_concurrent_streams", H2_MAX_CONCURRENT_STREAMS, "streams a client may open at once"),
        ("initial_window_size", H2_INITIAL_WINDOW_SIZE, "request body bytes per stream, unread"),
        (
            "connection_window_size",
            H2_CONNECTION_WINDOW_SIZE,
            "request body bytes per connection, unread",
        ),
        ("max_frame_size", H2_MAX_FRAME_SIZE, "largest frame accepted, in bytes"),
        ("max_header_list_size", H2_MAX_HEADER_LIST_SIZE, "largest decoded header list, bytes"),
        ("max_resets", H2_MAX_RESETS, "reset streams beyond half the completed ones: GOAWAY"),
    )
    for name, default, meaning in flags:
        h2.add_argument(
            "--http2-" + name.replace("_", "-"),
            type=int,
            default=int(_env("http2_" + name, default)),
            help=meaning,
        )


def _add_websocket_flags(parser: argparse.ArgumentParser) -> None:
    """WebSocket flags, with Uvicorn's names (docs/websocket.md)."""
    ws = parser.add_argument_group("WebSocket (docs/websocket.md)")
    add = ws.add_argument
    add(
        "--ws",
        choices=WS_CHOICES,
        default=_env("ws", "auto"),
        help="WebSocket implementation: wsproto (pounce[ws]), none; auto = wsproto if installed. "
        "Served over HTTP/1.1 Upgrade, and over HTTP/2 streams (RFC 8441) when HTTP/2 is on",
    )
    add(
        "--ws-max-size",
        type=int,
        default=int(_env("ws_max_size", WS_MAX_SIZE)),
        help="largest WebSocket message in bytes, after decompression (larger: close 1009)",
    )
    add(
        "--ws-max-queue",
        type=int,
        default=int(_env("ws_max_queue", WS_MAX_QUEUE)),
        help="received messages queued for the app before reading pauses",
    )
    add(
        "--ws-ping-interval",
        type=_seconds_or_off,
        default=_seconds_or_off(str(_env("ws_ping_interval", WS_PING_INTERVAL))),
        help="seconds between pings (0 or none: no pings)",
    )
    add(
        "--ws-ping-timeout",
        type=_seconds_or_off,
        default=_seconds_or_off(str(_env("ws_ping_timeout", WS_PING_TIMEOUT))),
        help="seconds a pong may take before closing with 1011 (0 or none: no limit)",
    )
    add(
        "--ws-per-message-deflate",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("ws_per_message_deflate", True),
        help="accept permessage-deflate compression (RFC 7692) when a client offers it",
    )


def _add_edge_flags(parser: argparse.ArgumentParser) -> None:
    """TLS and proxy flags, with Uvicorn's names (docs/tls.md, docs/proxies.md)."""
    tls = parser.add_argument_group("TLS (docs/tls.md)")
    add = tls.add_argument
    add("--ssl-certfile", default=_env("ssl_certfile", None), help="PEM certificate; turns TLS on")
    add("--ssl-keyfile", default=_env("ssl_keyfile", None), help="PEM private key")
    add(
        "--ssl-keyfile-password",
        default=_env("ssl_keyfile_password", None),
        help="password of an encrypted --ssl-keyfile",
    )
    add(
        "--ssl-version",
        default=_env("ssl_version", "1.2"),
        help="minimum TLS version: 1.2 or 1.3 (Uvicorn's 17 means 1.2)",
    )
    add(
        "--ssl-cert-reqs",
        default=_env("ssl_cert_reqs", "none"),
        help="client certificates (mTLS): none, optional, required (or 0, 1, 2)",
    )
    add(
        "--ssl-ca-certs",
        default=_env("ssl_ca_certs", None),
        help="CA file to verify client certificates (default: the system store)",
    )
    add(
        "--ssl-ciphers",
        default=_env("ssl_ciphers", None),
        help="OpenSSL cipher string for TLS 1.2 (default: OpenSSL's)",
    )
    add(
        "--ssl-handshake-timeout",
        type=float,
        default=float(_env("ssl_handshake_timeout", DEFAULT_HANDSHAKE_TIMEOUT)),
        help="seconds a client has to finish the TLS handshake",
    )
    proxy = parser.add_argument_group("proxies (docs/proxies.md)")
    add = proxy.add_argument
    add(
        "--proxy-headers",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("proxy_headers", True),
        help="take client, scheme and host from Forwarded / X-Forwarded-* of trusted proxies",
    )
    add(
        "--forwarded-allow-ips",
        default=_env("forwarded_allow_ips", os.environ.get("FORWARDED_ALLOW_IPS"))
        or ",".join(DEFAULT_TRUSTED),
        help="trusted proxies, comma-separated: IPs, CIDR networks, * (any peer), unix",
    )
    add(
        "--proxy-protocol",
        action=argparse.BooleanOptionalAction,
        default=_env_bool("proxy_protocol", False),
        help="expect a HAProxy PROXY v1/v2 header from the trusted proxies on every connection",
    )


def options_from(args: argparse.Namespace) -> StandardOptions:
    headers = args.headers
    if headers is None:
        env_headers = _env("header", None)
        headers = [_header(h) for h in env_headers.split(",")] if env_headers else []
    return StandardOptions(
        host=args.host,
        port=args.port,
        uds=args.uds,
        uds_mode=int(args.uds_mode, 8) if isinstance(args.uds_mode, str) else args.uds_mode,
        fd=None if args.fd is None else int(args.fd),
        backlog=args.backlog,
        lifespan=args.lifespan,
        root_path=args.root_path,
        timeout_keep_alive=args.timeout_keep_alive,
        timeout_request_head=args.timeout_request_head,
        timeout_request_body=args.timeout_request_body,
        timeout_graceful_shutdown=args.timeout_graceful_shutdown,
        timeout_send=args.timeout_send,
        request_body_min_rate=args.request_body_min_rate,
        limit_request_body=None
        if args.limit_request_body is None
        else int(args.limit_request_body),
        headers=tuple(headers),
        server_header=args.server_header,
        date_header=args.date_header,
        h11_max_incomplete_event_size=args.h11_max_incomplete_event_size,
        access_log=args.access_log,
        http=args.http,
        loop=args.loop,
        http2=args.http2,
        http2_max_concurrent_streams=args.http2_max_concurrent_streams,
        http2_initial_window_size=args.http2_initial_window_size,
        http2_connection_window_size=args.http2_connection_window_size,
        http2_max_frame_size=args.http2_max_frame_size,
        http2_max_header_list_size=args.http2_max_header_list_size,
        http2_max_resets=args.http2_max_resets,
        ssl_certfile=args.ssl_certfile,
        ssl_keyfile=args.ssl_keyfile,
        ssl_keyfile_password=args.ssl_keyfile_password,
        ssl_version=args.ssl_version,
        ssl_cert_reqs=args.ssl_cert_reqs,
        ssl_ca_certs=args.ssl_ca_certs,
        ssl_ciphers=args.ssl_ciphers,
        ssl_handshake_timeout=args.ssl_handshake_timeout,
        proxy_headers=args.proxy_headers,
        proxy_protocol=args.proxy_protocol,
        forwarded_allow_ips=split_list(args.forwarded_allow_ips),
        ws=args.ws,
        ws_max_size=args.ws_max_size,
        ws_max_queue=args.ws_max_queue,
        ws_ping_interval=args.ws_ping_interval,
        ws_ping_timeout=args.ws_ping_timeout,
        ws_per_message_deflate=args.ws_per_message_deflate,
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not args.app:
        parser.error("the APP argument is required (e.g. pounce pounce.demo:app)")
    configure_logging(args.log_level, access_log=args.access_log)
    debug = args.log_level in ("debug", "trace")
    try:
        options = options_from(args)
        app = import_app(args.app, factory=args.factory, app_dir=args.app_dir)
        server = standard(options).asgi(app, name=args.app)
        if debug:
            error_log.debug("Stack:\n%s", server.describe())
        server.run()
    except BuildError as exc:
        return _fail(exc, EXIT_USAGE, debug)
    except (AppImportError, TransportError) as exc:
        return _fail(exc, EXIT_STARTUP, debug)
    except LifespanError as exc:
        return _fail(exc, EXIT_LIFESPAN, debug)
    except PounceError as exc:
        return _fail(exc, EXIT_STARTUP, debug)
    except KeyboardInterrupt:
        pass
    return EXIT_OK


def _fail(exc: PounceError, code: int, debug: bool) -> int:
    """One line, no traceback, unless --log-level debug asks for it."""
    error_log.error("%s", exc, exc_info=exc if debug else None)
    return code
