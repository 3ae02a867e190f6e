"""Per-client rate limit: a token bucket per key, 429 past it.

An `AppLayer` that meters (STYLE #10): each key — by default the client's
address, as the forwarded-headers layer left it in ``scope["client"]``; or
what a `key` callable returns (an API key, a path) — has a bucket of
`burst` tokens, refilled at `rate`. A request takes one token; with none
left it is answered 429 Too Many Requests (RFC 6585 §4) with
``Retry-After`` (whole seconds until a token is back). Every HTTP response
carries the IETF httpapi draft's fields
(draft-ietf-httpapi-ratelimit-headers, the structured-field form of -08 and
later)::

    RateLimit-Policy: "pounce";q=100;w=1     the configured rate: q per w seconds
    RateLimit: "pounce";r=42;t=1             r tokens left, t seconds to a full bucket

WebSocket handshakes are metered too (a refusal is a 429 denial response).
A key callable returning None leaves that request unmetered; so does a
request with no client address (a Unix socket without forwarded headers).

The buckets of one wrap (one worker) live in a map bounded by `max_keys`:
past it the least recently seen key is forgotten (LRU), so a flood from a
million source addresses holds `max_keys` buckets, never more; a forgotten
client starts again with a full bucket. Time comes from `clock`
(`time.monotonic` unless a test injects one).
"""

from __future__ import annotations

import math
import re
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.errors import RateLimitedError
from pounce.layer import AppLayer, Serving
from pounce.layers.refusal import RefusalLog, refuse
from pounce.options import REQUIRED, check_fields, option, whole

KeyFunc = Callable[[Scope], str | None]
"""A request's scope → the key it is metered under, or None: not metered."""

DEFAULT_MAX_KEYS = 10_000  # buckets per worker; about 200 B each, so about 2 MB at most
POLICY = "pounce"  # the policy's name in RateLimit-Policy and RateLimit
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600}
_PERIODS["hour"] = 3600
_RATE = re.compile(r"\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*")


def parse_rate(text: str) -> tuple[int, int]:
    """``"100/s"``, ``"600/min"``, ``"5/10s"``, ``"1000/h"`` → (requests, seconds)."""
    match = _RATE.fullmatch(text.lower())
    if match is None or match[3] not in _PERIODS or int(match[1]) < 1:
        raise ValueError('must be N/s, N/m or N/h with N >= 1 (e.g. "100/s", "5/10s")')
    span = int(match[2]) if match[2] else 1
    if span < 1:
        raise ValueError("must have a period of at least 1")
    return int(match[1]), span * _PERIODS[match[3]]


def _check_rate(value: object) -> str | None:
    if value is None:
        return None  # unset: no rate limit (the standard preset's default)
    if not isinstance(value, str):
        raise ValueError('must be a string such as "100/s"')
    parse_rate(value)
    return value.strip()


def _check_key(value: object) -> KeyFunc | None:
    if value is not None and not callable(value):
        raise ValueError("must be a callable scope -> str | None, or None for the client address")
    return value


def client_address(scope: Scope) -> str | None:
    """The default key: the client's address (after forwarded headers), None without one."""
    client = scope.get("client")
    return str(client[0]) if client else None


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimit(AppLayer):
    """`.rate_limit()`: a token bucket per client (or per `key`), 429 when it is empty."""

    builder_call = ".rate_limit"
    options_group = "limits"

    rate: str = option(
        REQUIRED,
        name="rate_limit",
        help='requests per client, as N/s, N/m or N/h ("100/s"): a token bucket refilled at '
        "that rate; past it 429",
        convert=_check_rate,
    )
    burst: int | None = option(
        None,
        name="rate_limit_burst",
        unit="requests",
        help="the bucket's size: requests a client may make at once",
        shown="the rate's N",
        check=whole(1),
    )
    max_keys: int = option(
        DEFAULT_MAX_KEYS,
        name="rate_limit_max_keys",
        unit="keys",
        help="clients remembered per worker; past it the least recently seen is forgotten",
        check=whole(1),
    )
    key: KeyFunc | None = option(
        None,
        outside=False,
        help="scope -> the key to meter (an API key, a path), None: not metered; "
        "default the client address",
        shown="client address",
        convert=_check_key,
    )
    clock: Callable[[], float] = field(default=time.monotonic, compare=False)

    def __post_init__(self) -> None:
        check_fields(self, self.builder_call)

    @property
    def client_keyed(self) -> bool:
        """Metered by client address: must come after the forwarded-headers layer."""
        return self.key is None

    @property
    def size(self) -> int:
        return self.burst if self.burst is not None else parse_rate(self.rate)[0]

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        return self.wrap_serving(inner, Serving())

    def wrap_serving(self, inner: ASGIApp, serving: Serving) -> ASGIApp:
        count, period = parse_rate(self.rate)
        buckets = _Buckets(count / period, self.size, self.max_keys, self.clock)  # per wrap
        policy = (b"ratelimit-policy", f'"{POLICY}";q={count};w={period}'.encode())
        key_of = self.key or client_address
        log = RefusalLog("rate limit", events=serving.events)

        async def metered(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await inner(scope, receive, send)
                return
            key = key_of(scope)
            if key is None:
                await inner(scope, receive, send)
                return
            allowed, remaining, reset, wait = buckets.take(key)
            fields = [policy, (b"ratelimit", f'"{POLICY}";r={remaining};t={reset}'.encode())]
            if not allowed:
                log.refused("too many requests", scope, 429)
                error = RateLimitedError("429 Too Many Requests", retry_after=wait)
                await refuse(scope, send, error, fields)
                return
            if scope["type"] == "http":
                send = _with_fields(send, fields)
            await inner(scope, receive, send)

        return metered

    def describe(self) -> str:
        key = "client address" if self.key is None else "key " + _name(self.key)
        return (
            f"rate limit {self.rate} per {key}, burst {self.size}, "
            f"{self.max_keys} keys per worker (then 429)"
        )


def _name(key: KeyFunc) -> str:
    return str(getattr(key, "__qualname__", None) or type(key).__qualname__)


def _with_fields(send: Send, fields: list[tuple[bytes, bytes]]) -> Send:
    async def send_with_fields(message: Message) -> None:
        if message["type"] == "http.response.start":
            message = {**message, "headers": [*message.get("headers", ()), *fields]}
        await send(message)

    return send_with_fields


class _Buckets:
    """One wrap's token buckets by key, least recently seen first, at most `max_keys`."""

    __slots__ = ("_clock", "_map", "max_keys", "rate", "size")

    def __init__(self, rate: float, size: int, max_keys: int, clock: Callable[[], float]) -> None:
        self.rate = rate  # tokens per second
        self.size = size
        self.max_keys = max_keys
        self._clock = clock
        self._map: OrderedDict[str, tuple[float, float]] = OrderedDict()  # key → (tokens, when)

    def __len__(self) -> int:
        return len(self._map)

    def take(self, key: str) -> tuple[bool, int, int, float]:
        """One token for `key`: (allowed, tokens left, seconds to full, seconds to a token)."""
        now = self._clock()
        entry = self._map.pop(key, None)
        if entry is None:
            tokens = float(self.size)
            if len(self._map) >= self.max_keys:
                self._map.popitem(last=False)  # forget the least recently seen
        else:
            tokens = min(float(self.size), entry[0] + (now - entry[1]) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._map[key] = (tokens, now)  # newest last
        reset = math.ceil((self.size - tokens) / self.rate)
        wait = 0.0 if allowed else (1.0 - tokens) / self.rate
        return allowed, int(tokens), reset, wait
