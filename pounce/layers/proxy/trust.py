"""Which peers are trusted proxies: IPs, CIDR networks, ``*`` and Unix socket peers.

Shared by the forwarded-headers layer and the PROXY protocol layer. The
default, as Uvicorn's ``--forwarded-allow-ips``: the loopback addresses only.

``*`` trusts any *direct* peer, but never turns an address inside a forwarded
chain into a proxy: behind ``*`` the client is the right-most forwarded
address. (Uvicorn's ``*`` takes the left-most, client-controlled entry, so a
client can name any address it likes; PEERS.md §5.)
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

from pounce.errors import BuildError

DEFAULT_TRUSTED = ("127.0.0.1", "::1")
UNIX_PEERS = "unix"
"""The literal that trusts peers on Unix sockets (which have no address)."""

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def split_list(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"10.0.0.0/8, 127.0.0.1"`` or a list → a tuple of stripped, non-empty entries."""
    items = value.split(",") if isinstance(value, str) else value
    return tuple(item.strip() for item in items if item and item.strip())


class TrustedProxies:
    """An immutable set of trusted proxy addresses."""

    __slots__ = ("_any", "_hop_cache", "_networks", "_unix", "entries")

    def __init__(self, entries: Iterable[str], *, call: str = ".proxy_headers") -> None:
        self.entries = split_list(entries)
        self._any = "*" in self.entries
        self._unix = False
        networks: list[Network] = []
        for entry in self.entries:
            if entry == "*":
                continue
            if entry == UNIX_PEERS or entry.startswith(("unix:", "/")):
                self._unix = True
                continue
            try:
                networks.append(ipaddress.ip_network(entry.strip("[]"), strict=False))
            except ValueError:
                raise BuildError(
                    f"{call}(trusted=...): {entry!r} is not an IP address or network",
                    hint='e.g. ["127.0.0.1", "10.0.0.0/8", "unix"] or ["*"]',
                ) from None
        self._networks = tuple(networks)
        # Parsing an address costs microseconds and every request from a proxy
        # asks about the same few; lru_cache is thread-safe and bounded.
        self._hop_cache = functools.lru_cache(maxsize=4096)(self._trusts_hop)

    def trusts_peer(self, client: tuple[str, int] | None) -> bool:
        """Is the direct peer (``scope["client"]``; None on a Unix socket) a proxy we trust?"""
        if client is None:
            return self._unix or self._any
        return self._any or self.trusts_hop(client[0])

    def trusts_hop(self, address: str) -> bool:
        """Is an address named inside a forwarded chain a trusted proxy? (``*`` does not count.)"""
        return bool(self._hop_cache(address))

    def _trusts_hop(self, address: str) -> bool:
        if not self._networks:
            return False
        try:
            ip = ipaddress.ip_address(address.strip("[]"))
        except ValueError:
            return False
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            ip = ip.ipv4_mapped  # a dual-stack socket's view of an IPv4 peer
        return any(ip in net for net in self._networks)

    def describe(self) -> str:
        return ", ".join(self.entries) or "nobody"
