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
    python accept_inproc.py --callgrind --loop uvloop --accept drain --stack standard

``--stack standard`` serves the standard preset (the CLI's stack: proxy
headers, HTTP/2 sniffing, WebSocket upgrades) instead of a bare ``.h1()``.
``--server uvicorn-httptools`` (or ``uvicorn-h11``) serves Uvicorn's own
protocol class through ``loop.create_server`` instead, run with the peers'
environment (``benchmarks/.peers-venv/bin/python``): the same client, the
same sockets, so the two counts differ by exactly what each server does for a
connection, from the accept to its objects' release::

    .peers-venv/bin/python accept_inproc.py --callgrind --loop uvloop --server uvicorn-httptools

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
from collections.abc import Callable
from pathlib import Path
from typing import cast

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

from apps import HELLO_BODY, app  # noqa: E402

from pounce import Server  # noqa: E402
from pounce.conn import HandlerFactory  # noqa: E402
from pounce.drivers.service import ServiceContext  # noqa: E402
from pounce.layer import Serving  # noqa: E402
from pounce.net.accept import Acceptor  # noqa: E402
from pounce.net.backlog import BacklogDrain  # noqa: E402
from pounce.net.binds import listener_address  # noqa: E402
from pounce.net.loops import loop_factory  # noqa: E402
from pounce.net.transport import ConnectionTracker, TransportAdapter  # noqa: E402
from pounce.presets import StandardOptions, standard  # noqa: E402

REQUEST = b"GET /hello HTTP/1.1\r\nhost: 127.0.0.1\r\nconnection: close\r\n\r\n"


def _pounce_factory(stack: str) -> HandlerFactory:
    """The handler factory a serve of `stack` makes (its app layers around the app)."""
    if stack == "standard":
        builder = standard(StandardOptions(access_log=False))  # as the harness runs it
    else:
        builder = Server.builder().bind("127.0.0.1", 0).h1()
    built = builder.asgi(app)
    events = built.events
    service = ServiceContext(built._wrap_app(Serving(events)), built.spec.http, events=events)
    return built._handler_factory(service, [])


async def drive(n: int, accept: str, cap: int | None, server_name: str, stack: str) -> None:
    loop = asyncio.get_running_loop()
    if server_name == "raw":
        await _drive_peer(n, _Raw)
        return
    if server_name != "pounce":
        from inproc import uvicorn_maker

        await _drive_peer(n, uvicorn_maker(server_name.removeprefix("uvicorn-")))
        return
    factory = _pounce_factory(stack)
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    acceptor: Acceptor | None = None
    server: asyncio.Server | None = None
    if accept == "loop":
        tracker = ConnectionTracker()
        server = await loop.create_server(
            lambda: TransportAdapter(factory, tracker), sock=listener, backlog=128
        )
    elif accept == "drain":
        tracker = ConnectionTracker()
        # As a serve makes it: the listener's address for its connections' own.
        address = listener_address(listener)
        drain = BacklogDrain(listener, lambda: TransportAdapter(factory, tracker, listener=address))
        server = await loop.create_server(drain.factory, sock=listener, backlog=128)
    else:
        acceptor = Acceptor(cap, lambda reason: None)
        tracker = acceptor.tracker
        acceptor.start([listener], lambda: TransportAdapter(factory, tracker))
    await _requests(n, port)
    if server is not None:
        server.close()
    if acceptor is not None:
        acceptor.close()
    await tracker.wait_closed(5.0)


async def _requests(n: int, port: int) -> None:
    """`n` clients, one at a time: connect, one ``Connection: close`` GET, read to the end."""
    loop = asyncio.get_running_loop()
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


RAW_RESPONSE = (
    b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n"
    b"connection: close\r\n\r\n%s" % (len(HELLO_BODY), HELLO_BODY)
)


class _Raw(asyncio.Protocol):
    """The floor: a canned answer and a close, no HTTP (the client's and the loop's share)."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)

    def data_received(self, data: bytes) -> None:
        self.transport.write(RAW_RESPONSE)
        self.transport.close()


async def _drive_peer(n: int, maker: Callable[[], asyncio.Protocol]) -> None:
    """A peer's protocol class behind the loop's own server (as Uvicorn serves)."""
    listener = socket.create_server(("127.0.0.1", 0), backlog=128)
    listener.setblocking(False)
    server = await asyncio.get_running_loop().create_server(maker, sock=listener, backlog=128)
    await _requests(n, listener.getsockname()[1])
    server.close()
    await asyncio.sleep(0.05)  # its last connection_lost


def callgrind(args: argparse.Namespace) -> None:
    low, high = args.counts
    totals = []
    for n in (low, high):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}", sys.executable]
            cmd += [__file__, "-n", str(n), "--accept", args.accept, "--loop", args.loop]
            cmd += ["--server", args.server, "--stack", args.stack]
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
    what = f"accept={args.accept}{cap} stack={args.stack}"
    if args.server != "pounce":
        what = args.server
    print(f"{what} loop={args.loop}: {per:,.0f} instructions per connection")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=2000, help="connections")
    parser.add_argument("--accept", choices=("loop", "drain", "acceptor"), default="acceptor")
    parser.add_argument("--cap", type=int, help="the acceptor's connection cap (default: none)")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument("--stack", choices=("minimal", "standard"), default="minimal")
    parser.add_argument(
        "--server",
        choices=("pounce", "uvicorn-h11", "uvicorn-httptools", "raw"),
        default="pounce",
        help="whose server (Uvicorn's: run with benchmarks/.peers-venv; --accept is ignored); "
        "raw: a canned answer, the floor",
    )
    parser.add_argument("--callgrind", action="store_true", help="instructions per connection")
    parser.add_argument("--counts", type=int, nargs=2, default=(500, 2500), metavar="N")
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args)
        return
    with asyncio.Runner(loop_factory=loop_factory(args.loop)) as runner:
        runner.run(drive(args.n, args.accept, args.cap, args.server, args.stack))


if __name__ == "__main__":
    main()
