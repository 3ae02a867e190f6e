"""Validation of response headers an app hands us, before a byte is written.

A header value with CR or LF would let an app (fed by an attacker) split the
response in two (response splitting, CVE-2020-7695 in Uvicorn); NUL and
non-token names are as bad. We refuse them with `ASGIContractError`, which
turns into a 500, rather than trusting every protocol core to catch it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pounce.errors import ASGIContractError
from pounce.protocols.events import Headers

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: field-value excludes CR, LF and NUL (other controls are obsolete).
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00\r\n]")


def validate_response_headers(headers: Iterable[object]) -> Headers:
    """Return the headers as a list of lower-cased byte pairs, or raise."""
    result: Headers = []
    for pair in headers:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise ASGIContractError(f"response header {pair!r} is not a (name, value) pair")
        name, value = pair
        if not isinstance(name, bytes) or not isinstance(value, bytes):
            raise ASGIContractError(f"response header {pair!r} must be a pair of bytes")
        if _TOKEN.fullmatch(name) is None:
            raise ASGIContractError(f"invalid response header name {name!r}")
        if _FORBIDDEN_IN_VALUE.search(value) is not None:
            raise ASGIContractError(
                f"response header {name!r} has CR, LF or NUL in its value",
                hint="never put untrusted input into headers unescaped (response splitting)",
            )
        result.append((name.lower(), value))
    return result
