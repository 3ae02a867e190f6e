"""Concurrency limit with a waiting queue: at most N requests in the app, Q more waiting.

One `AppLayer`, two primitives with one meaning each (STYLE #10): the limit
caps — at most `max_in_flight` requests are inside the app per worker — and
the queue waits — up to `queue` more wait for a place, first come first
served, for at most `queue_timeout` seconds. What the queue cannot hold, and
what waits too long, is shed: 503 with ``Retry-After: 1``. ``queue=0`` is
pure load shedding (Uvicorn's ``--limit-concurrency``).

What counts: each HTTP/1.1 request, each HTTP/2 stream, and each WebSocket
*handshake* — a WebSocket holds its place until the app accepts, denies or
closes it; an open WebSocket is the connection cap's business, not this
layer's. Lifespan passes through.

A waiting request is watched: its ``receive()`` is read while it waits, so
a client that leaves (``http.disconnect``, ``websocket.disconnect``) leaves
the queue at once and never reaches the app. What the watch reads is handed
to the app, in order, when the request is admitted; it reads at most
`WATCH_LIMIT` bytes of request body, and stops watching past it (the
driver's flow control holds the rest), so a waiting request holds at most
its head, that much body, and what the driver buffers.

Places pass straight from a finishing request to the first one waiting (the
count never drops in between), so a newcomer cannot overtake the queue.

The time a request waited is reported through the scope (`pounce.asgi.phases`)
to an outer layer that asks for it (``.server_timing()``).
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from dataclasses import dataclass
from typing import Literal

from pounce.asgi import phases
from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.errors import OverloadedError
from pounce.events import RequestDequeued, RequestQueued
from pounce.layer import AppLayer, Serving
from pounce.layers.refusal import RefusalLog, refuse
from pounce.options import REQUIRED, check_fields, option, seconds, whole

DEFAULT_QUEUE_TIMEOUT = 10.0  # seconds; well under the 30-60 s a client or proxy waits
RETRY_AFTER = 1.0  # seconds: a shed client may try again soon, elsewhere or here
WATCH_LIMIT = 64 * 1024  # bytes of request body read while a request waits


@dataclass(frozen=True, slots=True, kw_only=True)
class ConcurrencyLimit(AppLayer):
    """`.limit()`: at most `max_in_flight` requests in the app per worker, `queue` waiting."""

    builder_call = ".limit"
    options_group = "limits"

    max_in_flight: int = option(
        REQUIRED,
        name="limit_concurrency",
        unit="requests",
        help="at most this many requests (HTTP/1.1, HTTP/2 streams, WebSocket handshakes) in "
        "the app per worker; the rest wait in the queue or get 503 (Uvicorn's flag)",
        check=whole(1),
    )
    queue: int = option(
        0,
        name="limit_queue",
        unit="requests",
        help="this many more wait for a place, first come first served; 0: shed at once "
        "(Uvicorn's behaviour); past it: 503",
        check=whole(0),
    )
    queue_timeout: float = option(
        DEFAULT_QUEUE_TIMEOUT,
        name="limit_queue_timeout",
        unit="s",
        help="a request waits in the queue at most this long, then gets 503",
        check=seconds(),
    )

    def __post_init__(self) -> None:
        check_fields(self, self.builder_call)

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        return self.wrap_serving(inner, Serving())

    def wrap_serving(self, inner: ASGIApp, serving: Serving) -> ASGIApp:
        gate = _Gate(self.max_in_flight, self.queue)  # per wrap: one worker's places
        log = RefusalLog("concurrency limit", events=serving.events)
        serving.add_readiness_check(gate.not_ready)
        clock = time.perf_counter
        timeout = self.queue_timeout
        # Only a request that waits reports its queueing, and only to a bus that wants it.
        bus = serving.events if serving.events is not None and serving.events.queue else None

        async def limited(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await inner(scope, receive, send)  # lifespan
                return
            if not gate.try_enter():
                if gate.queue_full:
                    log.refused("at capacity", scope, 503)
                    await refuse(scope, send, _overloaded("the server is at capacity"))
                    return
                queued_at = clock()
                if bus is None:
                    outcome, receive = await _wait(gate, timeout, receive)
                    waited_s = clock() - queued_at
                else:
                    client, path = scope.get("client"), scope.get("path", "")
                    bus.emit(RequestQueued(client=client, path=path))
                    outcome = "gone"  # unless the wait returns (cancelled: gone)
                    try:
                        outcome, receive = await _wait(gate, timeout, receive)
                    finally:
                        waited_s = clock() - queued_at
                        bus.emit(
                            RequestDequeued(
                                client=client, path=path, outcome=outcome, waited=waited_s
                            )
                        )
                phases.note_queue_wait(scope, waited_s)
                if outcome == "gone":
                    log.counts["left the queue"] += 1
                    return
                if outcome == "timeout":
                    log.refused("waited too long", scope, 503)
                    await refuse(scope, send, _overloaded("no place in time"))
                    return
            place = _Place(gate)
            try:
                if scope["type"] == "websocket":
                    send = place.release_on_answer(send)
                await inner(scope, receive, send)
            finally:
                place.release()

        return limited

    def describe(self) -> str:
        queue = f"queue {self.queue} for {self.queue_timeout:g} s" if self.queue else "no queue"
        return f"limit {self.max_in_flight} in flight per worker, {queue} (then 503)"


def _overloaded(why: str) -> OverloadedError:
    return OverloadedError(f"503 Service Unavailable: {why}", retry_after=RETRY_AFTER)


class _Gate:
    """One wrap's places: `in_flight` of `limit` taken, `waiters` in arrival order."""

    __slots__ = ("in_flight", "limit", "queue", "waiters")

    def __init__(self, limit: int, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.in_flight = 0
        self.waiters: deque[asyncio.Future[None]] = deque()

    def try_enter(self) -> bool:
        if self.in_flight < self.limit and not self.waiters:
            self.in_flight += 1
            return True
        return False

    @property
    def queue_full(self) -> bool:
        return len(self.waiters) >= self.queue

    def wait(self) -> asyncio.Future[None]:
        place: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(place)
        return place

    def release(self) -> None:
        """A place is free: it passes to the first waiter, or back to the pool."""
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # handed over: in_flight stays
                return
        self.in_flight -= 1

    def give_up(self, place: asyncio.Future[None]) -> None:
        """A waiter leaves: out of the queue, or — handed a place meanwhile — passes it on."""
        if place.done() and not place.cancelled():
            self.release()
            return
        place.cancel()
        if place in self.waiters:
            self.waiters.remove(place)

    def not_ready(self) -> str | None:
        """For readiness: the next request would be shed."""
        if self.in_flight >= self.limit and self.queue_full:
            return f"concurrency limit: {self.in_flight} in flight, {len(self.waiters)} waiting"
        return None


class _Place:
    """An admitted request's place, released exactly once."""

    __slots__ = ("_gate",)

    def __init__(self, gate: _Gate) -> None:
        self._gate: _Gate | None = gate

    def release(self) -> None:
        gate, self._gate = self._gate, None
        if gate is not None:
            gate.release()

    def release_on_answer(self, send: Send) -> Send:
        """A WebSocket's `send` that frees the place once the handshake is answered."""

        async def answered(message: Message) -> None:
            await send(message)
            if message["type"] in ("websocket.accept", "websocket.close") or (
                message["type"] == "websocket.http.response.start"
            ):
                self.release()

        return answered


class _Watch:
    """Reads a waiting request's ``receive()`` to see its client leave; keeps what it read."""

    __slots__ = ("_read", "_receive", "gone", "stash", "task")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self._read = 0  # body bytes stashed
        self.stash: deque[Message] = deque()
        self.gone = False
        self.task: asyncio.Future[Message] | None = asyncio.ensure_future(receive())

    def step(self) -> None:
        """The pending read finished: keep its message, read on while that is cheap."""
        assert self.task is not None
        message = self.task.result()
        self.task = None
        self.stash.append(message)
        if message["type"] in ("http.disconnect", "websocket.disconnect"):
            self.gone = True
            return
        self._read += len(message.get("body", b""))
        if self._read < WATCH_LIMIT:
            self.task = asyncio.ensure_future(self._receive())

    def close(self) -> None:
        if self.task is not None:
            self.task.cancel()  # ASGI receive() is cancel-safe (Starlette cancels it too)
            self.task = None

    async def receive(self) -> Message:
        """The admitted request's ``receive``: what the watch read, then the pending read."""
        if self.stash:
            return self.stash.popleft()
        if self.task is not None:
            task, self.task = self.task, None
            return await task
        return await self._receive()


Outcome = Literal["admitted", "gone", "timeout"]


async def _wait(gate: _Gate, timeout: float, receive: Receive) -> tuple[Outcome, Receive]:
    """Wait in the queue for a place; the `receive` to hand the app once admitted."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    place = gate.wait()
    watch = _Watch(receive)
    try:
        while not place.done() and not watch.gone:
            remaining = deadline - loop.time()
            if remaining <= 0:
                break
            pending: set[asyncio.Future[object]] = {place}  # type: ignore[arg-type]
            if watch.task is not None:
                pending.add(watch.task)  # type: ignore[arg-type]
            await asyncio.wait(pending, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            if watch.task is not None and watch.task.done():
                watch.step()
    except BaseException:
        gate.give_up(place)
        watch.close()
        raise
    if place.done() and not watch.gone:
        return "admitted", watch.receive
    gate.give_up(place)
    watch.close()
    return ("gone" if watch.gone else "timeout"), receive
