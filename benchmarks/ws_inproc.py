"""WebSocket echo in one process: the per-message cost of Pounce's own code and wsproto.

The real `WebSocketHandler` (driver), `WebSocketCore` (wsproto) and
`WebSocketSession` (ASGI) serve `benchmarks/apps.py`'s ``ws_echo`` app over a
fake `Conn`, on an asyncio loop, with no socket and no kernel: each echo that
the app writes schedules the next masked client frame, as a socket read would
(ping-pong, as `ws-echo` in `benchmarks/harness/wsclient.py` does). A frame
larger than ``--chunk`` bytes arrives in reads of that size (asyncio reads at
most 256 KiB at a time).

Count instructions per message with callgrind, as the difference of two runs
so that start-up cancels out::

    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/ws_inproc.py --size 32 --messages 2000
    valgrind --tool=callgrind --callgrind-out-file=/dev/null \\
        python benchmarks/ws_inproc.py --size 32 --messages 12000
    # (I₂ - I₁) / 10000 = instructions per message ("Collected" in the summary)

or let the script do it (it runs itself under valgrind twice)::

    python benchmarks/ws_inproc.py --callgrind --size 32 --messages 2000,12000
    python benchmarks/ws_inproc.py --callgrind --size 1048576 --messages 5,25

``--deflate`` negotiates permessage-deflate: the client's frame is
compressed, and so is every echo. ``--profile`` prints a cProfile of one run
(call counts per message); without either option the script prints
wall-clock messages per second.
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import os
import pstats
import re
import subprocess
import sys
import time
import zlib
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from benchmarks.apps import ws_echo
from pounce.conn import ConnectionInfo
from pounce.drivers.service import HTTPOptions, ServiceContext
from pounce.drivers.websocket import WebSocketHandler, WebSocketOptions
from pounce.protocols.events import RequestReceived, UpgradeRequested

MASK = b"\x37\xfa\x21\x3d"


def masked_frame(payload: bytes, *, text: bool = False, rsv1: bool = False) -> bytes:
    """A client frame (FIN, masked), as a browser would send it."""
    head = bytearray([0x80 | (0x40 if rsv1 else 0) | (0x1 if text else 0x2)])
    n = len(payload)
    if n <= 125:
        head.append(0x80 | n)
    elif n <= 0xFFFF:
        head.append(0x80 | 126)
        head += n.to_bytes(2, "big")
    else:
        head.append(0x80 | 127)
        head += n.to_bytes(8, "big")
    key = MASK * (n // 4) + MASK[: n % 4]
    body = (int.from_bytes(payload, "little") ^ int.from_bytes(key, "little")).to_bytes(n, "little")
    return bytes(head) + MASK + body


def echo_length(n: int) -> int:
    """Bytes of the server's (unmasked) echo frame."""
    return 2 + n + (0 if n <= 125 else 2 if n <= 0xFFFF else 8)


class FakeConn:
    """A `Conn` that takes writes and, once an echo is complete, feeds the next frame."""

    def __init__(self, loop: asyncio.AbstractEventLoop, run: Run) -> None:
        self.info = ConnectionInfo(client=("127.0.0.1", 50000), server=("127.0.0.1", 8000))
        self._loop = loop
        self._run = run
        self.closed = False

    def write(self, data: bytes) -> None:
        self._run.written(data)

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    async def drain(self) -> None:
        return None


class Run:
    def __init__(self, size: int, messages: int, chunk: int, text: bool, deflate: bool) -> None:
        payload = (b"x" * size) if text else bytes(range(256)) * (size // 256) + b"y" * (size % 256)
        self.deflate = deflate
        self.payload = payload
        if deflate:  # RFC 7692: one compressed message, its 00 00 ff ff tail removed
            compressor = zlib.compressobj(wbits=-15)
            compressed = compressor.compress(payload) + compressor.flush(zlib.Z_SYNC_FLUSH)
            frame = masked_frame(compressed[:-4], text=text, rsv1=True)
            self.inflate = zlib.decompressobj(wbits=-15)
            self.expected: bytes | None = None
        else:
            frame = masked_frame(payload, text=text)
            head = frame[: len(frame) - size - 4]  # the server's is the same, without the mask
            self.expected = bytes([head[0], head[1] & 0x7F]) + head[2:] + payload
        self.first = bytearray()
        self.chunks = [frame[i : i + chunk] for i in range(0, len(frame), chunk)]
        self.echo = echo_length(size)
        self.messages = messages
        self.sent = 0
        self.pending = -1  # bytes of the current echo still to come; -1: the 101
        self.done: asyncio.Future[None] | None = None
        self.handler: WebSocketHandler | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    def written(self, data: bytes) -> None:
        assert self.loop is not None
        n = len(data)
        if self.pending == -1:  # the 101 went out
            self.pending = 0
            self.loop.call_soon(self.feed)
            return
        if self.deflate:  # one write per compressed echo; check the first one
            self.pending = 0
            if self.sent == 1:
                assert data[0] & 0x40, "echo not compressed"
                offset = 2 + {126: 2, 127: 8}.get(data[1], 0)
                echo = self.inflate.decompress(data[offset:] + b"\x00\x00\xff\xff")
                assert echo == self.payload, "wrong echo"
        else:
            self.pending -= n
        if self.expected is not None:  # check the first echo byte for byte
            self.first += data
            if self.pending == 0:
                assert bytes(self.first) == self.expected, "wrong echo"
                self.expected = None
        if self.pending == 0:
            if self.sent == self.messages:
                assert self.done is not None
                self.done.set_result(None)
            else:
                self.loop.call_soon(self.feed)

    def feed(self) -> None:
        assert self.handler is not None
        self.sent += 1
        self.pending = self.echo
        for chunk in self.chunks:
            self.handler.data_received(chunk)

    async def main(self) -> None:
        loop = asyncio.get_running_loop()
        self.loop = loop
        self.done = loop.create_future()
        service = ServiceContext(app, HTTPOptions())
        request = RequestReceived(
            stream_id=1,
            method=b"GET",
            target=b"/ws",
            headers=[
                (b"host", b"localhost"),
                (b"upgrade", b"websocket"),
                (b"connection", b"Upgrade"),
                (b"sec-websocket-key", b"dGhlIHNhbXBsZSBub25jZQ=="),
                (b"sec-websocket-version", b"13"),
                *([(b"sec-websocket-extensions", b"permessage-deflate")] if self.deflate else []),
            ],
            http_version="1.1",
            has_body=False,
        )
        upgrade = UpgradeRequested(stream_id=1, request=request, protocol=b"websocket")
        handler = WebSocketHandler(upgrade, WebSocketOptions(), service)
        self.handler = handler
        handler.connection_made(FakeConn(loop, self))
        await self.done
        handler.connection_lost(None)
        await asyncio.sleep(0)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    await ws_echo(receive, send)


def run_once(args: argparse.Namespace, messages: int) -> float:
    run = Run(args.size, messages, args.chunk, args.text, args.deflate)
    start = time.perf_counter()
    asyncio.run(run.main())
    return time.perf_counter() - start


def callgrind(args: argparse.Namespace, counts: list[int]) -> None:
    totals = []
    for n in counts:
        cmd = [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            os.path.abspath(__file__),
            "--size",
            str(args.size),
            "--chunk",
            str(args.chunk),
            "--messages",
            str(n),
            *(["--text"] if args.text else []),
            *(["--deflate"] if args.deflate else []),
        ]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
        match = re.search(r"Collected : (\d+)", out)
        assert match, out
        totals.append(int(match.group(1)))
        print(f"{n} messages: {totals[-1]:,} instructions", file=sys.stderr)
    per = (totals[1] - totals[0]) / (counts[1] - counts[0])
    print(f"size {args.size}: {per:,.0f} instructions per message")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=32, help="message bytes (default 32)")
    parser.add_argument("--messages", default="10000", help="N, or N1,N2 with --callgrind")
    parser.add_argument(
        "--chunk", type=int, default=256 * 1024, help="bytes per read (default 256 KiB)"
    )
    parser.add_argument("--text", action="store_true", help="text messages (default binary)")
    parser.add_argument(
        "--deflate", action="store_true", help="negotiate permessage-deflate (compressed frames)"
    )
    parser.add_argument("--callgrind", action="store_true", help="instructions per message")
    parser.add_argument("--profile", action="store_true", help="cProfile one run")
    args = parser.parse_args()
    counts = [int(n) for n in args.messages.split(",")]
    if args.callgrind:
        callgrind(args, counts)
    elif args.profile:
        profiler = cProfile.Profile()
        profiler.enable()
        run_once(args, counts[0])
        profiler.disable()
        stats = pstats.Stats(profiler)
        stats.sort_stats("tottime").print_stats(30)
    else:
        elapsed = run_once(args, counts[0])
        print(f"size {args.size}: {counts[0] / elapsed:,.0f} messages/s")


if __name__ == "__main__":
    main()
