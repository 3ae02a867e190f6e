"""Forwarded headers: client, scheme and host as a trusted reverse proxy saw them.

An `AppLayer`, meant to be the outermost one (so the access log shows the
real client). Only when the direct peer is a trusted proxy
(`TrustedProxies`; default the loopback addresses) does it read RFC 7239
``Forwarded`` — or, when that is absent, ``X-Forwarded-For``,
``X-Forwarded-Proto`` and ``X-Forwarded-Host``. Anyone else's headers are
ignored, so a client cannot claim another address (test: spoofing from an
untrusted peer).

Multiple hops: the chain is read right to left, skipping addresses of
trusted proxies; the client is the right-most address that is not one.
``scheme`` and ``Host`` come from the same hop's entry where the proxy sent one
per hop, else from the right-most value. ``root_path`` is untouched: a proxy
that mounts the app under a prefix is configured with ``--root-path``.

The client's address must be an IP address (in ``Forwarded`` also an RFC
7239 §6.3 obfuscated ``_name``); anything else is ignored, logged at debug on
``pounce.error``, and the client stays the peer. Its port is 0 unless
``Forwarded`` names one (``X-Forwarded-For: 1.2.3.4:80`` gives port 0).
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
from collections.abc import Awaitable, Iterable, Sequence
from dataclasses import dataclass
from operator import itemgetter

from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.layer import AppLayer
from pounce.layers.proxy.trust import DEFAULT_TRUSTED, TrustedProxies

error_log = logging.getLogger("pounce.error")

_SCHEMES = {"http": ("http", "ws"), "https": ("https", "wss"), "ws": ("http", "ws")}
_SCHEMES["wss"] = _SCHEMES["https"]
# RFC 7239 §4: forwarded-pair = token "=" value; value = token / quoted-string.
_PAIR = re.compile(r'\s*([!#$%&\'*+.^_`|~0-9A-Za-z-]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;,\s]*)\s*')
# RFC 7239 §6.3: obfnode = "_" 1*( ALPHA / DIGIT / "." / "_" / "-").
_OBFUSCATED = re.compile(r"_[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True, init=False)
class ProxyHeadersLayer(AppLayer):
    """Rewrite ``client``, ``scheme`` and the ``host`` header from trusted proxies' headers."""

    trusted: TrustedProxies

    def __init__(self, trusted: Iterable[str] = DEFAULT_TRUSTED) -> None:
        object.__setattr__(self, "trusted", TrustedProxies(trusted))

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        trusted = self.trusted

        # Not a coroutine function: it rewrites the scope and returns the app's own
        # awaitable, so a request pays for no coroutine and frame of this layer (the
        # server awaits what an ASGI app returns; an error here raises at the call,
        # inside the same ``try`` as the app's own).
        def forwarded(scope: Scope, receive: Receive, send: Send) -> Awaitable[None]:
            if scope["type"] in ("http", "websocket"):
                # Headers first: most requests carry none (no Python step per field, and
                # no call), and then whom we trust does not matter.
                headers = scope["headers"]
                if not _FORWARDING.isdisjoint(map(_name, headers)):
                    found = _forwarding_headers(headers)
                    if trusted.trusts_peer(scope.get("client")):
                        apply_forwarded(scope, trusted, found)
            return inner(scope, receive, send)

        return forwarded

    def describe(self) -> str:
        return f"proxy headers (trusted {self.trusted.describe()})"


_FORWARDING = frozenset(
    (b"forwarded", b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host")
)


_name = itemgetter(0)


def _forwarding_headers(headers: Iterable[tuple[bytes, bytes]]) -> dict[bytes, list[str]]:
    """The forwarding headers' values by name (asked only when some are there: most
    requests, a browser's fifteen fields, are told apart in `forwarded` without a Python
    step per field)."""
    found: dict[bytes, list[str]] = {}
    for name, value in headers:
        if name in _FORWARDING:
            found.setdefault(name, []).append(value.decode("latin-1"))
    return found


def apply_forwarded(scope: Scope, trusted: TrustedProxies, found: dict[bytes, list[str]]) -> None:
    """Rewrite `scope` in place from `found`, its forwarding headers (the peer is trusted)."""
    headers = scope["headers"]
    rfc7239 = b"forwarded" in found
    if rfc7239:
        hops = _rfc7239(found[b"forwarded"])
        fors = [hop.get("for", "") for hop in hops]
        protos = [hop.get("proto", "") for hop in hops]
        hosts = [hop.get("host", "") for hop in hops]
    else:
        fors = _items(found.get(b"x-forwarded-for", ()))
        protos = _items(found.get(b"x-forwarded-proto", ()))
        hosts = _items(found.get(b"x-forwarded-host", ()))
    index = _client_index(fors, trusted)
    if index is not None:
        client = _client(fors[index], rfc7239=rfc7239)
        if client is not None:
            scope["client"] = client
        else:
            name = "Forwarded for=" if rfc7239 else "X-Forwarded-For"
            error_log.debug(
                "%s %r from %s ignored: not an IP address", name, fors[index], scope.get("client")
            )
    proto = _pick(protos, index, len(fors)).lower()
    if proto in _SCHEMES:
        scope["scheme"] = _SCHEMES[proto][scope["type"] == "websocket"]
    host = _pick(hosts, index, len(fors))
    if host and _valid_host(host):
        scope["headers"] = [(n, v) for n, v in headers if n != b"host"]
        scope["headers"].append((b"host", host.encode("latin-1")))


def _items(values: Iterable[str]) -> list[str]:
    return [item.strip() for value in values for item in value.split(",") if item.strip()]


def _client_index(fors: Sequence[str], trusted: TrustedProxies) -> int | None:
    """Right to left, the first address that is not a trusted proxy."""
    for i in range(len(fors) - 1, -1, -1):
        if not trusted.trusts_hop(_host_part(fors[i])):
            return i
    return 0 if fors else None  # every hop trusted: the left-most is all we know


def _pick(values: Sequence[str], index: int | None, hops: int) -> str:
    if not values:
        return ""
    if index is not None and len(values) == hops:
        return values[index]
    return values[-1]


def _host_part(node: str) -> str:
    """RFC 7239 §6 node: ``1.2.3.4``, ``1.2.3.4:80``, ``[2001:db8::1]:80``, ``unknown``."""
    if node.startswith("["):
        return node[1 : node.find("]")] if "]" in node else node
    if node.count(":") == 1:
        return node.partition(":")[0]
    return node


def _client(node: str, *, rfc7239: bool) -> tuple[str, int] | None:
    """``scope["client"]`` from a node; None when it names no address (docs/proxies.md).

    An IP address (``Forwarded``: or an obfuscated ``_name``, RFC 7239 §6.3);
    the port only from ``Forwarded``, else 0.
    """
    host = _host_part(node)
    if not _is_ip(host) and not (rfc7239 and _OBFUSCATED.fullmatch(host)):
        return None
    port = 0
    if rfc7239:
        rest = node[node.find("]") + 1 :] if node.startswith("[") else node[len(host) :]
        if rest.startswith(":") and rest[1:].isdigit() and int(rest[1:]) <= 65535:
            port = int(rest[1:])
    return host, port


@functools.lru_cache(maxsize=4096)  # proxies repeat the same few clients; thread-safe
def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _rfc7239(values: Iterable[str]) -> list[dict[str, str]]:
    """RFC 7239 §4: ``Forwarded: for=a;proto=https, for="[::1]:80"`` → one dict per hop."""
    hops: list[dict[str, str]] = []
    for value in values:
        for element in _split_elements(value):
            hop: dict[str, str] = {}
            for pair in element.split(";"):
                match = _PAIR.fullmatch(pair)
                if match:
                    raw = match[2]
                    if raw.startswith('"'):
                        raw = re.sub(r"\\(.)", r"\1", raw[1:-1])
                    hop[match[1].lower()] = raw
            hops.append(hop)
    return hops


def _split_elements(value: str) -> list[str]:
    """Split on commas outside quoted strings."""
    parts: list[str] = []
    current: list[str] = []
    quoted = escaped = False
    for char in value:
        if escaped:
            escaped = False
        elif char == "\\" and quoted:
            escaped = True
        elif char == '"':
            quoted = not quoted
        elif char == "," and not quoted:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    parts.append("".join(current))
    return [part for part in parts if part.strip()]


def _valid_host(host: str) -> bool:
    """A Host value without anything that could split or confuse a header (RFC 9110 §7.2)."""
    return all(c.isalnum() or c in "-._~:[]%!$&'()*+,;=" for c in host) and len(host) < 256
