"""Validation of response headers an app hands us, before a byte is written.

A header value with CR or LF would let an app (fed by an attacker) split the
response in two (response splitting, CVE-2020-7695 in Uvicorn); NUL and
non-token names are as bad. We refuse them with `ASGIContractError`, which
turns into a 500, rather than trusting every protocol core to catch it.

Framing is the server's job, so the app may only state it in the two ways
every protocol core can honour: a ``content-length`` of digits, or
``transfer-encoding: chunked`` (HTTP/1.1's; an HTTP/2 core drops it, RFC 9113 §8.2.2).
Any other transfer coding would leave the client unable to find the end of
the body (RFC 9112 §6.3), and both together are forbidden (RFC 9112 §6.2).

Invariants of what this returns: names are lower-cased tokens; values hold
no control character but HTAB and no leading or trailing whitespace.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

from pounce.errors import ASGIContractError
from pounce.protocols.events import Headers

# RFC 9110 §5.6.2: token = 1*tchar
_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
# RFC 9110 §5.5: field-value is visible characters, SP and HTAB. CR, LF and NUL
# MUST be refused; the other controls are refused too (as Uvicorn's httptools
# path does), since intermediaries treat them unpredictably.
_FORBIDDEN_IN_VALUE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
# RFC 9110 §5.5: leading and trailing whitespace is not part of a field value.
_OWS = b" \t"
# RFC 9110 §8.6: Content-Length = 1*DIGIT
_DIGITS = re.compile(rb"[0-9]+")
_FRAMING_HINT = "let the server frame the body; compress with content-encoding instead"


def validate_response_headers(headers: Iterable[object]) -> Headers:
    """Return the headers as a list of lower-cased byte pairs, or raise.

    Pairs seen before come from a memo of validated pairs (one dict lookup
    each); the common case — well-formed pairs of bytes with lower-case
    names, no stray whitespace and no framing header — is checked in bulk
    by two regex calls; anything else takes the pair-by-pair path, which
    also words the error.
    """
    if type(headers) is list:
        try:
            # A hit is a pair equal to one validated before, and the result
            # holds that pair: bytes, never a look-alike the app handed over.
            # (`map` over the dict's lookup: no frame of a comprehension's own; unpacked
            # into a display, which skips the call of `list`.)
            return [*map(_memo_lookup, headers)]
        except (KeyError, TypeError):  # a new pair, or an unhashable one
            pass
    fast = _validate_in_bulk(headers)
    if fast is not None:
        return fast
    return _validate_each(headers)


# Pairs that passed `_validate_in_bulk`, each mapped to itself: apps send the
# same few fields over and over (content-type, a fixed content-length), and a
# lookup costs a fraction of two regex calls. Validity is a pure function of
# two immutable byte strings, so sharing this memo is safe; it is bounded and
# stops growing once full (an app with ever-new values just misses it).
# Transfer-Encoding is never memoized: it needs the careful path.
_VALID_PAIRS: dict[object, tuple[bytes, bytes]] = {}
_memo_lookup = _VALID_PAIRS.__getitem__
_MEMO_PAIRS = 512  # entries
_MEMO_VALUE = 256  # bytes: longer values are not kept


# The common case: lower-case token names, values with no control character
# but HTAB and no whitespace at either end.
_LOWER_TOKEN = re.compile(rb"[!#$%&'*+\-.^_`|~0-9a-z]+")
_VALUE_NEEDS_CARE = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]|^[ \t]|[ \t]$")


def _validate_in_bulk(headers: Iterable[object]) -> Headers | None:
    """The headers unchanged when they need no normalising, else None.

    Pairs of exact `bytes` that pass are added to the memo while it has room.
    """
    if type(headers) is not list:
        return None
    lengths = 0
    result: Headers = []
    try:
        for name, value in headers:
            if _LOWER_TOKEN.fullmatch(name) is None or _VALUE_NEEDS_CARE.search(value):
                return None
            if name == b"content-length":
                if _DIGITS.fullmatch(value) is None:
                    return None
                lengths += 1
            elif name == b"transfer-encoding":
                return None  # rare from apps: the careful path checks it
            pair = (name, value)
            if (
                type(name) is bytes
                and type(value) is bytes
                and len(value) <= _MEMO_VALUE
                and len(_VALID_PAIRS) < _MEMO_PAIRS
            ):
                _VALID_PAIRS[pair] = pair
            result.append(pair)
    except (TypeError, ValueError):
        return None
    if lengths > 1:
        return None
    return result


def _validate_each(headers: Iterable[object]) -> Headers:
    if not isinstance(headers, Iterable) or isinstance(headers, bytes | str):
        raise ASGIContractError(f"response headers must be an iterable of pairs, not {headers!r}")
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
                f"response header {name!r} has a control character (CR, LF, NUL …) in its value",
                hint="never put untrusted input into headers unescaped (response splitting)",
            )
        name = name.lower()
        value = value.strip(_OWS)
        _check_framing(name, value)
        result.append((name, value))
    if _has_both_framings(result):
        raise ASGIContractError(
            "response has both content-length and transfer-encoding", hint=_FRAMING_HINT
        )
    return result


def _check_framing(name: bytes, value: bytes) -> None:
    if name == b"content-length" and _DIGITS.fullmatch(value) is None:
        raise ASGIContractError(f"invalid content-length value {value!r}")
    if name == b"transfer-encoding" and value.lower() != b"chunked":
        raise ASGIContractError(
            f"unsupported transfer-encoding {value!r} (only 'chunked')", hint=_FRAMING_HINT
        )


def _has_both_framings(headers: Headers) -> bool:
    names = {name for name, _ in headers}
    return b"content-length" in names and b"transfer-encoding" in names
