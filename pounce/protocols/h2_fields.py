"""HTTP/2 request header blocks: checked and turned into a `RequestReceived` in one pass.

h2 can validate inbound field blocks itself, but it does so with a chain of
seven generators, several looping over every byte of every name and value in
Python; that was a sixth of the time HTTP/2 spent on a request. The H2 core
turns h2's validation off (``validate_inbound_headers=False``; HPACK decoding
and cookie joining stay h2's) and calls `parse_request` instead, which makes
the same checks with compiled patterns, in the loop that builds the event.

It accepts exactly what h2 4.4's ``validate_headers`` accepts for a request
(tests/protocols/test_h2_fields.py compares the two on generated blocks), and
refuses a little more: a CONNECT without ``:protocol`` (no tunnels, RFC 9113
§8.5), two ``host`` fields, and a ``:path`` that is not origin-form (``*``
for OPTIONS), which h2 checks only for being non-empty. A refused block is a *stream* error, not a
connection error (RFC 9113 §8.1.1: "malformed requests … MUST be treated as a
stream error of type PROTOCOL_ERROR"); h2's own validation raised connection
errors.
"""

from __future__ import annotations

import re

from pounce.protocols.events import Headers, RequestReceived

# RFC 9113 §8.2.1: names have no 0x00-0x20, 0x41-0x5a (upper case), 0x7f-0xff,
# and no colon; values have no NUL, CR or LF, and no SP/HTAB at either end.
_NAME = re.compile(rb"[\x21-\x39\x3b-\x40\x5b-\x7e]+")
_VALUE = re.compile(rb"(?:[^\x00\n\r\t ](?:[^\x00\n\r]*[^\x00\n\r\t ])?)?")
# RFC 9113 §8.2.2: connection-specific fields are malformed in HTTP/2 (and the
# H2 core drops them from what it sends).
CONNECTION_SPECIFIC = frozenset(
    (b"connection", b"proxy-connection", b"keep-alive", b"transfer-encoding", b"upgrade")
)
# RFC 9113 §8.3.1, RFC 8441 §4: the request pseudo-header fields.
_REQUEST_PSEUDO = frozenset((b":method", b":scheme", b":authority", b":path", b":protocol"))
# RFC 9113 §8.3.1: ":path" is origin-form (RFC 9112 §3.2.1), as an HTTP/1.1
# target is read: "/" then visible ASCII (h11's request-target), so no SP or
# control byte.
_ORIGIN_FORM = re.compile(rb"/[\x21-\x7e]*")


def parse_request(
    sid: int, raw: list[tuple[bytes, bytes]], *, ended: bool
) -> tuple[RequestReceived | None, bytes | None, bytes | None]:
    """Our event for a decoded request block (None when it is malformed), its
    ``priority`` field (RFC 9218), and the ``:protocol`` of an extended CONNECT
    (RFC 8441)."""
    pseudo: dict[bytes, bytes] = {}
    headers: Headers = []
    host: bytes | None = None
    priority: bytes | None = None
    name_ok, value_ok = _NAME.fullmatch, _VALUE.fullmatch
    for name, value in raw:
        if value and value_ok(value) is None:
            return None, None, None
        if name[:1] == b":":
            if (
                headers  # §8.3: every pseudo-header comes first
                or name in pseudo
                or name not in _REQUEST_PSEUDO
            ):
                return None, None, None
            pseudo[name] = value
            continue
        if name_ok(name) is None or name in CONNECTION_SPECIFIC:
            return None, None, None
        if name == b"host":
            if host is not None:
                return None, None, None  # CVE-2026-71554: two hosts, two readings
            host = value
        elif name == b"te":
            if value.lower() != b"trailers":
                return None, None, None
        elif name == b"priority":
            priority = value if priority is None else priority + b", " + value
        headers.append((name, value))
    method = pseudo.get(b":method")
    path = pseudo.get(b":path")
    protocol = pseudo.get(b":protocol")
    authority = pseudo.get(b":authority")
    if (
        method is None
        or path is None  # also an ordinary CONNECT: tunnels are not served (§8.5)
        # §8.3.1: origin-form, or "*" for an OPTIONS request (server-wide).
        or (_ORIGIN_FORM.fullmatch(path) is None and (path != b"*" or method != b"OPTIONS"))
        or b":scheme" not in pseudo
        or (protocol is None) == (method == b"CONNECT")  # :protocol if and only if CONNECT
        or (authority is None and host is None)
        or (authority is not None and host is not None and host != authority)
    ):
        return None, None, None
    if authority is not None and host is None:
        headers.insert(0, (b"host", authority))  # ASGI: :authority becomes host
    expects = any(n == b"expect" and v.lower() == b"100-continue" for n, v in headers)
    request = RequestReceived(
        stream_id=sid,
        method=method,
        target=path,
        headers=headers,
        http_version="2",
        authority=authority,
        scheme=pseudo[b":scheme"],
        expects_continue=expects and not ended,
        has_body=not ended,
    )
    return request, priority, protocol


def valid_trailers(raw: list[tuple[bytes, bytes]]) -> bool:
    """May a trailer block be accepted (then ignored)? No pseudo-headers (§8.1), and the
    field rules of a request block."""
    for name, value in raw:
        if value and _VALUE.fullmatch(value) is None:
            return False
        if _NAME.fullmatch(name) is None or name in CONNECTION_SPECIFIC:
            return False
        if name == b"te" and value.lower() != b"trailers":
            return False
    return True


_CACHED_BLOCKS = 64  # distinct request blocks remembered per connection


class RequestBlocks:
    """`parse_request` for one connection, remembering the verdict on each distinct block.

    Clients repeat their request blocks (h2load's are identical; a browser's
    differ mostly in ``:path``), and the verdict depends on the fields alone:
    the stream id, whether the stream ended, and a copy of the field list are
    filled in per request, so no event shares a mutable list with another.
    """

    __slots__ = ("_verdicts",)

    def __init__(self) -> None:
        self._verdicts: dict[
            tuple[tuple[bytes, bytes], ...],
            tuple[RequestReceived | None, bytes | None, bytes | None],
        ] = {}

    def parse(
        self, sid: int, raw: list[tuple[bytes, bytes]], *, ended: bool
    ) -> tuple[RequestReceived | None, bytes | None, bytes | None]:
        """What `parse_request(sid, raw, ended=ended)` returns."""
        key = tuple(raw)
        verdict = self._verdicts.get(key)
        if verdict is None:
            verdict = parse_request(0, raw, ended=False)  # the template: no stream, a body
            if len(self._verdicts) >= _CACHED_BLOCKS:
                self._verdicts.clear()
            self._verdicts[key] = verdict
        template, priority, protocol = verdict
        if template is None:
            return verdict
        request = RequestReceived(
            stream_id=sid,
            method=template.method,
            target=template.target,
            headers=list(template.headers),
            http_version="2",
            authority=template.authority,
            scheme=template.scheme,
            expects_continue=template.expects_continue and not ended,
            has_body=not ended,
        )
        return request, priority, protocol
