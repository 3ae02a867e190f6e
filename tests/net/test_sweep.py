"""`Sweep`: one timer for many entries' timeouts of one length (pounce/net/sweep.py)."""

from __future__ import annotations

import asyncio

from pounce.net.sweep import Sweep

TIMEOUT = 0.05  # seconds, the sweep's; the test waits are generous
WAIT = 10.0  # seconds any awaited expiry may take on a busy machine


class Recorder:
    def __init__(self) -> None:
        self.expired: list[tuple[str, float]] = []
        self.event = asyncio.Event()

    def __call__(self, entry: str) -> None:
        self.expired.append((entry, asyncio.get_running_loop().time()))
        self.event.set()


async def test_an_entry_expires_once_its_timeout_has_passed() -> None:
    record = Recorder()
    sweep: Sweep[str] = Sweep(TIMEOUT, record)
    added = asyncio.get_running_loop().time()
    sweep.add("a")
    assert "a" in sweep and len(sweep) == 1
    await asyncio.wait_for(record.event.wait(), WAIT)
    (entry, when), *rest = record.expired
    assert entry == "a" and not rest
    assert when - added >= TIMEOUT  # never early
    assert len(sweep) == 0 and "a" not in sweep


async def test_a_discarded_entry_never_expires() -> None:
    record = Recorder()
    sweep: Sweep[str] = Sweep(TIMEOUT, record)
    sweep.add("gone")
    sweep.add("kept")
    sweep.discard("gone")
    sweep.discard("never added")  # harmless
    await asyncio.wait_for(record.event.wait(), WAIT)
    assert [entry for entry, _ in record.expired] == ["kept"]


async def test_a_re_added_entry_is_timed_from_its_last_add() -> None:
    record = Recorder()
    sweep: Sweep[str] = Sweep(TIMEOUT, record)
    loop = asyncio.get_running_loop()
    sweep.add("a")
    await asyncio.sleep(TIMEOUT / 2)
    sweep.add("b")
    again = loop.time()
    sweep.add("a")  # moves to the end: b is now the older
    while len(record.expired) < 2:
        record.event.clear()
        await asyncio.wait_for(record.event.wait(), WAIT)
    assert [entry for entry, _ in record.expired] in (["b", "a"], ["a", "b"])
    assert dict(record.expired)["a"] - again >= TIMEOUT


async def test_the_timer_stops_when_nothing_is_pending_and_restarts_on_add() -> None:
    record = Recorder()
    sweep: Sweep[str] = Sweep(TIMEOUT, record)
    sweep.add("a")
    await asyncio.wait_for(record.event.wait(), WAIT)
    while sweep._handle is not None:  # one more sweep finds nothing and stops
        await asyncio.sleep(TIMEOUT / 4)
    record.event.clear()
    sweep.add("b")
    assert sweep._handle is not None
    await asyncio.wait_for(record.event.wait(), WAIT)
    assert [entry for entry, _ in record.expired] == ["a", "b"]


async def test_an_expiry_may_add_entries() -> None:
    """A callback that adds (a connection closing into its linger) is timed afresh."""
    seen: list[str] = []
    done = asyncio.Event()
    sweep: Sweep[str]

    def expire(entry: str) -> None:
        seen.append(entry)
        if entry == "first":
            sweep.add("second")
        else:
            done.set()

    sweep = Sweep(TIMEOUT, expire)
    sweep.add("first")
    await asyncio.wait_for(done.wait(), WAIT)
    assert seen == ["first", "second"]
