"""The servers under test: how each is started, and Pounce's variants found from its CLI.

Every server gets the same settings where it has them (one worker, access log
off, log level warning, backlog 2048, a 600 s keep-alive timeout) and is started
pinned, in its own process group, on the app import string the scenario names.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import http.client
import re
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from pounce.bench.procs import Process, pinned, wait_until

HOST = "127.0.0.1"
IDLE_TIMEOUT_S = "600"  # keep-alive timeout where a server has one: idle connections must stay
BACKLOG = "2048"
# Granian admits at most backlog/workers (2048) connections at once by default, so the
# other idle keep-alive connections of the memory reading would wait unaccepted.
GRANIAN_BACKPRESSURE = "32768"
READY_TIMEOUT_S = 60.0
HELP_TIMEOUT_S = 60


class ServerFailed(Exception):
    """The server did not start, or died."""


@dataclass(frozen=True, slots=True)
class ServerSpec:
    key: str  # what --servers matches: "uvicorn-httptools-uvloop"
    label: str  # what tables show: "uvicorn (httptools, uvloop)"
    family: str  # "pounce", "uvicorn", "hypercorn", "granian"
    http: str  # the HTTP/1.1 parser: "h11", "fast", "httptools", "hyper"
    loop: str  # the event loop: "asyncio", "uvloop"
    args: tuple[str, ...]  # after `python -m`; "{port}" and "{app}" are replaced

    @property
    def is_pounce(self) -> bool:
        return self.family == "pounce"

    def argv(self, python: Path, port: int, app: str) -> list[str]:
        """The command line serving `app` (an import string) on `port`."""
        args = (arg.replace("{port}", str(port)).replace("{app}", app) for arg in self.args)
        return [str(python), "-m", *args]


def with_workers(spec: ServerSpec, workers: int) -> ServerSpec:
    """`spec` serving with `workers` workers (each server's own ``--workers``)."""
    if workers == 1:
        return spec
    args = list(spec.args)
    if "--workers" in args:  # granian, hypercorn: "--workers 1" already there
        args[args.index("--workers") + 1] = str(workers)
    else:
        args += ["--workers", str(workers)]
    return dataclasses.replace(
        spec, key=f"{spec.key}-w{workers}", label=f"{spec.label} ×{workers}", args=tuple(args)
    )


def _uvicorn(parser: str, loop: str) -> ServerSpec:
    return ServerSpec(
        key=f"uvicorn-{parser}-{loop}",
        label=f"uvicorn ({parser}, {loop})",
        family="uvicorn",
        http=parser,
        loop=loop,
        args=(
            "uvicorn",
            "{app}",
            "--host",
            HOST,
            "--port",
            "{port}",
            "--http",
            parser,
            "--loop",
            loop,
            "--no-access-log",
            "--log-level",
            "warning",
            "--timeout-keep-alive",
            IDLE_TIMEOUT_S,
            "--backlog",
            BACKLOG,
        ),
    )


def _hypercorn(loop: str) -> ServerSpec:
    return ServerSpec(
        key=f"hypercorn-{loop}",
        label=f"hypercorn (h11, {loop})",
        family="hypercorn",
        http="h11",
        loop=loop,
        args=(
            "hypercorn",
            "{app}",
            "--bind",
            f"{HOST}:{{port}}",
            "--worker-class",
            loop,
            "--workers",
            "1",
            "--log-level",
            "warning",
            "--keep-alive",
            IDLE_TIMEOUT_S,
            "--backlog",
            BACKLOG,
        ),
    )


GRANIAN = ServerSpec(
    key="granian",
    label="granian (asgi, uvloop)",
    family="granian",
    http="hyper",
    loop="uvloop",
    args=(
        "granian",
        "{app}",
        "--interface",
        "asgi",
        "--host",
        HOST,
        "--port",
        "{port}",
        "--workers",
        "1",
        "--loop",
        "uvloop",
        "--no-access-log",
        "--log-level",
        "warning",
        "--backlog",
        BACKLOG,
        "--http1-header-read-timeout",
        "60000",  # its longest; it also bounds how long a keep-alive connection may idle
        "--backpressure",
        GRANIAN_BACKPRESSURE,
    ),
)

PEERS: tuple[ServerSpec, ...] = (
    _uvicorn("httptools", "uvloop"),
    _uvicorn("httptools", "asyncio"),
    _uvicorn("h11", "asyncio"),
    _hypercorn("asyncio"),
    _hypercorn("uvloop"),
    GRANIAN,
)

# The Pounce variants the issue compares, (parser, loop). Those the CLI cannot select
# yet are left out: before `--http` exists h11 is the only parser, before `--loop`
# exists asyncio is the only loop.
POUNCE_WANTED: tuple[tuple[str, str], ...] = (
    ("h11", "asyncio"),
    ("fast", "asyncio"),
    ("fast", "uvloop"),
)
_POUNCE_BASE: tuple[str, ...] = (
    "pounce",
    "{app}",
    "--host",
    HOST,
    "--port",
    "{port}",
    "--no-access-log",
    "--log-level",
    "warning",
    "--timeout-keep-alive",
    IDLE_TIMEOUT_S,
    "--backlog",
    BACKLOG,
)


def flag_choices(help_text: str, flag: str) -> frozenset[str] | None:
    """The choices argparse lists for `flag` ("--http {auto,h11,fast}"), None when absent."""
    match = re.search(re.escape(flag) + r"[ =]\{([^}]*)\}", help_text)
    if match is None:
        return None
    return frozenset(choice.strip() for choice in match.group(1).split(","))


def pounce_variants(help_text: str) -> tuple[ServerSpec, ...]:
    """One ServerSpec per wanted (parser, loop) that `pounce --help` says it can select."""
    http_choices = flag_choices(help_text, "--http")
    loop_choices = flag_choices(help_text, "--loop")
    variants = []
    for parser, loop in POUNCE_WANTED:
        http_ok = parser in http_choices if http_choices is not None else parser == "h11"
        loop_ok = loop in loop_choices if loop_choices is not None else loop == "asyncio"
        if not (http_ok and loop_ok):
            continue
        extra: tuple[str, ...] = ()
        if http_choices is not None:
            extra += ("--http", parser)
        if loop_choices is not None:
            extra += ("--loop", loop)
        variants.append(
            ServerSpec(
                key=f"pounce-{parser}-{loop}",
                label=f"pounce ({parser}, {loop})",
                family="pounce",
                http=parser,
                loop=loop,
                args=_POUNCE_BASE + extra,
            )
        )
    return tuple(variants)


def pounce_help(python: Path) -> str:
    done = subprocess.run(
        [str(python), "-m", "pounce", "--help"],
        capture_output=True,
        text=True,
        check=True,
        timeout=HELP_TIMEOUT_S,
    )
    return done.stdout


# What each server family needs importable in the servers' Python, and its variants'
# extra needs (the parser and the loop).
_NEEDS: dict[str, tuple[str, ...]] = {
    "pounce": ("pounce",),
    "uvicorn": ("uvicorn",),
    "hypercorn": ("hypercorn",),
    "granian": ("granian",),
    "httptools": ("httptools",),
    "uvloop": ("uvloop",),
}


def needs(spec: ServerSpec) -> tuple[str, ...]:
    """The modules `spec` imports to run: its server, its parser and its loop."""
    return tuple(m for part in (spec.family, spec.http, spec.loop) for m in _NEEDS.get(part, ()))


def select(servers: tuple[ServerSpec, ...], patterns: list[str] | None) -> tuple[ServerSpec, ...]:
    """Servers whose key matches a pattern: a glob, or a prefix ("uvicorn" = all Uvicorns)."""
    if not patterns:
        return servers
    return tuple(
        spec
        for spec in servers
        if any(fnmatch.fnmatch(spec.key, p) or spec.key.startswith(p) for p in patterns)
    )


def _answers(port: int, path: str) -> bool:
    """The server answers a GET of `path` with any HTTP status: it is up."""
    conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", path)
        return conn.getresponse().status > 0
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


@dataclass
class RunningServer:
    spec: ServerSpec
    port: int
    process: Process
    argv: list[str]

    @classmethod
    def start(
        cls,
        spec: ServerSpec,
        *,
        python: Path,
        port: int,
        cpu: int | str | None,
        log_dir: Path,
        app: str,
        cwd: Path,
        env: Mapping[str, str],
        ready_path: str = "/",
    ) -> RunningServer:
        """Start the server on `app` (run from `cwd` with `env`), pinned to `cpu`, and wait
        until it answers a GET of `ready_path` (any status)."""
        argv = pinned(cpu, spec.argv(python, port, app))
        log_dir.mkdir(parents=True, exist_ok=True)
        process = Process.start(argv, cwd=cwd, env=dict(env), log_path=log_dir / f"{spec.key}.log")
        server = cls(spec, port, process, argv)
        try:
            server._wait_ready(ready_path)
        except BaseException:
            process.stop()
            raise
        return server

    def _wait_ready(self, path: str) -> None:
        started = time.monotonic()
        ready = wait_until(
            lambda: not self.process.alive() or _answers(self.port, path), READY_TIMEOUT_S, 0.1
        )
        if not self.process.alive():
            raise ServerFailed(f"{self.spec.key} exited:\n{self.process.log_tail()}")
        if not ready:
            raise ServerFailed(
                f"{self.spec.key} did not answer within {time.monotonic() - started:.0f}s:\n"
                + self.process.log_tail()
            )

    @property
    def pid(self) -> int:
        return self.process.pid

    def alive(self) -> bool:
        return self.process.alive()

    def stop(self) -> None:
        self.process.stop()
