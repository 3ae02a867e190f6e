"""`CountRequests`: counts what reaches the app, says so once at the limit."""

from __future__ import annotations

from typing import Any

from pounce.workers.counting import CountRequests, Tally


async def test_counts_requests_and_websockets_not_lifespan_and_reports_the_limit_once() -> None:
    seen: list[str] = []
    reached: list[int] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        seen.append(scope["type"])

    tally = Tally()
    counted = CountRequests(3, tally, reached.append).wrap(app)
    for kind in ("lifespan", "http", "websocket", "http", "http", "http"):
        await counted({"type": kind}, None, None)
    assert seen == ["lifespan", "http", "websocket", "http", "http", "http"]
    assert tally.served == 5
    assert reached == [3]
