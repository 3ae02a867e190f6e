"""What a framework adds to a request under each server, and why it differs.

Starlette's own work per request is the same under every server (in-process
instruction counts agree within 1 %), yet on the wall it added ~10 µs to a
request under Pounce and ~5.5 µs under Uvicorn with httptools. This script
measures that *increment* — (framework app) − (lean app), µs a request,
in-process on uvloop (``inproc.py``'s driver: the real protocol objects, a fake
transport, no kernel), best of rounds — for:

* ``pounce``: the standard stack;
* ``uvicorn``: Uvicorn's own protocol (httptools if installed, else h11);
* ``uvicorn + parse``: the same, made to run Pounce's request parse
  (`FastH1Core.receive_data` on a fresh core) in each ``data_received`` as well;
* ``uvicorn + parse + head``: and Pounce's response path on that core too (the
  head then the body, as two events: what a streamed response takes);
* ``uvicorn + a loop``: as many bytecodes as the row above, from a loop of a
  few places instead (sixteen distinct bytecodes).

The added work is Pounce's Python; it serves nothing and does none of
Uvicorn's. If the framework increment of the last two rows grows towards
Pounce's, the framework's code runs slower because of the *server's* Python
that runs around it, not because of anything the server does to the app — the
CPU's predictors and caches are shared by the interpreter's dispatch of both.
The ``bytecodes`` column is what the injected work executes per request
(``sys.settrace`` opcode events), ``distinct`` how many places in the code
those are. If the loop leaves the increment where it was while the parse and
head grow it, what costs the framework is the number of *distinct* steps the
server's Python takes, not their count. docs/performance.md ("the framework
increment", "fewer distinct steps") has runs and what was done about it::

    cd benchmarks
    .peers-venv/bin/python framework_increment.py            # starlette, 3 rounds
    .peers-venv/bin/python framework_increment.py --app fastapi --rounds 5
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Callable
from typing import Any

import uvloop
from apps import app as lean_app
from inproc import drive, opcode_tracer, protocol_maker, uvicorn_maker

from pounce.protocols.events import SendData, SendResponse
from pounce.protocols.h1_fast import FastH1Core

HEAD_FIELDS = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", b"13")]


def _parse(data: bytes) -> None:
    FastH1Core().receive_data(data)


def _parse_and_head(data: bytes) -> None:
    core = FastH1Core()
    core.receive_data(data)
    core.send(SendResponse(stream_id=1, status=200, headers=list(HEAD_FIELDS)))
    core.send(SendData(stream_id=1, data=b"Hello, world!", end_stream=True))
    core.data_to_send()


def _loop(data: bytes) -> None:
    total = 0
    for step in range(96):  # seven bytecodes a turn: about as many as `_parse_and_head`
        total += step


EXTRAS: dict[str, Callable[[bytes], None] | None] = {
    "uvicorn": None,
    "uvicorn + parse": _parse,
    "uvicorn + parse + head": _parse_and_head,
    "uvicorn + a loop": _loop,
}


def uvicorn_http() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "h11"
    return "httptools"


def with_extra(
    maker: Callable[[], Any], extra: Callable[[bytes], None] | None
) -> Callable[[], Any]:
    """Uvicorn's protocol, running `extra` on each read before its own `data_received`."""
    if extra is None:
        return maker

    def make() -> Any:
        protocol = maker()
        own = protocol.data_received

        def data_received(data: bytes) -> None:
            extra(data)
            own(data)

        protocol.data_received = data_received
        return protocol

    return make


def bytecodes(extra: Callable[[bytes], None] | None, request: bytes) -> tuple[int, int]:
    """Python bytecodes `extra` executes for one request, and how many distinct ones
    (places in the code) they are; (0, 0) for none."""
    if extra is None:
        return 0, 0
    counts: Counter[tuple[str, int, str]] = Counter()
    sites: Counter[tuple[str, int, str, int]] = Counter()
    extra(request)  # warm, then counted
    sys.settrace(opcode_tracer(counts, sites))
    try:
        extra(request)
    finally:
        sys.settrace(None)
    return sum(counts.values()), len(sites)


def best_us(maker: Callable[[], Any], n: int, tries: int) -> float:
    return min(uvloop.run(drive(n, "/hello", maker, False)) for _ in range(tries)) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--app", choices=("starlette", "fastapi"), default="starlette")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("-n", type=int, default=20000, help="requests a run")
    args = parser.parse_args()
    import framework_apps

    framework = getattr(framework_apps, f"{args.app}_app")
    http = uvicorn_http()
    rows: dict[str, tuple[Callable[[Any], Callable[[], Any]], tuple[int, int]]] = {
        "pounce": (
            lambda app: protocol_maker("pounce", "fast", "standard", asgi_app=app),
            (0, 0),
        )
    }
    for name, extra in EXTRAS.items():
        rows[name] = (
            lambda app, extra=extra: with_extra(uvicorn_maker(http, app), extra),
            bytecodes(extra, b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n"),
        )
    best: dict[tuple[str, str], float] = {}
    for _ in range(args.rounds):  # rounds alternate the rows: drift hits them alike
        for name, (make, _) in rows.items():
            for app_name, app in (("lean", lean_app), (args.app, framework)):
                took = best_us(make(app), args.n, 2)
                key = (name, app_name)
                best[key] = min(best.get(key, took), took)
    print(f"in-process, uvloop, µs a request (best of {args.rounds} rounds); Uvicorn: {http}")
    print(f"| server | bytecodes added | distinct | lean | {args.app} | increment |")
    print("|---|---|---|---|---|---|")
    for name, (_, (added, distinct)) in rows.items():
        lean, framed = best[(name, "lean")], best[(name, args.app)]
        print(
            f"| {name} | {added} | {distinct} | {lean:.2f} | {framed:.2f} | {framed - lean:.2f} |"
        )


if __name__ == "__main__":
    main()
