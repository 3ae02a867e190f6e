"""Presets: thin compositions of public builder calls.

`standard()` is what ``pounce.run()`` and the ``pounce`` CLI serve: every
option maps onto one builder call, so anything a preset does can be written
by hand with `Server.builder()`.
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass, field
from typing import Literal

from pounce.asgi.lifespan import LifespanMode
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
    ServerBuilder,
)
from pounce.drivers.http1 import H1Parser
from pounce.layers.proxy.trust import DEFAULT_TRUSTED
from pounce.layers.tls.config import DEFAULT_HANDSHAKE_TIMEOUT
from pounce.net.binds import DEFAULT_BACKLOG, systemd_fds
from pounce.net.loops import LoopChoice
from pounce.protocols.h1 import DEFAULT_MAX_HEAD

WSChoice = Literal["auto", "wsproto", "none"]
WS_CHOICES: tuple[WSChoice, ...] = ("auto", "wsproto", "none")


@dataclass(frozen=True, slots=True, kw_only=True)
class StandardOptions:
    """The options of the standard preset; names follow Uvicorn's."""

    host: str = "127.0.0.1"
    port: int = 8000
    uds: str | None = None
    uds_mode: int | None = None
    fd: int | None = None
    backlog: int = DEFAULT_BACKLOG
    lifespan: LifespanMode = "auto"
    root_path: str = ""
    timeout_keep_alive: float = 5.0  # seconds
    timeout_request_head: float = 10.0  # seconds
    timeout_request_body: float = 60.0  # seconds a request body may pause while being read
    timeout_graceful_shutdown: float = 30.0  # seconds
    timeout_send: float = 60.0  # seconds our output may make no progress before an abort
    request_body_min_rate: int = 500  # bytes per second after a 20 s grace; 0: no minimum
    limit_request_body: int | None = None  # bytes
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    server_header: bool = True
    date_header: bool = True
    h11_max_incomplete_event_size: int = DEFAULT_MAX_HEAD  # bytes
    access_log: bool = True
    http: H1Parser = "auto"
    loop: LoopChoice = "auto"
    http2: bool | None = None  # None: HTTP/2 on when the h2 extra is installed (docs/http2.md)
    http2_max_concurrent_streams: int = H2_MAX_CONCURRENT_STREAMS  # streams per connection
    http2_initial_window_size: int = H2_INITIAL_WINDOW_SIZE  # bytes per stream
    http2_connection_window_size: int = H2_CONNECTION_WINDOW_SIZE  # bytes per connection
    http2_max_frame_size: int = H2_MAX_FRAME_SIZE  # bytes
    http2_max_header_list_size: int = H2_MAX_HEADER_LIST_SIZE  # bytes, decoded
    http2_max_resets: int = H2_MAX_RESETS  # streams (Rapid Reset / MadeYouReset budget)
    # TLS (docs/tls.md); TLS is on when ssl_certfile is set.
    ssl_certfile: str | None = None
    ssl_keyfile: str | None = None
    ssl_keyfile_password: str | None = None
    ssl_version: str | int = "1.2"  # minimum TLS version; Uvicorn's 17 also means 1.2
    ssl_cert_reqs: str | int = "none"  # client certificates: none / optional / required (0/1/2)
    ssl_ca_certs: str | None = None
    ssl_ciphers: str | None = None  # OpenSSL cipher string; None = OpenSSL's default
    ssl_handshake_timeout: float = DEFAULT_HANDSHAKE_TIMEOUT  # seconds
    # Proxies (docs/proxies.md): off unless asked; trust loopback by default.
    proxy_headers: bool = True  # as Uvicorn; only loopback peers are trusted by default
    proxy_protocol: bool = False
    forwarded_allow_ips: tuple[str, ...] = DEFAULT_TRUSTED
    # WebSocket (docs/websocket.md): "auto" serves it when wsproto is installed.
    ws: WSChoice = "auto"
    ws_max_size: int = WS_MAX_SIZE  # bytes per message, after decompression
    ws_max_queue: int = WS_MAX_QUEUE  # messages
    ws_ping_interval: float | None = WS_PING_INTERVAL  # seconds; None: no pings
    ws_ping_timeout: float | None = WS_PING_TIMEOUT  # seconds
    ws_per_message_deflate: bool = True


def standard(options: StandardOptions | None = None) -> ServerBuilder:
    """The standard stack, ready for ``.asgi(app)``."""
    o = options or StandardOptions()
    builder = ServerBuilder()
    if o.uds is not None:
        builder = builder.bind_unix(o.uds, mode=o.uds_mode)
    if o.fd is not None:
        builder = builder.bind_fd(o.fd)
    if o.uds is None and o.fd is None:
        activated = systemd_fds()  # socket activation replaces host/port
        for fd in activated:
            builder = builder.bind_fd(fd)
        if not activated:
            builder = builder.bind(o.host, o.port)
    if o.proxy_protocol:
        builder = builder.proxy_protocol(trusted=o.forwarded_allow_ips)
    if o.ssl_certfile is not None or o.ssl_keyfile is not None:
        builder = builder.tls(
            cert=o.ssl_certfile or "",
            key=o.ssl_keyfile,
            password=o.ssl_keyfile_password,
            client_certs=o.ssl_cert_reqs,
            ca=o.ssl_ca_certs,
            ciphers=o.ssl_ciphers,
            min_version=o.ssl_version,
            handshake_timeout=o.ssl_handshake_timeout,
        )
    builder = (
        builder.backlog(o.backlog)
        .h1(max_incomplete_event_size=o.h11_max_incomplete_event_size, parser=o.http)
        .timeouts(
            keep_alive=o.timeout_keep_alive,
            request_head=o.timeout_request_head,
            request_body=o.timeout_request_body,
            graceful_shutdown=o.timeout_graceful_shutdown,
            send=o.timeout_send,
            request_body_min_rate=o.request_body_min_rate,
        )
        .response_headers(server=o.server_header, date=o.date_header, extra=o.headers)
        .limit_request_body(o.limit_request_body)
        .root_path(o.root_path)
        .lifespan(o.lifespan)
        .loop(o.loop)
    )
    if o.proxy_headers:
        builder = builder.proxy_headers(trusted=o.forwarded_allow_ips)
    if o.http2 if o.http2 is not None else h2_installed():
        builder = builder.h2(
            max_concurrent_streams=o.http2_max_concurrent_streams,
            initial_window_size=o.http2_initial_window_size,
            connection_window_size=o.http2_connection_window_size,
            max_frame_size=o.http2_max_frame_size,
            max_header_list_size=o.http2_max_header_list_size,
            max_resets=o.http2_max_resets,
        )
    if o.ws == "wsproto" or (o.ws == "auto" and wsproto_installed()):
        builder = builder.websocket(
            max_size=o.ws_max_size,
            max_queue=o.ws_max_queue,
            ping_interval=o.ws_ping_interval,
            ping_timeout=o.ws_ping_timeout,
            per_message_deflate=o.ws_per_message_deflate,
        )
    if o.access_log:
        builder = builder.access_log()
    return builder


def h2_installed() -> bool:
    """Is the ``h2`` package (the ``pounce[h2]`` extra) importable?"""
    return importlib.util.find_spec("h2") is not None


def wsproto_installed() -> bool:
    """Is the ``wsproto`` package (the ``pounce[ws]`` extra) importable?"""
    return importlib.util.find_spec("wsproto") is not None
