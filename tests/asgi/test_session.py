"""The ASGI WebSocket session driven directly, with a recording owner instead of a driver.

What the fast paths must keep: ``receive()`` wakes once per message with no
shared future (a cancelled ``receive()`` leaves the next one working, two at
once both wake), and ``send()`` still enforces the ASGI contract.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from pounce.asgi.session import WebSocketSession
from pounce.conn import ConnectionInfo
from pounce.drivers.service import HTTPOptions, ServiceContext
from pounce.errors import ASGIContractError, ClientDisconnectedError
from pounce.protocols.events import RequestReceived
from pounce.protocols.ws import (
    AcceptWebSocket,
    CloseWebSocket,
    Handshake,
    SendMessage,
    WSOutboundEvent,
)


class Owner:
    def __init__(self) -> None:
        self.events: list[WSOutboundEvent] = []
        self.messages: list[bytes | str] = []
        self.consumed = 0
        self.drained = 0
        self.done = False

    def send_event(self, event: WSOutboundEvent) -> None:
        self.events.append(event)

    def send_message(self, data: bytes | str) -> None:
        self.messages.append(data)

    async def drain(self) -> None:
        self.drained += 1

    def message_consumed(self) -> None:
        self.consumed += 1

    def session_done(self) -> None:
        self.done = True


class _Bytes(bytes):
    pass


async def _unused_app(scope: Any, receive: Any, send: Any) -> None:
    raise AssertionError("not called")


def session(owner: Owner) -> WebSocketSession:
    request = RequestReceived(
        stream_id=1, method=b"GET", target=b"/ws", headers=[], http_version="1.1"
    )
    handshake = Handshake(key=b"k", subprotocols=("chat",), extension_offers=())
    info = ConnectionInfo(client=("127.0.0.1", 1), server=("127.0.0.1", 2))
    context = ServiceContext(_unused_app, HTTPOptions(server_header=False, date_header=False))
    return WebSocketSession(owner, request, handshake, info, context)


async def _accepted(owner: Owner) -> WebSocketSession:
    s = session(owner)
    assert await s.receive() == {"type": "websocket.connect"}
    await s.send({"type": "websocket.accept", "subprotocol": "chat"})
    assert isinstance(owner.events[-1], AcceptWebSocket)
    return s


def test_receive_waits_for_each_message_in_order() -> None:
    async def main() -> None:
        owner = Owner()
        s = await _accepted(owner)
        task = asyncio.ensure_future(s.receive())
        await asyncio.sleep(0)
        assert not task.done()
        s.feed(b"one")
        s.feed("two")
        assert await task == {"type": "websocket.receive", "bytes": b"one"}
        assert await s.receive() == {"type": "websocket.receive", "text": "two"}
        assert owner.consumed == 2
        s.disconnect(1000, "bye")
        assert await s.receive() == {"type": "websocket.disconnect", "code": 1000, "reason": "bye"}

    asyncio.run(main())


def test_a_cancelled_receive_leaves_the_next_one_working() -> None:
    async def main() -> None:
        s = await _accepted(Owner())
        first = asyncio.ensure_future(s.receive())
        await asyncio.sleep(0)
        first.cancel()
        with pytest.raises(asyncio.CancelledError):
            await first
        second = asyncio.ensure_future(s.receive())
        await asyncio.sleep(0)
        s.feed(b"x")
        assert await asyncio.wait_for(second, 1) == {"type": "websocket.receive", "bytes": b"x"}

    asyncio.run(main())


def test_two_receives_at_once_both_wake() -> None:
    async def main() -> None:
        s = await _accepted(Owner())
        a = asyncio.ensure_future(s.receive())
        b = asyncio.ensure_future(s.receive())
        await asyncio.sleep(0)
        s.feed(b"1")
        s.feed(b"2")
        got = await asyncio.wait_for(asyncio.gather(a, b), 1)
        assert sorted(m["bytes"] for m in got) == [b"1", b"2"]

    asyncio.run(main())


def test_send_is_checked_and_goes_to_the_owner() -> None:
    async def main() -> None:
        owner = Owner()
        s = session(owner)
        await s.receive()
        with pytest.raises(ASGIContractError):
            await s.send({"type": "websocket.send", "bytes": b"too early"})
        await s.send({"type": "websocket.accept"})
        await s.send({"type": "websocket.send", "bytes": b"b"})
        await s.send({"type": "websocket.send", "text": "t", "bytes": None})
        await s.send({"type": "websocket.send", "bytes": bytearray(b"ba")})
        await s.send({"type": "websocket.send", "bytes": memoryview(b"mv"), "text": None})
        await s.send({"type": "websocket.send", "bytes": _Bytes(b"sub")})
        sent = [e.data for e in owner.events if isinstance(e, SendMessage)]
        assert owner.messages + sent == [b"b", "t", b"ba", b"mv", b"sub"]
        assert all(type(m) in (bytes, str) for m in owner.messages + sent)
        for bad in (
            {"type": "websocket.send", "bytes": b"b", "text": "t"},
            {"type": "websocket.send"},
            {"type": "websocket.send", "text": b"not str"},
            {"type": "websocket.send", "bytes": "not bytes"},
            {"type": "websocket.accept"},
            {"type": "websocket.http.response.start", "status": 200},
        ):
            with pytest.raises(ASGIContractError):
                await s.send(bad)
        await s.send({"type": "websocket.close", "code": 4000})
        assert isinstance(owner.events[-1], CloseWebSocket)
        with pytest.raises(ASGIContractError):
            await s.send({"type": "websocket.send", "bytes": b"after close"})

    asyncio.run(main())


def test_send_after_disconnect_raises_client_disconnected() -> None:
    async def main() -> None:
        s = await _accepted(Owner())
        s.disconnect(1006)
        with pytest.raises(ClientDisconnectedError):
            await s.send({"type": "websocket.send", "bytes": b"x"})

    asyncio.run(main())
