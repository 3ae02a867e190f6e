"""Which responses are compressed, and the header edits when one is; pure functions on fields.

`skip_reason` says why a response is left as it is, or None (compress it):

* a status without a body or with a body that is a part of something:
  1xx, 204, 304, 206 and any ``Content-Range`` (RFC 9110 §14.4: the range
  is of the unencoded representation);
* ``Content-Encoding`` already set (other than ``identity``);
* ``Cache-Control: no-transform`` (RFC 9111 §5.2.2.6);
* a type that is compressed already: images other than SVG, video, audio,
  archives, WOFF fonts (`INCOMPRESSIBLE`);
* ``text/event-stream`` unless asked (`event_stream`);
* a known ``Content-Length`` below `minimum_size`.

`encoded_headers` makes the fields of a compressed response: ``Content-
Encoding`` set, ``Vary: Accept-Encoding`` merged into an existing ``Vary``
(§12.5.5), ``Content-Length`` dropped (a streamed body) or recomputed (a body
of one message), a strong ``ETag`` weakened (``W/``, §8.8.3: the encoded
bytes differ from the identity ones, so the strong validator no longer names them).
"""

from __future__ import annotations

from collections.abc import Iterable

Headers = list[tuple[bytes, bytes]]

INCOMPRESSIBLE_PREFIXES = (b"image/", b"video/", b"audio/")
COMPRESSIBLE_EXCEPTIONS = (b"image/svg+xml", b"image/x-icon", b"image/bmp")
INCOMPRESSIBLE = frozenset(
    {
        b"application/zip",
        b"application/gzip",
        b"application/x-gzip",
        b"application/x-bzip2",
        b"application/x-xz",
        b"application/zstd",
        b"application/x-7z-compressed",
        b"application/x-rar-compressed",
        b"application/vnd.rar",
        b"application/x-brotli",
        b"application/wasm-compressed",
        b"font/woff",
        b"font/woff2",
        b"application/font-woff",
    }
)
EVENT_STREAM = b"text/event-stream"
NO_BODY_STATUSES = frozenset({204, 304})


def field(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The values of field `name` (lower case), comma-joined (RFC 9110 §5.3), or None."""
    values = [v for n, v in headers if n.lower() == name]
    return b", ".join(values) if values else None


def media_type(headers: Iterable[tuple[bytes, bytes]]) -> bytes:
    value = field(headers, b"content-type") or b""
    return value.split(b";", 1)[0].strip().lower()


def incompressible(kind: bytes) -> bool:
    if kind in COMPRESSIBLE_EXCEPTIONS:
        return False
    return kind in INCOMPRESSIBLE or kind.startswith(INCOMPRESSIBLE_PREFIXES)


def _tokens(value: bytes | None) -> list[bytes]:
    return [t.strip().lower() for t in (value or b"").split(b",") if t.strip()]


def content_length(headers: Iterable[tuple[bytes, bytes]]) -> int | None:
    value = field(headers, b"content-length")
    return int(value) if value is not None and value.strip().isdigit() else None


def skip_reason(
    status: int, headers: Headers, *, minimum_size: int, event_stream: bool
) -> str | None:
    """Why the response of `status` with `headers` is not compressed, or None."""
    if status < 200 or status in NO_BODY_STATUSES or status == 206:
        return f"status {status}"
    if field(headers, b"content-range") is not None:
        return "a range"
    if any(t != b"identity" for t in _tokens(field(headers, b"content-encoding"))):
        return "already encoded"
    if b"no-transform" in _tokens(field(headers, b"cache-control")):
        return "no-transform"
    kind = media_type(headers)
    if incompressible(kind):
        return "incompressible type"
    if kind == EVENT_STREAM and not event_stream:
        return "event stream"
    length = content_length(headers)
    if length is not None and length < minimum_size:
        return "too small"
    return None


def vary_headers(headers: Headers) -> Headers:
    """`headers` with ``Accept-Encoding`` in ``Vary`` (merged; ``Vary: *`` left alone)."""
    tokens = _tokens(field(headers, b"vary"))
    if b"*" in tokens or b"accept-encoding" in tokens:
        return headers
    kept = [(n, v) for n, v in headers if n.lower() != b"vary"]
    merged = b", ".join([*(t for t in _vary_values(headers)), b"Accept-Encoding"])
    return [*kept, (b"vary", merged)]


def _vary_values(headers: Headers) -> list[bytes]:
    return [
        t.strip() for n, v in headers if n.lower() == b"vary" for t in v.split(b",") if t.strip()
    ]


def weak(etag: bytes) -> bytes:
    """A strong entity tag made weak (``"x"`` → ``W/"x"``); a weak one kept."""
    return etag if etag.startswith(b"W/") else b"W/" + etag


def encoded_headers(headers: Headers, coding: str, length: int | None) -> Headers:
    """The fields of the response encoded with `coding`; `length`: new length, None: streamed."""
    out: Headers = []
    for name, value in vary_headers(headers):
        low = name.lower()
        if low in (b"content-length", b"content-encoding"):
            continue
        out.append((name, weak(value) if low == b"etag" else value))
    out.append((b"content-encoding", coding.encode("ascii")))
    if length is not None:
        out.append((b"content-length", b"%d" % length))
    return out
