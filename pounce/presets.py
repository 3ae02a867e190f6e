"""Presets: thin compositions of public builder calls.

`standard()` is what ``pounce.run()`` and the ``pounce`` CLI serve: every
option maps onto one builder call, so anything a preset does can be written
by hand with `Server.builder()`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pounce.asgi.lifespan import LifespanMode
from pounce.binds import DEFAULT_BACKLOG
from pounce.builder import ServerBuilder
from pounce.http1 import H1Parser
from pounce.loops import LoopChoice
from pounce.protocols.h1 import DEFAULT_MAX_HEAD


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
    timeout_graceful_shutdown: float = 30.0  # seconds
    limit_request_body: int | None = None  # bytes
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    server_header: bool = True
    date_header: bool = True
    h11_max_incomplete_event_size: int = DEFAULT_MAX_HEAD  # bytes
    access_log: bool = True
    http: H1Parser = "auto"
    loop: LoopChoice = "auto"


def standard(options: StandardOptions | None = None) -> ServerBuilder:
    """The standard stack, ready for ``.asgi(app)``."""
    o = options or StandardOptions()
    builder = ServerBuilder()
    if o.uds is not None:
        builder = builder.bind_unix(o.uds, mode=o.uds_mode)
    if o.fd is not None:
        builder = builder.bind_fd(o.fd)
    if o.uds is None and o.fd is None:
        builder = builder.bind(o.host, o.port)
    builder = (
        builder.backlog(o.backlog)
        .h1(max_incomplete_event_size=o.h11_max_incomplete_event_size, parser=o.http)
        .timeouts(
            keep_alive=o.timeout_keep_alive,
            request_head=o.timeout_request_head,
            graceful_shutdown=o.timeout_graceful_shutdown,
        )
        .response_headers(server=o.server_header, date=o.date_header, extra=o.headers)
        .limit_request_body(o.limit_request_body)
        .root_path(o.root_path)
        .lifespan(o.lifespan)
        .loop(o.loop)
    )
    if o.access_log:
        builder = builder.access_log()
    return builder
