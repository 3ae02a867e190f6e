"""On uvloop a small read after a connection's first reaches the handler one turn of the
loop later (`ConnectionTracker._hand_on`).

The adapter is driven as the loop drives it (its protocol callbacks, called by
hand on a running loop) over a transport that records nothing but closing;
the real transports are exercised by the integration suites, which run on
both loops.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pounce.net import transport as transport_module
from pounce.net.transport import HELD_READ_LIMIT, ConnectionTracker, TransportAdapter


@pytest.fixture(autouse=True)
def _hold_from_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests drive one or a few connections: hold from the first."""
    monkeypatch.setattr(transport_module, "HOLD_FROM_CONNECTIONS", 1)


class _Transport(asyncio.Transport):
    def __init__(self) -> None:
        super().__init__()
        self.closing = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        pass

    def write(self, data: Any) -> None:
        pass

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


class _Recorder:
    """A handler that records what reaches it."""

    def __init__(self) -> None:
        self.seen: list[object] = []

    def connection_made(self, conn: object) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.seen.append(data)

    def eof_received(self) -> bool | None:
        self.seen.append("eof")
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        self.seen.append("lost")

    def begin_shutdown(self) -> None:
        pass


Case = Callable[[TransportAdapter, _Transport, _Recorder], Awaitable[None]]


def run_on(loop_name: str, case: Case) -> None:
    if loop_name == "uvloop":
        uvloop = pytest.importorskip("uvloop")
        factory: Callable[[], asyncio.AbstractEventLoop] = uvloop.new_event_loop
    else:
        factory = asyncio.new_event_loop

    async def main() -> None:
        tracker = ConnectionTracker()
        recorder = _Recorder()
        adapter = TransportAdapter(lambda: recorder, tracker)
        transport = _Transport()
        adapter.connection_made(transport)
        adapter.data_received(b"first")  # a connection's first read goes at once
        assert recorder.seen == [b"first"]
        recorder.seen.clear()
        await case(adapter, transport, recorder)

    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(main())


def test_on_uvloop_a_small_read_reaches_the_handler_in_the_next_turn() -> None:
    async def case(adapter: TransportAdapter, transport: _Transport, rec: _Recorder) -> None:
        adapter.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rec.seen == []
        await asyncio.sleep(0)
        assert rec.seen == [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]

    run_on("uvloop", case)


def test_a_connections_first_read_is_not_held() -> None:
    """A new connection's request (every one under ``Connection: close``) waits for none."""

    async def main() -> None:
        recorder = _Recorder()
        adapter = TransportAdapter(lambda: recorder, ConnectionTracker())
        adapter.connection_made(_Transport())
        adapter.data_received(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert len(recorder.seen) == 1

    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_on_asyncio_a_read_reaches_the_handler_at_once() -> None:
    """asyncio's own order already runs the reads after the turn's tasks."""

    async def case(adapter: TransportAdapter, transport: _Transport, rec: _Recorder) -> None:
        adapter.data_received(b"x")
        assert rec.seen == [b"x"]

    run_on("asyncio", case)


def test_a_large_read_is_not_held() -> None:
    async def case(adapter: TransportAdapter, transport: _Transport, rec: _Recorder) -> None:
        adapter.data_received(b"a" * (HELD_READ_LIMIT + 1))
        assert rec.seen == [b"a" * (HELD_READ_LIMIT + 1)]

    run_on("uvloop", case)


def test_a_second_read_hands_on_both_at_once_in_order() -> None:
    """The loop read again before the turn ended: flow control must see every byte now."""

    async def case(adapter: TransportAdapter, transport: _Transport, rec: _Recorder) -> None:
        adapter.data_received(b"first")
        adapter.data_received(b"second")
        assert rec.seen == [b"first", b"second"]
        await asyncio.sleep(0)
        assert rec.seen == [b"first", b"second"]  # nothing twice

    run_on("uvloop", case)


def test_the_held_read_comes_before_the_fin() -> None:
    async def case(adapter: TransportAdapter, transport: _Transport, rec: _Recorder) -> None:
        adapter.data_received(b"GET / HTTP/1.0\r\n\r\n")
        adapter.eof_received()
        assert rec.seen == [b"GET / HTTP/1.0\r\n\r\n", "eof"]
        await asyncio.sleep(0)
        assert rec.seen == [b"GET / HTTP/1.0\r\n\r\n", "eof"]

    run_on("uvloop", case)


@pytest.mark.parametrize("how", ["close", "abort", "lost"])
def test_a_read_held_when_the_connection_ends_is_dropped(how: str) -> None:
    """As a read that came after: the handler closed (or the peer is gone) in between."""

    async def case(adapter: TransportAdapter, transport: _Transport, rec: _Recorder) -> None:
        adapter.data_received(b"late")
        if how == "close":
            adapter.close()
        elif how == "abort":
            adapter.abort()
        else:
            adapter.connection_lost(None)
        await asyncio.sleep(0)
        assert b"late" not in rec.seen

    run_on("uvloop", case)


def test_reads_of_one_turn_reach_their_handlers_in_the_order_they_came() -> None:
    async def main() -> None:
        tracker = ConnectionTracker()
        recorders = [_Recorder() for _ in range(5)]
        adapters = [TransportAdapter(lambda r=r: r, tracker) for r in recorders]  # type: ignore[misc]
        for adapter in adapters:
            adapter.connection_made(_Transport())
            adapter.data_received(b"first")
        order: list[int] = []
        for i, recorder in enumerate(recorders):
            recorder.data_received = lambda data, i=i: order.append(i)  # type: ignore[method-assign]
        for i in (3, 0, 4, 1, 2):
            adapters[i].data_received(b"x")
        assert order == []
        await asyncio.sleep(0)
        assert order == [3, 0, 4, 1, 2]

    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_with_few_connections_open_a_read_goes_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """A lone keep-alive connection: the hold would cost a turn of the loop a request."""
    monkeypatch.setattr(transport_module, "HOLD_FROM_CONNECTIONS", 2)

    async def case(adapter: TransportAdapter, transport: _Transport, rec: _Recorder) -> None:
        adapter.data_received(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert rec.seen == [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"]

    run_on("uvloop", case)


def test_a_handler_failing_on_a_held_read_leaves_the_other_reads_of_the_turn() -> None:
    async def main() -> None:
        loop = asyncio.get_running_loop()
        reported: list[dict[str, Any]] = []
        loop.set_exception_handler(lambda _loop, context: reported.append(context))
        tracker = ConnectionTracker()
        recorders = [_Recorder() for _ in range(3)]
        adapters = [TransportAdapter(lambda r=r: r, tracker) for r in recorders]  # type: ignore[misc]
        transports = [_Transport() for _ in range(3)]
        for adapter, transport in zip(adapters, transports, strict=True):
            adapter.connection_made(transport)
            adapter.data_received(b"first")

        def fail(data: bytes) -> None:
            raise RuntimeError("handler bug")

        recorders[0].data_received = fail  # type: ignore[method-assign]
        for adapter in adapters:
            adapter.data_received(b"x")
        await asyncio.sleep(0)
        assert recorders[1].seen[-1] == b"x" and recorders[2].seen[-1] == b"x"
        assert transports[0].closing and not transports[1].closing
        assert [type(c["exception"]) for c in reported] == [RuntimeError]

    uvloop = pytest.importorskip("uvloop")
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())
