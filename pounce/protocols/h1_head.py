"""A request head's field lines in one regex pass, for heads with many of them.

`FastH1Core` takes a few-field head (wrk's, curl's) in one match of
`_PLAIN_HEAD_RE`, then a ``findall`` to pull the fields out of what it
matched: two passes of the regex engine, which runs its own bytecode per byte.
For a browser's head (15 fields, ~740 bytes) that cost ~156,000 instructions,
~8,700 a field: more than Uvicorn's whole request with httptools. Here one
``findall`` both checks the lines against h11's grammar and extracts them:

* it matches a field line only from the start of a line (``^``) to its CRLF,
  so the lines are all well formed exactly when it matches as many lines as
  the block has LFs (a bare LF or CR, a line without a colon, a name that is
  not a token, obs-fold's leading whitespace: each leaves a line unmatched);
* the value it takes runs from after the colon's optional whitespace to the
  first CR, which must begin the CRLF; NUL, VT and FF, which that lets
  through, are looked for in the block (h11's ``field-value`` has none);
* a value with whitespace after it is left to the general path (rare; h11
  strips it), so the value taken is exactly h11's.

Anything it does not read answers None, and the caller's general path gives
h11's answer and error. `tests/protocols/test_h1_differential.py` holds the
two cores to the same decisions on browser heads with a byte inserted at
every position, and on many-field heads and their mutations.
"""

from __future__ import annotations

import re

from pounce.protocols.events import Headers

# token ":" OWS field-value CRLF, from the start of a line; the value must not end in
# SP or HTAB (the lookbehind), nor hold a CR.
_FIELD_LINE_RE = re.compile(rb"(?m)^([-!#$%&'*+.^_`|~0-9a-zA-Z]+):[ \t]*([^\r]*)(?<![ \t])\r\n")


def field_lines(buffer: bytes, start: int, end: int) -> Headers | None:
    """The (name, value) of each field line in ``buffer[start:end]``, or None.

    The range holds whole lines, each ending in CRLF (a head's fields without
    the blank line). Names are as received (the caller lower-cases them as it
    looks at each); None if a line is not a well-formed field line, or one has
    whitespace after its value.
    """
    fields: Headers = _FIELD_LINE_RE.findall(buffer, start, end)
    block = buffer[start:end]
    # Every line matched (each match is one whole line), and no NUL, VT or FF. (Int
    # needles: `in` tries a needle as an int first, and a bytes needle costs it a
    # raised and cleared TypeError.)
    if len(fields) != block.count(b"\n") or 0 in block or 11 in block or 12 in block:
        return None
    return fields
