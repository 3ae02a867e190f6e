"""HTTP/3 downloads: the send path (a flight per GSO send, or one datagram per send).

aioquic's client over real UDP sockets, the server in this process so the
send path can be switched or slowed; every wait is bounded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import pytest

from pounce.asgi.types import Receive, Scope, Send
from pounce.net import udp
from pounce.net.udp import DatagramEndpoint
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_udp import needs_gso

pytest.importorskip("aioquic")

from tests.integration.h3client import h3_connect
from tests.integration.test_http3 import builder, run

BODY = bytes(range(256)) * 4096 * 2  # 2 MiB: many full flights


async def download(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": BODY})


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
