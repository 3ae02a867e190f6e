"""What aioquic does in a server process, counted: datagrams in and out, transmits, ACKs.

Imported at start-up by a ``sitecustomize.py`` that ``h3_bench.py --counts``
and ``h3_callgrind.py --counts`` put on the server's ``PYTHONPATH`` (so that
Hypercorn's spawned worker counts too), it wraps a few methods of aioquic's
``QuicConnection`` — the library both servers drive — and writes the totals
of this process to ``$QUIC_COUNTS_DIR/<pid>.json`` every half second and at
exit. Why: the instructions a server executes per MiB depend on the timing
(how often the client acknowledges, how many datagrams one read finds), so
a count taken under callgrind, where the server runs 50x slower, need not
be the count under a wall-clock load; these counts are cheap enough (a
Python call per event) to take under both and compare.

With ``QUIC_COUNTS_TIME=1`` it also sums the thread CPU time spent inside
``receive_datagram``, ``datagrams_to_send`` and ``handle_timer`` (two
``clock_gettime`` calls each, a microsecond or two more per event).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from collections.abc import Callable
from typing import Any

COUNTS: dict[str, float] = dict.fromkeys(
    (
        "datagrams_in",  # receive_datagram calls
        "bytes_in",
        "packets_in",  # QUIC packets received (several may share a datagram)
        "ack_frames_in",
        "transmits",  # datagrams_to_send calls
        "empty_transmits",  # ... that returned nothing
        "datagrams_out",
        "bytes_out",
        "timers",  # handle_timer calls
        "stream_bytes",  # send_stream_data: the body bytes the server queued
        "connections",
        "cpu_receive",  # seconds, with QUIC_COUNTS_TIME=1
        "cpu_transmit",
        "cpu_timer",
        "cpu_empty_transmit",  # of cpu_transmit, in the calls that returned nothing
    ),
    0,
)
TIMED = os.environ.get("QUIC_COUNTS_TIME") == "1"
_clock = time.thread_time


def _wrap(cls: Any, name: str, count: Callable[..., None], cpu: str | None = None) -> None:
    original = getattr(cls, name)

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if TIMED and cpu is not None:
            started = _clock()
            result = original(*args, **kwargs)
            spent = _clock() - started
            COUNTS[cpu] += spent
            if cpu == "cpu_transmit" and not result:
                COUNTS["cpu_empty_transmit"] += spent
        else:
            result = original(*args, **kwargs)
        count(args, result)
        return result

    setattr(cls, name, wrapper)


def _received(args: Any, result: Any) -> None:
    COUNTS["datagrams_in"] += 1
    COUNTS["bytes_in"] += len(args[1])


def _sent(args: Any, result: Any) -> None:
    COUNTS["transmits"] += 1
    if not result:
        COUNTS["empty_transmits"] += 1
    COUNTS["datagrams_out"] += len(result)
    COUNTS["bytes_out"] += sum(len(data) for data, _ in result)


def _stream(args: Any, result: Any) -> None:
    COUNTS["stream_bytes"] += len(args[2])


def _one(key: str) -> Callable[[Any, Any], None]:
    def count(args: Any, result: Any) -> None:
        COUNTS[key] += 1

    return count


def install() -> None:
    from aioquic.quic.connection import QuicConnection

    _wrap(QuicConnection, "__init__", _one("connections"))
    _wrap(QuicConnection, "receive_datagram", _received, "cpu_receive")
    _wrap(QuicConnection, "datagrams_to_send", _sent, "cpu_transmit")
    _wrap(QuicConnection, "handle_timer", _one("timers"), "cpu_timer")
    _wrap(QuicConnection, "send_stream_data", _stream)
    _wrap(QuicConnection, "_handle_ack_frame", _one("ack_frames_in"))
    _wrap(QuicConnection, "_payload_received", _one("packets_in"))
    directory = os.environ["QUIC_COUNTS_DIR"]
    path = os.path.join(directory, f"{os.getpid()}.json")

    lock = threading.Lock()  # the writer thread, freeze() and atexit: one at a time

    def dump() -> None:
        with lock:
            if _frozen:
                return
            temporary = f"{path}.tmp"
            with open(temporary, "w") as out:
                json.dump(COUNTS, out)
            os.replace(temporary, path)

    def every_half_second() -> None:
        while True:
            time.sleep(0.5)
            dump()

    threading.Thread(target=every_half_second, daemon=True).start()
    atexit.register(dump)
    _dumps.append(dump)


_frozen = False
_dumps: list[Callable[[], None]] = []


def zero() -> None:
    """Start counting again (h3_callgrind.py: the measured connection begins)."""
    for key in COUNTS:
        COUNTS[key] = 0


def freeze() -> None:
    """Write the counts now and no more (h3_callgrind.py: the measured connection ended)."""
    global _frozen
    for dump in _dumps:
        dump()
    _frozen = True


def total(directory: str) -> dict[str, float]:
    """The counts of every process that wrote into `directory`, added up."""
    summed: dict[str, float] = dict.fromkeys(COUNTS, 0)
    for name in os.listdir(directory):
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as file:
                for key, value in json.load(file).items():
                    summed[key] = summed.get(key, 0) + value
    return summed


def per_mib(counts: dict[str, float]) -> str:
    """One line: the counts per MiB of body queued (``stream_bytes``)."""
    mib = counts["stream_bytes"] / 2**20
    if not mib:
        return "no body bytes sent"
    c = counts
    text = (
        f"per MiB: {c['datagrams_in'] / mib:.0f} datagrams in"
        f" ({c['packets_in'] / max(c['datagrams_in'], 1):.2f} packets each),"
        f" {c['ack_frames_in'] / mib:.0f} ACK frames in,"
        f" {c['transmits'] / mib:.0f} transmits ({c['empty_transmits'] / mib:.0f} empty),"
        f" {c['datagrams_out'] / mib:.0f} datagrams out"
        f" ({c['bytes_out'] / max(c['datagrams_out'], 1):.0f} B each,"
        f" {c['datagrams_out'] / max(c['transmits'] - c['empty_transmits'], 1):.1f} per"
        f" non-empty transmit), {c['timers'] / mib:.0f} timers;"
        f" {mib:.0f} MiB, {c['connections']:.0f} connections"
    )
    if c["cpu_receive"] or c["cpu_transmit"]:
        text += (
            f"; CPU ms per MiB: receive {c['cpu_receive'] / mib * 1e3:.1f},"
            f" transmit {c['cpu_transmit'] / mib * 1e3:.1f}"
            f" (empty ones {c['cpu_empty_transmit'] / mib * 1e3:.1f}),"
            f" timer {c['cpu_timer'] / mib * 1e3:.1f}"
        )
    return text


SITECUSTOMIZE = "import quic_counts\nquic_counts.install()\n"
