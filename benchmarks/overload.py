"""The overload scenario: ten times a server's capacity, and what each server does with it.

For each server, one worker pinned to the first CPU (this load generator
pinned to the second), three phases against an app with a fixed service
time (``/work``: 10 ms of ``await asyncio.sleep``; ``--service cpu``:
``/cpu``, a fixed amount of CPU work):

1. **unloaded** — half the capacity's concurrency (``limit / 2`` clients)
   for `--duration` s: the 2xx p99 to compare against, and the 2xx
   throughput that counts as "full" in phase 3;
2. **overload** — ``factor × limit`` clients, each paced to one request per
   ``limit / capacity`` seconds, so the offered load is `--factor` (10) times
   the capacity; the server's RSS is sampled every 0.2 s;
3. **recovery** — the overload clients leave at once, ``limit / 2`` clients
   return: the first 100 ms bin whose 2xx count is back to 90 % of phase 1's
   rate (reported as seconds after the overload stopped).

Capacity is ``limit / 10 ms`` for ``/work`` (what a limit of `limit`
requests in flight can finish), and ``1 / (CPU time of one /cpu)`` for
``/cpu`` (one worker, one core; the CPU time is measured here first).
Every request's outcome is counted (`harness.loadgen`): 2xx, 429, 503,
other statuses, clean closes, resets, timeouts, failed connects.

Servers: Pounce (fast, uvloop) with ``--limit-concurrency limit`` and a
waiting queue of `limit` (1 s), and shedding only (``--limit-queue 0``);
Uvicorn (httptools, uvloop) with ``--limit-concurrency limit``; Hypercorn
and Granian as they are (they have no such limit). Run it in a quiet
window (wall-clock numbers on a busy machine are noise)::

    python benchmarks/overload.py                          # /work, all servers, 10 s phases
    python benchmarks/overload.py --service cpu
    python benchmarks/overload.py --quick                  # smoke: 1 s phases
    python benchmarks/overload.py --servers pounce-queue,uvicorn --python .venv/bin/python

It prints a Markdown table (the one docs/performance.md records) and writes
``results/overload-<UTC time>.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The harness is pounce.bench from this working tree, as for benchmarks/run.py.
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

from apps import SERVICE_S, cpu_work  # noqa: E402
from harness.env import ensure_peers_venv  # noqa: E402
from harness.loadgen import OUTCOMES, Tally, run_load  # noqa: E402
from harness.servers import APP, server_env  # noqa: E402

from pounce.bench.procs import free_port, tree_rss  # noqa: E402
from pounce.bench.servers import (  # noqa: E402
    GRANIAN,
    RunningServer,
    ServerFailed,
    ServerSpec,
    _hypercorn,
    _uvicorn,
    pounce_help,
    pounce_variants,
)

RECOVERY_S = 3.0  # seconds of phase 3
RECOVERED = 0.9  # of phase 1's 2xx rate, in one 100 ms bin
RSS_EVERY_S = 0.2


@dataclasses.dataclass(frozen=True)
class Settings:
    service: str  # "work" or "cpu"
    limit: int
    factor: float
    duration: float
    timeout: float
    capacity: float  # requests per second one worker can finish
    server_cpu: int | None
    client_cpu: int | None

    @property
    def path(self) -> str:
        return f"/{self.service}"

    @property
    def pace(self) -> float:
        """Seconds between two requests of one client: `limit` clients make the capacity."""
        return self.limit / self.capacity


def servers(python: Path, limit: int, uvicorn_http: str = "httptools") -> list[ServerSpec]:
    """The overload variants of the harness's servers."""
    fast = [s for s in pounce_variants(pounce_help(python)) if s.key == "pounce-fast-uvloop"]
    found: list[ServerSpec] = []
    for spec in fast:
        n = str(limit)
        queue = ("--limit-queue", n, "--limit-queue-timeout", "1")
        found.append(
            dataclasses.replace(
                spec,
                key="pounce-queue",
                label=f"pounce (fast, uvloop), limit {limit} + queue {limit}",
                args=(*spec.args, "--limit-concurrency", n, *queue),
            )
        )
        found.append(
            dataclasses.replace(
                spec,
                key="pounce-shed",
                label=f"pounce (fast, uvloop), limit {limit}, no queue",
                args=(*spec.args, "--limit-concurrency", n),
            )
        )
    uvicorn = _uvicorn(uvicorn_http, "uvloop")
    found.append(
        dataclasses.replace(
            uvicorn,
            key="uvicorn",
            label=f"uvicorn ({uvicorn_http}, uvloop), --limit-concurrency {limit}",
            args=(*uvicorn.args, "--limit-concurrency", str(limit)),
        )
    )
    found.append(dataclasses.replace(_hypercorn("uvloop"), key="hypercorn"))
    found.append(GRANIAN)
    return found


def _pin(cpu: int | None) -> None:
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})


def _phase(settings: Settings, port: int, clients: int, duration: float) -> Tally:
    return asyncio.run(
        run_load(
            "127.0.0.1",
            port,
            path=settings.path,
            clients=clients,
            pace=settings.pace,
            duration=duration,
            timeout=settings.timeout,
        )
    )


class _RssWatch:
    """The server's process-tree RSS, sampled in a thread while a phase runs."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.peak_mib = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak_mib = max(self.peak_mib, tree_rss(self.pid).total_mib)
            self._stop.wait(RSS_EVERY_S)

    def __enter__(self) -> _RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _summary(tally: Tally, seconds: float) -> dict[str, Any]:
    p50, p99 = tally.percentile("2xx", 0.5), tally.percentile("2xx", 0.99)
    return {
        "counts": {kind: tally.counts.get(kind, 0) for kind in OUTCOMES},
        "sent_per_s": tally.sent / seconds,
        "ok_per_s": tally.counts.get("2xx", 0) / seconds,
        "p50_ms": None if p50 is None else p50 * 1000,
        "p99_ms": None if p99 is None else p99 * 1000,
    }


def _recovered_after(tally: Tally, full_rate: float) -> float | None:
    wanted = RECOVERED * full_rate * tally.bin_s
    for index in range(int(RECOVERY_S / tally.bin_s)):
        if tally.bins.get(index, 0) >= wanted:
            return index * tally.bin_s
    return None


def measure(spec: ServerSpec, python: Path, settings: Settings, logs: Path) -> dict[str, Any]:
    server = RunningServer.start(
        spec,
        python=python,
        port=free_port(),
        cpu=settings.server_cpu,
        log_dir=logs,
        app=APP,
        cwd=HERE,
        env=server_env(),
        ready_path="/hello",
    )
    try:
        quiet = max(1, settings.limit // 2)
        unloaded = _phase(settings, server.port, quiet, settings.duration)
        rss_before = tree_rss(server.pid).total_mib
        with _RssWatch(server.pid) as rss:
            overload = _phase(
                settings, server.port, int(settings.factor * settings.limit), settings.duration
            )
        recovery = _phase(settings, server.port, quiet, RECOVERY_S)
        base = _summary(unloaded, settings.duration)
        return {
            "server": spec.key,
            "label": spec.label,
            "alive": server.alive(),
            "unloaded": base,
            "overload": _summary(overload, settings.duration),
            "recovery": _summary(recovery, RECOVERY_S),
            "recovered_after_s": _recovered_after(recovery, base["ok_per_s"]),
            "rss_mib": {"before": rss_before, "peak_overload": rss.peak_mib},
        }
    finally:
        server.stop()


def _ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| server | unloaded p99 ms | overload: 2xx/s | 2xx p99 ms | 2xx | 429 | 503 "
        "| closed | reset | timeout | connect | RSS MiB before → peak | back to 90 % after |"
    )
    lines = [head, "|" + "---|" * 13]
    for row in rows:
        o = row["overload"]
        c = o["counts"]
        back = row["recovered_after_s"]
        lines.append(
            f"| {row['label']} | {_ms(row['unloaded']['p99_ms'])} | {o['ok_per_s']:,.0f} "
            f"| {_ms(o['p99_ms'])} | {c['2xx']:,} | {c['429']:,} | {c['503']:,} "
            f"| {c['closed']:,} | {c['reset']:,} | {c['timeout']:,} | {c['connect']:,} "
            f"| {row['rss_mib']['before']:.0f} → {row['rss_mib']['peak_overload']:.0f} "
            f"| {'not in 3 s' if back is None else f'{back:.1f} s'} |"
        )
    return "\n".join(lines)


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--service", choices=("work", "cpu"), default="work")
    parser.add_argument("--limit", type=int, default=20, help="requests in flight per worker")
    parser.add_argument("--factor", type=float, default=10.0, help="offered load ÷ capacity")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of phases 1 and 2")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds a request may take")
    parser.add_argument("--servers", help="comma-separated keys (default: all)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1 s phases")
    parser.add_argument("--python", type=Path, help="the servers' Python (default: peers venv)")
    parser.add_argument("--json", type=Path, help="artifact path")
    parser.add_argument(
        "--uvicorn-http", choices=("httptools", "h11"), default="httptools", help="its parser"
    )
    return parser.parse_args(argv)


def _capacity(service: str, limit: int) -> float:
    if service == "work":
        return limit / SERVICE_S
    started = time.process_time()
    for _ in range(50):
        cpu_work()
    return 50 / (time.process_time() - started)


def main(argv: Sequence[str]) -> int:
    args = parse_args(argv)
    cpus = sorted(os.sched_getaffinity(0))
    server_cpu, client_cpu = (cpus[0], cpus[1]) if len(cpus) > 1 else (None, None)
    settings = Settings(
        service=args.service,
        limit=args.limit,
        factor=args.factor,
        duration=1.0 if args.quick else args.duration,
        timeout=args.timeout,
        capacity=_capacity(args.service, args.limit),
        server_cpu=server_cpu,
        client_cpu=client_cpu,
    )
    python = args.python or ensure_peers_venv(reinstall=False)
    wanted = set(args.servers.split(",")) if args.servers else None
    every = servers(python, args.limit, args.uvicorn_http)
    chosen = [s for s in every if wanted is None or s.key in wanted]
    _pin(client_cpu)
    print(
        f"{settings.path}: capacity {settings.capacity:,.0f} req/s per worker, "
        f"overload {settings.factor:g}× = {int(settings.factor * settings.limit)} clients "
        f"paced at {settings.pace * 1000:.1f} ms",
        flush=True,
    )
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    logs = HERE / "results" / "logs" / f"overload-{stamp}"
    rows = []
    for spec in chosen:
        print(f"  {spec.label} …", flush=True)
        try:
            rows.append(measure(spec, python, settings, logs))
        except ServerFailed as exc:
            print(f"  {spec.label}: did not start: {exc}", flush=True)
    print(table(rows))
    out = args.json or HERE / "results" / f"overload-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    document = {"settings": dataclasses.asdict(settings), "rows": rows}
    out.write_text(json.dumps(document, indent=2))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
