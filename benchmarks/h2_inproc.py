"""HTTP/2 requests in one process, for instruction counts: no socket, no epoll, no client.

    python benchmarks/h2_inproc.py path 2000     # the whole server path
    python benchmarks/h2_inproc.py core 2000     # the H2 core alone (h2, hpack, our mapping)
    python benchmarks/h2_inproc.py encode 2000   # only building the requests: the baseline

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

docs/performance.md has the numbers and what they mean.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

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
RESPONSE = [(b"content-type", b"text/plain"), (b"content-length", b"13")]
# Each batch also returns the connection window its ten 13-byte responses used.
WINDOW_BACK = WindowUpdateFrame(0, window_increment=130).serialize()


def batches(requests: int) -> list[bytes]:
    encoder = hpack.Encoder()
    out, sid = [], 1
    for _ in range(requests // 10):
        chunk = b""
        for _ in range(10):
            block = encoder.encode(REQUEST)
            chunk += HeadersFrame(sid, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize()
            sid += 2
        out.append(chunk + WINDOW_BACK)
    return out


def run_core(data: list[bytes]) -> int:
    core = H2Core()
    core.receive_data(PREFACE + SettingsFrame(0).serialize())
    answered = 0
    for chunk in data:
        for event in core.receive_data(chunk):
            if type(event) is RequestReceived:
                core.send(SendResponse(stream_id=event.stream_id, status=200, headers=RESPONSE))
                body = SendData(stream_id=event.stream_id, data=b"Hello, world!", end_stream=True)
                core.send(body)
                answered += 1
        core.data_to_send()
    return answered


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


async def run_path(data: list[bytes]) -> int:
    server = Server.builder().bind("127.0.0.1", 0).h1().h2().asgi(app, name="bench")
    service = ServiceContext(server._wrap_app(Serving()), server.spec.http)
    handler = server._handler_factory(service, [])()
    conn = FakeConn()
    handler.connection_made(conn)
    handler.data_received(PREFACE + SettingsFrame(0).serialize())
    for chunk in data:
        handler.data_received(chunk)
        for _ in range(4):  # the apps run, answer, and the frames are written
            await asyncio.sleep(0)
    await asyncio.sleep(0.01)
    return conn.written


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("part", choices=("core", "path", "encode"))
    parser.add_argument("requests", type=int)
    args = parser.parse_args()
    data = batches(args.requests)  # counted by callgrind too: the ``encode`` run subtracts it
    if args.part == "encode":
        print(len(data), "batches")
    elif args.part == "core":
        print(run_core(data), "requests answered")
    else:
        print(asyncio.run(run_path(data)), "bytes written")


if __name__ == "__main__":
    main()
