"""The protocol bridge's choice by a connection's first bytes (`pounce.drivers.bridge`).

With HTTP/2 beside HTTP/1.1 the bridge waits for bytes; a first byte that no
sniffing protocol can start with (`sniff_first_bytes`) goes to the fallback
without asking them, and every other first byte is sniffed as before.
"""

from __future__ import annotations

import pytest

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.conn import ConnectionHandler
from pounce.drivers.bridge import Fallback, ProtocolBridge, ProtocolFactory
from pounce.drivers.http import HTTPDriver
from pounce.drivers.http1 import HTTP1Protocol
from pounce.drivers.http2 import HTTP2Driver, HTTP2Protocol
from pounce.drivers.service import ServiceContext
from pounce.testing import MemoryConn


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"hi"})


class _Greeting(ProtocolFactory):
    """Claims connections that start with ``HELLO``; names no first bytes."""

    name = "greeting"

    def sniff(self, data: bytes) -> bool | None:
        if len(data) < 5:
            return None if b"HELLO".startswith(data) else False
        return data.startswith(b"HELLO")

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        raise AssertionError("not reached in these tests")


class _NamedGreeting(_Greeting):
    sniff_first_bytes = b"H"


def test_fallback_by_first_byte_when_every_sniffer_names_its_own() -> None:
    h1, h2 = HTTP1Protocol(), HTTP2Protocol()
    assert Fallback.of((h1, h2)) == Fallback(h1, b"P")
    assert Fallback.of((h2, h1, _NamedGreeting())) == Fallback(h1, b"HP")
    assert Fallback.of((h1, h2, _Greeting())).factory is None  # one names none: sniff all
    assert Fallback.of((h2,)).factory is None  # no fallback: nothing to pick


def _bridge() -> tuple[ProtocolBridge, MemoryConn]:
    server = Server.builder().bind("127.0.0.1", 0).h1().h2().asgi(hello)
    bridge = ProtocolBridge(server.spec.protocols, ServiceContext(hello, server.spec.http))
    return bridge, MemoryConn(bridge)


async def test_a_get_is_http1_at_its_first_byte(monkeypatch: pytest.MonkeyPatch) -> None:
    def never(self: HTTP2Protocol, data: bytes) -> bool | None:
        raise AssertionError("HTTP/2 asked to sniff a connection that starts with G")

    monkeypatch.setattr(HTTP2Protocol, "sniff", never)
    bridge, conn = _bridge()
    conn.open()
    assert len(bridge._undecided) == 1  # waiting for bytes
    conn.feed(b"G")
    assert isinstance(bridge._chosen, HTTPDriver) and not isinstance(bridge._chosen, HTTP2Driver)
    assert len(bridge._undecided) == 0
    conn.lose()


async def test_a_first_p_is_still_sniffed() -> None:
    bridge, conn = _bridge()
    conn.open()
    conn.feed(b"PRI * HTTP/2.0\r\n")
    assert bridge._chosen is None  # could still be the HTTP/2 preface
    conn.feed(b"\r\nSM\r\n\r\n")
    assert isinstance(bridge._chosen, HTTP2Driver)
    conn.lose()


async def test_a_post_is_http1_once_it_cannot_be_the_preface() -> None:
    bridge, conn = _bridge()
    conn.open()
    conn.feed(b"P")
    assert bridge._chosen is None
    conn.feed(b"OST / HTTP/1.1\r\n")
    assert isinstance(bridge._chosen, HTTPDriver) and not isinstance(bridge._chosen, HTTP2Driver)
    conn.lose()
