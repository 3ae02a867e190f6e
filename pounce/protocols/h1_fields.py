"""A response head's field lines, as `FastH1Core` writes them, remembered per field.

Writing ``name: value`` CRLF for each field and checking the result for CR, LF
and NUL (response splitting) cost about as much as the rest of a response head.
Apps send the same few fields over and over (Server, Date within its second,
Content-Type, a fixed Content-Length), so each field's line is made and checked
once and then looked up: a dict lookup per field instead of a join and a scan.
A whole head is remembered too, keyed by the tuple of its pairs: one lookup for
a head seen before (within its second, for the Date line), instead of a Python
step per field.

What is remembered is a pure function of two immutable byte strings (the line
and whether it frames the body), so the memo is shared by every connection and
thread; it holds at most `MEMO_FIELDS` lines of at most `MEMO_LINE` bytes and
starts afresh when full (the Date line changes every second); likewise at most
`MEMO_HEADS` heads of at most `MEMO_HEAD` bytes. Only exact `bytes` pairs are
remembered, and a lookup returns the line made from the pair that was checked,
never bytes a look-alike object handed over.
"""

from __future__ import annotations

from itertools import chain

from pounce.errors import LocalProtocolError
from pounce.protocols.events import Headers

FRAMING_FIELDS = frozenset((b"content-length", b"transfer-encoding", b"connection"))
"""The fields that decide how a response is framed or whether the connection stays."""

MEMO_FIELDS = 512  # lines remembered, of each kind
MEMO_LINE = 256  # bytes: a longer line is made each time
MEMO_HEADS = 256  # whole heads remembered
MEMO_HEAD = 4096  # bytes of field lines: a longer head is made each time

# (name, value) → b"name: value\r\n", for checked pairs: those that frame the body
# apart, so that a hit in the first says the field needs no further look.
_PLAIN_LINES: dict[object, bytes] = {}
_FRAMING_LINES: dict[object, bytes] = {}
_plain_line = _PLAIN_LINES.get
_framing_line = _FRAMING_LINES.get
# The same for a whole head, keyed by the tuple of its pairs: an app's responses
# repeat their fields and the server's defaults repeat within a second, so most heads
# are one lookup instead of a Python step per field (a step the framework's own Python
# pays for too: docs/performance.md, "the framework increment").
_HEADS: dict[tuple[object, ...], tuple[bytes, Headers]] = {}
_head_lines = _HEADS.get


def field_lines(headers: Headers) -> tuple[bytes, Headers]:
    """The fields as written, CRLF after each, and those among them in `FRAMING_FIELDS`.

    Raises `LocalProtocolError` (500) for a CR, LF or NUL in a name or value. The
    framing list returned may be shared: read it, never change it.
    """
    try:
        key = tuple(headers)
        known = _head_lines(key)
    except TypeError:  # an unhashable pair (a list)
        return _field_lines(headers)
    if known is not None:
        return known
    known = _field_lines(headers)
    if len(known[0]) <= MEMO_HEAD and _exact_pairs(key):
        if len(_HEADS) >= MEMO_HEADS:
            _HEADS.clear()  # (a race between threads only costs a head made again)
        _HEADS[key] = known
    return known


def _exact_pairs(key: tuple[object, ...]) -> bool:
    """Every pair a tuple of exact `bytes` (in C, without a Python step per pair): a
    look-alike's equality is its own to decide, so no head holding one is remembered."""
    return {tuple} >= set(map(type, key)) and {bytes} >= set(
        map(type, chain.from_iterable(key))  # type: ignore[arg-type]
    )


def _field_lines(headers: Headers) -> tuple[bytes, Headers]:
    """`field_lines` of a head not remembered, field by field."""
    lines: list[bytes] = []
    append = lines.append
    framing: Headers = []
    try:
        for pair in headers:
            line = _plain_line(pair)
            if line is None:
                line = _framing_line(pair)
                if line is None:
                    line = _new_line(pair)
                    if pair[0] not in FRAMING_FIELDS:
                        append(line)
                        continue
                framing.append(pair)
            append(line)
    except TypeError:  # an unhashable pair (a list): made and checked each time
        fields = b"".join([name + b": " + value + b"\r\n" for name, value in headers])
        check_outbound(fields, len(headers))
        return fields, [pair for pair in headers if pair[0] in FRAMING_FIELDS]
    return b"".join(lines), framing


def _new_line(pair: tuple[bytes, bytes]) -> bytes:
    """The line of a field not seen before, checked, and remembered if it may be."""
    name, value = pair
    line = name + b": " + value + b"\r\n"
    check_outbound(line, 1)
    if type(name) is bytes and type(value) is bytes and len(line) <= MEMO_LINE:
        memo = _FRAMING_LINES if name in FRAMING_FIELDS else _PLAIN_LINES
        if len(memo) >= MEMO_FIELDS:
            memo.clear()  # (a race between threads only costs a line made again)
        memo[(name, value)] = line
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
