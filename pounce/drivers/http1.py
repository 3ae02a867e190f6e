"""The HTTP/1.1 protocol factory: a sans-I/O core under the shared HTTP driver.

Two cores implement HTTP/1.1 with the same events and the same strictness:
``fast`` (`FastH1Core`, the default) and ``h11`` (`H11Core`, the reference
implementation, which the fast one is differentially tested against).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from pounce.conn import Conn, ConnectionHandler
from pounce.drivers.bridge import ProtocolFactory, StartsWithBytes
from pounce.drivers.http import HTTPDriver
from pounce.drivers.service import ServiceContext
from pounce.options import option, whole
from pounce.protocols.base import ProtocolCore
from pounce.protocols.h1 import DEFAULT_MAX_HEAD, DEFAULT_MAX_REQUEST_LINE, H1Limits, H11Core
from pounce.protocols.h1_fast import FastH1Core

H1Parser = Literal["auto", "fast", "h11"]
H1_PARSERS: tuple[H1Parser, ...] = ("auto", "fast", "h11")


class HTTP1Driver(HTTPDriver, StartsWithBytes):
    """The HTTP driver of an HTTP/1.1 connection, started by the bridge with its first bytes."""

    def start_with(self, conn: Conn, data: bytes) -> None:
        """`connection_made` and the first bytes at once: a first request head that came
        whole in them is served with no clock started for it (the bridge's timed its
        wait); one still incomplete gets the request-head timeout from now, as
        `connection_made` would have given it."""
        self._conn = conn
        self.data_received(data)  # an incomplete head arms the head timer
        if self._service.shutting_down and not self._closed:
            self.begin_shutdown()


@dataclass(frozen=True, slots=True, kw_only=True)
class H1Options:
    """The options of `.h1()`; the limits are the cores' own defaults (`H1Limits`)."""

    builder_call = ".h1"
    options_group = "HTTP/1.1"

    max_incomplete_event_size: int = option(
        DEFAULT_MAX_HEAD,
        unit="bytes",
        name="h11_max_incomplete_event_size",
        help="largest request head (line and fields) before 431; h11's and Uvicorn's 16 KiB",
        check=whole(64, text="an integer of at least 64 bytes"),
    )
    max_request_line: int = option(
        DEFAULT_MAX_REQUEST_LINE,
        unit="bytes",
        name="limit_request_line",
        help="largest request line before 414; nginx's and Apache's 8 KiB",
        check=whole(64, text="an integer of at least 64 bytes"),
    )
    parser: H1Parser = option(
        "auto",
        name="http",
        help="HTTP/1.1 parser: fast (pure Python) or h11; equally strict; auto = fast",
    )

    def protocol(self) -> HTTP1Protocol:
        limits = H1Limits(
            max_incomplete_event_size=self.max_incomplete_event_size,
            max_request_line=self.max_request_line,
        )
        return HTTP1Protocol(limits, self.parser)


@dataclass(frozen=True, slots=True)
class HTTP1Protocol(ProtocolFactory):
    """HTTP/1.0 and HTTP/1.1; the fallback when nothing else claims a connection."""

    limits: H1Limits = field(default_factory=H1Limits)
    parser: H1Parser = "auto"
    name = "http/1.1"
    alpn_ids = ("http/1.1",)
    fallback = True
    needs_app = True

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        limits = self.limits
        core: ProtocolCore = H11Core(limits) if self.parser == "h11" else FastH1Core(limits)
        return HTTP1Driver(core, service)

    def describe(self) -> str:
        limits = self.limits
        parser = "fast" if self.parser == "auto" else self.parser
        return (
            f"http/1.1 ({parser}; max head {limits.max_incomplete_event_size} B, "
            f"max request line {limits.max_request_line} B)"
        )
