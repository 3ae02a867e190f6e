"""`SendQueue`: response bytes the HTTP/3 core holds back from aioquic, handed over in turns.

Why: aioquic looks at every stream with bytes queued for every packet it
builds (and finds, for all but one, that the packet is full): with sixteen
1 MiB bodies handed over whole, that walk cost more than the packets' own
building (callgrind: ~120 M instructions per MiB of 325, docs/performance.md).
So the core hands aioquic only what the next flight can carry — the
congestion window, the pacer and the peer's flow control decide how much
(`pounce.protocols.h3` computes that budget) — and keeps the rest here;
while a stream waits its turn the core also takes it out of aioquic's send
queue, which aioquic walks per packet too (`_CreditedQuic._park`).

Invariants, each tested (tests/protocols/test_h3_send.py):

* a stream's bytes leave in the order they were held, each once, and its
  FIN with the last of them (or alone, after them);
* turns go round: a stream that was given bytes goes to the back, so every
  stream with room in its flow-control window is served within one round;
* one turn is at most `quantum` bytes, and a `take` gives no more than its
  budget (the FIN alone costs nothing);
* `held` counts what waits here, so the driver's backpressure (``unsent``)
  sees it as it saw aioquic's queue before.

Pure: no aioquic, no clock. Held bytes are kept as the caller's objects
(memoryview slices), not copied, until aioquic copies them into its own
stream buffer.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

KiB = 1024
QUANTUM = 16 * KiB  # bytes a stream is given per turn: about 12 packets of 1350 bytes
DIRECT = 4 * KiB  # a write leaving at most this much of its stream unsent is not held (heads)


class _Held:
    """One stream's held bytes: chunks in order, and whether its FIN follows them."""

    __slots__ = ("chunks", "fin", "size")

    def __init__(self) -> None:
        self.chunks: deque[memoryview] = deque()
        self.size = 0
        self.fin = False

    def pop(self, n: int) -> bytes | memoryview:
        """The first `n` bytes (n <= size): a slice when one chunk holds them."""
        self.size -= n
        first = self.chunks[0]
        if len(first) > n:
            self.chunks[0] = first[n:]
            return first[:n]
        if len(first) == n:
            return self.chunks.popleft()
        parts = bytearray()
        while n:
            chunk = self.chunks.popleft()
            if len(chunk) > n:
                self.chunks.appendleft(chunk[n:])
                chunk = chunk[:n]
            parts += chunk
            n -= len(chunk)
        return bytes(parts)


class SendQueue:
    """Held response bytes of a connection's streams, in turn order."""

    def __init__(self, quantum: int = QUANTUM) -> None:
        self.quantum = quantum
        self._streams: dict[int, _Held] = {}  # insertion order is turn order

    def __bool__(self) -> bool:
        return bool(self._streams)

    def __contains__(self, stream_id: int) -> bool:
        return stream_id in self._streams

    @property
    def total(self) -> int:
        """Bytes held, all streams."""
        return sum(held.size for held in self._streams.values())

    def turns(self) -> list[int]:
        """The streams holding bytes, next turn first."""
        return list(self._streams)

    def held(self, stream_id: int) -> int:
        held = self._streams.get(stream_id)
        return 0 if held is None else held.size

    def hold(self, stream_id: int, data: bytes | memoryview, fin: bool) -> None:
        """Queue `data` (and the FIN after it) behind what `stream_id` holds already."""
        if not data and not fin:
            return
        held = self._streams.get(stream_id)
        if held is None:
            held = self._streams[stream_id] = _Held()
        if data:
            held.chunks.append(memoryview(data))
            held.size += len(data)
        held.fin = held.fin or fin

    def drop(self, stream_id: int) -> None:
        """Forget what `stream_id` holds (its stream was reset)."""
        self._streams.pop(stream_id, None)

    def clear(self) -> None:
        self._streams.clear()

    def take(
        self, budget: int, room: Callable[[int], int | None]
    ) -> list[tuple[int, bytes | memoryview, bool]]:
        """Turns worth at most `budget` bytes: ``(stream id, bytes, fin)`` in order.

        `room(stream_id)` is how many more bytes the stream's flow control
        lets it queue (a stream with none waits its next turn), or None when
        the stream can send nothing more (reset, gone): its bytes are dropped.
        """
        out: list[tuple[int, bytes | memoryview, bool]] = []
        streams = self._streams
        progressed = True
        while budget > 0 and streams and progressed:
            progressed = False
            for stream_id in list(streams):
                if budget <= 0:
                    break
                space = room(stream_id)
                if space is None:
                    self.drop(stream_id)
                    continue
                held = streams[stream_id]
                n = min(held.size, self.quantum, budget, space)
                if n <= 0 and held.size:
                    continue  # its window is shut; the others go on
                del streams[stream_id]
                data = held.pop(n) if n > 0 else b""
                budget -= n
                fin = held.fin and not held.size
                if n > 0 or fin:
                    out.append((stream_id, data, fin))
                    progressed = True
                if held.size:
                    streams[stream_id] = held  # to the back of the round
        return out
