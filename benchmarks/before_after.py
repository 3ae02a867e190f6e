"""Hello keep-alive, ``Connection: close``, a browser's head, Starlette and FastAPI: one
tree against another.

For changes that must not cost speed ("no hello regression beyond 2 %"): the
standard CLI stack (``pounce apps:app``, access log off) from two source
trees — a git ref checked out in a temporary worktree ("before") and this
working tree ("after") — served alternately, pinned to CPU 0 with ``wrk`` on
CPU 1, the same scenario, several rounds; medians and their ratio. Both trees
run with this environment's Python and packages, so only the code differs.

    cd benchmarks
    ../.venv/bin/python before_after.py HEAD~3               # asyncio and uvloop, 3 rounds
    ../.venv/bin/python before_after.py main --loops uvloop --rounds 5
    ../.venv/bin/python before_after.py HEAD~1 --loops uvloop --scenarios browser
    ../.venv/bin/python before_after.py HEAD~1 --loops uvloop --scenarios starlette,fastapi

``starlette`` and ``fastapi`` serve the framework scenarios' apps
(``framework_apps.py``, ``GET /hello``) instead of the lean one.

Needs Linux, 2+ CPUs, ``wrk`` and ``taskset`` on PATH, git.
"""

from __future__ import annotations

import argparse
import json
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

from browser_head import BROWSER_FIELDS  # noqa: E402

ROOT = HERE.parent
SCENARIOS = {
    "hello": (),
    "close": ("-H", "Connection: close"),
    # The harness's `browser` head (wrk's -H writes the fields in its own order, which
    # changes nothing for a head this long: its fields are split whatever their order).
    "browser": tuple(arg for name, value in BROWSER_FIELDS for arg in ("-H", f"{name}: {value}")),
    "starlette": (),
    "fastapi": (),
}
# The app each scenario serves (the lean one unless named here).
APPS = {"starlette": "framework_apps:starlette_app", "fastapi": "framework_apps:fastapi_app"}
START_TIMEOUT_S = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def serve(tree: Path, loop: str, port: int, app: str = "apps:app") -> subprocess.Popen[bytes]:
    """The CLI server of `tree` (its directory first on sys.path), pinned to CPU 0."""
    command = [
        "taskset", "-c", "0", sys.executable, "-m", "pounce", app,
        "--app-dir", str(HERE), "--port", str(port), "--loop", loop,
        "--no-access-log", "--timeout-keep-alive", "600", "--log-level", "warning",
    ]  # fmt: skip
    proc = subprocess.Popen(command, cwd=tree, stdout=subprocess.DEVNULL)
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise SystemExit(f"the server from {tree} did not start")


def wrk(port: int, scenario: str, seconds: int) -> float:
    """Requests per second of one wrk run (``-t1 -c64``) on CPU 1."""
    command = [
        "taskset", "-c", "1", "wrk", "-t1", "-c64", f"-d{seconds}s",
        *SCENARIOS[scenario], f"http://127.0.0.1:{port}/hello",
    ]  # fmt: skip
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out or "Socket errors" in out:
        raise SystemExit("wrk failed:\n" + out)
    return float(match[1])


def measure(tree: Path, loop: str, scenario: str, seconds: int) -> float:
    port = free_port()
    proc = serve(tree, loop, port, APPS.get(scenario, "apps:app"))
    try:
        wrk(port, scenario, 1)  # warm-up
        return wrk(port, scenario, seconds)
    finally:
        proc.terminate()
        proc.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("ref", help="git ref of the 'before' tree")
    parser.add_argument("--loops", default="asyncio,uvloop")
    parser.add_argument("--scenarios", default="hello,close")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=5)
    args = parser.parse_args()
    results: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        before = Path(tmp) / "before"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach",
                        str(before), args.ref], check=True)  # fmt: skip
        try:
            for loop in args.loops.split(","):
                for scenario in args.scenarios.split(","):
                    row = results.setdefault(f"{scenario} {loop}", {"before": [], "after": []})
                    for _ in range(args.rounds):  # alternate, so drift hits both alike
                        row["before"].append(measure(before, loop, scenario, args.seconds))
                        row["after"].append(measure(ROOT, loop, scenario, args.seconds))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force",
                            str(before)], check=False)  # fmt: skip
    # Medians, and the best of each (interference only ever slows a run down, so
    # on a shared machine the best runs are the fairer comparison).
    print(f"{'scenario':<16} {'before':>8} {'after':>8} {'median':>8} {'best':>8}")
    for name, row in results.items():
        b, a = statistics.median(row["before"]), statistics.median(row["after"])
        best = max(row["after"]) / max(row["before"])
        print(f"{name:<16} {b:>8.0f} {a:>8.0f} {a / b:>7.3f}x {best:>7.3f}x")
    print(json.dumps({"ref": args.ref, "rounds": args.rounds, "results": results}))


if __name__ == "__main__":
    main()
