"""Forwarded headers: trusted proxies only, right-to-left, RFC 7239 and X-Forwarded-*."""

from __future__ import annotations

from typing import Any

import pytest

from pounce import BuildError
from pounce.asgi.types import Message, Scope
from pounce.layers.proxy.headers import ProxyHeadersLayer


def scope(
    client: tuple[str, int] | None,
    headers: list[tuple[bytes, bytes]],
    kind: str = "http",
) -> Scope:
    return {
        "type": kind,
        "scheme": "http" if kind == "http" else "ws",
        "client": client,
        "server": ("127.0.0.1", 8000),
        "headers": [(b"host", b"backend:8000"), *headers],
    }


async def seen(layer: ProxyHeadersLayer, s: Scope) -> Scope:
    got: dict[str, Any] = {}

    async def app(scope: Scope, receive: Any, send: Any) -> None:
        got.update(scope)

    async def receive() -> Message:
        return {"type": "http.request"}

    async def send(message: Message) -> None:
        pass

    await layer.wrap(app)(s, receive, send)
    return got


def host(s: Scope) -> bytes:
    return [v for n, v in s["headers"] if n == b"host"][-1]


async def test_trusted_peer_sets_client_scheme_and_host() -> None:
    headers = [
        (b"x-forwarded-for", b"203.0.113.9"),
        (b"x-forwarded-proto", b"https"),
        (b"x-forwarded-host", b"example.com"),
    ]
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 5000), headers))
    assert got["client"] == ("203.0.113.9", 0)
    assert got["scheme"] == "https"
    assert host(got) == b"example.com"
    assert sum(1 for n, _ in got["headers"] if n == b"host") == 1


async def test_untrusted_peer_cannot_spoof() -> None:
    headers = [(b"x-forwarded-for", b"10.9.9.9"), (b"x-forwarded-proto", b"https")]
    got = await seen(ProxyHeadersLayer(), scope(("198.51.100.2", 5000), headers))
    assert got["client"] == ("198.51.100.2", 5000)
    assert got["scheme"] == "http"
    assert host(got) == b"backend:8000"


async def test_multiple_hops_take_the_rightmost_untrusted_address() -> None:
    layer = ProxyHeadersLayer(["127.0.0.1", "10.0.0.0/8"])
    # The client claims 1.1.1.1; the first proxy (10.0.0.5) saw 203.0.113.9.
    headers = [(b"x-forwarded-for", b"1.1.1.1, 203.0.113.9, 10.0.0.5")]
    got = await seen(layer, scope(("127.0.0.1", 1), headers))
    assert got["client"] == ("203.0.113.9", 0)
    # Two header lines are one list (RFC 9110 §5.3).
    headers = [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-for", b"203.0.113.9, 10.0.0.5")]
    assert (await seen(layer, scope(("127.0.0.1", 1), headers)))["client"] == ("203.0.113.9", 0)


async def test_star_trusts_the_peer_but_not_the_chain() -> None:
    headers = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.9")]
    got = await seen(ProxyHeadersLayer(["*"]), scope(("198.51.100.2", 1), headers))
    assert got["client"] == ("203.0.113.9", 0)  # not the client-controlled left-most entry


async def test_rfc7239_forwarded_wins_and_is_parsed() -> None:
    headers = [
        (b"x-forwarded-for", b"9.9.9.9"),
        (
            b"forwarded",
            b'for=1.1.1.1, for="[2001:db8::7]:4711";proto=https;host="example.com:8443"'
            b";by=10.0.0.1",
        ),
    ]
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), headers))
    assert got["client"] == ("2001:db8::7", 4711)
    assert got["scheme"] == "https"
    assert host(got) == b"example.com:8443"


async def test_forwarded_with_ipv4_port_and_obfuscated_node() -> None:
    headers = [(b"forwarded", b"for=192.0.2.43:47011;proto=http")]
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), headers))
    assert got["client"] == ("192.0.2.43", 47011)
    headers = [(b"forwarded", b"for=_hidden")]
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), headers))
    assert got["client"] == ("_hidden", 0)


async def test_websocket_scheme_and_bad_values() -> None:
    headers = [(b"x-forwarded-proto", b"https")]
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), headers, kind="websocket"))
    assert got["scheme"] == "wss"
    headers = [(b"x-forwarded-proto", b"gopher"), (b"x-forwarded-host", b"a\r\nb")]
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), headers))
    assert got["scheme"] == "http" and host(got) == b"backend:8000"


async def test_unix_socket_peers_trusted_only_when_listed() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.9")]
    assert (await seen(ProxyHeadersLayer(), scope(None, headers)))["client"] is None
    got = await seen(ProxyHeadersLayer(["unix"]), scope(None, headers))
    assert got["client"] == ("203.0.113.9", 0)


async def test_ipv4_mapped_peer_matches_ipv4_network() -> None:
    headers = [(b"x-forwarded-for", b"203.0.113.9")]
    got = await seen(ProxyHeadersLayer(), scope(("::ffff:127.0.0.1", 1), headers))
    assert got["client"] == ("203.0.113.9", 0)


def test_bad_trusted_entry_is_a_build_error() -> None:
    with pytest.raises(BuildError, match="not-an-ip"):
        ProxyHeadersLayer(["127.0.0.1", "not-an-ip"])


def test_describe() -> None:
    assert ProxyHeadersLayer("127.0.0.1, 10.0.0.0/8").describe() == (
        "proxy headers (trusted 127.0.0.1, 10.0.0.0/8)"
    )


@pytest.mark.parametrize(
    ("value", "client"),
    [
        (b"1.2.3.4:80", ("1.2.3.4", 0)),  # docs/proxies.md: port 0 unless Forwarded names one
        (b"[2001:db8::1]:80", ("2001:db8::1", 0)),
        (b"2001:db8::1", ("2001:db8::1", 0)),
        (b"not-an-ip", ("127.0.0.1", 1)),  # ignored: the client stays the peer
        (b"_hidden", ("127.0.0.1", 1)),
        (b"1.2.3.4.5", ("127.0.0.1", 1)),
        (b"203.0.113.9, not-an-ip", ("127.0.0.1", 1)),  # the right-most, not one further left
    ],
)
async def test_x_forwarded_for_gives_an_ip_address_and_no_port(
    value: bytes, client: tuple[str, int]
) -> None:
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), [(b"x-forwarded-for", value)]))
    assert got["client"] == client


@pytest.mark.parametrize("node", [b"unknown", b"not-an-ip", b'"[not-an-ip]:80"'])
async def test_a_forwarded_node_that_is_no_address_is_ignored(node: bytes) -> None:
    headers = [(b"forwarded", b"for=" + node + b";proto=https")]
    got = await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), headers))
    assert got["client"] == ("127.0.0.1", 1)
    assert got["scheme"] == "https"  # the hop's other parameters still count


async def test_an_ignored_address_is_logged_at_debug(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level("DEBUG", logger="pounce.error")
    headers = [(b"x-forwarded-for", b"not-an-ip")]
    await seen(ProxyHeadersLayer(), scope(("127.0.0.1", 1), headers))
    [record] = [r for r in caplog.records if r.name == "pounce.error"]
    assert record.levelname == "DEBUG" and "not-an-ip" in record.getMessage()
