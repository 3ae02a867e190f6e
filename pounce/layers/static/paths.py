"""Request path → file path, refusing anything that could leave the root.

Pure functions over the raw request path (``scope["raw_path"]``, still
percent-encoded): the path is split on ``/`` *before* each segment is
decoded, so an encoded slash (``%2f``) or backslash can never join two
segments, and each decoded segment is then judged on its own. A segment is
refused (`Refused`, answered 404 by the layer, never passed to the app) when
it is ``.`` or ``..`` (CWE-22, however encoded: ``%2e%2e``), holds a ``/``,
a backslash or a NUL once decoded, is empty (``//``: it would also make
the trailing-slash redirect an open redirect), or looks like a Windows drive
(``C:``). Hidden segments (a leading dot) are a miss unless asked for.
What the file system adds — symlinks — is judged in `files.py`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote_to_bytes

_DRIVE = re.compile(r"^[A-Za-z]:")
_BAD_CHARACTERS = ("/", "\\", "\0")


@dataclass(frozen=True, slots=True)
class Refused:
    """A path that tries to leave the root (or is malformed); `why` is for logs and tests."""

    why: str


@dataclass(frozen=True, slots=True)
class Wanted:
    """The segments under the root, and whether the request path ended in ``/``."""

    parts: tuple[str, ...]
    slash: bool


def under_prefix(raw_path: bytes, prefix: bytes) -> bytes | None:
    """The part of `raw_path` below the mount `prefix` (``b""`` for the prefix itself),
    or None when the path is not under it (``/assetsx`` is not under ``/assets``)."""
    if prefix == b"/":
        return raw_path[1:] if raw_path.startswith(b"/") else None
    if raw_path == prefix:
        return b""
    if raw_path.startswith(prefix + b"/"):
        return raw_path[len(prefix) + 1 :]
    return None


def wanted(rest: bytes, *, hidden: bool) -> Wanted | Refused | None:
    """The segments of `rest` (below the prefix, still encoded), `Refused`, or None for a
    hidden file when `hidden` is off (a miss: the app may answer it)."""
    slash = rest == b"" or rest.endswith(b"/")
    raw_parts = rest[:-1].split(b"/") if rest.endswith(b"/") else rest.split(b"/")
    if raw_parts == [b""]:
        return Wanted((), slash)
    parts: list[str] = []
    for raw in raw_parts:
        part = segment(raw)
        if isinstance(part, Refused):
            return part
        if part.startswith(".") and not hidden:
            return None
        parts.append(part)
    return Wanted(tuple(parts), slash)


def segment(raw: bytes) -> str | Refused:
    """One percent-encoded segment, decoded, or why it is refused."""
    try:
        part = unquote_to_bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        return Refused("not UTF-8")
    if part in ("", ".", ".."):
        return Refused(f"segment {part!r}")
    for bad in _BAD_CHARACTERS:
        if bad in part:
            return Refused(f"{bad!r} in a segment")
    if _DRIVE.match(part):
        return Refused("a Windows drive")
    return part
