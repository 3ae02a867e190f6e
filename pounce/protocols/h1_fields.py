"""A response head's field lines, as `FastH1Core` writes them, remembered per field.

Writing ``name: value`` CRLF for each field and checking the result for CR, LF
and NUL (response splitting) cost about as much as the rest of a response head.
Apps send the same few fields over and over (Server, Date within its second,
Content-Type, a fixed Content-Length), so each field's line is made and checked
once and then looked up: a dict lookup per field, mapped over the fields at C
level, instead of a join and a scan.

What is remembered (the line) is a pure function of two immutable byte
strings, so the memo is shared by every connection and thread; it holds at most
`MEMO_FIELDS` lines of at most `MEMO_LINE` bytes and starts afresh when full
(the Date line changes every second). Only exact `bytes` pairs are remembered,
and a lookup returns the line made from the pair that was checked, never bytes a
look-alike object handed over.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import compress
from operator import itemgetter
from typing import cast

from pounce.errors import LocalProtocolError
from pounce.protocols.events import Headers

FRAMING_FIELDS = frozenset((b"content-length", b"transfer-encoding", b"connection"))
"""The fields that decide how a response is framed or whether the connection stays."""

MEMO_FIELDS = 1024  # lines remembered
MEMO_LINE = 256  # bytes: a longer line is made each time

# (name, value) → b"name: value\r\n", for checked pairs.
_LINES: dict[object, bytes] = {}
# (Typed as never missing: `field_lines` looks for a None among what it returns.)
_line_of = cast(Callable[[object], bytes], _LINES.get)
_name_of = itemgetter(0)
_frames = FRAMING_FIELDS.__contains__


def field_lines(headers: Headers) -> tuple[bytes, Headers]:
    """The fields as written, CRLF after each, and those among them in `FRAMING_FIELDS`.

    Raises `LocalProtocolError` (500) for a CR, LF or NUL in a name or value.
    """
    try:
        # Every step at C level when every pair was seen before: the memo's lookup
        # mapped over the pairs, and the framing fields picked out by their names (no
        # Python bytecode per field: the interpreter's own work per request is what
        # a server keeps small, docs/performance.md "the framework increment").
        lines = [*map(_line_of, headers)]
    except TypeError:  # an unhashable pair (a list): made and checked each time
        fields = b"".join([name + b": " + value + b"\r\n" for name, value in headers])
        check_outbound(fields, len(headers))
        return fields, [pair for pair in headers if pair[0] in FRAMING_FIELDS]
    if None in lines:
        lines = [_line_of(pair) or _new_line(pair) for pair in headers]
    framing = [*compress(headers, map(_frames, map(_name_of, headers)))]
    return b"".join(lines), framing


def _new_line(pair: tuple[bytes, bytes]) -> bytes:
    """The line of a field not seen before, checked, and remembered if it may be."""
    name, value = pair
    line = name + b": " + value + b"\r\n"
    check_outbound(line, 1)
    if type(name) is bytes and type(value) is bytes and len(line) <= MEMO_LINE:
        if len(_LINES) >= MEMO_FIELDS:
            _LINES.clear()  # (a race between threads only costs a line made again)
        _LINES[(name, value)] = line
    return line


def check_outbound(fields: bytes, count: int) -> None:
    """Refuse a CR, LF or NUL inside an outbound name or value (response splitting).

    `fields` is `count` fields as written: each adds one CRLF, so any more is
    smuggled. The rest of the field grammar (token names, lower-cased; no
    other control bytes; no whitespace at a value's ends) is checked once,
    where an app hands fields over (`pounce.asgi.headers`), not again here:
    three C-level scans instead of a regex over every response head.
    """
    # (0, not b"\x00": ``bytes in bytes`` first tries its needle as an int, dearly.)
    if fields.count(b"\n") != count or fields.count(b"\r") != count or 0 in fields:
        raise LocalProtocolError(f"CR, LF or NUL in a header field: {fields!r}", status=500)
