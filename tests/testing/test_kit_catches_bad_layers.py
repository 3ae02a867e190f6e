"""The conformance kit fails on layers and protocols that break its rules.

Each bad subject breaks one rule; the test runs the check for that rule and
expects an AssertionError that says what went wrong.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest

from pounce import (
    AppLayer,
    BuildError,
    Conn,
    ConnectionHandler,
    ForwardingHandler,
    ProtocolFactory,
    StreamLayer,
)
from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.conn import HandlerFactory
from pounce.drivers.service import ServiceContext
from pounce.testing import (
    check_app_layer,
    check_bad_options,
    check_protocol,
    check_stream_layer,
)

# -- stream layers ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Passing(StreamLayer):
    """A correct layer: `ForwardingHandler` does everything."""

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        return lambda: ForwardingHandler(inner())


class _DropsShutdown(ForwardingHandler):
    def begin_shutdown(self) -> None:
        pass  # forgot to pass it on


@dataclass(frozen=True)
class DropsShutdown(StreamLayer):
    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        return lambda: _DropsShutdown(inner())


@dataclass(frozen=True)
class KeepsConnectionsOnItself(StreamLayer):
    conns: list[Conn] = field(default_factory=list, compare=False, hash=False)

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        layer = self

        class Handler(ForwardingHandler):
            def connection_made(self, conn: Conn) -> None:
                layer.conns.append(conn)
                super().connection_made(conn)

        return lambda: Handler(inner())


class CountsOnItself(StreamLayer):
    """Not frozen, and a per-connection counter on `self`."""

    def __init__(self) -> None:
        self.open = 0

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        def make() -> ConnectionHandler:
            self.open += 1
            return ForwardingHandler(inner())

        return make


_GATES: dict[int, list[int]] = {}  # a "gate" shared by every wrap of a layer: the bug


@dataclass(frozen=True)
class SharesAcrossWraps(StreamLayer):
    cap: int = 2

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        gate = _GATES.setdefault(id(self), [0])  # should be made here, per wrap
        cap = self.cap

        class Handler(ForwardingHandler):
            def connection_made(self, conn: Conn) -> None:
                self.conn = conn
                if gate[0] >= cap:
                    conn.close()
                    return
                gate[0] += 1
                self.inner = inner()
                self.inner.connection_made(conn)

            def connection_lost(self, exc: Exception | None) -> None:
                if self.inner is not None:
                    gate[0] -= 1
                super().connection_lost(exc)

        return Handler


@dataclass(frozen=True)
class LastConnectionWins(StreamLayer):
    """Keeps "the" inner handler in the wrap: two connections get mixed up."""

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        current: list[ConnectionHandler] = []

        class Handler(ForwardingHandler):
            def connection_made(self, conn: Conn) -> None:
                current[:] = [inner()]
                current[0].connection_made(conn)

            def data_received(self, data: bytes) -> None:
                current[0].data_received(data)

        return Handler


class _Greeted(ForwardingHandler):
    """Hands inward after ``HELLO\\n``, refuses anything else; may break two rules."""

    def __init__(self, make: HandlerFactory, *, abort_pending: bool, leak: bool) -> None:
        super().__init__()
        self._make, self._abort_pending, self._leak = make, abort_pending, leak
        self._seen = b""
        self._pending: ConnectionHandler | None = None

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
            return
        self._seen += data
        if self._seen.startswith(b"HELLO\n"):
            self.inner = self._make()
            assert self.conn is not None
            self.inner.connection_made(self.conn)
        elif not b"HELLO\n".startswith(self._seen[:6]):
            assert self.conn is not None
            self.conn.close()
            if self._leak:
                self._pending = self._make()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._pending is not None:
            self._pending.connection_lost(exc)  # the leak: a refused connection's loss
        super().connection_lost(exc)

    def begin_shutdown(self) -> None:
        if self.inner is not None or self._abort_pending:
            super().begin_shutdown()


@dataclass(frozen=True)
class Greeted(StreamLayer):
    abort_pending: bool = True
    leak: bool = False

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        return lambda: _Greeted(inner, abort_pending=self.abort_pending, leak=self.leak)


@dataclass(frozen=True)
class TwoLines(StreamLayer):
    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        return lambda: ForwardingHandler(inner())

    def describe(self) -> str:
        return "two\nlines"


def test_a_correct_stream_layer_passes() -> None:
    check_stream_layer(Passing)
    check_stream_layer(Greeted, preamble=b"HELLO\n", refused=[b"GET /"])


BAD_STREAM_LAYERS = [
    (DropsShutdown, {}, "shutdown", "begin_shutdown did not reach the inner handler"),
    (KeepsConnectionsOnItself, {}, "stateless", "attributes changed"),
    (CountsOnItself, {}, "stateless", "attributes changed"),
    (CountsOnItself, {}, "frozen", "immutable"),
    (SharesAcrossWraps, {}, "per_wrap", "another wrap"),
    (LastConnectionWins, {}, "forwarding", "passed inward"),
    (
        lambda: Greeted(abort_pending=False),
        {"preamble": b"HELLO\n"},
        "shutdown",
        "neither closed nor aborted",
    ),
    (
        lambda: Greeted(leak=True),
        {"preamble": b"HELLO\n", "refused": [b"GET /"]},
        "refusal",
        "leaked",
    ),
    (TwoLines, {}, "describe", "one line"),
]


@pytest.mark.parametrize(
    ("make", "options", "check", "message"),
    BAD_STREAM_LAYERS,
    ids=[f"{getattr(m, '__name__', 'Greeted')}-{c}" for m, _, c, _ in BAD_STREAM_LAYERS],
)
def test_the_kit_fails_a_bad_stream_layer(
    make: Callable[[], StreamLayer], options: dict[str, Any], check: str, message: str
) -> None:
    _GATES.clear()
    with pytest.raises(AssertionError, match=message):
        check_stream_layer(make, checks=[check], **options)


# -- app layers ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class HttpOnly(AppLayer):
    """Drops every scope but http: lifespan and websocket never reach the app."""

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] == "http":
                await inner(scope, receive, send)

        return app


@dataclass(frozen=True)
class OneSendPerWrap(AppLayer):
    """Keeps the current request's `send` in the wrap: concurrent requests get crossed."""

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        current: list[Send] = []

        async def sender(message: Message) -> None:
            await current[-1](message)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            current.append(send)
            await inner(scope, receive, sender)

        return app


@dataclass(frozen=True)
class Swallows(AppLayer):
    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            with contextlib.suppress(Exception):  # the bug
                await inner(scope, receive, send)

        return app


_NUMBERS = itertools.count(1)  # module-level: shared by every wrap, every worker


@dataclass(frozen=True)
class NumbersResponses(AppLayer):
    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            async def numbered(message: Message) -> None:
                if message["type"] == "http.response.start":
                    number = str(next(_NUMBERS)).encode()
                    message = {**message, "headers": [*message["headers"], (b"x-n", number)]}
                await send(message)

            await inner(scope, receive, numbered)

        return app


class CountsRequests(AppLayer):
    def __init__(self) -> None:
        self.requests = 0

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            self.requests += 1
            await inner(scope, receive, send)

        return app


def test_a_correct_app_layer_passes() -> None:
    @dataclass(frozen=True)
    class Through(AppLayer):
        def wrap(self, inner: ASGIApp) -> ASGIApp:
            return inner

    check_app_layer(Through)


BAD_APP_LAYERS = [
    (HttpOnly, "lifespan", "lifespan scope did not reach"),
    (HttpOnly, "websocket", "websocket scope did not reach"),
    (OneSendPerWrap, "concurrent", "response"),
    (Swallows, "errors", "swallowed"),
    (NumbersResponses, "per_wrap", "another wrap"),
    (CountsRequests, "stateless", "attributes changed"),
    (CountsRequests, "frozen", "immutable"),
]


@pytest.mark.parametrize(
    ("make", "check", "message"),
    BAD_APP_LAYERS,
    ids=[f"{m.__name__}-{c}" for m, c, _ in BAD_APP_LAYERS],
)
def test_the_kit_fails_a_bad_app_layer(
    make: Callable[[], AppLayer], check: str, message: str
) -> None:
    with pytest.raises(AssertionError, match=message):
        check_app_layer(make, checks=[check])


# -- protocols ------------------------------------------------------------------------------------


class Idle:
    """A handler that does nothing: ignores shutdown."""

    conn: Conn | None = None

    def connection_made(self, conn: Conn) -> None:
        self.conn = conn
        if isinstance(self, Quitting):
            conn.close()

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def begin_shutdown(self) -> None:
        pass


class Quitting(Idle):
    """Closes at once (passes shutdown); subclasses break one rule each."""


class Lingers(Quitting):
    """Leaves a task running after the connection is gone."""

    def connection_made(self, conn: Conn) -> None:
        self.task = asyncio.get_running_loop().create_task(asyncio.sleep(3600))
        super().connection_made(conn)


class WritesWhenLost(Quitting):
    def connection_lost(self, exc: Exception | None) -> None:
        assert self.conn is not None
        self.conn.write(b"bye")


@dataclass(frozen=True)
class Simple(ProtocolFactory):
    make: Callable[[], ConnectionHandler] = Quitting
    name = "simple"

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        return self.make()


_ONE = Quitting()


@dataclass(frozen=True)
class Fickle(Simple):
    def sniff(self, data: bytes) -> bool | None:
        return len(data) < 3  # claims two bytes, then changes its mind


BAD_PROTOCOLS = [
    ("ignores shutdown", Simple(Idle), "shutdown", "did not close an idle connection"),
    ("lingers", Simple(Lingers), "lost", "kept running"),
    ("writes when lost", Simple(WritesWhenLost), "lost", "wrote b'bye' after it"),
    ("one handler", Simple(lambda: _ONE), "handlers", "the same handler"),
    ("fickle sniff", Fickle(), "sniff", "changed its mind"),
]


def test_a_correct_protocol_passes() -> None:
    check_protocol(Simple(Quitting), greeting=b"hi")


@pytest.mark.parametrize(
    ("factory", "check", "message"),
    [pytest.param(f, c, m, id=name) for name, f, c, m in BAD_PROTOCOLS],
)
def test_the_kit_fails_a_bad_protocol(factory: ProtocolFactory, check: str, message: str) -> None:
    with pytest.raises(AssertionError, match=message):
        check_protocol(factory, checks=[check])


# -- bad options -----------------------------------------------------------------------------------


def _strict(value: int) -> int:
    if value < 1:
        raise BuildError(f"Thing(size={value!r}): must be positive")
    return value


def _value_error(value: int) -> int:
    if value < 1:
        raise ValueError("negative")
    return value


def test_check_bad_options() -> None:
    check_bad_options(_strict, [0, -1], good_values=[1], match="size=")
    with pytest.raises(AssertionError, match="accepted the bad value 5"):
        check_bad_options(_strict, [5])
    with pytest.raises(AssertionError, match="raised ValueError"):
        check_bad_options(_value_error, [0])
    with pytest.raises(AssertionError, match="does not mention"):
        check_bad_options(_strict, [0], match="colour")
    with pytest.raises(AssertionError, match="for the good value 0"):
        check_bad_options(_strict, [-1], good_values=[0])
