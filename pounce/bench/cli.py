"""``pounce bench APP [PATH ...]``: your app under Pounce and its peers, on your machine.

Each server installed in this Python (Pounce; Uvicorn, Hypercorn and Granian
where installed) is started on APP with one worker pinned to one CPU, wrk runs
pinned to another, and every server must answer each PATH with the same status
(below 400) on a kept-alive connection before it is timed. Then warm-up and
interleaved timed runs, as the repository's harness does (`pounce.bench.runner`),
and per PATH a table (req/s, p50/p99, CPU, noise, RSS) and the ratio of Pounce
to each peer. It needs Linux, wrk and two CPUs with taskset (or ``--unpinned``).
Exit status: 0 when every row ran cleanly, 1 when a server was refused, failed
or had errors, 2 for a usage error or a missing tool.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pounce.bench import machine, report, runner
from pounce.bench.report import Cell
from pounce.bench.runner import Bench, Settings
from pounce.bench.scenario import Scenario, any_success
from pounce.bench.servers import PEERS, ServerSpec, needs, pounce_help, pounce_variants, select

EXIT_OK, EXIT_ROWS, EXIT_USAGE = 0, 1, 2
IMPORT_TIMEOUT_S = 60
WRK_MISSING = (
    "pounce bench needs wrk on PATH, the HTTP load generator it times with:"
    " `apt-get install wrk` (Debian, Ubuntu), `dnf install wrk` (Fedora),"
    " `brew install wrk` (macOS), or build it from https://github.com/wg/wrk"
)
REPORTED_PACKAGES = ("pounce", "uvicorn", "httptools", "uvloop", "hypercorn", "granian", "h11")
# Without --servers: each server in the fastest configuration installed, as it is deployed.
PREFERRED: tuple[tuple[str, ...], ...] = (
    ("pounce-fast-uvloop", "pounce-fast-asyncio", "pounce-h11-asyncio"),
    ("uvicorn-httptools-uvloop", "uvicorn-httptools-asyncio", "uvicorn-h11-asyncio"),
    ("hypercorn-uvloop", "hypercorn-asyncio"),
    ("granian",),
)


class UsageError(Exception):
    """What the user asked cannot run here; the message says what to do (exit 2)."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pounce bench",
        description="Benchmark your ASGI app under Pounce and, where installed, Uvicorn, "
        "Hypercorn and Granian, side by side with wrk (docs/benchmarks.md).",
    )
    parser.add_argument("app", metavar="APP", help="the app's import string, module:attribute")
    parser.add_argument(
        "paths", metavar="PATH", nargs="*", default=["/"], help="paths to request (default: /)"
    )
    parser.add_argument("--method", default="GET", help="request method (default: GET)")
    body = parser.add_mutually_exclusive_group()
    body.add_argument("--body", help="request body, as UTF-8 text")
    body.add_argument("--body-file", type=Path, metavar="FILE", help="request body from a file")
    parser.add_argument(
        "-H",
        "--header",
        action="append",
        default=[],
        metavar="'NAME: VALUE'",
        help="a request header; repeat for more",
    )
    parser.add_argument(
        "--servers",
        help="comma-separated server keys, globs or prefixes, or 'all' (default: each "
        "installed server in its fastest configuration); --list shows them",
    )
    parser.add_argument("--connections", type=int, default=64, help="wrk -c (default: 64)")
    parser.add_argument("--duration", type=int, default=5, help="seconds per timed run (5)")
    parser.add_argument("--repeat", type=int, default=3, help="timed runs per server (3)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed seconds first (1)")
    parser.add_argument("--quick", action="store_true", help="1 s, 1 run, no warm-up")
    parser.add_argument(
        "--app-dir", default=".", help="directory to import APP from and run the servers in (.)"
    )
    parser.add_argument(
        "--unpinned",
        action="store_true",
        help="run without pinning server and wrk to separate CPUs (1-CPU machines, no "
        "taskset); the numbers are then rough",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="write the whole record here")
    parser.add_argument(
        "--logs",
        type=Path,
        metavar="DIR",
        help="where server logs and wrk scripts go (default: a new temporary directory)",
    )
    parser.add_argument("--list", action="store_true", help="list the servers found and exit")
    return parser


# --- what to run ------------------------------------------------------------------------


def parse_header(text: str) -> tuple[str, str]:
    name, sep, value = text.partition(":")
    if not sep or not name.strip() or any(c.isspace() for c in name.strip()):
        raise UsageError(f"--header {text!r}: want 'Name: value'")
    return name.strip(), value.strip()


def request_body(args: argparse.Namespace) -> bytes:
    if args.body_file is not None:
        try:
            data: bytes = args.body_file.read_bytes()
        except OSError as exc:
            raise UsageError(f"--body-file: {exc}") from exc
        return data
    return str(args.body or "").encode()


def settings_from(args: argparse.Namespace, cpus: tuple[int, int] | None) -> Settings:
    if min(args.duration, args.repeat, args.connections) < 1 or args.warmup < 0:
        raise UsageError("--duration, --repeat and --connections must be ≥ 1; --warmup ≥ 0")
    return Settings(
        duration_s=1 if args.quick else args.duration,
        repeat=1 if args.quick else args.repeat,
        warmup_s=0 if args.quick else args.warmup,
        server_cpu=cpus[0] if cpus else None,
        client_cpu=cpus[1] if cpus else None,
    )


def scenarios_from(args: argparse.Namespace) -> list[Scenario]:
    """One scenario per PATH: the same method, headers and body."""
    method = args.method.upper()
    if not method.isalpha():
        raise UsageError(f"--method {args.method!r}: want a method name such as GET or POST")
    headers = tuple(parse_header(h) for h in args.header)
    body = request_body(args)
    if body and not any(name.lower() == "content-type" for name, _ in headers):
        headers += (("Content-Type", "application/octet-stream"),)
    out = []
    for path in dict.fromkeys(args.paths):
        if not path.startswith("/") or any(c.isspace() for c in path):
            raise UsageError(f"PATH {path!r}: want an absolute path such as /items?page=2")
        out.append(
            Scenario(
                key=f"{method} {path}",
                title=f"{args.app}",
                app=args.app,
                method=method,
                path=path,
                connections=args.connections,
                headers=headers,
                body=body,
                response_size=0,  # an app's answers may vary in length: only statuses agree
                check=any_success,
            )
        )
    return out


def installed(spec: ServerSpec) -> bool:
    return all(importlib.util.find_spec(module) is not None for module in needs(spec))


def servers_from(python: Path, pattern: str | None) -> tuple[list[ServerSpec], list[str]]:
    """The servers to run and, for those asked for but not installed, what to install."""
    known = pounce_variants(pounce_help(python)) + PEERS
    here = tuple(spec for spec in known if installed(spec))
    patterns = [p.strip() for p in (pattern or "").split(",") if p.strip()]
    if patterns == ["all"]:
        chosen, wanted = list(here), known
    elif patterns:
        chosen, wanted = list(select(here, patterns)), select(known, patterns)
    else:  # the fastest of each family; a hint only where that one is missing
        chosen = [spec for keys in PREFERRED for spec in _first(here, keys)]
        wanted = tuple(spec for spec in known if spec.key in {keys[0] for keys in PREFERRED})
    missing = sorted({_install_hint(s) for s in wanted if not installed(s)} - {""})
    return chosen, missing


def _first(specs: Sequence[ServerSpec], keys: Sequence[str]) -> list[ServerSpec]:
    by_key = {spec.key: spec for spec in specs}
    return next(([by_key[k]] for k in keys if k in by_key), [])


def _install_hint(spec: ServerSpec) -> str:
    absent = [m for m in needs(spec) if importlib.util.find_spec(m) is None]
    return f"{spec.key} (pip install {' '.join(absent)})" if absent else ""


def check_import(python: Path, app: str, app_dir: Path) -> None:
    """Import APP once in a child, as the servers will, to fail early and clearly."""
    code = "import sys; from pounce.importer import import_app; import_app(sys.argv[1])"
    done = subprocess.run(
        [str(python), "-c", code, app],
        cwd=app_dir,
        env=server_env(app_dir),
        capture_output=True,
        text=True,
        timeout=IMPORT_TIMEOUT_S,
        check=False,
    )
    if done.returncode != 0:
        tail = "\n".join(done.stderr.strip().splitlines()[-6:])
        raise UsageError(f"cannot import {app!r} from {app_dir}:\n{tail}")


def server_env(app_dir: Path) -> dict[str, str]:
    """This environment, with the app directory first on PYTHONPATH for every server."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(app_dir), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def pinning(unpinned: bool) -> tuple[int, int] | None:
    """The (server, wrk) CPUs; without two CPUs and taskset, refuse unless --unpinned."""
    cpus = machine.pick_cpus()
    if cpus is not None and not unpinned:
        return cpus
    if not unpinned:
        count = len(os.sched_getaffinity(0))
        why = (
            f"this process may use {count} CPU"
            if count < 2
            else "taskset (util-linux) is not on PATH"
        )
        raise UsageError(
            f"pounce bench pins the server and wrk to two different CPUs, and {why}."
            " Pass --unpinned to run anyway: server and wrk then share cores and the"
            " numbers are rough."
        )
    return None


# --- running ------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return run(args)
    except UsageError as exc:
        print(f"pounce bench: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130


def run(args: argparse.Namespace) -> int:
    python = Path(sys.executable)
    app_dir = Path(args.app_dir).resolve()
    if args.list:
        return list_servers(python, args.servers)
    scenarios = scenarios_from(args)
    if sys.platform != "linux":
        raise UsageError("pounce bench reads /proc and pins with taskset: Linux only")
    if shutil.which("wrk") is None:
        raise UsageError(WRK_MISSING)
    specs, missing = servers_from(python, args.servers)
    if not specs:
        raise UsageError(f"--servers {args.servers} matched no installed server; see --list")
    settings = settings_from(args, pinning(args.unpinned))
    check_import(python, args.app, app_dir)
    for hint in missing:
        print(f"not installed, skipped: {hint}")
    work = args.logs or Path(tempfile.mkdtemp(prefix="pounce-bench-"))
    bench = Bench(python, settings, app_dir, server_env(app_dir), work / "logs", work / "lua")
    return _run_all(bench, specs, scenarios, args.json)


def list_servers(python: Path, pattern: str | None) -> int:
    specs, missing = servers_from(python, pattern)
    for spec in specs:
        print(f"{spec.key:<28} {spec.label}")
    for hint in missing:
        print(f"not installed: {hint}")
    return EXIT_OK


def _run_all(
    bench: Bench, specs: Sequence[ServerSpec], scenarios: Sequence[Scenario], out: Path | None
) -> int:
    settings = bench.settings
    started = dt.datetime.now(dt.UTC)
    info = machine.machine_info(bench.python, REPORTED_PACKAGES)
    print(machine.describe(info))
    print(f"servers: {', '.join(spec.label for spec in specs)}", flush=True)
    if settings.server_cpu is None:
        print("UNPINNED: server and wrk share CPUs; treat the ratios as rough", flush=True)
    runner.warn_if_busy(info["cpu_busy_before_start"])
    if settings.client_cpu is not None:
        os.sched_setaffinity(0, {settings.client_cpu})  # the checks stay off the server's CPU
    runner.exit_on_sigterm()
    cells: list[Cell] = []
    try:
        for scenario in scenarios:
            cells += runner.run_scenario(bench, scenario, specs)
    finally:
        _summary(bench, cells, scenarios)
        if out is not None:
            report.write_json(out, _document(bench, info, specs, scenarios, cells, started))
            print(f"JSON: {out}")
        print(f"server logs and wrk scripts: {bench.logs.parent}")
    return EXIT_ROWS if any(cell.flagged or cell.refused for cell in cells) else EXIT_OK


def _summary(bench: Bench, cells: Sequence[Cell], scenarios: Sequence[Scenario]) -> None:
    settings = bench.settings
    where = (
        f"server on CPU {settings.server_cpu}, wrk on CPU {settings.client_cpu}"
        if settings.server_cpu is not None
        else "UNPINNED"
    )
    print("\n" + "=" * 78)
    print(f"Medians of {settings.repeat} × {settings.duration_s}s wrk runs ({where})")
    runner.print_tables(cells, scenarios)
    runner.print_notes(cells)


def _document(
    bench: Bench,
    info: dict[str, Any],
    specs: Sequence[ServerSpec],
    scenarios: Sequence[Scenario],
    cells: Sequence[Cell],
    started: dt.datetime,
) -> dict[str, Any]:
    settings = bench.settings
    return {
        "started": started.isoformat(timespec="seconds"),
        "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "settings": {
            "duration_s": settings.duration_s,
            "repeat": settings.repeat,
            "warmup_s": settings.warmup_s,
            "server_cpu": settings.server_cpu,
            "client_cpu": settings.client_cpu,
        },
        "machine": info,
        "servers": [
            {"key": s.key, "label": s.label, "argv": s.argv(bench.python, 0, "{app}")[2:]}
            for s in specs
        ],
        "scenarios": [
            {"key": s.key, "app": s.app, "method": s.method, "path": s.path} for s in scenarios
        ],
        "throughput": [cell.as_json() for cell in cells],
        "ratios": report.ratio_rows(cells),
        "load_average_at_end": machine.load_average(),
    }
