"""`.server_timing()`: the server's own phases in a ``Server-Timing`` response header.

Browser devtools (the Network panel's Timing tab) and any client that reads
the W3C Server Timing header then show where a request's time went on the
server, next to the network's share::

    server-timing: queue;dur=12.5, app;dur=3.4

* ``queue``: milliseconds the request waited for a place in the concurrency
  limit's queue (`.limit(queue=…)`); present only when it waited. The limit
  reports it through the scope (`pounce.asgi.phases`), so this layer must be
  outside `.limit()` (the builder refuses the other order).
* ``app``: milliseconds from the request entering this layer, less the
  queue wait, to the response's start (``http.response.start`` reaching this
  layer): the app and the layers inside this one, up to the first byte.

HTTP requests only (HTTP/1.1 and HTTP/2 alike); WebSocket handshakes pass
untouched. The header is added to the response the app starts, so an app's
own ``Server-Timing`` fields stay (several fields are one list, RFC 9110
§5.3). Opt-in: timings tell a client something about the server's load.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from pounce.asgi import phases
from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.layer import AppLayer

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class ServerTiming(AppLayer):
    """`.server_timing()`: ``Server-Timing: queue;dur=…, app;dur=…``; see the module."""

    clock: Clock = field(default=time.perf_counter, compare=False)
    """Seconds; injectable so a test can pin the figures."""

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        clock = self.clock

        async def timed(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            spent = phases.start(scope)
            started = clock()

            async def send_with_timing(message: Message) -> None:
                if message["type"] == "http.response.start":
                    value = header_value(spent, clock() - started)
                    headers = [*message.get("headers", ()), (b"server-timing", value)]
                    message = {**message, "headers": headers}
                await send(message)

            await inner(scope, receive, send_with_timing)

        return timed

    def describe(self) -> str:
        return "server timing: Server-Timing queue, app"


def header_value(spent: dict[object, object], total: float) -> bytes:
    """``queue;dur=…, app;dur=…`` in milliseconds, from the phases and the total (seconds)."""
    queue = spent.get(phases.QUEUE)
    parts = []
    app = total
    if isinstance(queue, float):
        parts.append(b"queue;dur=%.1f" % (queue * 1000))
        app -= queue
    parts.append(b"app;dur=%.1f" % (max(app, 0.0) * 1000))
    return b", ".join(parts)
