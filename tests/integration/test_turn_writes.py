"""Many keep-alive connections on uvloop: their reads are held a turn and the turn's
writes leave together (`ConnectionTracker._hand_on`), and every client still gets its own
responses, whole and in order — one-call responses, streamed ones, pipelined ones and
a last one that closes.
"""

from __future__ import annotations

import asyncio

import pytest

from pounce.asgi.types import Receive, Scope, Send
from pounce.net.transport import TransportAdapter
from pounce.testing import TestServer

pytest.importorskip("uvloop")

CONNECTIONS = 16  # over HOLD_FROM_CONNECTIONS: reads are held, writes wait for the turn
ROUNDS = 6


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    path = scope["path"]
    body = path.encode()
    if path.startswith("/stream"):
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for piece in (body[i : i + 3] for i in range(0, len(body), 3)):
            await send({"type": "http.response.body", "body": piece, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


async def _read_response(reader: asyncio.StreamReader) -> tuple[bytes, bytes]:
    head = await reader.readuntil(b"\r\n\r\n")
    if b"transfer-encoding: chunked" in head.lower():
        body = b""
        while True:
            size = int((await reader.readline()).strip(), 16)
            chunk = await reader.readexactly(size + 2)
            if size == 0:
                return head, body
            body += chunk[:-2]
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            return head, await reader.readexactly(int(line.split(b":")[1]))
    raise AssertionError(f"no framing in {head!r}")


async def _client(port: int, number: int) -> list[bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    seen: list[bytes] = []
    try:
        for turn in range(ROUNDS):
            paths = [f"/c{number}/r{turn}", f"/stream/c{number}/r{turn}"]
            if turn % 2:  # pipelined: both requests in one write
                writer.write(
                    b"".join(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % p.encode() for p in paths)
                )
                for _ in paths:
                    seen.append((await _read_response(reader))[1])
            else:
                for path in paths:
                    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
                    seen.append((await _read_response(reader))[1])
        writer.write(b"GET /c%d/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % number)
        head, body = await _read_response(reader)
        assert b"connection: close" in head.lower()
        seen.append(body)
        assert await reader.read() == b""  # and then the server closes
    finally:
        writer.close()
    return seen


async def _load(port: int) -> list[list[bytes]]:
    return await asyncio.wait_for(
        asyncio.gather(*(_client(port, n) for n in range(CONNECTIONS))), timeout=30
    )


def test_every_client_gets_its_own_responses_in_order(monkeypatch: pytest.MonkeyPatch) -> None:
    held_writes = 0
    write_deferred = TransportAdapter._write_deferred

    def counted(adapter: TransportAdapter) -> None:
        nonlocal held_writes
        held_writes += adapter._deferred is not None
        write_deferred(adapter)

    monkeypatch.setattr(TransportAdapter, "_write_deferred", counted)
    with TestServer(app, loop="uvloop") as ts:
        results = asyncio.run(_load(ts.port))
    assert held_writes  # the load made turns with held reads, and writes waited for them
    for number, seen in enumerate(results):
        expected = [
            path.encode()
            for turn in range(ROUNDS)
            for path in (f"/c{number}/r{turn}", f"/stream/c{number}/r{turn}")
        ] + [b"/c%d/last" % number]
        assert seen == expected
