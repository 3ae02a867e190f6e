"""The HTTP/1.1 protocol factory: the h11 core under the shared HTTP driver."""

from __future__ import annotations

from dataclasses import dataclass, field

from pounce.connection import HTTPDriver
from pounce.layer import ConnectionHandler
from pounce.protocol import ProtocolFactory
from pounce.protocols.h1 import H1Limits, H11Core
from pounce.service import ServiceContext


@dataclass(frozen=True, slots=True)
class HTTP1Protocol(ProtocolFactory):
    """HTTP/1.0 and HTTP/1.1; the fallback when nothing else claims a connection."""

    limits: H1Limits = field(default_factory=H1Limits)
    name = "http/1.1"
    alpn_ids = ("http/1.1",)
    fallback = True

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        return HTTPDriver(H11Core(self.limits), service)

    def describe(self) -> str:
        limits = self.limits
        return (
            f"http/1.1 (h11; max head {limits.max_incomplete_event_size} B, "
            f"max request line {limits.max_request_line} B)"
        )
