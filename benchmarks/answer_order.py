"""In what order a loaded server answers its connections: where a keep-alive p99 comes from.

    python answer_order.py --servers pounce-fast-uvloop,uvicorn-httptools-uvloop

Each server runs under a recorder (this file again, as ``answer_order.py
serve``) that notes every read (the protocol's ``data_received``) and every
answer (the transport write that ends a response) with its connection. Under
``wrk -c64`` each connection has one request in flight, so between two
answers to one connection the server answers, in steady state, each of the
63 others once: the count of answers in between is a request's latency in
units of the server's work. A count well above 63 is a request that waited
more than one round — for instance because it missed a poll of the loop and
was then read after every connection that made it (docs/performance.md,
"Speed round two — 64 KiB and the hello tail"). The count depends on the
order of events, not on their speed, so a busy machine changes it far less
than it changes wrk's milliseconds, which are printed beside it.

Only servers whose protocol the recorder knows: Pounce (its transport
adapter) and Uvicorn with httptools (its protocol class); the server's
command line is the harness's (``pounce.bench.servers``), pinned as the
harness pins it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

RECORDED = ("pounce-fast-uvloop", "pounce-fast-asyncio", "uvicorn-httptools-uvloop")


# -- the recorder, inside the server process -------------------------------------------


def serve(family: str, argv: list[str], out: str) -> None:
    """Run the server's own CLI with its protocol's reads and answers recorded; SIGUSR1
    starts recording, SIGUSR2 writes what was recorded to `out` as JSON."""
    from time import perf_counter_ns as now

    events: list[tuple[int, int, int]] = []  # (time, 0 read | 1 write, connection)
    on = [False]

    def start(*_: object) -> None:
        on[0] = True

    def dump(*_: object) -> None:
        on[0] = False
        Path(out).write_text(json.dumps(events))

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, dump)
    if family == "pounce":
        from pounce.net.transport import TransportAdapter as Recorded

        record_writes = ("write", "writelines")
    else:
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as Recorded

        record_writes = ()
    read = Recorded.data_received

    def data_received(self: Any, data: bytes) -> None:
        if on[0]:
            events.append((now(), 0, id(self)))
        read(self, data)

    Recorded.data_received = data_received  # type: ignore[method-assign]
    for name in record_writes:
        _record_write(Recorded, name, events, on, now)
    if family == "uvicorn":
        made = Recorded.connection_made

        def connection_made(self: Any, transport: Any) -> None:
            made(self, _WriteRecorder(transport, id(self), events, on, now))

        Recorded.connection_made = connection_made  # type: ignore[method-assign]
        from uvicorn.main import main as uvicorn_main

        sys.argv = ["uvicorn", *argv]
        uvicorn_main()
    else:
        from pounce.cli import main as pounce_main

        sys.exit(pounce_main(argv))


def _record_write(cls: Any, name: str, events: list[Any], on: list[bool], now: Any) -> None:
    inner = getattr(cls, name)

    def write(self: Any, data: Any) -> None:
        if on[0]:
            events.append((now(), 1, id(self)))
        inner(self, data)

    setattr(cls, name, write)


class _WriteRecorder:
    """Uvicorn's transport, its writes recorded (uvloop's transport cannot be patched)."""

    def __init__(self, transport: Any, key: int, events: list[Any], on: list[bool], now: Any):
        self._transport, self._key, self._events, self._on, self._now = (
            transport,
            key,
            events,
            on,
            now,
        )

    def write(self, data: Any) -> None:
        if self._on[0]:
            self._events.append((self._now(), 1, self._key))
        self._transport.write(data)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


# -- the analysis ----------------------------------------------------------------------


def answers_between(events: list[tuple[int, int, int]]) -> list[int]:
    """For each answer after a connection's first, how many answers to others came since
    its previous one. Consecutive writes of one connection with no read between (Uvicorn
    writes head and body apart) count as one answer, the last."""
    events = sorted(events)
    last_kind: dict[int, int] = {}
    answers: list[int] = []  # connection of each answer, in order
    for _, kind, conn in events:
        if kind == 1:
            if last_kind.get(conn) == 1:
                answers.pop(len(answers) - 1 - answers[::-1].index(conn))
            answers.append(conn)
        last_kind[conn] = kind
    seen: dict[int, int] = {}
    between = []
    for index, conn in enumerate(answers):
        if conn in seen:
            between.append(index - seen[conn] - 1)
        seen[conn] = index
    return between


def percentile(values: list[int], p: float) -> int:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))] if ordered else 0


# -- the driver ------------------------------------------------------------------------


def _wrk(port: int, seconds: int, connections: int, cpu: str) -> str:
    from pounce.bench.procs import pinned

    argv = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--latency"]
    argv.append(f"http://127.0.0.1:{port}/hello")
    return subprocess.run(
        pinned(cpu, argv), capture_output=True, text=True, check=True, timeout=seconds + 60
    ).stdout


def _wrk_figures(text: str) -> str:
    def ms(label: str) -> str:
        match = re.search(rf"^\s+{label}%\s+([0-9.]+)(us|ms|s)\s*$", text, re.MULTILINE)
        if match is None:
            return "?"
        scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[match[2]]
        return f"{float(match[1]) * scale:.2f}"

    rps = re.search(r"^Requests/sec:\s+([0-9.]+)", text, re.MULTILINE)
    rate = float(rps[1]) if rps else 0.0
    return f"{rate:,.0f} req/s, p50 {ms('50')} p90 {ms('90')} p99 {ms('99')} ms"


def run_one(key: str, args: argparse.Namespace) -> str:
    from pounce.bench.procs import free_port, pinned, wait_until
    from pounce.bench.servers import PEERS, _answers, pounce_help, pounce_variants

    python = Path(args.python)
    specs = {s.key: s for s in (*PEERS, *pounce_variants(pounce_help(python)))}
    spec = specs[key]
    port = free_port()
    argv = [a.replace("{port}", str(port)).replace("{app}", "apps:app") for a in spec.args]
    with tempfile.TemporaryDirectory() as tmp:
        out = os.path.join(tmp, "events.json")
        command = [str(python), __file__, "serve", spec.family, out, "--", *argv[1:]]
        env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(HERE.parent), str(HERE)]))
        process = subprocess.Popen(
            pinned(args.server_cpu, command),
            cwd=HERE,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            if not wait_until(lambda: _answers(port, "/hello"), 60, 0.1):
                raise SystemExit(f"{key} did not start")
            _wrk(port, 1, args.connections, args.client_cpu)  # warm-up
            process.send_signal(signal.SIGUSR1)
            text = _wrk(port, args.duration, args.connections, args.client_cpu)
            process.send_signal(signal.SIGUSR2)
            wait_until(lambda: os.path.exists(out) and os.path.getsize(out) > 0, 30, 0.1)
            time.sleep(0.5)  # the whole file
            events = json.loads(Path(out).read_text())
        finally:
            process.terminate()
            process.wait(timeout=30)
    between = answers_between([tuple(e) for e in events])  # type: ignore[misc]
    rounds = "  ".join(f"p{p:g} {percentile(between, p)}" for p in (50, 90, 99, 99.9))
    return f"{key:28} wrk: {_wrk_figures(text)}; answers to others in between: {rounds}"


def main() -> None:
    if sys.argv[1:2] == ["serve"]:
        family, out = sys.argv[2], sys.argv[3]
        serve(family, sys.argv[5:], out)
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=",".join(RECORDED[::2]), help="comma-separated")
    parser.add_argument("--duration", type=int, default=3, help="seconds of wrk")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1, help="interleaved rounds")
    parser.add_argument("--server-cpu", default="0")
    parser.add_argument("--client-cpu", default="1")
    parser.add_argument("--python", default=sys.executable, help="the servers' Python")
    args = parser.parse_args()
    keys = args.servers.split(",")
    for key in keys:
        if key not in RECORDED:
            parser.error(f"{key}: the recorder knows {', '.join(RECORDED)}")
    for _ in range(args.rounds):
        for key in keys:
            print(run_one(key, args), flush=True)


if __name__ == "__main__":
    main()
