"""Choosing a response's content coding from ``Accept-Encoding`` (RFC 9110 §12.5.3); pure.

`parse` reads the field into {coding: qvalue}; malformed members are
ignored, never an error. `choose` picks among the codings the server offers:

* a coding's qvalue is its own entry's, else the ``*`` entry's, else 0 (not
  acceptable); ``x-gzip`` counts as ``gzip`` (§8.4.1.3);
* the coding with the highest qvalue above 0 wins; among equals, the one
  the server lists first (its preference, br > zstd > gzip by default);
* identity wins when the field lists it with a qvalue higher than every
  coding's (a client that asks ``gzip;q=0.5, identity`` prefers the raw
  bytes); unlisted, it is only the fallback (``br;q=0.9`` means br).

No field at all means no compression: the RFC allows any coding then, but
a client that sends nothing may decode nothing. When nothing is acceptable,
identity is sent anyway (§12.5.3: the server SHOULD send an unencoded
response rather than 406).
"""

from __future__ import annotations

from collections.abc import Iterable

ALIASES = {"x-gzip": "gzip"}


def parse(field: str) -> dict[str, float]:
    """``"br;q=1.0, gzip;q=0.5, *;q=0"`` → {coding: qvalue}, lower case; bad members dropped."""
    found: dict[str, float] = {}
    for member in field.split(","):
        coding, _, params = member.partition(";")
        name = coding.strip().lower()
        if not name or any(c in name for c in ' \t"=/'):
            continue
        q = _qvalue(params)
        if q is not None:
            found[ALIASES.get(name, name)] = q
    return found


def _qvalue(params: str) -> float | None:
    """The ``q=`` parameter (RFC 9110 §12.4.2: 0 to 1, three decimals), 1 when absent."""
    q = 1.0
    for param in params.split(";"):
        key, _, value = param.strip().partition("=")
        if key.strip().lower() != "q":
            continue
        try:
            q = float(value.strip())
        except ValueError:
            return None
        if not 0.0 <= q <= 1.0:  # also refuses nan
            return None
    return q


def choose(field: str | None, offered: Iterable[str]) -> str | None:
    """The coding to send (one of `offered`, in server preference order), or None: identity."""
    if field is None:
        return None
    accepted = parse(field)
    star = accepted.get("*")
    identity = accepted.get("identity", 0.0)
    best: str | None = None
    best_q = 0.0
    for coding in offered:
        q = accepted.get(coding, star if star is not None else 0.0)
        if q > best_q:
            best, best_q = coding, q
    if best is not None and identity > best_q:
        return None
    return best
