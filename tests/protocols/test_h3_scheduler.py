"""The HTTP/3 core's send scheduler against aioquic's client, in memory.

Many streams with large bodies, trailers, resets from either side, GOAWAY:
each body arrives byte for byte, and aioquic is given only a few streams'
bytes at a time (what the scheduler is for: aioquic looks at every stream
with bytes queued for every packet it builds). The queue itself is tested in
tests/protocols/test_h3_send.py.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("aioquic")

from aioquic.h3.events import DataReceived as H3Data
from aioquic.h3.events import HeadersReceived
from aioquic.quic.events import StreamReset
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pounce.protocols.events import (
    CloseConnection,
    ResetStream,
    SendData,
    SendResponse,
    SendTrailers,
)
from pounce.protocols.events import StreamReset as PounceReset
from pounce.protocols.h3_send import DIRECT, QUANTUM
from tests.protocols.test_h3 import CLIENT, SERVER, Pair, files

__all__ = ["files"]  # the fixture, shared with test_h3

KiB = 1024


class Counted:
    """Counts how many streams aioquic tries for the packets the core sends."""

    def __init__(self, pair: Pair) -> None:
        quic = pair.core._quic
        self.tries = self.packets = 0
        write_frame = quic._write_stream_frame
        to_send = quic.datagrams_to_send

        def counted_frame(*args: Any, **kwargs: Any) -> int:
            self.tries += 1
            result: int = write_frame(*args, **kwargs)
            return result

        def counted_send(now: float) -> list[tuple[bytes, Any]]:
            datagrams = to_send(now)
            self.packets += len(datagrams)  # one packet each, once the handshake is done
            return datagrams

        quic._write_stream_frame = counted_frame  # type: ignore[method-assign]
        quic.datagrams_to_send = counted_send  # type: ignore[method-assign]


def pump(pair: Pair, rounds: int = 20_000) -> None:
    """Move datagrams both ways, timers included, until neither side has more to say."""
    quiet = 0
    for _ in range(rounds):
        pair.now += 0.0005
        moved = False
        for data, _addr in pair.core.datagrams_to_send(pair.now):
            moved = True
            pair.quic.receive_datagram(data, SERVER, pair.now)
        while (event := pair.quic.next_event()) is not None:
            pair.client_events.append(event)
            pair.client_events.extend(pair.client.handle_event(event))
        for data, _addr in pair.quic.datagrams_to_send(pair.now):
            moved = True
            pair.events += pair.core.receive_datagram(data, CLIENT, pair.now)
        for side in (pair.core, pair.quic):
            due = side.timer() if side is pair.core else side.get_timer()  # type: ignore[union-attr]
            if due is not None and due <= pair.now:
                if side is pair.core:
                    pair.events += pair.core.handle_timer(pair.now)
                else:
                    pair.quic.handle_timer(pair.now)
                moved = True
        quiet = 0 if moved else quiet + 1
        if quiet > 3:
            return
    raise AssertionError("the connection never went quiet")


def bodies(pair: Pair) -> dict[int, bytes]:
    out: dict[int, bytearray] = {}
    for event in pair.client_events:
        if isinstance(event, H3Data):
            out.setdefault(event.stream_id, bytearray()).extend(event.data)
    return {sid: bytes(data) for sid, data in out.items()}


def body_of(sid: int, size: int) -> bytes:
    return bytes((sid + n * 7) % 251 for n in range(size))


def respond(pair: Pair, sid: int, body: bytes, *, end: bool = True) -> None:
    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[]))
    pair.core.send(SendData(stream_id=sid, data=body, end_stream=end))


def test_many_large_bodies_arrive_whole_and_few_streams_wait_in_aioquic(
    files: tuple[Path, Path, Path],
) -> None:
    pair = Pair(files)
    sids = [pair.request(f"/{n}") for n in range(12)]
    sent = {sid: body_of(sid, 150 * KiB + 1000 * n) for n, sid in enumerate(sids)}
    counted = Counted(pair)
    for sid in sids:
        respond(pair, sid, sent[sid], end=False)
    assert pair.core._quic.held.held(sids[0]) > len(sent[sids[0]])  # the DATA frame, held
    assert pair.core.unsent(sids[0]) > len(sent[sids[0]])  # counted as unsent: the app waits
    for sid in sids:
        pair.core.send(SendData(stream_id=sid, data=b"", end_stream=True))
    pump(pair)
    assert bodies(pair) == sent
    assert all(pair.core.unsent(sid) == 0 for sid in sids)
    assert pair.core.responses_delivered()
    # Handed whole, all twelve bodies would be tried in every packet; in turns, about two.
    assert counted.packets > 1000
    assert counted.tries < 3 * counted.packets


def test_trailers_follow_a_held_body(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    sid = pair.request()
    body = body_of(sid, 100 * KiB)
    respond(pair, sid, body, end=False)
    pair.core.send(SendTrailers(stream_id=sid, headers=[(b"x-sum", b"42")]))
    pump(pair)
    mine = [e for e in pair.client_events if getattr(e, "stream_id", None) == sid]
    frames = [e for e in mine if isinstance(e, H3Data | HeadersReceived)]
    assert isinstance(frames[0], HeadersReceived) and isinstance(frames[-1], HeadersReceived)
    assert frames[-1].headers == [(b"x-sum", b"42")] and frames[-1].stream_ended
    assert b"".join(e.data for e in frames if isinstance(e, H3Data)) == body


def test_small_writes_go_straight_to_aioquic(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    sid = pair.request()
    respond(pair, sid, b"x" * (DIRECT - 100))
    assert not pair.core._quic.held  # a head and a small body: nothing held
    pump(pair)
    assert bodies(pair) == {sid: b"x" * (DIRECT - 100)}


def test_an_app_reset_drops_what_is_held_and_the_others_finish(
    files: tuple[Path, Path, Path],
) -> None:
    pair = Pair(files)
    first, second = pair.request("/a"), pair.request("/b")
    body = body_of(first, 400 * KiB)
    respond(pair, first, body, end=False)  # the app fails mid-body
    respond(pair, second, body)
    for _ in range(3):  # a few flights: both have bytes held still
        pair.now += 0.0005
        for data, _addr in pair.core.datagrams_to_send(pair.now):
            pair.quic.receive_datagram(data, SERVER, pair.now)
    assert pair.core._quic.held.held(first) > 0
    pair.core.send(ResetStream(stream_id=first))
    assert pair.core._quic.held.held(first) == 0 and pair.core.unsent(first) == 0
    pump(pair)
    assert [e.stream_id for e in pair.client_events if isinstance(e, StreamReset)] == [first]
    assert bodies(pair)[second] == body
    assert len(bodies(pair).get(first, b"")) < len(body)
    assert pair.core.responses_delivered()


def test_stop_sending_drops_what_is_held(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    first, second = pair.request("/a"), pair.request("/b")
    body = body_of(second, 300 * KiB)
    respond(pair, first, body, end=False)  # the app is mid-body
    respond(pair, second, body)
    pair.quic.stop_stream(first, 0x10C)  # H3_REQUEST_CANCELLED: the client lost interest
    pump(pair)
    assert PounceReset(stream_id=first, error_code=0x10C) in pair.take()  # the app hears it
    assert pair.core._quic.held.held(first) == 0 and pair.core.unsent(first) == 0
    assert bodies(pair)[second] == body
    assert len(bodies(pair).get(first, b"")) < len(body)


def test_goaway_waits_for_held_bytes_to_be_delivered(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    sid = pair.request()
    body = body_of(sid, 5 * QUANTUM)
    respond(pair, sid, body)
    pair.core.send(CloseConnection())
    assert not pair.core.responses_delivered()
    pair.now += 0.0005
    for data, _addr in pair.core.datagrams_to_send(pair.now):
        pair.quic.receive_datagram(data, SERVER, pair.now)
    assert pair.core._quic.held and not pair.core.responses_delivered()
    pump(pair)
    assert bodies(pair) == {sid: body}
    assert pair.core.responses_delivered()


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    plan=st.lists(
        st.tuples(
            st.integers(0, 200 * KiB),  # first write
            st.integers(0, 3),  # how many more writes of that size
            st.booleans(),  # reset by the app after the first flight
        ),
        min_size=1,
        max_size=8,
    )
)
def test_any_mix_of_sizes_streams_and_resets_delivers_what_it_should(
    files: tuple[Path, Path, Path], plan: list[tuple[int, int, bool]]
) -> None:
    pair = Pair(files)
    sids = [pair.request(f"/{n}") for n in range(len(plan))]
    expected: dict[int, bytes] = {}
    for sid, (size, more, reset) in zip(sids, plan, strict=True):
        pair.core.send(SendResponse(stream_id=sid, status=200, headers=[]))
        chunks = [body_of(sid + k, size) for k in range(more + 1)]
        for k, chunk in enumerate(chunks):  # a stream to be reset is not ended first
            pair.core.send(SendData(stream_id=sid, data=chunk, end_stream=k == more and not reset))
        expected[sid] = b"".join(chunks)
    pair.now += 0.0005
    for data, _addr in pair.core.datagrams_to_send(pair.now):
        pair.quic.receive_datagram(data, SERVER, pair.now)
    reset = {sid for sid, (_s, _m, r) in zip(sids, plan, strict=True) if r}
    for sid in reset:
        pair.core.send(ResetStream(stream_id=sid))
        assert pair.core.unsent(sid) == 0
    pump(pair)
    got = bodies(pair)
    for sid in sids:
        if sid in reset:
            assert expected[sid].startswith(got.get(sid, b""))
        else:
            assert got.get(sid, b"") == expected[sid]
    assert not pair.core._quic.held and pair.core.responses_delivered()
