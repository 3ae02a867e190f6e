"""While a turn's reads are held (uvloop), the turn's writes wait for the same hand-on,
which writes them before it parses (`ConnectionTracker._hand_on`, `TransportAdapter.write`).

Driven as `test_held_reads` drives the adapter (its protocol callbacks by hand on a
running uvloop), over a transport that records what is written and when; the real
server under many connections is `tests/integration/test_turn_writes.py`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from pounce.net import transport as transport_module
from pounce.net.transport import ConnectionTracker, TransportAdapter
from tests.net import test_held_reads

uvloop = pytest.importorskip("uvloop")


@pytest.fixture(autouse=True)
def _hold_from_one_connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(transport_module, "HOLD_FROM_CONNECTIONS", 1)


class _Transport(test_held_reads._Transport):
    """Records writes, the end of the write side and aborts, in one shared log."""

    def __init__(self, log: list[object], name: str) -> None:
        super().__init__()
        self.log = log
        self.name = name
        self.fail = False

    def abort(self) -> None:
        super().abort()
        self.log.append((self.name, "abort"))

    def write_eof(self) -> None:
        self.log.append((self.name, "eof"))

    def write(self, data: Any) -> None:
        if self.fail:
            raise RuntimeError("transport bug")
        self.log.append((self.name, bytes(data)))

    def writelines(self, pieces: Any) -> None:
        self.log.append((self.name, b"|".join(pieces)))


class _Handler:
    def __init__(self, log: list[object], name: str) -> None:
        self.log = log
        self.name = name

    def connection_made(self, conn: object) -> None:
        pass

    def data_received(self, data: bytes) -> None:
        self.log.append((self.name, "read", data))

    def eof_received(self) -> bool | None:
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        pass

    def begin_shutdown(self) -> None:
        pass


Case = Callable[[list[TransportAdapter], list[_Transport], list[object]], Awaitable[None]]


def run(case: Case, connections: int = 1) -> None:
    async def main() -> None:
        log: list[object] = []
        tracker = ConnectionTracker()
        adapters, transports = [], []
        for i in range(connections):
            name = f"c{i}"
            adapter = TransportAdapter(lambda name=name: _Handler(log, name), tracker)  # type: ignore[misc]
            transport = _Transport(log, name)
            adapter.connection_made(transport)
            adapter.data_received(b"first")  # a connection's first read goes at once
            adapters.append(adapter)
            transports.append(transport)
        log.clear()
        await case(adapters, transports, log)

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(main())


def test_without_a_held_read_a_write_goes_at_once() -> None:
    async def case(
        adapters: list[TransportAdapter], _: list[_Transport], log: list[object]
    ) -> None:
        adapters[0].write(b"response")
        assert log == [("c0", b"response")]

    run(case)


def test_writes_of_a_turn_with_held_reads_leave_together_before_the_reads_are_parsed() -> None:
    async def case(
        adapters: list[TransportAdapter], _: list[_Transport], log: list[object]
    ) -> None:
        adapters[0].data_received(b"next request")  # held for the hand-on
        adapters[1].write(b"one")  # a task's response, in the same turn
        adapters[0].write(b"two")
        adapters[1].write(b"three")  # (HTTP/2: another stream's)
        assert log == []
        await asyncio.sleep(0)
        assert log == [("c1", b"onethree"), ("c0", b"two"), ("c0", "read", b"next request")]
        adapters[0].write(b"after")  # the turn's hand-on is over: at once
        assert log[-1] == ("c0", b"after")

    run(case, connections=2)


def test_what_waits_stays_within_the_limit() -> None:
    """A write that would take what waits over `HELD_WRITE_LIMIT` sends all of it at once,
    and a large write goes at once: the transport sees a long or large response as it
    comes, and can push back."""
    limit = transport_module.HELD_WRITE_LIMIT

    async def case(
        adapters: list[TransportAdapter], _: list[_Transport], log: list[object]
    ) -> None:
        adapters[0].data_received(b"held")
        adapters[0].write(b"a" * (limit - 1))
        adapters[0].write(b"b")  # exactly at the limit: waits
        assert log == []
        adapters[0].write(b"c")
        assert log == [("c0", b"a" * (limit - 1) + b"b"), ("c0", b"c")]
        large = b"x" * (limit + 1)
        adapters[1].write(large)
        assert log[-1] == ("c1", large)
        adapters[1].write(b"small")
        assert log[-1] == ("c1", large)  # this one waits
        await asyncio.sleep(0)
        assert log[-2:] == [("c1", b"small"), ("c0", "read", b"held")]

    run(case, connections=2)


@pytest.mark.parametrize("how", ["close", "writelines", "drain"])
def test_anything_else_a_connection_writes_goes_after_what_it_wrote_before(how: str) -> None:
    async def case(
        adapters: list[TransportAdapter], _: list[_Transport], log: list[object]
    ) -> None:
        adapter = adapters[0]
        adapter.data_received(b"held")
        adapter.write(b"head")
        if how == "close":
            adapter.close()
            assert log == [("c0", b"head"), ("c0", "eof")]
        elif how == "writelines":
            adapter.writelines([b"big", b"body"])
            assert log == [("c0", b"head"), ("c0", b"big|body")]
        else:
            await adapter.drain()
            assert log == [("c0", b"head")]
        await asyncio.sleep(0)
        assert log.count(("c0", b"head")) == 1  # not written twice

    run(case)


@pytest.mark.parametrize("how", ["abort", "lost"])
def test_writes_waiting_when_the_connection_ends_are_dropped(how: str) -> None:
    async def case(
        adapters: list[TransportAdapter], _: list[_Transport], log: list[object]
    ) -> None:
        adapter = adapters[0]
        adapter.data_received(b"held")
        adapter.write(b"unsent")
        if how == "abort":
            adapter.abort()
        else:
            adapter.connection_lost(None)
        await asyncio.sleep(0)
        assert not any(entry == ("c0", b"unsent") for entry in log)

    run(case)


def test_a_transport_failing_on_a_held_write_leaves_the_other_writes_and_reads() -> None:
    async def case(
        adapters: list[TransportAdapter], transports: list[_Transport], log: list[object]
    ) -> None:
        reported: list[dict[str, Any]] = []
        asyncio.get_running_loop().set_exception_handler(lambda _l, c: reported.append(c))
        transports[0].fail = True
        adapters[2].data_received(b"held")
        for adapter in adapters:
            adapter.write(b"response")
        await asyncio.sleep(0)
        assert ("c0", "abort") in log
        assert ("c1", b"response") in log and ("c2", b"response") in log
        assert log[-1] == ("c2", "read", b"held")
        assert [type(c["exception"]) for c in reported] == [RuntimeError]

    run(case, connections=3)


def test_on_asyncio_nothing_waits() -> None:
    async def main() -> None:
        log: list[object] = []
        tracker = ConnectionTracker()
        adapter = TransportAdapter(lambda: _Handler(log, "c0"), tracker)
        adapter.connection_made(_Transport(log, "c0"))
        adapter.data_received(b"first")
        adapter.data_received(b"second")  # asyncio: not held
        adapter.write(b"response")
        assert log[-1] == ("c0", b"response")

    with asyncio.Runner() as runner:
        runner.run(main())
