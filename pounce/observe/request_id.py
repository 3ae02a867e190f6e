"""Request ids: ``X-Request-ID`` from a trusted proxy, or one made here.

With `.request_id()` every HTTP request and WebSocket handshake gets an id
before the app sees it: the one a trusted proxy sent (the same trust list as
`.proxy_headers()`: the direct peer must be trusted, docs/proxies.md), or a
fresh random one (32 hex digits) when the peer is not trusted or its value
is unusable. The id is in the scope (``scope["extensions"]["pounce.request_id"]
== {"id": ...}``), on every lifecycle event, on every log line written while
the request's app runs (`pounce.events.current_request_id`), and — with
``echo=True`` — in the response's header of the same name.

An id from a proxy is kept only if it is 1 to 200 visible ASCII characters:
anything else (control bytes, spaces, a megabyte) would let a client write
into logs and response headers, so it is replaced.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from pounce.events import Headers
from pounce.layers.proxy.trust import DEFAULT_TRUSTED, TrustedProxies
from pounce.options import option

MAX_LENGTH = 200  # characters; nginx's $request_id is 32, AWS's trace ids stay under 100
_USABLE = re.compile(rb"[\x21-\x7e]{1,%d}" % MAX_LENGTH)


def check_header_name(value: object) -> str:
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", value):
        raise ValueError("must be a header field name (RFC 9110 §5.1), e.g. x-request-id")
    return value.lower()


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestIdOptions:
    """The options of `.request_id()`."""

    builder_call = ".request_id"
    options_group = "logging"

    header: str = option(
        "x-request-id",
        name="request_id_header",
        help="the header a trusted proxy's request id comes in (and goes back in, with echo)",
        convert=check_header_name,
    )
    echo: bool = option(
        False,
        name="request_id_response_header",
        help="send the request id back in a response header of the same name",
    )
    trusted: tuple[str, ...] = option(
        DEFAULT_TRUSTED,
        help="peers whose request id is taken: IPs, CIDR networks, * (any peer), unix",
        outside=False,
    )


@dataclass(frozen=True, slots=True)
class RequestIds:
    """Gives a request its id; called by the exchange (`pounce.asgi.exchange.RequestIds`)."""

    options: RequestIdOptions
    _trusted: TrustedProxies = field(init=False, repr=False, compare=False)
    _name: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        trusted = TrustedProxies(self.options.trusted, call=".request_id")
        object.__setattr__(self, "_trusted", trusted)
        object.__setattr__(self, "_name", self.options.header.lower().encode("ascii"))

    @property
    def echo(self) -> bytes | None:
        return self._name if self.options.echo else None

    def __call__(self, headers: Headers, peer: tuple[str, int] | None) -> str:
        name = self._name
        for key, value in headers:
            if key == name:
                if _USABLE.fullmatch(value) and self._trusted.trusts_peer(peer):
                    return value.decode("ascii")
                break
        return os.urandom(16).hex()

    def describe(self) -> str:
        echo = ", echoed" if self.options.echo else ""
        return f"request id ({self.options.header} from {self._trusted.describe()}{echo})"
