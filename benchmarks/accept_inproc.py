"""Instructions per accepted connection: the event loop's own server against Pounce's `Acceptor`.

A serve accepts through `pounce.net.accept.Acceptor` on asyncio (and on
uvloop when a connection cap is set) instead of ``loop.create_server``. This
prices that choice per connection: real sockets on 127.0.0.1, server and
client in one process and one event loop, each connection one ``Connection:
close`` GET /hello read to its end. The client's work is the same on both
sides of the comparison, so the difference of the two counts is the
accept path's::

    cd benchmarks
    python accept_inproc.py --callgrind --accept loop        # loop.create_server
    python accept_inproc.py --callgrind --accept acceptor    # Acceptor, no cap
    python accept_inproc.py --callgrind --accept acceptor --cap 1000
    python accept_inproc.py --callgrind --loop uvloop --accept loop
    python accept_inproc.py --callgrind --loop uvloop --accept drain  # what a serve does there

``drain`` is uvloop's own server behind `BacklogDrain` (pounce/net/backlog.py), as a
serve without a cap runs it. Here connections come one at a time and, under
valgrind, more than its 1 ms apart, so each pays the backlog poll: its worst case.

``--callgrind`` runs itself twice under valgrind (``--counts``, default 500
and 2500 connections) and prints ``(Ir(n2) - Ir(n1)) / (n2 - n1)``.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

from apps import HELLO_BODY, app  # noqa: E402

from pounce import Server  # noqa: E402
from pounce.drivers.service import ServiceContext  # noqa: E402
from pounce.layer import Serving  # noqa: E402
from pounce.net.accept import Acceptor  # noqa: E402
from pounce.net.backlog import BacklogDrain  # noqa: E402
from pounce.net.loops import loop_factory  # noqa: E402
from pounce.net.transport import ConnectionTracker, TransportAdapter  # noqa: E402

REQUEST = b"GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"


async def drive(n: int, accept: str, cap: int | None) -> None:
    built = Server.builder().bind("127.0.0.1", 0).h1().asgi(app)
    service = ServiceContext(built._wrap_app(Serving()), built.spec.http)
    factory = built._handler_factory(service, [])
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    loop = asyncio.get_running_loop()
    acceptor: Acceptor | None = None
    server: asyncio.Server | None = None
    if accept == "loop":
        tracker = ConnectionTracker()
        server = await loop.create_server(
            lambda: TransportAdapter(factory, tracker), sock=listener, backlog=128
        )
    elif accept == "drain":
        tracker = ConnectionTracker()
        drain = BacklogDrain(listener, lambda: TransportAdapter(factory, tracker))
        server = await loop.create_server(drain.factory, sock=listener, backlog=128)
    else:
        acceptor = Acceptor(cap, lambda reason: None)
        tracker = acceptor.tracker
        acceptor.start([listener], lambda: TransportAdapter(factory, tracker))
    for _ in range(n):
        client = socket.socket()
        client.setblocking(False)
        await loop.sock_connect(client, ("127.0.0.1", port))
        await loop.sock_sendall(client, REQUEST)
        answer = b""
        while chunk := await loop.sock_recv(client, 4096):
            answer += chunk
        client.close()
        if not answer.endswith(HELLO_BODY):
            raise SystemExit(f"wrong answer: {answer!r}")
    if server is not None:
        server.close()
    if acceptor is not None:
        acceptor.close()
    await tracker.wait_closed(5.0)


def callgrind(args: argparse.Namespace) -> None:
    low, high = args.counts
    totals = []
    for n in (low, high):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
            cmd += [__file__, "-n", str(n), "--accept", args.accept, "--loop", args.loop]
            cmd += ["--cap", str(args.cap)] if args.cap is not None else []
            subprocess.run(cmd, check=True, capture_output=True)
            text = Path(out).read_text(errors="replace")
            match = re.search(r"^summary: (\d+)", text, re.MULTILINE) or re.search(
                r"^totals: (\d+)", text, re.MULTILINE
            )
            assert match is not None, "no total in the callgrind output"
            totals.append(int(match[1]))
    per = (totals[1] - totals[0]) / (high - low)
    cap = f" cap={args.cap}" if args.cap is not None else ""
    print(f"accept={args.accept}{cap} loop={args.loop}: {per:,.0f} instructions per connection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="connections")
    parser.add_argument("--accept", choices=("loop", "drain", "acceptor"), default="acceptor")
    parser.add_argument("--cap", type=int, help="the acceptor's connection cap (default: none)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--callgrind", action="store_true", help="instructions per connection")
    parser.add_argument("--counts", type=int, nargs=2, default=(500, 2500), metavar="N")
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args)
        return
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(drive(args.n, args.accept, args.cap))


if __name__ == "__main__":
    main()
