"""In-process request driver: instructions per request, without sockets or `wrk`.

Feeds N keep-alive requests, one at a time, through the real stack a server
builds (``TransportAdapter`` → protocol bridge → ``HTTPDriver`` → core →
``Exchange`` → app layers → the benchmark app of ``apps.py``) on a real event
loop, from a fake transport. Each request is handed over by a loop callback,
as the loop's own read callback would, so the app task runs in the next turn
exactly as it does behind a socket; only the kernel and ``epoll`` are left out.
It checks every response, so a faster path that answers wrongly fails here.

Wall-clock time on a shared machine is noise; count instructions instead, as
the difference between two request counts (start-up cost cancels out)::

    cd benchmarks
    python inproc.py --callgrind                      # hello, fast parser, standard preset
    python inproc.py --callgrind --path /64k          # 64 KiB response
    python inproc.py --callgrind --parser h11         # the h11 core
    python inproc.py --callgrind --stack minimal      # no proxy headers, h2/ws sniffing
    python inproc.py --profile -n 2000                # cProfile: calls per request, top functions
    python inproc.py --opcodes -n 2000 --close        # bytecodes per request, by function
    python inproc.py -n 100000                        # plain timing (noisy)

``--observe`` adds one no-op event subscriber (``.observe()``): what the
lifecycle events cost before a subscriber does any work of its own.
``--access-log`` turns the standard stack's access log on, its lines
formatted and written to /dev/null (the logging machinery included);
``--access-log-level WARNING`` keeps it on with its logger above INFO, so
that nothing is written (what a disabled access log still costs).

``--app starlette`` or ``--app fastapi`` serves the framework scenarios' apps
(``framework_apps.py``; ``--path /hello`` or ``/json``) instead of the lean
one, so a count shows what the server costs under a framework::

    python inproc.py --callgrind --app fastapi --path /json --loop uvloop

``--head browser`` sends the request head headless Chromium sends for a
top-level navigation (``browser_head.py``: Host and 14 fields, a Cookie of two
cookies the last, ~740 bytes) instead of wrk's lean one (``GET`` and a Host
field), to Pounce and to Uvicorn alike; with ``--close`` its ``Connection``
field says ``close``::

    python inproc.py --callgrind --loop uvloop --head browser
    .peers-venv/bin/python inproc.py --callgrind --loop uvloop --head browser \
        --server uvicorn-httptools

``--close`` opens a new connection per request instead (``Connection:
close``: the connection's objects, the request, the close, ``connection_lost``).
``--server uvicorn-h11`` or ``--server uvicorn-httptools`` drives Uvicorn's own
protocol class the same way, for a side-by-side count; run it with the peers'
environment, where Uvicorn is installed (``benchmarks/.peers-venv/bin/python
inproc.py --server uvicorn-h11 --callgrind``).

``--opcodes`` counts the Python bytecodes each function executes per request
(``sys.settrace`` opcode events; the feeder and the app left out): where the
interpreter's share of the instructions goes, function by function, and run
under the peers' environment the same for Uvicorn's protocol. It also prints
how many *distinct* bytecodes (places in the code) every request runs: a loop's
steps count once there, and that number, not the total, is what follows the
framework increment (docs/performance.md). With ``--connections 64`` it counts
the many-connection path (reads held a turn and handed on together), as wrk
loads a server.

``--callgrind`` runs itself twice under ``valgrind --tool=callgrind`` (with
``-n 2000`` and ``-n 12000`` unless ``--counts`` says otherwise) and prints
``(Ir(n2) - Ir(n1)) / (n2 - n1)``. Both runs load every module's bytecode
from a private cache that one plain run fills first (``PYTHONPYCACHEPREFIX``):
``.pyc`` files written by another process between the two runs would otherwise
take a whole compile out of one of them. It needs valgrind (``apt-get install
valgrind``) and takes a minute or two.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

from apps import HELLO_BODY, JSON_BODY, LARGE_BODY, app  # noqa: E402
from browser_head import HEADS, request_head  # noqa: E402

from pounce.drivers.service import ServiceContext  # noqa: E402
from pounce.layer import Serving  # noqa: E402
from pounce.net.transport import (  # noqa: E402
    ConnectionTracker,
    ObservedTransportAdapter,
    TransportAdapter,
)
from pounce.presets import StandardOptions, standard  # noqa: E402

HOST = "127.0.0.1:8000"  # the Host field of every request (the fake transport's sockname)
BODIES = {"/hello": HELLO_BODY, "/receive": HELLO_BODY, "/64k": LARGE_BODY, "/json": JSON_BODY}
APPS = ("lean", "starlette", "fastapi")


def load_app(name: str) -> Any:
    """The ASGI app `name`: the lean app of ``apps.py`` or a framework scenario's."""
    if name == "lean":
        return app
    import framework_apps

    return getattr(framework_apps, f"{name}_app")


class FakeTransport(asyncio.Transport):
    """Collects what is written; enough of `asyncio.Transport` for the adapter."""

    def __init__(self) -> None:
        super().__init__()
        self.first: list[bytes] = []  # the first writes, then only a count
        self.last = b""
        self.before_last = b""
        self.size = 0
        self.closing = False
        loop = asyncio.get_running_loop()
        self.gathers = type(loop).__module__ == "uvloop" or sys.version_info >= (3, 12)

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("127.0.0.1", 50000), "sockname": ("127.0.0.1", 8000)}.get(
            name, default
        )

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return  # (Uvicorn's h11 path writes the empty end of a message)
        if len(self.first) < 4:
            self.first.append(bytes(data))
        # The last two writes: a server may write head and body separately.
        self.before_last, self.last = self.last, data  # type: ignore[assignment]
        self.size += len(data)

    def writelines(self, list_of_data: Any) -> None:
        # As the loop's own transport: uvloop's and asyncio's from Python 3.12 send
        # the pieces uncopied (writev, sendmsg); asyncio's before join them first.
        if self.gathers:
            for data in list_of_data:
                self.write(data)
        else:
            self.write(b"".join(list_of_data))

    def is_closing(self) -> bool:
        return self.closing

    def close(self) -> None:
        self.closing = True

    def abort(self) -> None:
        self.closing = True

    def can_write_eof(self) -> bool:
        return True

    def write_eof(self) -> None:
        self.closing = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass


ProtocolMaker = Callable[[], asyncio.Protocol]


def _no_op(event: object) -> None:
    """The cheapest event subscriber: what observing costs before any work of its own."""


def protocol_maker(
    server: str,
    parser: str,
    stack: str,
    observe: bool = False,
    access_log: bool = False,
    asgi_app: Any = app,
) -> ProtocolMaker:
    """A callable making the `asyncio.Protocol` a server gives each new connection."""
    if server != "pounce":
        return uvicorn_maker(server.removeprefix("uvicorn-"), asgi_app)
    if stack == "standard":
        options = StandardOptions(http=parser, access_log=access_log)  # type: ignore[arg-type]
        builder = standard(options)
    else:
        from pounce import Server

        builder = Server.builder().bind("127.0.0.1", 8000).h1(parser=parser)  # type: ignore[arg-type]
    if observe:
        builder = builder.observe(_no_op)
    built = builder.timeouts(keep_alive=600).asgi(asgi_app)
    events = built.events
    if events is not None:
        events.refresh()  # who is on (the access log: its logger's level), as a serve starts
    service = ServiceContext(built._wrap_app(Serving(events)), built.spec.http, events=events)
    factory = built._handler_factory(service, [])
    tracker = ConnectionTracker()
    if events is not None and events.connections:
        return lambda: ObservedTransportAdapter(factory, tracker, None, events)
    return lambda: TransportAdapter(factory, tracker)


def uvicorn_maker(http: str, asgi_app: Any = app) -> ProtocolMaker:
    """Uvicorn's protocol for `http` ("h11" or "httptools"), configured as its CLI would be."""
    from uvicorn.config import Config
    from uvicorn.server import ServerState

    config = Config(app=asgi_app, http=http, access_log=False, lifespan="off", log_level="warning")
    config.load()
    state = ServerState()
    # What `uvicorn.Server` puts there when it starts (Date and Server on every response).
    state.default_headers = [
        (b"date", b"Wed, 25 Nov 2026 21:00:00 GMT"),
        (b"server", b"uvicorn"),
    ]
    protocol_class = config.http_protocol_class
    return lambda: protocol_class(config=config, server_state=state, app_state={})  # type: ignore[no-any-return]


async def drive(n: int, path: str, maker: ProtocolMaker, close: bool, head: str = "lean") -> float:
    """`n` requests, one at a time: on one keep-alive connection, or one connection each;
    `head`: wrk's lean request head or a browser's (browser_head.py)."""
    request = request_head(head, path, HOST, close=close)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    remaining = n
    protocol = maker()
    transport = FakeTransport()
    protocol.connection_made(transport)
    transports: list[FakeTransport] = []
    fed_size = -1  # what the transport had written when the last request was fed

    def feed() -> None:
        nonlocal remaining, protocol, transport, fed_size
        if transport.size == fed_size:
            # No answer yet: an app (a framework's) that takes more than one turn.
            loop.call_soon(feed)
            return
        if close and remaining < n:
            if not transport.closing:
                raise SystemExit("the server did not close after Connection: close")
            protocol.connection_lost(None)
            if len(transports) < 2:
                transports.append(transport)
            protocol, transport = maker(), FakeTransport()
            protocol.connection_made(transport)
        if remaining == 0:
            done.set_result(None)
            return
        remaining -= 1
        fed_size = transport.size
        protocol.data_received(request)
        loop.call_soon(feed)  # after the app task the request created

    start = time.perf_counter()
    loop.call_soon(feed)
    await done
    elapsed = time.perf_counter() - start
    if close:
        for each in transports:
            check(each, 1, BODIES[path])
    else:
        check(transport, n, BODIES[path])
    return elapsed


async def drive_together(
    n: int, path: str, maker: ProtocolMaker, connections: int, head: str = "lean"
) -> float:
    """`n` requests over `connections` keep-alive connections, each turn feeding every
    connection whose answer came: a turn reads many requests, as under ``wrk -c64``
    (one request per turn leaves out what a turn's reads share)."""
    request = request_head(head, path, HOST)
    loop = asyncio.get_running_loop()
    done = loop.create_future()
    remaining = n
    protocols = [maker() for _ in range(connections)]
    transports = [FakeTransport() for _ in range(connections)]
    for protocol, transport in zip(protocols, transports, strict=True):
        protocol.connection_made(transport)
    fed_sizes = [-1] * connections  # what each transport had written when last fed
    counts = [0] * connections

    def feed() -> None:
        nonlocal remaining
        waiting = False
        for i, transport in enumerate(transports):
            if transport.size == fed_sizes[i]:
                waiting = True  # not answered yet
            elif remaining:
                remaining -= 1
                counts[i] += 1
                fed_sizes[i] = transport.size
                protocols[i].data_received(request)
                waiting = True
        if waiting:
            loop.call_soon(feed)
        else:
            done.set_result(None)

    start = time.perf_counter()
    loop.call_soon(feed)
    await done
    elapsed = time.perf_counter() - start
    for transport, count in zip(transports, counts, strict=True):
        check(transport, count, BODIES[path])
    return elapsed


def check(transport: FakeTransport, n: int, body: bytes) -> None:
    """Every response the same size as the first, and the first and last well formed."""
    if n == 0:
        return
    first = b"".join(transport.first)
    head_end = first.find(b"\r\n\r\n") + 4
    size = head_end + len(body)
    response = first[:size]
    for answer in (response, (bytes(transport.before_last) + bytes(transport.last))[-size:]):
        head, _, rest = answer.partition(b"\r\n\r\n")
        if not (
            head.startswith(b"HTTP/1.1 200 OK\r\n")
            and b"\r\ncontent-length: %d" % len(body) in head
            and rest == body
        ):
            raise SystemExit(f"wrong response: {answer[:300]!r}")
    if transport.size != n * size:
        raise SystemExit(f"{transport.size} bytes written, expected {n} x {size}")


def _log_access_to_devnull(level: str = "INFO") -> None:
    import logging

    logger = logging.getLogger("pounce.access")
    logger.setLevel(level)
    logger.propagate = False
    logger.addHandler(logging.StreamHandler(open(os.devnull, "w")))  # noqa: SIM115 - for the run


def run(args: argparse.Namespace) -> None:
    if args.loop == "uvloop":
        import uvloop

        loop_factory: Any = uvloop.new_event_loop
    else:
        loop_factory = asyncio.new_event_loop
    if args.access_log:
        _log_access_to_devnull(args.access_log_level)
    maker = maker_for(args)
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        if args.profile:
            import cProfile
            import pstats

            runner.run(drive(200, args.path, maker, args.close, args.head))  # warm up
            profiler = cProfile.Profile()
            profiler.enable()
            runner.run(drive(args.n, args.path, maker, args.close, args.head))
            profiler.disable()
            stats = pstats.Stats(profiler)
            total = sum(entry[1] for entry in stats.stats.values())  # type: ignore[attr-defined]
            print(f"{total / args.n:.1f} calls per request (cProfile, incl. the feeder)")
            stats.sort_stats("tottime").print_stats(args.top)
            return
        if args.opcodes:
            runner.run(drive(200, args.path, maker, args.close, args.head))  # warm up
            count_opcodes(runner, args)
            return
        # As `Server.run()` does once it listens: the start-up heap (a framework's
        # tens of thousands of objects) out of the collector's scans. Without it a
        # full collection lands in one of callgrind's two runs and not the other.
        gc.collect()
        gc.freeze()
        if args.connections > 1:
            elapsed = runner.run(
                drive_together(args.n, args.path, maker, args.connections, args.head)
            )
        else:
            elapsed = runner.run(drive(args.n, args.path, maker, args.close, args.head))
    print(f"{args.n} requests in {elapsed:.3f} s: {args.n / elapsed:,.0f} req/s (noisy)")


def opcode_tracer(
    counts: Counter[tuple[str, int, str]],
    sites: Counter[tuple[str, int, str, int]] | None = None,
) -> Callable[..., Any]:
    """A ``sys.settrace`` function that counts into `counts` the bytecodes each function
    runs, keyed by (the last two parts of its file's path, its first line, its name);
    and into `sites`, if given, each bytecode by its place (that key and its offset)."""

    def tracer(frame: FrameType, event: str, arg: object) -> Any:
        frame.f_trace_opcodes = True
        code = frame.f_code
        key = ("/".join(code.co_filename.split("/")[-2:]), code.co_firstlineno, code.co_name)

        def each(frame: FrameType, event: str, arg: object) -> Any:
            if event == "opcode":
                counts[key] += 1
                if sites is not None:
                    sites[(*key, frame.f_lasti)] += 1
            return each

        return each

    return tracer


def count_opcodes(runner: asyncio.Runner, args: argparse.Namespace) -> None:
    """Bytecodes executed per request, by function (``--opcodes``); and how many distinct
    ones (places in the code) every request runs, which is what slows a framework's
    own Python (docs/performance.md, "fewer distinct steps")."""
    counts: Counter[tuple[str, int, str]] = Counter()
    sites: Counter[tuple[str, int, str, int]] = Counter()
    maker = maker_for(args)
    sys.settrace(opcode_tracer(counts, sites))
    try:
        if args.connections > 1:  # (held reads and the loop's turn shared by many)
            runner.run(drive_together(args.n, args.path, maker, args.connections, args.head))
        else:
            runner.run(drive(args.n, args.path, maker, args.close, args.head))
    finally:
        sys.settrace(None)
    theirs = ("inproc.py", "apps.py")
    mine = {k: v for k, v in counts.items() if not k[0].endswith(theirs)}
    every = sum(1 for k, v in sites.items() if v >= args.n and not k[0].endswith(theirs))
    print(f"{sum(mine.values()) / args.n:,.1f} bytecodes per request (the server's Python)")
    print(f"{every:,} distinct bytecodes (places in the code) run in every request")
    for (path, line, name), count in sorted(mine.items(), key=lambda kv: -kv[1])[: args.top]:
        print(f"{count / args.n:8.1f}  {path}:{line} {name}")


def maker_for(args: argparse.Namespace) -> ProtocolMaker:
    return protocol_maker(
        args.server, args.parser, args.stack, args.observe, args.access_log, load_app(args.app)
    )


def _child_argv(args: argparse.Namespace, n: int) -> list[str]:
    """This script with `args`, for `n` requests (a run callgrind counts)."""
    return [
        sys.executable,
        __file__,
        "-n",
        str(n),
        "--path",
        args.path,
        "--parser",
        args.parser,
        "--stack",
        args.stack,
        "--loop",
        args.loop,
        "--server",
        args.server,
        "--app",
        args.app,
        "--head",
        args.head,
        *(["--close"] if args.close else []),
        *(["--connections", str(args.connections)] if args.connections > 1 else []),
        *(["--observe"] if args.observe else []),
        *(["--access-log"] if args.access_log else []),
        *(["--access-log-level", args.access_log_level] if args.access_log else []),
    ]


def _bytecode_env(cache: str) -> dict[str, str]:
    """The children's environment: every module's bytecode in a cache of their own.

    A count is the difference of two runs, so both must import alike. Compiling
    a module from source costs far more than loading its ``.pyc``; if another
    process writes the ``.pyc`` files between the two runs (or one of them runs
    with PYTHONDONTWRITEBYTECODE and the other finds some), the difference is off
    by the whole compile (tens of thousands per request). A private cache, filled
    by one plain run first, makes both runs load every module from it."""
    env = dict(os.environ, PYTHONPYCACHEPREFIX=cache)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


def callgrind(args: argparse.Namespace) -> None:
    low, high = args.counts
    totals = []
    with tempfile.TemporaryDirectory() as cache:
        env = _bytecode_env(cache)
        subprocess.run(_child_argv(args, 10), check=True, capture_output=True, env=env)
        for n in (low, high):
            with tempfile.TemporaryDirectory() as tmp:
                out = os.path.join(tmp, "callgrind.out")
                valgrind = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
                cmd = [*valgrind, *_child_argv(args, n)]
                subprocess.run(cmd, check=True, capture_output=True, env=env)
                text = Path(out).read_text(errors="replace")
            match = re.search(r"^summary: (\d+)", text, re.MULTILINE) or re.search(
                r"^totals: (\d+)", text, re.MULTILINE
            )
            assert match is not None, "no total in the callgrind output"
            totals.append(int(match[1]))
    per_request = (totals[1] - totals[0]) / (high - low)
    what = f"parser={args.parser} stack={args.stack}" if args.server == "pounce" else args.server
    app_name = "" if args.app == "lean" else f"{args.app} "
    print(
        f"{app_name}{args.path} {what} loop={args.loop}{' close' if args.close else ''}"
        f"{' observed' if args.observe else ''}{' access-log' if args.access_log else ''}"
        f"{'' if args.access_log_level == 'INFO' else ' at ' + args.access_log_level}"
        f"{f' connections={args.connections}' if args.connections > 1 else ''}"
        f"{'' if args.head == 'lean' else f' head={args.head}'}: "
        f"{per_request:,.0f} instructions per request"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=20000, help="requests")
    parser.add_argument("--path", choices=sorted(BODIES), default="/hello")
    parser.add_argument("--parser", choices=("fast", "h11"), default="fast")
    parser.add_argument(
        "--app",
        choices=APPS,
        default="lean",
        help="the lean app of apps.py, or a framework scenario's (framework_apps.py)",
    )
    parser.add_argument(
        "--head",
        choices=HEADS,
        default="lean",
        help="the request head: wrk's lean one (Host only) or a browser's (browser_head.py)",
    )
    parser.add_argument("--stack", choices=("standard", "minimal"), default="standard")
    parser.add_argument("--loop", choices=("asyncio", "uvloop"), default="asyncio")
    parser.add_argument(
        "--server",
        choices=("pounce", "uvicorn-h11", "uvicorn-httptools"),
        default="pounce",
        help="whose protocol to drive (Uvicorn's: run with benchmarks/.peers-venv)",
    )
    parser.add_argument(
        "--close", action="store_true", help="a new connection per request (Connection: close)"
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=1,
        help="keep-alive connections fed together, every turn (as wrk -c64 loads a server)",
    )
    parser.add_argument(
        "--observe", action="store_true", help="one no-op event subscriber (.observe())"
    )
    parser.add_argument(
        "--access-log",
        action="store_true",
        help="the standard stack's access log on, its lines formatted and written to /dev/null",
    )
    parser.add_argument(
        "--access-log-level",
        default="INFO",
        choices=("INFO", "WARNING"),
        help="the pounce.access logger's level with --access-log (WARNING: the log is on, "
        "but nothing is written)",
    )
    parser.add_argument("--profile", action="store_true", help="cProfile the run")
    parser.add_argument(
        "--opcodes", action="store_true", help="Python bytecodes per request, by function"
    )
    parser.add_argument(
        "--top", type=int, default=25, help="functions --profile and --opcodes print"
    )
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--counts", type=int, nargs=2, default=(2000, 12000), metavar="N")
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
