"""HTTP/3 downloads: the send path (a flight per GSO send, or one datagram per send), and a
connection still delivering when its keep-alive clock runs out.

aioquic's client over real UDP sockets, the server in this process so the
send path can be switched or slowed; every wait is bounded.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
from collections.abc import Sequence

import pytest

from pounce.asgi.types import Receive, Scope, Send
from pounce.net import udp
from pounce.net.udp import DatagramEndpoint
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_udp import needs_gso

pytest.importorskip("aioquic")

from pounce.protocols.h3 import H3Core
from tests.integration.h3client import h3_connect
from tests.integration.test_http3 import builder, run

needs_uvloop = pytest.mark.skipif(importlib.util.find_spec("uvloop") is None, reason="needs uvloop")

BODY = bytes(range(256)) * 4096 * 2  # 2 MiB: many full flights
SMALL = BODY[: 512 * 1024]  # over a slow path: several round trips after the app is done
SLOW_TIMEOUT = 30.0  # seconds: each flight waits 150 ms there


async def download(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    body = SMALL if scope["path"] == "/small" else BODY
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("gso", [pytest.param(True, marks=needs_gso), False])
def test_a_download_over_each_send_path(
    pki: PKI, gso: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    segmented: list[int] = []
    real = DatagramEndpoint._send_segments

    def counting(self: DatagramEndpoint, flight: Sequence[udp.Datagram]) -> None:
        segmented.append(len(flight))
        real(self, flight)

    monkeypatch.setattr(DatagramEndpoint, "_send_segments", counting)
    if not gso:
        monkeypatch.setattr(udp, "gso_supported", lambda sock: False)

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = await client.request("GET", "/big")
            assert reply.status == 200
            assert hashlib.sha256(reply.body).digest() == hashlib.sha256(BODY).digest()

    with TestServer(builder(pki).asgi(download)) as server:
        run(scenario)
    if gso:
        assert segmented and max(segmented) > 1  # whole flights left in one send
    else:
        assert not segmented


def test_a_connection_still_delivering_is_not_idle(
    pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The exchange ends when its last bytes are queued; on a slow path they take longer
    than the keep-alive timeout to arrive, and the next request on the connection must
    still be served (not refused after a GOAWAY)."""
    real = DatagramEndpoint.send_batch

    def slow(self: DatagramEndpoint, datagrams: Sequence[udp.Datagram]) -> None:
        flight = list(datagrams)  # sent 150 ms later: a long path
        asyncio.get_running_loop().call_later(0.15, real, self, flight)

    monkeypatch.setattr(DatagramEndpoint, "send_batch", slow)

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            for _ in range(2):
                reply = await client.request("GET", "/small")
                assert reply.reset is None and reply.status == 200
                assert len(reply.body) == len(SMALL)
            assert client.goaways == []

    async def bounded() -> None:
        async with asyncio.timeout(SLOW_TIMEOUT):
            await scenario()

    with TestServer(builder(pki).timeouts(keep_alive=0.2).asgi(download)) as server:
        asyncio.run(bounded())


@pytest.mark.parametrize("loop", ["asyncio", pytest.param("uvloop", marks=needs_uvloop)])
def test_aioquic_is_given_a_clock_finer_than_a_millisecond(
    pki: PKI, loop: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """uvloop's loop.time() counts whole milliseconds: given it, aioquic's pacer refilled once
    a millisecond (at most its 16-datagram burst: ~20 MiB/s a connection) and its pacing
    timer fired again and again in the same millisecond. The driver gives aioquic
    time.monotonic() on either loop; a download still arrives whole."""
    seen: list[float] = []
    real = H3Core.datagrams_to_send

    def recording(self: H3Core, now: float) -> list[udp.Datagram]:
        seen.append(now)
        return real(self, now)

    monkeypatch.setattr(H3Core, "datagrams_to_send", recording)

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = await client.request("GET", "/big")
            assert hashlib.sha256(reply.body).digest() == hashlib.sha256(BODY).digest()

    with TestServer(builder(pki).asgi(download), loop=loop) as server:  # type: ignore[arg-type]
        run(scenario)
    assert len(seen) > 10
    # on a millisecond clock every value is a whole number of milliseconds
    assert any(abs(now * 1000 - round(now * 1000)) > 1e-6 for now in seen), seen[:10]
