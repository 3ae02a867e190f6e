"""RFC 9112 rules both HTTP/1.1 cores add to h11's grammar: Host, absolute-form, chunk headers.

h11 takes a Host field of any field value, a chunk extension of any bytes but
LF, and hands an absolute-form target over as it came. `H11Core` and
`FastH1Core` call these at the same point of a request (after the head's own
checks), so they refuse the same requests with the same status
(tests/protocols/test_h1_differential.py). Every refusal is a
`RemoteProtocolError` with status 400.

Invariants: pure functions of their input, except `ChunkHeaders`, which
follows one request body; nothing here costs a request with an origin-form
target, a plain Host and no chunked body more than one regex match.
"""

from __future__ import annotations

import ipaddress
import re

from pounce.errors import RemoteProtocolError
from pounce.protocols.events import Headers

# RFC 3986 §3.2.2 reg-name characters (unreserved / sub-delims), without "%".
_REG_NAME_CHARS = rb"[-A-Za-z0-9._~!$&'()*+,;=]"
PLAIN_HOST = _REG_NAME_CHARS + rb"*+(?::[0-9]*+)?"
"""A pattern for the common Host value (a name or IPv4 address, an optional port); every
value it matches `valid_host` accepts. `FastH1Core`'s one-match head uses it."""
# RFC 9112 §3.2: Host = uri-host [ ":" port ]; RFC 3986 §3.2.2: uri-host =
# IP-literal / IPv4address / reg-name (IPv4address is a reg-name as well).
# No userinfo: "@" is in none of them.
_REG_NAME = _REG_NAME_CHARS + rb"*+(?:%[0-9A-Fa-f]{2}" + _REG_NAME_CHARS + rb"*+)*+"
_IPV6 = rb"\[([0-9A-Fa-f:.]+)\]"  # checked by `ipaddress` after the match
_IPVFUTURE = rb"\[v[0-9A-Fa-f]+\.[-A-Za-z0-9._~!$&'()*+,;=:]+\]"
_HOST = re.compile(rb"(?:" + _IPV6 + rb"|" + _IPVFUTURE + rb"|" + _REG_NAME + rb")(?::[0-9]*+)?")
# RFC 9112 §3.2.2 absolute-form, for the "http" and "https" schemes (RFC 9110
# §4.2): the authority, then the path and query (a target holds no CR or LF).
_ABSOLUTE_FORM = re.compile(rb"(?i:https?)://([^/?#]*)(.*)")
# RFC 9112 §7.1: chunk-size [ chunk-ext ] CRLF. §7.1.1: chunk-ext is tokens
# and quoted-strings, so no control byte but HTAB; §2.2: a bare CR is invalid.
# (h11 takes any byte but LF after the ";".)
CHUNK_HEADER = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;[\t\x20-\x7e\x80-\xff]*)?[ \t]*\r\n")


def valid_host(value: bytes) -> bool:
    """Is `value` ``uri-host [ ":" port ]`` (RFC 9112 §3.2)? The empty value is (§3.2)."""
    match = _HOST.fullmatch(value)
    if match is None:
        return False
    ipv6 = match[1]
    if ipv6 is None:
        return True
    try:
        ipaddress.IPv6Address(ipv6.decode("ascii"))
    except ValueError:
        return False
    return True


def check_host(value: bytes) -> None:
    """RFC 9112 §3.2: "A server MUST respond with a 400 … to any request message that
    contains … a Host header field with an invalid field value"."""
    if not valid_host(value):
        raise RemoteProtocolError(f"invalid Host: {value!r}")


def origin_form(method: bytes, target: bytes, headers: Headers) -> tuple[bytes, Headers]:
    """An absolute-form target as origin-form, its authority as the one ``host`` field.

    Call only for a target that does not start with "/" (nor a CONNECT's):
    other targets are returned as they are. RFC 9112 §3.2.2: a server MUST
    accept the absolute-form and ignore the Host field for the target's
    authority. The authority must be a valid, non-empty host (RFC 9110
    §4.2.1) without userinfo (RFC 9110 §4.2.4): else a 400.
    """
    match = _ABSOLUTE_FORM.fullmatch(target)
    if match is None:
        return target, headers
    authority, rest = match[1], match[2]
    if b"@" in authority:
        raise RemoteProtocolError(f"userinfo in the request target: {target!r}")
    if authority[:1] in (b"", b":") or not valid_host(authority):
        raise RemoteProtocolError(f"invalid authority in the request target: {target!r}")
    if rest[:1] != b"/":
        # RFC 9112 §3.2.1: an empty path is "/"; §3.2.4: "*" for a bare OPTIONS.
        rest = (b"*" if method == b"OPTIONS" and not rest else b"/") + rest
    fields = [(b"host", authority) if name == b"host" else (name, value) for name, value in headers]
    if not any(name == b"host" for name, _ in headers):
        fields.append((b"host", authority))  # an HTTP/1.0 request may have no Host
    return rest, fields


class ChunkHeaders:
    """Checks the chunk headers of one chunked body against `CHUNK_HEADER` as bytes arrive.

    For `H11Core`, whose h11 would take a bare CR or a NUL in a chunk
    extension: it is given every byte of the body before h11 is, passes over
    chunk data by the sizes it read, and stops at the last chunk (the trailer
    fields are h11's to check). A malformed chunk footer is h11's to refuse.
    """

    __slots__ = ("_line", "_skip")

    def __init__(self) -> None:
        self._skip = 0  # bytes of chunk data and its CRLF still to pass over
        self._line = b""  # the start of a chunk header that a read cut off

    def feed(self, data: bytes) -> bool:
        """Check the chunk headers in `data`; False once the last chunk's header is seen."""
        if self._line:
            data, self._line = self._line + data, b""
        pos, size = 0, len(data)
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            end = data.find(b"\r\n", pos)
            if end == -1:
                self._line = data[pos:]
                return True
            match = CHUNK_HEADER.fullmatch(data, pos, end + 2)
            if match is None:
                raise RemoteProtocolError(f"illegal chunk header: {data[pos : end + 2]!r}")
            chunk = int(match[1], 16)
            if not chunk:
                return False
            self._skip = chunk + 2  # the data, then its CRLF
            pos = end + 2
        return True
