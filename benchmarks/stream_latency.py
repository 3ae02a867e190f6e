"""The latency compression adds to each chunk of a streamed response.

One streamed response of server-sent events (``/ticks`` of static_apps.py: N events,
one every M ms, each carrying the server's ``time.monotonic()`` taken just before it is
handed to the server), read on the client over a raw HTTP/1.1 connection: the chunked
framing is undone, the bytes go through an incremental decoder (benchmarks/codings.py)
as they arrive, and each event's latency is the moment its decoded bytes are complete
minus its stamp (CLOCK_MONOTONIC is one clock for every process on the machine). A
coding that holds bytes back shows as latency. The added latency of a coding is its
latency minus identity's on the same server, at the median and at p99.

Servers: ``pounce`` (``--compression --compression-event-stream``: identity, br, zstd,
gzip, chosen by the request's ``Accept-Encoding``) and ``uvicorn-starlette``
(GZipMiddleware asked to compress event streams: identity and gzip). The server is
pinned to CPU 0 and the client to CPU 1 when there are two. Run it on a quiet machine::

    python benchmarks/stream_latency.py                     # 3 x 500 events, 10 ms apart
    python benchmarks/stream_latency.py --events 20 --rounds 1 --servers pounce  # smoke

The interpreter (``--python``, this one by default) must have Pounce, and Uvicorn and
Starlette for their row; benchmarks/.peers-venv/bin/python has all three.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

import static_apps  # noqa: E402
from codings import CODINGS, decoder  # noqa: E402

from pounce.bench.procs import Process, free_port, pinned, wait_until  # noqa: E402

READY_TIMEOUT_S = 30.0
IO_TIMEOUT_S = 10.0
SERVERS = ("pounce", "uvicorn-starlette")
OFFERED = {"pounce": ("identity", *CODINGS), "uvicorn-starlette": ("identity", "gzip")}
RESULTS = HERE / "results"


def server_argv(key: str, python: Path, port: int) -> list[str]:
    listen = ["--host", "127.0.0.1", "--port", str(port)]
    if key == "uvicorn-starlette":
        app = [str(python), "-m", "uvicorn", "static_apps:starlette_app", *listen]
        return [*app, "--no-access-log", "--log-level", "warning"]
    layers = ["--compression", "--compression-event-stream"]
    layers += ["--compression-gzip-level", str(static_apps.GZIP_LEVEL)]
    layers += ["--compression-brotli-level", str(static_apps.BROTLI_LEVEL)]
    layers += ["--compression-zstd-level", str(static_apps.ZSTD_LEVEL)]
    return [str(python), "-m", "pounce", "static_apps:app", *listen, *layers, "--no-access-log"]


class ChunkedReader:
    """Undoes HTTP/1.1 chunked framing incrementally: bytes in, chunk data out."""

    def __init__(self) -> None:
        self._buffer = b""
        self._left = 0  # bytes of the current chunk still to come
        self._crlf = False  # the CRLF after a chunk's data is still to come
        self.done = False

    def feed(self, data: bytes) -> bytes:
        self._buffer += data
        out = bytearray()
        while self._buffer and not self.done:
            if self._left:
                piece = self._buffer[: self._left]
                out += piece
                self._left -= len(piece)
                self._buffer = self._buffer[len(piece) :]
                self._crlf = self._left == 0
                continue
            if self._crlf:
                if len(self._buffer) < 2:
                    break
                self._buffer, self._crlf = self._buffer[2:], False
                continue
            line, sep, rest = self._buffer.partition(b"\r\n")
            if not sep:
                break
            self._buffer = rest
            self._left = int(line.split(b";")[0], 16)
            if self._left == 0:
                self.done = True  # trailers, if any, are left unread
        return bytes(out)


@dataclass(frozen=True)
class Stream:
    coding: str
    wire_bytes: int
    latencies_ms: list[float]


def read_stream(port: int, coding: str, events: int, interval_ms: float) -> Stream:
    """One GET /ticks asking for `coding`; each event's latency as the client sees it."""
    request = (
        f"GET /ticks?n={events}&ms={interval_ms} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        f"Accept-Encoding: {coding}\r\nConnection: close\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", port), timeout=IO_TIMEOUT_S) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.sendall(request)
        head = b""
        while b"\r\n\r\n" not in head:
            data = sock.recv(65536)
            if not data:
                raise SystemExit(f"{coding}: the connection closed before the head")
            head += data
        head, _, rest = head.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        split = (line.partition(":") for line in lines[1:])
        fields = {name.strip().lower(): value.strip() for name, _, value in split}
        status = lines[0].split(" ")[1]
        sent = fields.get("content-encoding", "identity")
        if status != "200" or sent != coding:
            raise SystemExit(f"{coding}: status {status}, content-encoding {sent}")
        if fields.get("transfer-encoding", "").lower() != "chunked":
            raise SystemExit(f"{coding}: not chunked ({fields})")
        chunks, decode = ChunkedReader(), decoder(coding)
        text, seen, wire = b"", 0, 0
        latencies: list[float] = []
        data = rest
        while True:
            now = time.monotonic()
            body = chunks.feed(data)
            wire += len(body)
            text += decode(body)
            while b"\n\n" in text:
                event, _, text = text.partition(b"\n\n")
                _, seq, stamp, _ = event.split(b" ", 3)
                if int(seq) != seen:
                    raise SystemExit(f"{coding}: event {int(seq)} where {seen} was due")
                latencies.append((now - float(stamp)) * 1000)
                seen += 1
            if chunks.done:
                break
            data = sock.recv(65536)
            if not data:
                raise SystemExit(f"{coding}: the connection closed mid-stream")
    if seen != events or text:
        raise SystemExit(f"{coding}: {seen} of {events} events, {len(text)} bytes left over")
    return Stream(coding, wire, latencies)


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def measure(key: str, python: Path, args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    cpu = 0 if args.pin else None
    with tempfile.TemporaryDirectory(prefix=f"stream-latency-{key}-") as tmp:
        path = os.environ.get("PATH", "/usr/bin:/bin")
        # This tree's Pounce and the apps; BENCH_SITE: Starlette's StaticFiles needs a directory.
        env = {"PYTHONPATH": f"{HERE}:{HERE.parent}", "BENCH_SITE": tmp, "PATH": path}
        argv = pinned(cpu, server_argv(key, python, port))
        process = Process.start(argv, cwd=HERE, env=env, log_path=Path(tmp) / "server.log")
        try:

            def answers() -> bool:
                try:
                    read_stream(port, "identity", 1, 0)
                except (OSError, SystemExit, ValueError):
                    return False
                return True

            up = wait_until(lambda: not process.alive() or answers(), READY_TIMEOUT_S)
            if not up or not process.alive():
                raise SystemExit(f"{key} did not start:\n{process.log_tail()}")
            codings = [c for c in OFFERED[key] if c in args.codings.split(",")]
            runs: dict[str, list[Stream]] = {c: [] for c in codings}
            for _ in range(args.rounds):
                for coding in codings:  # interleaved, so drift hits every coding alike
                    runs[coding].append(read_stream(port, coding, args.events, args.interval_ms))
            return summarise(key, runs)
        finally:
            process.stop()


def summarise(key: str, runs: dict[str, list[Stream]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for coding, streams in runs.items():
        latencies = [ms for s in streams for ms in s.latencies_ms[1:]]  # the first warms up
        out[coding] = {
            "events": len(latencies),
            "wire_bytes": statistics.median(s.wire_bytes for s in streams),
            "median_ms": statistics.median(latencies),
            "p99_ms": percentile(latencies, 0.99),
        }
    base = out.get("identity")
    for coding, row in out.items():
        if base is not None:
            row["added_median_ms"] = row["median_ms"] - base["median_ms"]
            row["added_p99_ms"] = row["p99_ms"] - base["p99_ms"]
        added = (
            f"added {row['added_median_ms']:+7.3f} ms median {row['added_p99_ms']:+7.3f} ms p99"
            if base is not None
            else "(no identity run to compare with)"
        )
        print(
            f"  {key:18} {coding:8} {row['wire_bytes']:8.0f} B  latency {row['median_ms']:7.3f} "
            f"ms median {row['p99_ms']:7.3f} ms p99  {added}",
            flush=True,
        )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--codings", default=",".join(("identity", *CODINGS)))
    parser.add_argument("--events", type=int, default=500, help="events per stream")
    parser.add_argument("--interval-ms", type=float, default=10.0, help="between events")
    parser.add_argument("--rounds", type=int, default=3, help="streams per coding")
    parser.add_argument("--python", type=Path, default=Path(sys.executable))
    parser.add_argument("--no-write", action="store_true", help="no JSON artifact")
    args = parser.parse_args()
    args.pin = shutil.which("taskset") is not None and (os.cpu_count() or 1) >= 2
    if args.pin:
        os.sched_setaffinity(0, {1})
    results = {key: measure(key, args.python, args) for key in args.servers.split(",")}
    if args.no_write:
        return
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"stream-latency-{stamp}.json"
    settings = {"events": args.events, "interval_ms": args.interval_ms, "rounds": args.rounds}
    out.write_text(json.dumps({**settings, "results": results}, indent=2))
    print(f"wrote {out.relative_to(HERE.parent)}")


if __name__ == "__main__":
    main()
