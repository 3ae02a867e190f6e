"""HTTP/2 requests in one process, for instruction counts: no socket, no epoll, no client.

    python benchmarks/h2_inproc.py path 2000     # the whole server path
    python benchmarks/h2_inproc.py core 2000     # the H2 core alone (h2, hpack, our mapping)
    python benchmarks/h2_inproc.py encode 2000   # only building the requests: the baseline
    python benchmarks/h2_inproc.py path --callgrind              # instructions per request
    python benchmarks/h2_inproc.py path --callgrind --body 1mib  # ... per 1 MiB download

Feeds batches of ten ``GET /hello`` HEADERS frames (h2load's request shape,
HPACK-encoded once, ahead of the timed part) into either the handler factory
of a real ``Server.builder().h1().h2()`` stack over a fake `Conn` (``path``:
bridge, HTTP/2 driver, core, `Exchange`, the benchmark app, asyncio), or an
`H2Core` answering each request itself (``core``). Instructions per request
come from callgrind, which a noisy machine does not disturb: a run minus the
``encode`` run of the same size, divided by the number of requests::

    for part in path encode; do
      valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.$part \\
        python benchmarks/h2_inproc.py $part 2000 2>&1 | grep Collected
    done   # (path - encode) / 2000 = instructions per request

``--callgrind`` does that itself, as the difference between two request
counts (``--counts``; start-up cancels out) less the same difference of
``encode`` runs, as
``benchmarks/inproc.py --callgrind`` does. ``--body 1mib`` serves a 1 MiB
body instead, one request at a time, each preceded by the WINDOW_UPDATE a
client would send for it (the stream window is opened in the client's
SETTINGS): the cost of a download, frame by frame.

docs/performance.md has the numbers and what they mean.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import hpack
from hyperframe.frame import HeadersFrame, SettingsFrame, WindowUpdateFrame

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.apps import app
from pounce import Server
from pounce.conn import ConnectionInfo
from pounce.drivers.service import ServiceContext
from pounce.layer import Serving
from pounce.protocols.events import RequestReceived, SendData, SendResponse
from pounce.protocols.h2 import PREFACE, H2Core

REQUEST = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"127.0.0.1:8000"),
    (b":path", b"/hello"),
    (b"user-agent", b"h2load nghttp2/1.64.0"),
]
HELLO = b"Hello, world!"
MIB = bytes(range(256)) * 4096  # 1 MiB, h3_bench's download
BODIES = {"hello": HELLO, "1mib": MIB}
COUNTS = {"hello": (1000, 3000), "1mib": (20, 60)}  # --callgrind's default request counts
# A downloading client opens its stream windows wide (h2load: 2^30 - 1).
CLIENT_SETTINGS = SettingsFrame(0, settings={SettingsFrame.INITIAL_WINDOW_SIZE: 2**30 - 1})


def batches(requests: int, body: bytes = HELLO) -> list[bytes]:
    """Ten requests a batch for hello; one for a large body, after the connection
    window its response will use (a client's WINDOW_UPDATE)."""
    per_batch = 10 if len(body) < 1024 else 1
    encoder = hpack.Encoder()
    out, sid = [], 1
    for _ in range(requests // per_batch):
        chunk = b""
        if per_batch == 1:
            chunk += WindowUpdateFrame(0, window_increment=len(body)).serialize()
        for _ in range(per_batch):
            block = encoder.encode(REQUEST)
            chunk += HeadersFrame(sid, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
            sid += 2
        if per_batch > 1:  # the connection window its responses used
            chunk += WindowUpdateFrame(0, window_increment=per_batch * len(body)).serialize()
        out.append(chunk)
    return out


def response_headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"text/plain"), (b"content-length", b"%d" % len(body))]


def run_core(data: list[bytes], body: bytes = HELLO) -> int:
    core = H2Core()
    core.receive_data(PREFACE + CLIENT_SETTINGS.serialize())
    headers = response_headers(body)
    answered = 0
    for chunk in data:
        for event in core.receive_data(chunk):
            if type(event) is RequestReceived:
                core.send(SendResponse(stream_id=event.stream_id, status=200, headers=headers))
                core.send(SendData(stream_id=event.stream_id, data=body, end_stream=True))
                answered += 1
        core.data_to_send()
    return answered


def body_app(body: bytes) -> Any:
    """The benchmark app for hello; a one-message app for a large body."""
    if body is HELLO:
        return app
    start = {"type": "http.response.start", "status": 200, "headers": response_headers(body)}

    async def download(scope: Any, receive: Any, send: Any) -> None:
        await send(start)
        await send({"type": "http.response.body", "body": body})

    return download


class FakeConn:
    info = ConnectionInfo(client=("127.0.0.1", 50000), server=("127.0.0.1", 8000))

    def __init__(self) -> None:
        self.written = 0

    def write(self, data: bytes) -> None:
        self.written += len(data)

    def close(self) -> None:
        pass

    def abort(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    async def drain(self) -> None:
        pass


async def run_path(data: list[bytes], body: bytes = HELLO) -> int:
    server = Server.builder().bind("127.0.0.1", 0).h1().h2().asgi(body_app(body), name="bench")
    service = ServiceContext(server._wrap_app(Serving()), server.spec.http)
    handler = server._handler_factory(service, [])()
    conn = FakeConn()
    handler.connection_made(conn)
    handler.data_received(PREFACE + CLIENT_SETTINGS.serialize())
    for chunk in data:
        handler.data_received(chunk)
        for _ in range(4):  # the apps run, answer, and the frames are written
            await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return conn.written


def callgrind(args: argparse.Namespace) -> None:
    """Instructions per request: the difference between two runs under callgrind."""
    low, high = args.counts or COUNTS[args.body]
    totals = []
    for part in (args.part, "encode"):  # encoding the requests scales with n too
        for n in (low, high):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "callgrind.out")
                cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                cmd += [sys.executable, __file__, part, str(n), "--body", args.body]
                subprocess.run(cmd, check=True, capture_output=True)
                text = Path(out).read_text(errors="replace")
                match = re.search(r"^(?:summary|totals): (\d+)", text, re.MULTILINE)
                assert match is not None, "no total in the callgrind output"
                totals.append(int(match[1]))
    per_request = (totals[1] - totals[0] - (totals[3] - totals[2])) / (high - low)
    print(f"{args.part} {args.body}: {per_request:,.0f} instructions per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("part", choices=("core", "path", "encode"))
    parser.add_argument("requests", type=int, nargs="?", default=2000)
    parser.add_argument("--body", choices=sorted(BODIES), default="hello")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--counts", type=int, nargs=2, metavar="N", help="--callgrind's runs")
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args)
        return
    body = BODIES[args.body]
    data = batches(args.requests, body)  # counted by callgrind too: the difference cancels it
    if args.part == "encode":
        print(len(data), "batches")
    elif args.part == "core":
        print(run_core(data, body), "requests answered")
    else:
        print(asyncio.run(run_path(data, body)), "bytes written")


if __name__ == "__main__":
    main()
