"""Static files and compression: Pounce against nginx and Starlette (StaticFiles, GZipMiddleware)
under Uvicorn, side by side, with wrk — the harness of run.py (pinned processes, wrk's
own counters, a correctness check before anything is timed).

Scenarios (benchmarks/static_apps.py makes the files)::

    static-1k     GET /s/small.bin          1 KiB file
    static-10m    GET /s/large.bin          10 MiB file (MiB/s is the figure)
    html          GET /s/page.html          100 KiB HTML, compressed on the way (no sibling)
    json          GET /api.json             20 KiB JSON from the app
                                            (nginx: the same bytes from a file)
    sse           GET /events               100 server-sent events of ~85 B, each its own
                                            body message (nginx: not applicable, no app)

The last three are asked for with ``Accept-Encoding: <the server's coding>``.

Servers: ``pounce`` (its static and compression layers, gzip; asyncio loop, so files go
by sendfile), ``pounce-br`` and ``pounce-zstd`` (the same server offering br, zstd and
gzip, asked for br or zstd: the compressed scenarios only), ``pounce-uvloop`` (gzip on
uvloop: no sendfile, chunked reads), ``nginx`` (``sendfile on``, ``gzip on``, one
worker), ``uvicorn-starlette`` (httptools, uvloop, GZipMiddleware). gzip is level 6
everywhere, brotli quality 4 and zstd level 3 (Pounce's defaults), above 500 bytes.
One server process pinned to CPU 0, wrk on CPU 1. Run it on a quiet machine::

    python benchmarks/static_bench.py          # ~13 min: every server and scenario, 3 rounds
    python benchmarks/static_bench.py --duration 1 --rounds 1   # smoke run
    python benchmarks/static_bench.py --servers pounce,pounce-br,pounce-zstd --scenarios html

It uses the peers' virtual environment of run.py (``benchmarks/.peers-venv``, made on
the first run) unless ``--python`` names another interpreter that has Pounce, Uvicorn
and Starlette.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
# The harness is pounce.bench from this working tree, as for benchmarks/run.py.
if str(HERE.parent) not in sys.path:
    sys.path.insert(1, str(HERE.parent))

import static_apps  # noqa: E402
from codings import decode  # noqa: E402
from harness.env import BENCH_DIR, REPORTED_PACKAGES, ensure_peers_venv  # noqa: E402

from pounce.bench.machine import package_versions  # noqa: E402
from pounce.bench.procs import Process, free_port, pinned, wait_until  # noqa: E402
from pounce.bench.wrk import run_wrk, wrk_command  # noqa: E402

SERVER_CPU, CLIENT_CPU = 0, 1
READY_TIMEOUT_S = 30.0
RESULTS = BENCH_DIR / "results"


@dataclass(frozen=True)
class Scenario:
    key: str
    path: str
    compressed: bool
    body: bytes
    connections: int


SCENARIOS = (
    Scenario("static-1k", "/s/small.bin", False, static_apps.SMALL, 64),
    Scenario("static-10m", "/s/large.bin", False, static_apps.LARGE, 8),
    Scenario("html", "/s/page.html", True, static_apps.PAGE, 64),
    Scenario("json", "/api.json", True, static_apps.API, 64),
    Scenario("sse", "/events", True, static_apps.STREAM, 64),
)
# The coding each server is asked for; gzip unless named here.
CODING = {"pounce-br": "br", "pounce-zstd": "zstd"}
# Cells that do not exist, and why (printed, left out of the artifact).
NOT_APPLICABLE = {("nginx", "sse"): "nginx has no app to stream from"}


def coding_of(key: str) -> str:
    return CODING.get(key, "gzip")


def skipped(key: str, scenario: Scenario) -> str | None:
    """Why server `key` does not run `scenario`, or None when it does."""
    if key in CODING and not scenario.compressed:
        return "the same server as pounce: only the compressed scenarios"
    return NOT_APPLICABLE.get((key, scenario.key))


NGINX_CONF = """
worker_processes 1;
daemon off;
master_process off;
pid {run}/nginx.pid;
error_log {run}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_timeout 600;
    keepalive_requests 100000000;
    types {{ text/html html; application/json json; application/octet-stream bin; }}
    gzip on;
    gzip_comp_level {level};
    gzip_min_length {minimum};
    gzip_types application/json;
    gzip_vary on;
    client_body_temp_path {run}/body;
    proxy_temp_path {run}/proxy;
    fastcgi_temp_path {run}/fastcgi;
    uwsgi_temp_path {run}/uwsgi;
    scgi_temp_path {run}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location /s/ {{ alias {site}/; }}
        location = /api.json {{ root {site}; }}
    }}
}}
"""


def server_argv(key: str, python: Path, port: int, site: Path, run: Path, http: str) -> list[str]:
    """The command line of server `key` on `port`; `http`: Uvicorn's parser."""
    if key == "nginx":
        conf = run / "nginx.conf"
        text = NGINX_CONF.format(
            run=run,
            port=port,
            site=site,
            level=static_apps.GZIP_LEVEL,
            minimum=static_apps.MINIMUM_SIZE,
        )
        conf.write_text(text)
        nginx = shutil.which("nginx") or "nginx"
        return [nginx, "-p", str(run), "-e", str(run / "error.log"), "-c", str(conf)]
    listen = ["--host", "127.0.0.1", "--port", str(port), "--timeout-keep-alive", "600"]
    if key == "uvicorn-starlette":
        app = [str(python), "-m", "uvicorn", "static_apps:starlette_app"]
        quiet = ["--no-access-log", "--log-level", "warning"]
        return [*app, *listen, "--http", http, "--loop", "uvloop", *quiet]
    loop = "uvloop" if key == "pounce-uvloop" else "asyncio"
    offered = "br,zstd,gzip" if key in CODING else "gzip"
    layers = ["--static", f"/s={site}", "--compression", "--compression-algorithms", offered]
    layers += ["--compression-gzip-level", str(static_apps.GZIP_LEVEL)]
    layers += ["--compression-brotli-level", str(static_apps.BROTLI_LEVEL)]
    layers += ["--compression-zstd-level", str(static_apps.ZSTD_LEVEL)]
    layers += ["--compression-event-stream"]
    layers += ["--compression-minimum-size", str(static_apps.MINIMUM_SIZE)]
    app = [str(python), "-m", "pounce", "static_apps:app"]
    return [*app, *listen, "--loop", loop, *layers, "--no-access-log"]


SERVERS = ("pounce", "pounce-br", "pounce-zstd", "pounce-uvloop", "nginx", "uvicorn-starlette")


def fetch(port: int, scenario: Scenario, coding: str) -> tuple[int, bytes, dict[str, str]]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        headers = {"accept-encoding": coding} if scenario.compressed else {}
        conn.request("GET", scenario.path, headers=headers)
        response = conn.getresponse()
        return response.status, response.read(), {k.lower(): v for k, v in response.getheaders()}
    finally:
        conn.close()


def check(port: int, scenario: Scenario, coding: str) -> int:
    """The answer must be right before it is timed: encoded with `coding` when compressed,
    decoding to the exact body. Returns its size on the wire (the body, chunked framing
    left out)."""
    status, raw, headers = fetch(port, scenario, coding)
    sent = headers.get("content-encoding", "identity")
    body = decode(sent, raw)
    if status != 200 or body != scenario.body:
        raise SystemExit(f"{scenario.key}: status {status}, {len(body)} bytes: wrong answer")
    if scenario.compressed and sent != coding:
        raise SystemExit(f"{scenario.key}: asked for {coding}, got {sent}")
    return len(raw)


def lua(directory: Path, scenario: Scenario, coding: str) -> Path:
    from pounce.bench.scenario import _DONE_LUA

    path = directory / f"static-{scenario.key}-{coding}.lua"
    header = f'wrk.headers["Accept-Encoding"] = "{coding}"\n' if scenario.compressed else ""
    path.write_text(f'wrk.method = "GET"\nwrk.path = "{scenario.path}"\n{header}{_DONE_LUA}')
    return path


def measure(
    key: str, python: Path, site: Path, scenarios: list[Scenario], args: argparse.Namespace
) -> dict[str, Any]:
    port = free_port()
    with tempfile.TemporaryDirectory(prefix=f"static-bench-{key}-") as tmp:
        run = Path(tmp)
        env = {"PYTHONPATH": str(HERE), "BENCH_SITE": str(site), "PATH": "/usr/bin:/bin"}
        command = server_argv(key, python, port, site, run, args.uvicorn_http)
        argv = pinned(SERVER_CPU, command)
        process = Process.start(argv, cwd=HERE, env=env, log_path=run / "server.log")
        try:
            probe = Scenario("probe", "/s/small.bin", False, static_apps.SMALL, 1)
            up = wait_until(lambda: not process.alive() or _answers(port, probe), READY_TIMEOUT_S)
            if not up or not process.alive():
                raise SystemExit(f"{key} did not start:\n{process.log_tail()}")
            results: dict[str, Any] = {}
            coding = coding_of(key)
            for scenario in scenarios:
                why = skipped(key, scenario)
                if why is not None:
                    print(f"  {key:18} {scenario.key:10} not run: {why}", flush=True)
                    continue
                wire = check(port, scenario, coding)
                rounds = []
                for _ in range(args.rounds):
                    url = f"http://127.0.0.1:{port}{scenario.path}"
                    cmd = wrk_command(
                        url=url,
                        lua=lua(run, scenario, coding),
                        connections=scenario.connections,
                        duration_s=args.duration,
                        cpu=CLIENT_CPU,
                    )
                    rounds.append(run_wrk(cmd, args.duration)[0])
                rps = statistics.median(r.rps for r in rounds)
                mibs = statistics.median(r.bytes_read / r.duration_s / 2**20 for r in rounds)
                errors = sum(r.error_count for r in rounds)
                results[scenario.key] = {
                    "coding": coding if scenario.compressed else "identity",
                    "rps": rps,
                    "mib_s": mibs,
                    "wire_bytes": wire,
                    "saved": 1 - wire / len(scenario.body),
                    "p99_ms": statistics.median(r.p99_ms for r in rounds),
                    "errors": errors,
                }
                shown = results[scenario.key]
                print(
                    f"  {key:18} {scenario.key:10} {shown['coding']:8} {rps:10,.0f} req/s "
                    f"{mibs:9,.1f} MiB/s "
                    f"{wire:9} B on the wire ({shown['saved']:.0%} saved) errors {errors}",
                    flush=True,
                )
            return results
        finally:
            process.stop()


def _answers(port: int, probe: Scenario) -> bool:
    try:
        return fetch(port, probe, "identity")[0] == 200
    except (OSError, http.client.HTTPException):
        return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--servers", default=",".join(SERVERS))
    parser.add_argument("--scenarios", default=",".join(s.key for s in SCENARIOS))
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per cell (median)")
    parser.add_argument("--python", type=Path, help="interpreter with pounce, uvicorn, starlette")
    parser.add_argument("--uvicorn-http", default="httptools", help="Uvicorn's parser")
    args = parser.parse_args()
    python = args.python or ensure_peers_venv(reinstall=False)
    wanted = args.scenarios.split(",")
    scenarios = [s for s in SCENARIOS if s.key in wanted]
    with tempfile.TemporaryDirectory(prefix="static-bench-site-") as tmp:
        site = Path(tmp) / "site"
        static_apps.make_site(site)
        Path(tmp).chmod(0o755)  # nginx's worker may read as another user
        results = {}
        for key in args.servers.split(","):
            if key == "nginx" and shutil.which("nginx") is None:
                print("  nginx is not installed: skipped", flush=True)
                continue
            results[key] = measure(key, python, site, scenarios, args)
    RESULTS.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = RESULTS / f"static-{stamp}.json"
    artifact = {
        "duration_s": args.duration,
        "rounds": args.rounds,
        "versions": package_versions(python, REPORTED_PACKAGES),
        "results": results,
    }
    out.write_text(json.dumps(artifact, indent=2))
    print(f"wrote {out.relative_to(BENCH_DIR.parent)}")


if __name__ == "__main__":
    main()
