"""Segments under the root → an open file, with what the file system adds to containment.

`lookup` is everything a request asks of the file system — ``realpath``,
``stat``, the siblings, ``open`` and ``fstat`` — in one blocking call, which
the layer runs in the loop's default executor: a slow disk or network file
system never stalls the event loop, and a hit costs one hop to a thread. A
file of one chunk or less (``chunk_size``, 64 KiB) is read in the same call:
a second hop would cost more than copying its bytes once, which is all that
``sendfile`` would save.

The root is resolved once per serve (`Root.of`). A candidate is the root's
real path joined with the checked segments (`paths.py`); its own real path
(every symlink followed) must equal it — no symlink anywhere below the root —
unless `follow_symlinks` is on, and then it must still lie inside the root.
Only regular files are opened, with ``O_NONBLOCK`` (a FIFO swapped in cannot
block the worker) and ``O_NOFOLLOW`` when symlinks are refused (the last
component cannot turn into one between the check and the open), and the
open descriptor is checked again with ``fstat``.
"""

from __future__ import annotations

import asyncio
import os
import stat
from dataclasses import dataclass
from typing import Any

from pounce.layers.static.paths import Refused, Wanted
from pounce.layers.static.semantics import accepted_coding

SIBLINGS = {"br": ".br", "zstd": ".zst", "gzip": ".gz"}
"""Precompressed siblings by content coding, in the server's order of preference."""


@dataclass(frozen=True, slots=True)
class Root:
    real: str
    follow_symlinks: bool

    @classmethod
    def of(cls, directory: str, follow_symlinks: bool) -> Root:
        return cls(os.path.realpath(directory), follow_symlinks)

    def locate(self, parts: tuple[str, ...]) -> str | Refused:
        """The path of `parts` under the root, or `Refused` when a symlink leads out of it."""
        candidate = os.path.join(self.real, *parts)
        real = os.path.realpath(candidate)
        if real == candidate:
            return real
        if not self.follow_symlinks:
            return Refused("a symlink (follow_symlinks is off)")
        if os.path.commonpath((real, self.real)) != self.real:
            return Refused("a symlink out of the root")
        return real


@dataclass(frozen=True, slots=True)
class Found:
    """A regular file to serve; `name` (its last segment) gives the content type."""

    path: str
    name: str


@dataclass(frozen=True, slots=True)
class Redirect:
    """A directory asked for without its trailing slash."""


def find(
    root: Root, parts: tuple[str, ...], slash: bool, index: str
) -> Found | Redirect | Refused | None:
    """What `parts` names: a file, a redirect, a refusal, or None (a miss)."""
    path = root.locate(parts)
    if isinstance(path, Refused):
        return path
    kind = _kind(path)
    if kind == "file":
        return Found(path, parts[-1]) if parts and not slash else None
    if kind != "dir":
        return None
    if not slash:
        return Redirect()
    if not index:
        return None  # no listings, ever
    path = root.locate((*parts, index))
    if isinstance(path, Refused):
        return path
    return Found(path, index) if _kind(path) == "file" else None


def _kind(path: str) -> str:
    try:
        mode = os.stat(path).st_mode
    except (OSError, ValueError):
        return ""
    return "file" if stat.S_ISREG(mode) else "dir" if stat.S_ISDIR(mode) else ""


def siblings(root: Root, found: Found) -> tuple[str, ...]:
    """The content codings with a precompressed sibling (``app.js.br``), in `SIBLINGS` order."""
    present = []
    for coding, suffix in SIBLINGS.items():
        path = root.locate(_parts_of(root, found.path + suffix))
        if not isinstance(path, Refused) and _kind(path) == "file":
            present.append(coding)
    return tuple(present)


def _parts_of(root: Root, path: str) -> tuple[str, ...]:
    return tuple(os.path.relpath(path, root.real).split(os.sep))


def open_file(path: str, follow_symlinks: bool) -> tuple[int, os.stat_result] | None:
    """A descriptor and its stat for a regular file, or None."""
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    if not follow_symlinks:
        flags |= getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        return None
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        return None
    return fd, info


@dataclass(frozen=True, slots=True)
class Opened:
    """A file to serve, open: the representation chosen (`coding`: a precompressed sibling's)."""

    fd: int
    info: os.stat_result
    name: str
    coding: str | None
    vary: bool  # it has siblings: the answer depends on Accept-Encoding
    data: bytes | None  # the whole file, when it is one chunk or less


def lookup(
    root: Root,
    want: Wanted,
    *,
    index: str,
    precompressed: bool,
    accept_encoding: str | None,
    read_up_to: int,
) -> Opened | Redirect | Refused | None:
    """What `want` names, opened when it is a file, and read when it has `read_up_to` bytes
    or fewer (blocking: run it in an executor)."""
    target = find(root, want.parts, want.slash, index)
    if not isinstance(target, Found):
        return target
    available = siblings(root, target) if precompressed else ()
    coding = accepted_coding(accept_encoding, available)
    follow = root.follow_symlinks
    opened = open_file(target.path + SIBLINGS[coding], follow) if coding else None
    if opened is None:
        coding = None
        opened = open_file(target.path, follow)
    if opened is None:
        return None  # gone since it was found: a miss
    fd, info = opened
    data = None
    if info.st_size <= read_up_to:
        data = os.pread(fd, info.st_size, 0)
        if len(data) != info.st_size:  # changing under us: serve it by descriptor
            data = None
    return Opened(fd, info, target.name, coding, bool(available), data)


def close_opened(done: asyncio.Future[Any]) -> None:
    """Close what a `lookup` opened and nobody will serve (its request was cancelled)."""
    if not done.cancelled() and done.exception() is None:
        result = done.result()
        if isinstance(result, Opened):
            os.close(result.fd)
