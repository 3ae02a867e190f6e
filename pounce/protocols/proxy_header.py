"""HAProxy PROXY protocol headers, v1 (text) and v2 (binary): a sans-I/O parser.

The spec is https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
(sections cited below as "PP §"). The parser never asks for a byte past the
header: `next_read` says how many bytes may be read now, so whatever the
client sent after the header (a TLS ClientHello, a request) stays unread for
the layer beneath. No I/O, no clock: the layer that drives it owns both.
"""

from __future__ import annotations

import ipaddress
import struct
from dataclasses import dataclass

from pounce.errors import RemoteProtocolError

V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"  # PP §2.2
V1_PREFIX = b"PROXY "
V1_MAX = 107  # PP §2.1: "a receiver … must not read more than 107 characters"
V2_MAX_PAYLOAD = 4096  # bytes of addresses + TLVs we accept; HAProxy sends well under 1 KiB
PROBE = 8  # first read: shorter than any valid header, long enough to tell v1 from v2
# Shortest complete v1 line for each protocol token, so that most of it is read at once.
_V1_SHORTEST = {b"TCP4": 32, b"TCP6": 22, b"UNKN": 15}

# PP §2.2.7: TLV types.
PP2_TYPE_ALPN = 0x01
PP2_TYPE_AUTHORITY = 0x02
PP2_TYPE_SSL = 0x20
PP2_CLIENT_SSL = 0x01


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyHeader:
    """A parsed header; `client` / `server` are None for LOCAL, UNKNOWN, UNSPEC and Unix."""

    version: int
    local: bool
    client: tuple[str, int] | None = None
    server: tuple[str, int] | None = None
    alpn: str | None = None
    authority: str | None = None
    ssl: bool = False


class ProxyHeaderParser:
    """Feed exactly `next_read()` bytes at a time until it returns 0, then take `header`."""

    __slots__ = ("_buffer", "_header")

    def __init__(self) -> None:
        self._buffer = b""
        self._header: ProxyHeader | None = None

    def next_read(self) -> int:
        """How many bytes to read next without overshooting the header; 0 when complete."""
        if self._header is not None:
            return 0
        buf = self._buffer
        if len(buf) < PROBE:
            return PROBE - len(buf)
        if buf.startswith(V2_SIGNATURE[:PROBE]):
            return self._v2_need(buf)
        if buf.startswith(V1_PREFIX):
            return self._v1_need(buf)
        raise RemoteProtocolError("the connection does not start with a PROXY protocol header")

    def feed(self, data: bytes) -> None:
        if len(data) > self.next_read():
            raise ValueError("fed more than next_read() allowed")
        self._buffer += data
        buf = self._buffer
        if buf.startswith(V1_PREFIX) and buf.endswith(b"\r\n"):
            self._header = parse_v1(buf)
        elif len(buf) >= 16 and buf.startswith(V2_SIGNATURE) and len(buf) == _v2_total(buf):
            self._header = parse_v2(buf)

    @property
    def header(self) -> ProxyHeader | None:
        return self._header

    @staticmethod
    def _v2_need(buf: bytes) -> int:
        if len(buf) < 16:
            return 16 - len(buf)
        if not buf.startswith(V2_SIGNATURE):
            raise RemoteProtocolError("malformed PROXY v2 signature")
        total = _v2_total(buf)
        if total - 16 > V2_MAX_PAYLOAD:
            raise RemoteProtocolError(f"PROXY v2 header of {total} bytes is too long")
        return total - len(buf)

    @staticmethod
    def _v1_need(buf: bytes) -> int:
        if b"\n" in buf:  # a bare LF, or CRLF not at the end: never valid (PP §2.1)
            raise RemoteProtocolError("malformed PROXY v1 header line")
        shortest = _V1_SHORTEST.get(buf[6:10], 15)
        if len(buf) < shortest:
            return shortest - len(buf)
        if len(buf) >= V1_MAX:
            raise RemoteProtocolError("PROXY v1 header longer than 107 bytes")
        return 1 if buf.endswith(b"\r") else 2


def _v2_total(buf: bytes) -> int:
    """PP §2.2: 16 fixed bytes, then the big-endian length of what follows."""
    return 16 + int.from_bytes(buf[14:16], "big")


def parse_v1(line: bytes) -> ProxyHeader:
    """PP §2.1: ``PROXY TCP4|TCP6|UNKNOWN src dst sport dport\\r\\n``."""
    try:
        text = line[:-2].decode("ascii")
    except UnicodeDecodeError:
        raise RemoteProtocolError("PROXY v1 header is not ASCII") from None
    parts = text.split(" ")
    if len(parts) >= 2 and parts[1] == "UNKNOWN":
        return ProxyHeader(version=1, local=True)  # the rest of the line is ignored
    if len(parts) != 6 or parts[1] not in ("TCP4", "TCP6"):
        raise RemoteProtocolError(f"malformed PROXY v1 header {text[:60]!r}")
    family = 4 if parts[1] == "TCP4" else 6
    client = (_address(parts[2], family), _port(parts[4]))
    server = (_address(parts[3], family), _port(parts[5]))
    return ProxyHeader(version=1, local=False, client=client, server=server)


def _address(text: str, family: int) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        raise RemoteProtocolError(f"PROXY header: {text[:46]!r} is not an IP address") from None
    if address.version != family:
        raise RemoteProtocolError(f"PROXY header: {text!r} is not an IPv{family} address")
    return str(address)


def _port(text: str) -> int:
    # PP §2.1: decimal, no leading zero, 0-65535.
    if not text.isdigit() or len(text) > 5 or (len(text) > 1 and text[0] == "0"):
        raise RemoteProtocolError(f"PROXY header: bad port {text[:8]!r}")
    port = int(text)
    if port > 65535:
        raise RemoteProtocolError(f"PROXY header: bad port {text!r}")
    return port


def parse_v2(data: bytes) -> ProxyHeader:
    """PP §2.2: signature, version/command, family/transport, length, addresses, TLVs."""
    version, command = data[12] >> 4, data[12] & 0x0F
    if version != 2 or command not in (0, 1):
        raise RemoteProtocolError(f"PROXY v2: bad version/command byte {data[12]:#04x}")
    family = data[13]
    payload = data[16:]
    sizes = {0x11: 12, 0x12: 12, 0x21: 36, 0x22: 36, 0x31: 216, 0x32: 216}
    size = sizes.get(family, 0)
    if family not in sizes and family != 0x00:
        raise RemoteProtocolError(f"PROXY v2: unknown address family {family:#04x}")
    if len(payload) < size:
        raise RemoteProtocolError("PROXY v2: header too short for its address family")
    alpn, authority, ssl = _tlvs(payload[size:])
    client = server = None
    if command == 1 and family in (0x11, 0x12):
        src, dst, sport, dport = struct.unpack_from("!4s4sHH", payload)
        client = (str(ipaddress.IPv4Address(src)), sport)
        server = (str(ipaddress.IPv4Address(dst)), dport)
    elif command == 1 and family in (0x21, 0x22):
        src, dst, sport, dport = struct.unpack_from("!16s16sHH", payload)
        client = (str(ipaddress.IPv6Address(src)), sport)
        server = (str(ipaddress.IPv6Address(dst)), dport)
    return ProxyHeader(
        version=2,
        local=command == 0 or client is None,
        client=client,
        server=server,
        alpn=alpn,
        authority=authority,
        ssl=ssl,
    )


def _tlvs(data: bytes) -> tuple[str | None, str | None, bool]:
    """PP §2.2.7: the TLVs we use (ALPN, AUTHORITY, SSL); others are skipped."""
    alpn = authority = None
    ssl = False
    offset = 0
    while offset < len(data):
        if len(data) - offset < 3:
            raise RemoteProtocolError("PROXY v2: truncated TLV")
        kind, length = data[offset], struct.unpack_from("!H", data, offset + 1)[0]
        value = data[offset + 3 : offset + 3 + length]
        if len(value) != length:
            raise RemoteProtocolError("PROXY v2: TLV longer than the header")
        if kind == PP2_TYPE_ALPN:
            alpn = value.decode("ascii", "replace")
        elif kind == PP2_TYPE_AUTHORITY:
            authority = value.decode("utf-8", "replace")
        elif kind == PP2_TYPE_SSL and length >= 1:
            ssl = bool(value[0] & PP2_CLIENT_SSL)
        offset += 3 + length
    return alpn, authority, ssl
