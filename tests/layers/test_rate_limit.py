"""The per-client rate limit: token buckets per key, exact under an injected clock.

Over real sockets: the client address after forwarded headers is the key,
429 with Retry-After and the draft's RateLimit fields, a key callable, a
WebSocket refused with 429. In memory: the key map stays within its bound
under a flood of distinct keys, forgetting the least recently seen.
"""

from __future__ import annotations

import tracemalloc

import httpx
import pytest
import websockets
from websockets.sync.client import connect

from pounce import BuildError
from pounce.asgi.types import Scope
from pounce.layers.rate_limit import RateLimit, _Buckets, parse_rate
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, HeldApp, builder


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def get(url: str, client: str | None = None, **headers: str) -> httpx.Response:
    if client is not None:
        headers["x-forwarded-for"] = client
    return httpx.get(url, headers=headers, timeout=TIMEOUT)


def test_each_client_has_its_own_bucket_refilled_at_the_rate() -> None:
    clock = Clock()
    limit = RateLimit(rate="1/s", burst=3, clock=clock)
    server = builder().proxy_headers().layer(limit).asgi(HeldApp())
    with TestServer(server) as ts:
        url = f"{ts.url}/x"
        answers = [get(url, "203.0.113.1") for _ in range(4)]
        assert [r.status_code for r in answers] == [200, 200, 200, 429]
        assert [r.headers["ratelimit"] for r in answers] == [
            '"pounce";r=2;t=1',
            '"pounce";r=1;t=2',
            '"pounce";r=0;t=3',
            '"pounce";r=0;t=3',
        ]
        refused = answers[-1]
        assert refused.headers["ratelimit-policy"] == '"pounce";q=1;w=1'
        assert refused.headers["retry-after"] == "1"
        assert refused.text == "429 Too Many Requests\n"
        # Another client (as the trusted proxy names it) has a full bucket of its own.
        assert get(url, "203.0.113.2").status_code == 200
        clock.now += 1.0  # one token back for the first client, and only one
        assert [get(url, "203.0.113.1").status_code for _ in range(2)] == [200, 429]
        clock.now += 10.0  # a full bucket holds `burst`, not more
        assert [get(url, "203.0.113.1").status_code for _ in range(4)] == [200, 200, 200, 429]


def test_retry_after_is_the_wait_for_one_token() -> None:
    clock = Clock()
    server = builder().layer(RateLimit(rate="1/m", clock=clock)).asgi(HeldApp())
    with TestServer(server) as ts:
        assert get(ts.url).status_code == 200
        refused = get(ts.url)
        assert (refused.status_code, refused.headers["retry-after"]) == (429, "60")
        assert refused.headers["ratelimit-policy"] == '"pounce";q=1;w=60'
        clock.now += 45.0
        assert get(ts.url).headers["retry-after"] == "15"
        clock.now += 15.0
        assert get(ts.url).status_code == 200


def api_key(scope: Scope) -> str | None:
    for name, value in scope["headers"]:
        if name == b"x-api-key":
            return value.decode("latin-1")
    return None  # not metered


def test_a_key_callable_meters_by_api_key_and_none_is_not_metered() -> None:
    clock = Clock()
    server = builder().layer(RateLimit(rate="1/s", key=api_key, clock=clock)).asgi(HeldApp())
    with TestServer(server) as ts:
        assert get(ts.url, **{"x-api-key": "a"}).status_code == 200
        assert get(ts.url, **{"x-api-key": "a"}).status_code == 429
        assert get(ts.url, **{"x-api-key": "b"}).status_code == 200
        free = [get(ts.url) for _ in range(5)]
        assert [r.status_code for r in free] == [200] * 5
        assert "ratelimit" not in free[0].headers


def test_a_websocket_over_the_rate_gets_429() -> None:
    clock = Clock()
    server = builder().websocket().layer(RateLimit(rate="1/s", clock=clock)).asgi(HeldApp())
    with TestServer(server) as ts:
        url = f"ws://{ts.host}:{ts.port}/ws"
        with connect(url, open_timeout=TIMEOUT):
            pass
        with pytest.raises(websockets.exceptions.InvalidStatus) as info:
            connect(url, open_timeout=TIMEOUT).close()
        response = info.value.response
        assert (response.status_code, response.headers["retry-after"]) == (429, "1")


def test_the_key_map_stays_within_its_bound_under_a_flood_of_addresses() -> None:
    clock = Clock()
    buckets = _Buckets(rate=1.0, size=2, max_keys=1000, clock=clock)
    buckets.take("regular")

    def flood(first: int, count: int) -> None:
        for i in range(first, first + count):
            buckets.take(f"10.{i >> 16 & 255}.{i >> 8 & 255}.{i & 255}")
            if i % 500 == 0:
                buckets.take("regular")  # seen often: never the least recently seen

    flood(0, 5_000)
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        flood(5_000, 200_000)
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert len(buckets) == 1000
    # Bytes: the map was full before and stays so (its table churns, by a few
    # hundred KB at most); 200 000 buckets kept would be tens of MB.
    assert grown < 1_000_000
    assert buckets.take("regular")[1] == 0  # remembered: its second token, none left
    assert buckets.take("10.0.0.1")[1] == 1  # forgotten long ago: a full bucket again


def test_a_client_keyed_rate_limit_before_the_forwarded_headers_is_refused() -> None:
    with pytest.raises(BuildError, match=r"comes before \.proxy_headers\(\)") as info:
        builder().rate_limit(rate="5/s").proxy_headers().asgi(HeldApp())
    assert "call .proxy_headers() first" in str(info.value)
    builder().proxy_headers().rate_limit(rate="5/s").asgi(HeldApp())  # the right order
    builder().rate_limit(rate="5/s", key=api_key).proxy_headers().asgi(HeldApp())  # not by client


@pytest.mark.parametrize(
    ("text", "expected"),
    [("100/s", (100, 1)), ("600/min", (600, 60)), ("5/10s", (5, 10)), ("1000/h", (1000, 3600))],
)
def test_rates(text: str, expected: tuple[int, int]) -> None:
    assert parse_rate(text) == expected


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({}, "rate= is required"),
        ({"rate": "0/s"}, "N/s"),
        ({"rate": "5/fortnight"}, "N/s"),
        ({"rate": "5/s", "burst": 0}, "at least 1"),
        ({"rate": "5/s", "max_keys": 0}, "at least 1"),
        ({"rate": "5/s", "key": "client"}, "callable"),
    ],
)
def test_bad_options_are_build_errors(options: dict[str, object], match: str) -> None:
    with pytest.raises(BuildError, match=match):
        builder().rate_limit(**options)  # type: ignore[arg-type]
