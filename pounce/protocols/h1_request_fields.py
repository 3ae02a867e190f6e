"""What a request head's fields say, checked once per distinct block of field lines.

`FastH1Core` reads each request head's fields for what the core must act on —
the body's framing (Content-Length, Transfer-Encoding), Host, Connection,
Expect, Upgrade — and lower-cases every name for the ASGI scope. That is a
Python step per field: for a browser's head (fifteen fields, ~740 bytes) it
was the largest part of a request's own Python, with the regex that splits
the lines. A browser sends the same fields over and over on a connection (and
clients of one kind send the same as each other), so `FieldFacts` of a block
of field lines are remembered by its bytes: a request whose block was read
before costs a slice, a hash and a lookup.

What is remembered is a pure function of the block's bytes: `field_facts` of
the lines `pounce.protocols.h1_head.field_lines` split it into (a block it does
not read is not remembered either: the core's general path takes it). A block
whose fields are refused is never remembered (its error is raised again each
time, in the same order), nor is one over `MEMO_BLOCK` bytes or `MEMO_FIELDS`
fields (a block of many tiny fields would hold many objects); at most
`MEMO_BLOCKS` are kept — a few MiB at the worst — all forgotten when full (as
the response-side memos of `pounce.protocols.h1_fields`), so a client sending
ever-new blocks costs each request a failed lookup and no more memory. The
memo is shared by every connection and thread of a process: its values are
immutable (tuples), and a race between threads only costs a block read again.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from pounce.errors import RemoteProtocolError
from pounce.protocols.events import Headers

MEMO_BLOCKS = 256  # field blocks remembered
MEMO_BLOCK = 4096  # bytes: a longer block is read every time
MEMO_FIELDS = 64  # a block of more fields is read every time (a browser sends ~15-25)

# RFC 9110 §8.6: Content-Length = 1*DIGIT (at most 20: h11's bound).
CONTENT_LENGTH_RE = re.compile(rb"[0-9]{1,20}")

_SPECIAL = frozenset(
    (b"content-length", b"transfer-encoding", b"host", b"connection", b"expect", b"upgrade")
)


class FieldFacts(NamedTuple):
    """A request head's fields, as the core and the app take them."""

    headers: tuple[tuple[bytes, bytes], ...]
    """Every field, its name lower-cased, in order; an identical Content-Length
    repeated is dropped (as h11 does)."""
    length: bytes | None
    """The Content-Length (digits), if the head has one."""
    chunked: bool
    """``Transfer-Encoding: chunked``."""
    host: bytes | None
    """The Host field's value (the last one, if there are several)."""
    host_count: int
    close: bool
    """A Connection field lists ``close``."""
    expects_continue: bool
    """An Expect field lists ``100-continue``."""
    upgrade: bool
    """An Upgrade field with a protocol in it."""


def field_facts(fields: Headers) -> FieldFacts:
    """Check `fields` (names as received) and say what they mean; raises
    `RemoteProtocolError` at the first field a request may not have, with h11's
    status: a Content-Length that is not digits or conflicts with another (400),
    a second Transfer-Encoding or one other than ``chunked`` (501)."""
    length: bytes | None = None
    chunked = False
    host: bytes | None = None
    host_count = 0
    close = False
    expects = False
    upgrade = False
    normalized: list[tuple[bytes, bytes]] = []
    append = normalized.append
    for name, value in fields:
        name = name.lower()
        if name not in _SPECIAL:
            append((name, value))
            continue
        if name == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            if len(lengths) != 1:
                raise RemoteProtocolError("conflicting Content-Length headers")
            value = lengths.pop()
            if CONTENT_LENGTH_RE.fullmatch(value) is None:
                raise RemoteProtocolError("bad Content-Length")
            if length is None:
                length = value
            elif length != value:
                raise RemoteProtocolError("conflicting Content-Length headers")
            else:
                continue  # an identical duplicate is dropped, as h11 does
        elif name == b"transfer-encoding":
            if chunked:
                raise RemoteProtocolError("multiple Transfer-Encoding headers", status=501)
            value = value.lower()
            if value != b"chunked":
                raise RemoteProtocolError(
                    "Only Transfer-Encoding: chunked is supported", status=501
                )
            chunked = True
        elif name == b"host":
            host_count += 1
            host = value
        elif name == b"connection":
            if b"close" in comma_split(value):
                close = True
        elif name == b"expect":
            expects = expects or b"100-continue" in comma_split(value)
        elif name == b"upgrade" and value.replace(b",", b" ").strip():
            upgrade = True
        append((name, value))
    return FieldFacts(tuple(normalized), length, chunked, host, host_count, close, expects, upgrade)


def comma_split(value: bytes) -> list[bytes]:
    """The members of one comma-separated field value, lower-cased and stripped."""
    return [part.strip() for part in value.lower().split(b",")]


# Field blocks (the bytes from the first field line to the last CRLF before the blank
# line) and what their fields say.
_BLOCKS: dict[bytes, FieldFacts] = {}
remembered = _BLOCKS.get
"""The `FieldFacts` of a block read before, else None."""


def remember(block: bytes, fields: Headers) -> FieldFacts:
    """`field_facts` of `fields`, the lines `block` split into
    (`pounce.protocols.h1_head.field_lines`), kept for the next time `block` comes.
    Raises as `field_facts` does; a refused block is not kept."""
    facts = field_facts(fields)
    if len(block) <= MEMO_BLOCK and len(fields) <= MEMO_FIELDS:
        if len(_BLOCKS) >= MEMO_BLOCKS:
            _BLOCKS.clear()  # (a race between threads only costs a block read again)
        _BLOCKS[block] = facts
    return facts
