"""Sending a file response: 200, 206 (one range or multipart/byteranges), 304, 416.

A file of one chunk or less comes read already (`files.lookup`) and goes from memory.
Otherwise, where the server offers ``http.response.zerocopysend`` (Pounce does)
the body is handed over as the open file and a span of it: the server copies
it with ``sendfile`` on plain HTTP/1.1, or reads it in chunks off the event
loop (TLS, HTTP/2), and a compression layer on the way may still encode it
(pounce/asgi/files.py). Elsewhere the body never sits whole in memory
either: it is read `chunk_size` bytes at a time with ``os.pread`` in the
loop's default executor (no blocking read on the event loop, no shared file
position) and each chunk is sent with ``more_body``, so each ``send`` awaits
the connection's drain. The descriptor is closed when the response ends,
however it ends.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from pounce.asgi.types import Send
from pounce.layers.static import semantics
from pounce.layers.static.semantics import Ranges, Unsatisfiable

Headers = list[tuple[bytes, bytes]]
_LISTS = ("accept-encoding", "if-none-match", "if-match")


@dataclass(frozen=True, slots=True, kw_only=True)
class Representation:
    """An open file and what its response says about it."""

    fd: int
    data: bytes | None  # the whole file, read with the lookup (one chunk or less)
    size: int
    mtime: float
    tag: str
    content_type: str
    validators: Headers  # ETag, Last-Modified, Cache-Control, Vary: on 200, 206 and 304


async def respond(
    send: Send,
    rep: Representation,
    request: dict[str, str],
    *,
    head: bool,
    max_ranges: int,
    chunk: int,
    zero_copy: bool = False,
) -> None:
    """Answer a GET or HEAD of `rep` given the request's relevant headers (lower-case names).

    `zero_copy`: the scope advertises ``http.response.zerocopysend``.
    """
    im, ius = request.get("if-match"), request.get("if-unmodified-since")
    if semantics.precondition_failed(im, ius, rep.tag, rep.mtime):  # RFC 9110 §13.2.2, 1-2
        body = b"precondition failed\n"
        headers = [(b"content-type", b"text/plain; charset=utf-8")]
        await _start(send, 412, [*headers, (b"content-length", b"%d" % len(body))])
        await send({"type": "http.response.body", "body": body})
        return
    inm, ims = request.get("if-none-match"), request.get("if-modified-since")
    if semantics.not_modified(inm, ims, rep.tag, rep.mtime):  # steps 3-4
        await _start(send, 304, rep.validators)
        await send({"type": "http.response.body", "body": b""})
        return
    ranges: Ranges | Unsatisfiable | None = None
    if semantics.range_applies(request.get("if-range"), rep.tag, rep.mtime):
        ranges = semantics.byte_ranges(request.get("range"), rep.size, max_ranges)
    if isinstance(ranges, Unsatisfiable):  # RFC 9110 §15.5.17
        headers = [(b"content-range", b"bytes */%d" % rep.size), (b"content-length", b"0")]
        await _start(send, 416, [*rep.validators, *headers])
        await send({"type": "http.response.body", "body": b""})
    elif ranges is None or len(ranges) == 1:
        await _single(send, rep, ranges[0] if ranges else None, head, chunk, zero_copy)
    else:
        await _multipart(send, rep, ranges, head, chunk, zero_copy)


async def _start(send: Send, status: int, headers: Headers) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})


def _typed(rep: Representation) -> Headers:
    return [(b"content-type", rep.content_type.encode()), (b"accept-ranges", b"bytes")]


async def _single(
    send: Send,
    rep: Representation,
    span: tuple[int, int] | None,
    head: bool,
    chunk: int,
    zero_copy: bool,
) -> None:
    first, last = span if span is not None else (0, rep.size - 1)
    headers = [*_typed(rep), *rep.validators, (b"content-length", b"%d" % (last - first + 1))]
    if span is not None:
        headers.append((b"content-range", b"bytes %d-%d/%d" % (first, last, rep.size)))
    await _start(send, 206 if span is not None else 200, headers)
    if rep.data is not None:
        await send(
            {"type": "http.response.body", "body": b"" if head else rep.data[first : last + 1]}
        )
        return
    if zero_copy and not head:
        await _zero_copy(send, rep.fd, first, last + 1 - first, more=False)
        return
    if not head:
        await _stream(send, rep.fd, first, last + 1 - first, chunk)
    await send({"type": "http.response.body", "body": b""})


async def _multipart(
    send: Send, rep: Representation, ranges: Ranges, head: bool, chunk: int, zero_copy: bool
) -> None:
    """RFC 9110 §14.6: one part per range, each with its Content-Type and Content-Range."""
    boundary = secrets.token_hex(16).encode()
    heads = [_part_head(boundary, rep, span, index == 0) for index, span in enumerate(ranges)]
    tail = b"\r\n--%s--\r\n" % boundary
    length = sum(len(h) for h in heads) + sum(b - a + 1 for a, b in ranges) + len(tail)
    content_type = b"multipart/byteranges; boundary=" + boundary
    headers = [(b"content-type", content_type), (b"accept-ranges", b"bytes"), *rep.validators]
    await _start(send, 206, [*headers, (b"content-length", b"%d" % length)])
    if not head:
        for part_head, (first, last) in zip(heads, ranges, strict=True):
            await send({"type": "http.response.body", "body": part_head, "more_body": True})
            if rep.data is not None:
                part = rep.data[first : last + 1]
                await send({"type": "http.response.body", "body": part, "more_body": True})
            elif zero_copy:
                await _zero_copy(send, rep.fd, first, last + 1 - first, more=True)
            else:
                await _stream(send, rep.fd, first, last + 1 - first, chunk)
        await send({"type": "http.response.body", "body": tail, "more_body": True})
    await send({"type": "http.response.body", "body": b""})


def _part_head(boundary: bytes, rep: Representation, span: tuple[int, int], first: bool) -> bytes:
    lead = b"" if first else b"\r\n"
    fields = b"content-type: %s\r\ncontent-range: bytes %d-%d/%d\r\n" % (
        rep.content_type.encode(),
        span[0],
        span[1],
        rep.size,
    )
    return lead + b"--" + boundary + b"\r\n" + fields + b"\r\n"


async def _zero_copy(send: Send, fd: int, offset: int, count: int, *, more: bool) -> None:
    """The span as a file for the server to copy (``closefd=False``: the layer closes `fd`)."""
    with os.fdopen(fd, "rb", buffering=0, closefd=False) as file:
        message = {"type": "http.response.zerocopysend", "file": file, "offset": offset}
        await send({**message, "count": count, "more_body": more})


async def _stream(send: Send, fd: int, offset: int, count: int, chunk: int) -> None:
    """`count` bytes from `offset`, `chunk` at a time, each send awaiting drain."""
    loop = asyncio.get_running_loop()
    while count > 0:
        data = await loop.run_in_executor(None, os.pread, fd, min(chunk, count), offset)
        if not data:  # the file shrank under us: the response cannot be completed
            raise OSError(f"file truncated while sending ({count} bytes short)")
        await send({"type": "http.response.body", "body": data, "more_body": True})
        offset += len(data)
        count -= len(data)


def request_headers(raw: Sequence[tuple[bytes, bytes]]) -> dict[str, str]:
    """The request headers the static layer reads, by lower-case name (first wins)."""
    wanted = (
        "range",
        "if-range",
        "if-match",
        "if-unmodified-since",
        "if-none-match",
        "if-modified-since",
        "accept-encoding",
    )
    found: dict[str, str] = {}
    for name, value in raw:
        key = name.decode("latin-1").lower()
        if key in found and key in _LISTS:  # RFC 9110 §5.3: one list, comma-joined
            found[key] += ", " + value.decode("latin-1")
        elif key in wanted and key not in found:
            found[key] = value.decode("latin-1")
    return found
