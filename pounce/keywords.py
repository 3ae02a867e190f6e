"""The keyword options of the builder calls, as types for type checkers and editors.

The options themselves — defaults, units, checks — are defined once, on each
call's options dataclass (`pounce.options`); these `TypedDict`s only give
``**options`` its names and types. tests/test_options.py fails when one
disagrees with its dataclass.
"""

from __future__ import annotations

import ssl
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Required, TypedDict

from pounce.asgi.types import Scope
from pounce.drivers.http1 import H1Parser
from pounce.workers.options import WorkerClass


class H1Keywords(TypedDict, total=False):
    max_incomplete_event_size: int
    max_request_line: int
    parser: H1Parser


class H2Keywords(TypedDict, total=False):
    max_concurrent_streams: int
    initial_window_size: int
    connection_window_size: int
    max_frame_size: int
    max_header_list_size: int
    max_resets: int


class H3Keywords(TypedDict, total=False):
    bind: str | None
    alt_svc: bool
    max_concurrent_streams: int
    stream_window: int
    connection_window: int
    idle_timeout: float
    max_datagram_size: int
    max_header_list_size: int
    max_resets: int


class WebSocketKeywords(TypedDict, total=False):
    max_size: int
    max_queue: int
    ping_interval: float | None
    ping_timeout: float | None
    per_message_deflate: bool


class TLSKeywords(TypedDict, total=False):
    cert: Required[str]
    key: str | None
    password: str | None
    client_certs: str | int
    ca: str | None
    ciphers: str | None
    min_version: str | int | ssl.TLSVersion
    handshake_timeout: float


class ProxyProtocolKeywords(TypedDict, total=False):
    trusted: Iterable[str]
    header_timeout: float


class ProxyHeadersKeywords(TypedDict, total=False):
    trusted: Iterable[str]


class TimeoutKeywords(TypedDict, total=False):
    keep_alive: float
    request_head: float
    request_body: float
    graceful_shutdown: float
    shutdown_idle: float
    send: float
    request_body_min_rate: int


class ResponseHeaderKeywords(TypedDict, total=False):
    server: bool
    date: bool
    extra: tuple[tuple[str, str], ...] | list[tuple[str, str]]


class WorkerKeywords(TypedDict, total=False):
    workers: int
    worker_class: WorkerClass
    reuse_port: bool
    max_requests: int | None
    max_requests_jitter: int
    timeout_worker_healthcheck: float


class LimitKeywords(TypedDict, total=False):
    max_in_flight: Required[int]
    queue: int
    queue_timeout: float


class RateLimitKeywords(TypedDict, total=False):
    rate: Required[str]
    burst: int | None
    max_keys: int
    key: Callable[[Scope], str | None] | None


class AccessLogKeywords(TypedDict, total=False):
    format: str


class MetricsKeywords(TypedDict, total=False):
    path: str | None
    bind: str | None


class OtelKeywords(TypedDict, total=False):
    tracer_provider: object | None


class RequestIdKeywords(TypedDict, total=False):
    header: str
    echo: bool
    trusted: Iterable[str] | str


class HealthKeywords(TypedDict, total=False):
    live: str
    ready: str


class CompressKeywords(TypedDict, total=False):
    algorithms: tuple[str, ...] | list[str] | str | None
    brotli_level: int
    gzip_level: int
    zstd_level: int
    minimum_size: int
    event_stream: bool
    decompress_requests: bool
    max_request_size: int


class DebugKeywords(TypedDict, total=False):
    allow_remote: bool


class SentryKeywords(TypedDict, total=False):
    dsn: str | None
    environment: str | None
    release: str | None
    client_options: Mapping[str, Any] | None


class StaticKeywords(TypedDict, total=False):
    follow_symlinks: bool
    hidden: bool
    index: str
    max_age: int | None
    immutable: bool
    precompressed: bool
    max_ranges: int
    chunk_size: int
