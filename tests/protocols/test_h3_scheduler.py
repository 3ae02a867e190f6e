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
from aioquic.quic.events import StopSendingReceived, StreamReset
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
from tests.protocols.test_h3 import SERVER, Pair, files

__all__ = ["files"]  # the fixture, shared with test_h3

KiB = 1024


class Counted:
    """Counts how many streams aioquic tries for the packets the core sends."""

    def __init__(self, pair: Pair) -> None:
        quic = pair.core._quic
        self.tries = self.packets = self.most_parked = 0
        write_frame = quic._write_stream_frame
        to_send = quic.datagrams_to_send

        def counted_frame(*args: Any, **kwargs: Any) -> int:
            self.tries += 1
            result: int = write_frame(*args, **kwargs)
            return result

        def counted_send(now: float) -> list[tuple[bytes, Any]]:
            datagrams = to_send(now)
            self.packets += len(datagrams)  # one packet each, once the handshake is done
            self.most_parked = max(self.most_parked, len(quic._parked))
            return datagrams

        quic._write_stream_frame = counted_frame  # type: ignore[method-assign]
        quic.datagrams_to_send = counted_send  # type: ignore[method-assign]


def watch(pair: Pair) -> Pair:
    """Check, after every `datagrams_to_send`, what taking streams out of aioquic's send
    queue must keep: every stream is in the queue or parked, and a parked one is held,
    has every byte aioquic had acknowledged, and nothing else to send."""
    quic = pair.core._quic
    to_send = quic.datagrams_to_send

    def checked(now: float) -> list[tuple[bytes, Any]]:
        datagrams = to_send(now)
        queued = {stream.stream_id for stream in quic._streams_queue}
        assert queued.isdisjoint(quic._parked)
        assert set(quic._streams) <= queued | set(quic._parked)
        for sid, stream in quic._parked.items():
            sender = stream.sender
            assert sid in quic.held and sender._buffer_start == sender._buffer_stop
            assert not sender.reset_pending and not stream.receiver.stop_pending
        return datagrams

    quic.datagrams_to_send = checked  # type: ignore[method-assign]
    return pair


def pump(pair: Pair, rounds: int = 20_000) -> None:
    """Move datagrams both ways, timers included, until neither side has more to say."""
    quiet = 0
    for _ in range(rounds):
        moved = pair.flight(0.0005)
        due = pair.core.timer()
        if due is not None and due <= pair.now:
            pair.events += pair.core.handle_timer(pair.now)
            moved = True
        due = pair.quic.get_timer()
        if due is not None and due <= pair.now:
            pair.quic.handle_timer(pair.now)
            moved = True
        quiet = 0 if moved else quiet + 1
        if quiet > 3:
            return
    raise AssertionError("the connection never went quiet")


def flights(pair: Pair, count: int) -> None:
    """`count` rounds of datagrams both ways, no more."""
    for _ in range(count):
        pair.flight(0.0005)


def parked_stream(pair: Pair, sids: list[int]) -> int:
    """Run flights until one of `sids` waits its turn out of aioquic's send queue; the
    one whose turn is furthest."""
    for _ in range(200):
        flights(pair, 1)
        quic = pair.core._quic
        parked = [sid for sid in quic.held.turns() if sid in sids and sid in quic._parked]
        if parked:
            return parked[-1]  # the one whose turn is furthest
    raise AssertionError("no stream was ever taken out of aioquic's queue")


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
    pair = watch(Pair(files))
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
    assert counted.most_parked >= 6  # those waiting their turn were out of aioquic's queue
    assert not pair.core._quic._parked


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


@pytest.mark.parametrize("who", ["app", "client"])
def test_a_reset_reaches_the_client_while_the_stream_waits_its_turn(
    files: tuple[Path, Path, Path], who: str
) -> None:
    """A stream waiting its turn is out of aioquic's send queue, where aioquic finds a
    RESET_STREAM to send: it is put back before the next packet is built."""
    pair = watch(Pair(files))
    sids = [pair.request(f"/{n}") for n in range(8)]
    sent = {sid: body_of(sid, 200 * KiB) for sid in sids}
    for sid in sids:
        respond(pair, sid, sent[sid], end=False)
    target = parked_stream(pair, sids)
    if who == "app":
        pair.core.send(ResetStream(stream_id=target))
    else:
        pair.quic.stop_stream(target, 0x10C)
    flights(pair, 6)  # its turn is a round of 8 x 16 KiB away: some 80 packets
    assert [e.stream_id for e in pair.client_events if isinstance(e, StreamReset)] == [target]
    for sid in sids:
        pair.core.send(SendData(stream_id=sid, data=b"", end_stream=True))
    pump(pair)
    assert [e.stream_id for e in pair.client_events if isinstance(e, StreamReset)] == [target]
    got = bodies(pair)
    assert all(got[sid] == sent[sid] for sid in sids if sid != target)
    assert len(got.get(target, b"")) < len(sent[target])
    assert not pair.core._quic._parked and pair.core.responses_delivered()


def test_stop_sending_for_an_unwanted_request_body_leaves_while_the_response_waits(
    files: tuple[Path, Path, Path],
) -> None:
    """The response ends before the request body did: STOP_SENDING (RFC 9114 §4.1) goes
    out though the response's bytes still wait their turn."""
    pair = watch(Pair(files))
    uploads = [pair.request(f"/{n}", end=False) for n in range(12)]
    sent = {sid: body_of(sid, 200 * KiB) for sid in uploads}
    for sid in uploads:
        pair.client.send_data(sid, b"u" * 1000, end_stream=False)
        respond(pair, sid, sent[sid], end=False)
    uploading = parked_stream(pair, uploads)
    # Its response complete while it waits its turn: the rest of its upload is not wanted.
    pair.core.send(SendData(stream_id=uploading, data=b"", end_stream=True))
    held = pair.core._quic.held.held(uploading)
    for _ in range(30):
        flights(pair, 1)
        stops = [e for e in pair.client_events if isinstance(e, StopSendingReceived)]
        if stops:
            break
    assert [e.stream_id for e in stops] == [uploading]
    assert pair.core._quic.held.held(uploading) == held  # it left before the stream's turn
    for sid in uploads:
        pair.core.send(SendData(stream_id=sid, data=b"", end_stream=True))
    pump(pair)
    stops = [e for e in pair.client_events if isinstance(e, StopSendingReceived)]
    assert bodies(pair) == sent


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
    ),
    before_resets=st.integers(0, 12),  # flights before the resets
)
def test_any_mix_of_sizes_streams_and_resets_delivers_what_it_should(
    files: tuple[Path, Path, Path], plan: list[tuple[int, int, bool]], before_resets: int
) -> None:
    pair = watch(Pair(files))
    sids = [pair.request(f"/{n}") for n in range(len(plan))]
    expected: dict[int, bytes] = {}
    for sid, (size, more, reset) in zip(sids, plan, strict=True):
        pair.core.send(SendResponse(stream_id=sid, status=200, headers=[]))
        chunks = [body_of(sid + k, size) for k in range(more + 1)]
        for k, chunk in enumerate(chunks):  # a stream to be reset is not ended first
            pair.core.send(SendData(stream_id=sid, data=chunk, end_stream=k == more and not reset))
        expected[sid] = b"".join(chunks)
    flights(pair, before_resets)
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
