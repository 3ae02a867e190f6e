"""The cyclic collector's work per 1,000 short connections: what closed connections leave it.

A connection whose objects form a reference cycle is not freed when it ends:
it waits for the collector, whose generation-0 runs then come more often
(every 700 net allocations) and whose older generations have more to walk.
This serves the standard stack in this process (a `TestServer` thread) and
drives N connections from a client in a subprocess — each one request (or
one WebSocket echo), then closed by the client — so the collector's counts
(`gc.get_stats`) are the server's alone. They depend on allocations, not on
time, so a busy machine does not change them::

    cd benchmarks
    python gc_close.py --protocol h2c -n 2000     # HTTP/2 prior knowledge
    python gc_close.py --protocol ws -n 2000      # WebSocket over HTTP/1.1
    python gc_close.py --protocol h1 -n 2000      # HTTP/1.1, Connection: close

It prints collections per generation and objects the collector freed, per
1,000 connections, and objects per connection left for it.
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer

CLIENT = r"""
import socket, sys
protocol, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if protocol == "h1":
    for _ in range(n):
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            while sock.recv(65536):
                pass
elif protocol == "h2c":
    import h2.config, h2.connection, h2.events
    for _ in range(n):
        conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        conn.initiate_connection()
        conn.send_headers(1, [(b":method", b"GET"), (b":scheme", b"http"),
                              (b":authority", b"x"), (b":path", b"/")], end_stream=True)
        with socket.create_connection(("127.0.0.1", port), timeout=5) as sock:
            sock.sendall(conn.data_to_send())
            ended = False
            while not ended:
                data = sock.recv(65536)
                assert data, "closed early"
                ended = any(isinstance(e, h2.events.StreamEnded) for e in conn.receive_data(data))
            conn.close_connection()
            sock.sendall(conn.data_to_send())
else:
    from websockets.sync.client import connect
    for _ in range(n):
        with connect(f"ws://127.0.0.1:{port}/", open_timeout=5) as ws:
            ws.send("hi")
            assert ws.recv(timeout=5) == "hi"
"""


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"hello"})
    elif scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while (message := await receive())["type"] == "websocket.receive":
            await send({"type": "websocket.send", "text": message.get("text") or ""})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--protocol", choices=("h1", "h2c", "ws"), default="h2c")
    parser.add_argument("-n", type=int, default=1000, help="connections")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="uvloop")
    args = parser.parse_args()
    with TestServer(app, loop=args.loop, http2=True) as ts:  # type: ignore[arg-type]
        client = [sys.executable, "-c", CLIENT, args.protocol, str(ts.port)]
        subprocess.run([*client, "20"], check=True, timeout=60)  # warm up
        time.sleep(0.2)
        gc.collect()
        before = [dict(s) for s in gc.get_stats()]
        tracked = len(gc.get_objects())
        subprocess.run([*client, str(args.n)], check=True, timeout=600)
        time.sleep(0.5)  # the last connections' ends
        after = gc.get_stats()
        grew = len(gc.get_objects()) - tracked
        gc.disable()
        gc.set_debug(gc.DEBUG_SAVEALL)
        left = gc.collect()
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    per = 1000 / args.n
    runs = [(a["collections"] - b["collections"]) * per for a, b in zip(after, before, strict=True)]
    freed = sum(a["collected"] - b["collected"] for a, b in zip(after, before, strict=True))
    print(
        f"{args.protocol} loop={args.loop}: per 1,000 connections "
        f"gen0 {runs[0]:.1f} gen1 {runs[1]:.1f} gen2 {runs[2]:.1f} collections, "
        f"{freed * per:,.0f} objects freed by the collector; "
        f"{left:,} left for it at the end, {grew / args.n:.2f} more objects tracked per connection"
    )


if __name__ == "__main__":
    main()
