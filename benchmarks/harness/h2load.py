"""HTTP/2 scenarios: ``h2load`` (Debian ``nghttp2-client``) against Pounce and its HTTP/2 peers.

Two scenarios: ``h2-hello``, where ``h2load -c16 -m10`` (16 connections, 10
streams each) GETs the hello app, and ``h2-1mib``, the same load downloading
1 MiB per request (``/1m``; req/s is then MiB/s), over cleartext HTTP/2 with
prior knowledge, for each server that speaks it: Pounce (``--http2`` is on when h2 is installed),
Hypercorn (the same h2 library) and Granian with ``--http 2``. Ratios are
printed against Hypercorn. Without h2load the scenario is skipped with a
message, never failed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, replace

from pounce.bench.servers import ServerSpec

H2_HELLO = "h2-hello"
H2_1MIB = "h2-1mib"
PATHS = {H2_HELLO: "/hello", H2_1MIB: "/1m"}  # scenario -> the path h2load GETs
CONNECTIONS = 16
STREAMS = 10  # concurrent streams per connection (-m)
PATH = PATHS[H2_HELLO]
_SUMMARY = re.compile(r"finished in [\d.]+\w+, ([\d.]+) req/s")
_STATUS = re.compile(r"status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx")
_REQUESTS = re.compile(r"requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded")


@dataclass(frozen=True, slots=True)
class H2Result:
    rps: float
    succeeded: int
    non_2xx: int


class H2LoadFailed(Exception):
    """h2load did not run, or its output did not parse."""


def available() -> bool:
    return shutil.which("h2load") is not None


def missing_message(key: str = H2_HELLO) -> str:
    hint = "Debian/Ubuntu: apt-get install nghttp2-client"
    return f"{key}: skipped, h2load is not on PATH ({hint})"


def h2_specs(specs: list[ServerSpec] | tuple[ServerSpec, ...]) -> list[ServerSpec]:
    """The servers of this run that speak cleartext HTTP/2, with the flags that turn it on."""
    out: list[ServerSpec] = []
    for spec in specs:
        if spec.key == "pounce-minimal-fast-uvloop":
            continue  # the minimal builder stack serves HTTP/1.1 only
        if spec.family == "pounce" and spec.http == "fast":
            out.append(spec)  # HTTP/2 by prior knowledge is on with pounce[h2]
        elif spec.family == "hypercorn":
            out.append(spec)  # h2c by prior knowledge is always on
        elif spec.family == "granian":
            # "auto" serves HTTP/1.1 and HTTP/2 by prior knowledge: the harness's
            # readiness check speaks HTTP/1.1, which "--http 2" would not answer.
            out.append(replace(spec, args=(*spec.args, "--http", "auto")))
    return out


def command(port: int, duration_s: int, cpu: int | None, path: str = PATH) -> list[str]:
    argv = [
        "h2load",
        f"-c{CONNECTIONS}",
        f"-m{STREAMS}",
        "-D",
        str(duration_s),
        f"http://127.0.0.1:{port}{path}",
    ]
    return (["taskset", "-c", str(cpu)] if cpu is not None else []) + argv


def run(port: int, duration_s: int, cpu: int | None, path: str = PATH) -> H2Result:
    argv = command(port, duration_s, cpu, path)
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise H2LoadFailed(f"h2load ran past {duration_s + 30} s") from exc
    return parse(done.stdout + done.stderr)


def parse(output: str) -> H2Result:
    summary, status, requests = (p.search(output) for p in (_SUMMARY, _STATUS, _REQUESTS))
    if summary is None or status is None or requests is None:
        raise H2LoadFailed("unreadable h2load output:\n" + output[-2000:])
    non_2xx = sum(int(n) for n in status.groups()[1:])
    return H2Result(float(summary.group(1)), int(requests.group(4)), non_2xx)
