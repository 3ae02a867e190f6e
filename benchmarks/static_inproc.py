"""The static layer's cost per hit, in process: instructions per request.

Calls the layer's ASGI app directly, one request after another on a real event
loop (no sockets, no protocol core), for a file of ``--size`` bytes (1 KiB),
and checks every answer. What it isolates is the layer's own work per hit:
the path checks, the file-system calls (``realpath``, ``stat``, ``open``,
``fstat``: one hop to the default executor since they left the event loop;
a file of one chunk, 64 KiB, or less is read in the same call), the validators and the
body. ``--zero-copy`` offers ``http.response.zerocopysend`` in the scope, as
Pounce's server does, so a larger body is handed over as a file (the server
would ``sendfile`` it); without it the layer reads a larger body itself (one
more executor hop per 64 KiB), as under a server that does not offer the
extension. (``--size 65536`` is the largest file read with its lookup.)

Wall-clock time on a shared machine is noise; count instructions instead (all
threads, the executor's included), as the difference between two request
counts::

    python benchmarks/static_inproc.py --callgrind
    python benchmarks/static_inproc.py --callgrind --zero-copy --size 65536
    python benchmarks/static_inproc.py -n 20000          # plain timing (noisy)

To compare with an older tree, run the same command with ``PYTHONPATH``
pointing at it (``git archive <commit> pounce | tar -x -C /tmp/before``).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
if "PYTHONPATH" not in os.environ and str(HERE.parent) not in sys.path:
    sys.path.insert(0, str(HERE.parent))

from pounce.layers.static import Static  # noqa: E402

SMALL = b"pounce " * 146 + b"12"  # 1 KiB, repeated for --size


async def _nothing() -> dict[str, Any]:
    return {"type": "http.request", "body": b"", "more_body": False}


async def drive(n: int, root: str, zero_copy: bool, size: int) -> float:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        raise SystemExit(f"a miss: {scope['path']}")

    static = Static("/s", root).wrap(app)
    extensions = {"http.response.zerocopysend": {}} if zero_copy else {}
    scope = {
        "type": "http",
        "method": "GET",
        "path": "/s/small.txt",
        "raw_path": b"/s/small.txt",
        "root_path": "",
        "query_string": b"",
        "headers": [(b"host", b"x"), (b"accept-encoding", b"gzip, br")],
        "extensions": extensions,
    }
    got: list[int] = [0, 0]

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            if message["status"] != 200:
                raise SystemExit(f"status {message['status']}")
        elif message["type"] == "http.response.zerocopysend":
            got[0] += message["count"]
        else:
            got[0] += len(message.get("body", b""))
        got[1] += 1

    start = time.perf_counter()
    for _ in range(n):
        got[0] = 0
        await static(scope, _nothing, send)
        if got[0] != size:
            raise SystemExit(f"{got[0]} body bytes, expected {size}")
    return time.perf_counter() - start


def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as root:
        Path(root, "small.txt").write_bytes((SMALL * (args.size // len(SMALL) + 1))[: args.size])
        elapsed = asyncio.run(drive(args.n, root, args.zero_copy, args.size))
    print(f"{args.n} hits in {elapsed:.3f} s: {elapsed / args.n * 1e6:.1f} µs each (noisy)")


def callgrind(args: argparse.Namespace) -> None:
    low, high = args.counts
    totals = []
    for n in (low, high):
        with tempfile.TemporaryDirectory() as tmp:
            out = os.path.join(tmp, "callgrind.out")
            cmd = ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}"]
            cmd += [sys.executable, __file__, "-n", str(n), "--size", str(args.size)]
            cmd += ["--zero-copy"] if args.zero_copy else []
            subprocess.run(cmd, check=True, capture_output=True)
            text = Path(out).read_text(errors="replace")
            found = [int(m) for m in re.findall(r"^(?:summary|totals): (\d+)", text, re.M)]
            assert found, "no total in the callgrind output"
            totals.append(max(found))
    per_hit = (totals[1] - totals[0]) / (high - low)
    mode = "zero-copy" if args.zero_copy else "read by the layer"
    print(f"static {args.size} B hit ({mode}): {per_hit:,.0f} instructions per request")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("-n", type=int, default=5000, help="requests")
    parser.add_argument("--zero-copy", action="store_true", help="offer zerocopysend")
    parser.add_argument("--size", type=int, default=1024, help="bytes of the file")
    parser.add_argument("--callgrind", action="store_true", help="instructions per request")
    parser.add_argument("--counts", type=int, nargs=2, default=(500, 3000), metavar="N")
    args = parser.parse_args()
    if args.callgrind:
        callgrind(args)
    else:
        run(args)


if __name__ == "__main__":
    main()
