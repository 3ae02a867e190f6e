"""How an app layer refuses a request before it reaches the app, and logs it without flooding.

`refuse` answers a `RefusedError` (`OverloadedError` 503, `RateLimitedError`
429) on the wire: over HTTP a plain-text response with ``Retry-After``
(RFC 9110 §10.2.3) and any extra fields; a WebSocket handshake gets the same
response through the ASGI denial extension (``websocket.http.response``,
which Pounce's WebSocket sessions offer), or — where a server lacks it — a
``websocket.close`` before the accept, which servers answer with 403.

`RefusalLog` counts refusals by reason for one wrap (one worker) and logs
them on ``pounce.error`` at most once per `interval`: the first refusal at
once, later ones summed into the next line. A flood of refusals costs one
line per interval, never one per request.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Iterable

from pounce.asgi.types import Scope, Send
from pounce.errors import RefusedError
from pounce.events import EventBus, Refused

error_log = logging.getLogger("pounce.error")

LOG_INTERVAL = 10.0  # seconds between two refusal lines of one layer, per worker

DENIAL_EXTENSION = "websocket.http.response"


async def refuse(
    scope: Scope, send: Send, error: RefusedError, headers: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer `error` to the request (or WebSocket handshake) of `scope`."""
    body = f"{error.message}\n".encode()
    fields = [(b"content-type", b"text/plain; charset=utf-8")]
    fields.append((b"content-length", b"%d" % len(body)))
    retry_after = error.retry_after_header()
    if retry_after is not None:
        fields.append(retry_after)
    fields.extend(headers)
    if scope["type"] == "websocket":
        if DENIAL_EXTENSION not in scope.get("extensions", {}):
            await send({"type": "websocket.close", "code": 1013})  # 1013: try again later
            return
        start, more = "websocket.http.response.start", "websocket.http.response.body"
    else:
        start, more = "http.response.start", "http.response.body"
    await send({"type": start, "status": error.status, "headers": fields})
    await send({"type": more, "body": body})


class RefusalLog:
    """Refusals of one wrap, counted by reason and logged at a bounded rate."""

    __slots__ = ("_clock", "_events", "_interval", "_next", "_pending", "counts", "what")

    def __init__(
        self,
        what: str,
        *,
        interval: float = LOG_INTERVAL,
        clock: Callable[[], float] = time.monotonic,
        events: EventBus | None = None,
    ) -> None:
        self.what = what
        self._events = events  # each refusal is also a `Refused` event
        self.counts: Counter[str] = Counter()  # every refusal since the wrap, by reason
        self._pending: Counter[str] = Counter()  # not logged yet
        self._interval = interval
        self._clock = clock
        self._next = -math.inf

    def refused(self, reason: str, scope: Scope | None = None, status: int = 503) -> None:
        if self._events is not None:  # no scope: the listener's (status 0, nothing answered)
            self._events.emit(
                Refused(
                    layer=self.what,
                    reason=reason,
                    status=status if scope is not None else 0,
                    client=scope.get("client") if scope is not None else None,
                    path=scope.get("path", "") if scope is not None else "",
                )
            )
        self.counts[reason] += 1
        self._pending[reason] += 1
        now = self._clock()
        if now < self._next:
            return
        self._next = now + self._interval
        summary = ", ".join(f"{count} {why}" for why, count in self._pending.items())
        self._pending.clear()
        error_log.warning(
            "%s refused: %s (at most one line per %g s)", self.what, summary, self._interval
        )
