"""HTTP semantics of a file response, as pure functions of headers and file facts.

Validators (RFC 9110 §8.8): a strong ``ETag`` from the modification time in
nanoseconds and the size (and the content coding, for a precompressed
sibling), and ``Last-Modified``. Preconditions, in §13.2.2's order:
``If-Match`` (strong comparison) when present, else ``If-Unmodified-Since``;
false → 412. Then ``If-None-Match`` (weak comparison) when present, else
``If-Modified-Since``; false → 304. Ranges (§14): ``bytes=`` only; a malformed header, or more than
`max_ranges` ranges, is ignored (the full 200, as nginx's ``max_ranges``);
none satisfiable → 416; ``If-Range`` keeps the range only when it matches the
strong ETag, or is exactly the ``Last-Modified`` date (§13.1.5).
"""

from __future__ import annotations

import mimetypes
import re
from dataclasses import dataclass
from email.utils import formatdate, parsedate_to_datetime

from pounce.layers.compression.negotiation import choose

_TEXT_TYPES = ("application/javascript", "application/json", "application/xml", "image/svg+xml")
_HASHED = re.compile(r"[.-][0-9A-Za-z_-]*[0-9][0-9A-Za-z_-]*[.]")  # app.3f9a1c2e.js
_HASH_LENGTH = 8  # characters: the shortest fingerprint webpack, Vite or esbuild emit


@dataclass(frozen=True, slots=True)
class Unsatisfiable:
    """No range of the header falls inside the file: 416 (RFC 9110 §15.5.17)."""


Ranges = tuple[tuple[int, int], ...]
"""Inclusive (first, last) byte positions."""


def etag(mtime_ns: int, size: int, coding: str = "") -> str:
    tail = f"-{coding}" if coding else ""
    return f'"{mtime_ns:x}-{size:x}{tail}"'


def http_date(mtime: float) -> str:
    return formatdate(mtime, usegmt=True)


def content_type(name: str) -> str:
    """From the extension (`mimetypes`); text gets ``charset=utf-8``."""
    guessed, _ = mimetypes.guess_type(name, strict=False)
    if guessed is None:
        return "application/octet-stream"
    if guessed.startswith("text/") or guessed in _TEXT_TYPES:
        return f"{guessed}; charset=utf-8"
    return guessed


def cache_control(name: str, max_age: int | None, immutable: bool) -> str | None:
    """``public, max-age=N``; a year and ``immutable`` for a fingerprinted name when asked."""
    if immutable and looks_hashed(name):
        return "public, max-age=31536000, immutable"
    return None if max_age is None else f"public, max-age={max_age}"


def looks_hashed(name: str) -> bool:
    """``app.3f9a1c2e.js``, ``chunk-5XK2LQ7A.css``: a segment of 8+ characters with a digit."""
    return any(len(m[0]) - 2 >= _HASH_LENGTH for m in _HASHED.finditer(name))


def _date(value: str) -> float | None:
    try:
        return parsedate_to_datetime(value).timestamp()
    except (TypeError, ValueError, IndexError):
        return None


def _tags(value: str) -> list[str]:
    return [tag.strip().removeprefix("W/") for tag in value.split(",") if tag.strip()]


def precondition_failed(
    if_match: str | None, if_unmodified_since: str | None, tag: str, mtime: float
) -> bool:
    """Should the request be answered 412? (RFC 9110 §13.1.1, §13.1.4, in §13.2.2's order.)

    ``If-Match`` compares strongly: a weak tag never matches, ``*`` matches the
    file that exists. Without it, ``If-Unmodified-Since`` fails when the file
    changed after that date; a date that does not parse is ignored.
    """
    if if_match is not None:
        tags = [t.strip() for t in if_match.split(",") if t.strip()]
        return not ("*" in tags or tag in tags)
    if if_unmodified_since is not None:
        since = _date(if_unmodified_since)
        return since is not None and int(mtime) > since
    return False


def not_modified(
    if_none_match: str | None, if_modified_since: str | None, tag: str, mtime: float
) -> bool:
    """Should a GET or HEAD be answered 304? (RFC 9110 §13.1.2, §13.1.3: weak comparison.)"""
    if if_none_match is not None:
        tags = _tags(if_none_match)
        return "*" in tags or tag in tags
    if if_modified_since is not None:
        since = _date(if_modified_since)
        return since is not None and int(mtime) <= since
    return False


def range_applies(if_range: str | None, tag: str, mtime: float) -> bool:
    """``If-Range`` (RFC 9110 §13.1.5): a strong ETag match, or the exact Last-Modified."""
    if if_range is None:
        return True
    value = if_range.strip()
    if value.startswith(('"', "W/")):
        return value == tag
    return value == http_date(mtime)


def byte_ranges(header: str | None, size: int, max_ranges: int) -> Ranges | Unsatisfiable | None:
    """The satisfiable ranges of a ``Range`` header, `Unsatisfiable`, or None (serve it all)."""
    if header is None:
        return None
    unit, _, spec = header.partition("=")
    if unit.strip().lower() != "bytes" or not spec.strip():
        return None
    items = spec.split(",")
    if len(items) > max_ranges:
        return None
    found: list[tuple[int, int]] = []
    for item in items:
        parsed = _one_range(item.strip(), size)
        if parsed is None:
            return None  # a malformed header is ignored (RFC 9110 §14.2)
        if not isinstance(parsed, Unsatisfiable):
            found.append(parsed)
    return tuple(found) if found else Unsatisfiable()


def _one_range(item: str, size: int) -> tuple[int, int] | Unsatisfiable | None:
    """(first, last), `Unsatisfiable`, or None when malformed."""
    first, dash, last = item.partition("-")
    if not dash or not (first.isdigit() or last.isdigit()):
        return None
    if not first:  # a suffix: the last N bytes
        count = int(last)
        return (max(size - count, 0), size - 1) if count and size else Unsatisfiable()
    if last and not last.isdigit():
        return None
    start, end = int(first), int(last) if last else size - 1
    if last and end < start:
        return None
    return (start, min(end, size - 1)) if start < size else Unsatisfiable()


def accepted_coding(accept_encoding: str | None, available: tuple[str, ...]) -> str | None:
    """The best of `available` (in server preference order) that the client accepts.

    RFC 9110 §12.5.3, negotiated exactly as the compression layer does (one parser
    of Accept-Encoding for both): q-values, ``*`` for codings not named, ``q=0``
    refuses, an ``identity`` preferred over every coding means none.
    """
    if not accept_encoding or not available:
        return None
    return choose(accept_encoding, available)
