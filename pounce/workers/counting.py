"""`CountRequests`: the app layer a worker adds, outermost, when it must recycle.

Why a layer and not a counter in the connection drivers: it costs nothing
at all when ``max_requests`` is None (the layer is simply not there), it
needs no change to any driver, and it counts exactly what reached the app
(HTTP requests and WebSocket sessions; lifespan is not a request). Its cost
when present is one coroutine frame per request.

The layer object is made per worker, and the count lives in what `wrap`
returns (one worker, one event loop): no lock. `reached` is called once,
when the count reaches `limit`; the worker keeps serving until the
supervisor has a replacement ready and tells it to drain.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.layer import AppLayer


class Tally:
    """Requests one worker has handed to its app so far."""

    __slots__ = ("served",)

    def __init__(self) -> None:
        self.served = 0


@dataclass(frozen=True, slots=True)
class CountRequests(AppLayer):
    limit: int
    tally: Tally
    reached: Callable[[int], None]

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        tally, limit, reached = self.tally, self.limit, self.reached

        async def counted(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "lifespan":
                tally.served += 1
                if tally.served == limit:
                    reached(tally.served)
            await inner(scope, receive, send)

        return counted

    def describe(self) -> str:
        return f"CountRequests(limit={self.limit})"
