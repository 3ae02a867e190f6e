"""Which request values are secrets, and how reports show them: masked.

The development error page and the Sentry reports both show a request's
headers and query string to a human (a page in a browser, an error tracker
that many people read). Credentials must not travel with them: cookies,
``Authorization``, API keys, tokens. A header or query parameter is secret
when its name is one of `SECRET_NAMES` or contains one of `SECRET_PARTS`
(``x-api-key``, ``x-auth-token``, ``?access_token=``); its value is replaced
by `MASK`, its name kept, so a reader still sees that it was sent.
Deliberately broad: a masked value that was harmless costs nothing, a
leaked session cookie costs an account.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import parse_qsl, urlencode

MASK = "[masked]"

SECRET_NAMES = frozenset(
    {
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-forwarded-for",  # the client's address: personal data (GDPR), as Sentry treats it
        "x-real-ip",
    }
)
SECRET_PARTS = ("auth", "token", "secret", "password", "passwd", "key", "session", "csrf", "xsrf")


def is_secret(name: str) -> bool:
    """Is a header or parameter called `name` (any case) a secret?"""
    lowered = name.lower()
    return lowered in SECRET_NAMES or any(part in lowered for part in SECRET_PARTS)


def masked_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, str]]:
    """ASGI headers as text pairs (latin-1, as on the wire), secret values masked."""
    shown = []
    for raw_name, raw_value in headers:
        name = raw_name.decode("latin-1")
        shown.append((name, MASK if is_secret(name) else raw_value.decode("latin-1")))
    return shown


def masked_query(query: bytes) -> str:
    """A query string with the values of secret parameters masked."""
    if not query:
        return ""
    text = query.decode("latin-1")
    pairs = parse_qsl(text, keep_blank_values=True)
    if not any(is_secret(name) for name, _ in pairs):
        return text  # as sent, not re-encoded
    return urlencode([(n, MASK if is_secret(n) else v) for n, v in pairs], safe="[]")
