"""`SendQueue`, the HTTP/3 core's send scheduler: held bytes in, turns out.

Pure, like the queue: no aioquic. The core's use of it against aioquic's
client is in tests/protocols/test_h3.py.
"""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from pounce.protocols.h3_send import QUANTUM, SendQueue


def no_limit(_stream_id: int) -> int | None:
    return 1 << 30


def test_a_stream_is_given_at_most_a_quantum_a_turn_and_goes_to_the_back() -> None:
    queue = SendQueue(quantum=10)
    queue.hold(0, b"a" * 25, fin=True)
    queue.hold(4, b"b" * 5, fin=False)
    turns = queue.take(100, no_limit)
    assert [(sid, bytes(data), fin) for sid, data, fin in turns] == [
        (0, b"a" * 10, False),
        (4, b"b" * 5, False),
        (0, b"a" * 10, False),
        (0, b"a" * 5, True),
    ]
    assert not queue and queue.total == 0


def test_the_budget_bounds_a_take_and_the_next_take_goes_on_where_it_stopped() -> None:
    queue = SendQueue(quantum=8)
    for sid in (0, 4, 8):
        queue.hold(sid, bytes([sid]) * 20, fin=False)
    first = queue.take(12, no_limit)
    assert [(sid, len(data)) for sid, data, _ in first] == [(0, 8), (4, 4)]
    second = queue.take(12, no_limit)
    assert [(sid, len(data)) for sid, data, _ in second] == [(8, 8), (0, 4)]
    assert (queue.held(0), queue.held(4), queue.held(8), queue.total) == (8, 16, 12, 36)


def test_a_shut_window_waits_and_the_others_are_served() -> None:
    queue = SendQueue(quantum=8)
    queue.hold(0, b"x" * 8, fin=True)
    queue.hold(4, b"y" * 8, fin=True)
    rooms = {0: 0, 4: 100}
    turns = queue.take(100, rooms.__getitem__)
    assert [(sid, len(data), fin) for sid, data, fin in turns] == [(4, 8, True)]
    assert queue.held(0) == 8
    rooms[0] = 3  # the peer's window opened by three bytes
    assert [(sid, bytes(d), fin) for sid, d, fin in queue.take(3, rooms.__getitem__)] == [
        (0, b"xxx", False)
    ]


def test_the_fin_alone_costs_nothing_and_follows_the_last_bytes() -> None:
    queue = SendQueue(quantum=8)
    queue.hold(0, b"abc", fin=False)
    assert [(bytes(d), fin) for _, d, fin in queue.take(100, no_limit)] == [(b"abc", False)]
    assert 0 not in queue  # emptied: a later small write may go straight to aioquic
    queue.hold(0, b"", fin=True)
    assert [(bytes(d), fin) for _, d, fin in queue.take(1, lambda _: 0)] == [(b"", True)]


def test_a_stream_that_can_send_no_more_is_dropped() -> None:
    queue = SendQueue()
    queue.hold(0, b"z" * 100, fin=True)
    queue.hold(4, b"w" * 100, fin=True)
    turns = queue.take(1000, lambda sid: None if sid == 0 else 1000)
    assert [sid for sid, _, _ in turns] == [4]
    assert not queue and queue.total == 0
    queue.hold(8, b"v", fin=False)
    queue.drop(8)
    assert queue.total == 0 and 8 not in queue


def test_chunks_are_joined_across_writes_and_kept_uncopied_within_one() -> None:
    queue = SendQueue(quantum=QUANTUM)
    body = bytes(range(256)) * 200
    queue.hold(0, body[:100], fin=False)
    queue.hold(0, body[100:], fin=True)
    turns = queue.take(1 << 30, no_limit)
    assert b"".join(bytes(d) for _, d, _ in turns) == body
    assert isinstance(turns[-1][1], memoryview)  # a slice of the caller's bytes


@settings(max_examples=200, deadline=None)
@given(
    writes=st.lists(
        st.tuples(st.sampled_from([0, 4, 8, 12]), st.integers(0, 3000), st.booleans()),
        min_size=1,
        max_size=40,
    ),
    budgets=st.lists(st.integers(-5, 5000), min_size=1, max_size=20),
    quantum=st.integers(1, 2000),
    shut=st.sets(st.sampled_from([0, 4, 8, 12]), max_size=2),
)
def test_every_byte_once_in_order_fin_last_budget_kept_no_stream_starved(
    writes: list[tuple[int, int, bool]], budgets: list[int], quantum: int, shut: set[int]
) -> None:
    queue = SendQueue(quantum=quantum)
    written: dict[int, bytearray] = {}
    ended: set[int] = set()
    sent: dict[int, bytearray] = {}
    fins: set[int] = set()
    counter = 0

    def room(sid: int) -> int:
        return 0 if sid in shut else 1 << 30

    def take(budget: int) -> None:
        waiting = {sid for sid in (0, 4, 8, 12) if queue.held(sid) and sid not in shut}
        turns = queue.take(budget, room)
        assert sum(len(d) for _, d, _ in turns) <= max(budget, 0)
        for sid, data, fin in turns:
            assert sid not in fins  # nothing after a FIN
            assert len(data) <= quantum
            sent.setdefault(sid, bytearray()).extend(data)
            if fin:
                fins.add(sid)
        if budget >= quantum * len(waiting):  # a full round: every stream with room served
            assert waiting <= {sid for sid, d, _ in turns if d}

    for i, (sid, size, fin) in enumerate(writes):
        if sid in ended:
            continue
        data = bytes((counter + n) % 251 for n in range(size))
        counter += size
        queue.hold(sid, data, fin)
        written.setdefault(sid, bytearray()).extend(data)
        if fin:
            ended.add(sid)
        take(budgets[i % len(budgets)])
        for s, out in sent.items():
            assert written[s].startswith(out)  # in order, each once
        assert queue.total == sum(len(written[s]) - len(sent.get(s, b"")) for s in written)
    shut.clear()
    while queue:
        take(1 << 30)
    assert {s: bytes(d) for s, d in sent.items() if d} == {
        s: bytes(d) for s, d in written.items() if d
    }
    assert fins == ended


@settings(max_examples=50, deadline=None)
@given(streams=st.integers(2, 8), quantum=st.integers(1, 500), rounds=st.integers(1, 5))
def test_turns_go_round_across_takes(streams: int, quantum: int, rounds: int) -> None:
    """One turn per take (a budget of one quantum): each of k streams once in every k takes."""
    queue = SendQueue(quantum=quantum)
    sids = [4 * n for n in range(streams)]
    for sid in sids:
        queue.hold(sid, b"q" * (quantum * (rounds + 1)), fin=True)
    served = []
    for _ in range(streams * rounds):
        turns = queue.take(quantum, no_limit)
        assert len(turns) == 1 and len(turns[0][1]) == quantum
        served.append(turns[0][0])
    for start in range(0, len(served), streams):
        assert sorted(served[start : start + streams]) == sids
