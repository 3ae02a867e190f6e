"""Where a server's CPU goes, thread by thread, under the harness's load.

Starts each server as the harness does (`dev.py bench`: the same command line,
pinned with ``taskset`` to the server CPU, wrk on the other), runs one wrk load
of a scenario, and reads every thread of the server's process tree from
``/proc`` before and after: its CPU time and its context switches. It prints,
per thread, the share of a core it used and its voluntary and involuntary
context switches per request::

    python threads.py --servers granian,pounce-fast-uvloop --scenarios hello,starlette-hello
    python threads.py --servers granian --server-cpus 0-1   # a side row: both cores
    python threads.py --gc --scenarios hello,fastapi-hello  # garbage collections per request

It answers a question the req/s table cannot: does a server run work on more
than one thread, and does it hand each request between threads (a context
switch per request on one core)? The shares and the switches per request are
counts, not timings; the req/s it prints are as noisy as the machine.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

from harness.env import PEERS_PY  # noqa: E402
from harness.scenarios import SCENARIOS  # noqa: E402
from harness.servers import all_servers, server_env  # noqa: E402

from pounce.bench.procs import free_port, process_tree  # noqa: E402
from pounce.bench.servers import RunningServer, ServerSpec  # noqa: E402
from pounce.bench.wrk import run_wrk, wrk_command  # noqa: E402

TICKS = os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class ThreadSample:
    name: str
    user: int  # utime, clock ticks
    system: int  # stime: the kernel's work for the thread (syscalls, the network stack)
    faults: int  # minor page faults: memory the kernel mapped in on first touch
    voluntary: int  # context switches: the thread waited (a futex, epoll)
    involuntary: int  # context switches: the thread was preempted


def sample(pid: int) -> dict[int, ThreadSample]:
    """Every thread of `pid`'s process tree, by thread id."""
    out: dict[int, ThreadSample] = {}
    for proc in process_tree(pid):
        try:
            tids = os.listdir(f"/proc/{proc}/task")
        except OSError:
            continue
        for tid in tids:
            base = f"/proc/{proc}/task/{tid}"
            try:
                stat = Path(f"{base}/stat").read_text()
                status = Path(f"{base}/status").read_text()
            except OSError:
                continue
            name = stat[stat.index("(") + 1 : stat.rindex(")")]
            fields = stat[stat.rindex(")") + 2 :].split()
            switches = {
                key: int(value)
                for key, _, value in (line.partition(":\t") for line in status.splitlines())
                if key in ("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")
            }
            out[int(tid)] = ThreadSample(
                f"{name} ({proc})",
                int(fields[11]),
                int(fields[12]),
                int(fields[7]),
                switches.get("voluntary_ctxt_switches", 0),
                switches.get("nonvoluntary_ctxt_switches", 0),
            )
    return out


def probe(
    spec: ServerSpec,
    scenario_key: str,
    seconds: int,
    server_cpus: str,
    client_cpu: str,
    python: Path,
    count_gc: bool = False,
    connections: int | None = None,
) -> None:
    scenario = next(s for s in SCENARIOS if s.key == scenario_key)
    if connections is not None:
        scenario = dataclasses.replace(scenario, connections=connections)
    env = server_env()
    app = scenario.app
    if count_gc:
        env["GC_WRAP_APP"], app = app, "gc_wrap:app"
    with tempfile.TemporaryDirectory() as tmp:
        lua = scenario.write_lua(Path(tmp))
        server = RunningServer.start(
            spec,
            python=python,
            port=free_port(),
            cpu=server_cpus,
            log_dir=Path(tmp),
            app=app,
            cwd=HERE,
            env=env,
            ready_path=scenario.path,
        )
        try:
            url = f"http://127.0.0.1:{server.port}{scenario.path}"

            def argv(duration: int) -> list[str]:
                return wrk_command(
                    url=url,
                    lua=lua,
                    connections=scenario.connections,
                    duration_s=duration,
                    cpu=client_cpu,
                    threads=scenario.wrk_threads,
                )

            run_wrk(argv(1), 1)  # warm-up
            workers = _workers(server.pid) if count_gc else []
            _signal(workers)
            before, began = sample(server.pid), time.monotonic()
            result, _ = run_wrk(argv(seconds), seconds)
            after, wall = sample(server.pid), time.monotonic() - began
            _signal(workers)
            time.sleep(0.3)  # the line is written between two requests of its loop
        finally:
            server.stop()
        gc_lines = [
            line
            for line in (Path(tmp) / f"{spec.key}.log").read_text(errors="replace").splitlines()
            if line.startswith("GC_WRAP")
        ]
    requests = max(result.requests, 1)
    print(
        f"\n{spec.label}, {scenario_key} (-c{scenario.connections}), server CPUs {server_cpus}: "
        f"{result.rps:,.0f} req/s (noisy), {len(after)} threads"
    )
    print(
        f"  {'thread':<36} {'core share':>10} {'user us/req':>12} {'sys us/req':>11} "
        f"{'faults/req':>10} {'vol. sw/req':>12} {'invol. sw/req':>14}"
    )
    total = user_total = system_total = 0.0
    for tid, now in sorted(after.items()):
        then = before.get(tid, ThreadSample(now.name, 0, 0, 0, 0, 0))
        user = (now.user - then.user) / TICKS
        system = (now.system - then.system) / TICKS
        share = (user + system) / wall
        total += share
        user_total += user
        system_total += system
        print(
            f"  {now.name[:36]:<36} {share:>10.0%} {user * 1e6 / requests:>12.2f} "
            f"{system * 1e6 / requests:>11.2f} {(now.faults - then.faults) / requests:>10.3f} "
            f"{(now.voluntary - then.voluntary) / requests:>12.3f} "
            f"{(now.involuntary - then.involuntary) / requests:>14.3f}"
        )
    print(
        f"  {'all threads':<36} {total:>10.0%} {user_total * 1e6 / requests:>12.2f} "
        f"{system_total * 1e6 / requests:>11.2f}"
    )
    if gc_lines:
        print(f"  collections during the run (generation=count/CPU): {gc_lines[-1]}")
        _per_request(gc_lines[-1])


def _workers(pid: int) -> list[int]:
    """The processes of the tree that serve (the leaves): a supervisor is left alone."""
    tree = process_tree(pid)
    return [p for p in tree if not any(c != p for c in process_tree(p))]


def _signal(pids: list[int]) -> None:
    for pid in pids:
        os.kill(pid, signal.SIGUSR1)


def _per_request(line: str) -> None:
    fields = dict(field.split("=", 1) for field in line.split()[1:])
    requests = max(int(fields["requests"]), 1)
    for generation in ("gen0", "gen1", "gen2"):
        count, cpu = fields[generation].rstrip("us").split("/")
        print(
            f"    {generation}: {int(count) / requests * 1000:.2f} per 1,000 requests, "
            f"{int(cpu) * 1000 / requests:.0f} ns of CPU per request"
        )


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default="granian,pounce-fast-uvloop")
    parser.add_argument("--scenarios", default="hello,starlette-hello")
    parser.add_argument("--duration", type=int, default=4, help="seconds of the measured run")
    parser.add_argument("--server-cpus", default="0", help="taskset list for the server")
    parser.add_argument("--client-cpu", default="1", help="taskset list for wrk")
    parser.add_argument(
        "--python",
        type=Path,
        default=PEERS_PY if PEERS_PY.exists() else Path(sys.executable),
        help="the servers' interpreter (default: the harness's benchmarks/.peers-venv)",
    )
    parser.add_argument(
        "--gc",
        action="store_true",
        help="serve the app through gc_wrap.py and print the collections per request",
    )
    parser.add_argument(
        "--connections", type=int, help="wrk's connections (default: the scenario's, 64)"
    )
    args = parser.parse_args(argv)
    python = args.python
    specs = {spec.key: spec for spec in all_servers(python)}
    for key in args.servers.split(","):
        for scenario in args.scenarios.split(","):
            probe(
                specs[key],
                scenario,
                args.duration,
                args.server_cpus,
                args.client_cpu,
                python,
                args.gc,
                args.connections,
            )


if __name__ == "__main__":
    main()
