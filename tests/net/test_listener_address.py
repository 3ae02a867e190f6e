"""`listener_address`: where a listener's connections need not ask for their own address."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import httpx
import pytest

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.net.binds import listener_address
from pounce.testing import TestServer

linux_only = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux's check")


@linux_only
def test_a_listener_bound_to_one_address_gives_it() -> None:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        assert listener_address(sock) == ("127.0.0.1", sock.getsockname()[1])


@pytest.mark.parametrize(
    ("family", "host"), [(socket.AF_INET, "0.0.0.0"), (socket.AF_INET6, "::")], ids=["v4", "v6"]
)
def test_a_wildcard_listener_gives_none(family: int, host: str) -> None:
    try:
        sock = socket.create_server((host, 0), family=family)
    except OSError:
        pytest.skip(f"cannot bind {host} here")
    with sock:
        assert listener_address(sock) is None


def test_a_unix_listener_gives_none(tmp_path: Path) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(tmp_path / "s.sock"))
        sock.listen()
        assert listener_address(sock) is None


@linux_only
def test_a_transparent_listener_gives_none() -> None:
    """TPROXY hands a transparent listener connections to other hosts' addresses."""
    with socket.socket() as sock:
        try:
            sock.setsockopt(socket.IPPROTO_IP, 19, 1)  # IP_TRANSPARENT
        except PermissionError:
            pytest.skip("IP_TRANSPARENT needs CAP_NET_ADMIN")
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        assert listener_address(sock) is None


async def addresses(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = repr((scope["server"], scope["client"][0])).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])  # (uvloop: `listener_address`)
@pytest.mark.parametrize("host", ["127.0.0.1", "0.0.0.0"])
def test_the_scope_has_the_connections_own_server_address(host: str, loop: str) -> None:
    """From the listener where it knows it (uvloop's server), else from the socket."""
    pytest.importorskip(loop)
    server = Server.builder().bind(host, 0).h1().asgi(addresses)
    with TestServer(server, loop=loop) as ts:  # type: ignore[arg-type]
        response = httpx.get(f"http://127.0.0.1:{ts.port}/", timeout=5)
    assert response.text == repr((("127.0.0.1", ts.port), "127.0.0.1"))
