"""HTTP/3: Pounce against Hypercorn (both on aioquic) and against Pounce's own HTTP/2.

    python benchmarks/h3_bench.py                       # 10 s per run, every server and scenario
    python benchmarks/h3_bench.py --rounds 3            # servers interleaved, medians and ratios
    python benchmarks/h3_bench.py --syscalls --servers pounce-h3,hypercorn-h3 --scenarios 1mib
    python benchmarks/h3_bench.py --before /tmp/main-tree --scenarios 1mib --rounds 3
    python benchmarks/h3_bench.py --duration 1 --clients 1 --connections 1 --streams 2  # smoke
    python benchmarks/h3_bench.py --client gtls --rounds 5   # C load clients (ngtcp2, h2load)
    python benchmarks/h3_bench.py --client gtls --duration 1 --clients 1 --requests 20 \
        --downloads 4  # smoke
    python benchmarks/h3_bench.py --client gtls --scenarios 1mib --servers pounce-h3,hypercorn-h3 \
        --counts   # and aioquic's ACKs, transmits and datagrams per MiB in each server

Scenarios: ``hello`` (13 bytes) and ``1mib`` (a 1 MiB download). Servers:
``pounce-h3`` (``pounce --http3``), ``hypercorn-h3`` (``hypercorn --quic-bind``)
and ``pounce-h2`` (the same Pounce over TLS and HTTP/2), each one process on
127.0.0.1 with a throwaway trustme certificate, run one after another;
``--before DIR`` adds ``pounce-h3-before``: Pounce's HTTP/3 from another
source tree (``git archive main | tar -x -C DIR``), to measure a change.

The load client speaks the protocol under test with the library Pounce uses
for it — aioquic for HTTP/3, h2 for HTTP/2 — from `--clients` processes,
each with `--connections` connections and `--streams` requests in flight
on each. Every response is checked (status and length) before it counts.

The client is Python too, and for HTTP/3 it does as much aioquic work per
byte as the server (it decrypts what the server encrypts): on a small
machine it is the bound of req/s and MiB/s for both servers alike. So each
line also gives what does not depend on the client or on other load: the
server's CPU time (user + system, its whole process group, from /proc) per
MiB delivered — per request for ``hello`` — and the client's; for HTTP/3 the
datagrams the client received per MiB. ``--syscalls`` runs each server
under ``strace -c -f`` instead and reports its send and receive calls per
MiB (strace slows it: those runs give no rates). Wall-clock rates taken on a
busy machine are meaningless; CPU per MiB is fairer but still inflated by
contention: compare servers within one run (``--rounds``) only.

``--client gtls`` loads the servers with clients written in C instead, which
cost a few ms of CPU per MiB where the server costs tens: for HTTP/3
ngtcp2's example client ``gtlsclient`` (Debian ``ngtcp2-client``; ngtcp2,
nghttp3, GnuTLS), ``--clients`` of them at once, each one connection asking
``--requests`` hellos or ``--downloads`` MiB (all in flight, up to the
server's stream limit), started again until ``--duration`` is over; every
body is saved with ``--download`` and compared byte for byte. For the HTTP/2
row h2load (``nghttp2-client``) over TLS with as many connections and the
same number of streams in flight. Rates are then over the real elapsed
time, and the client CPU line is the C clients' (from ``wait4``).
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import re
import shutil
import signal
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import quic_counts

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HELLO = b"Hello, world!"
MIB = bytes(range(256)) * 4096  # 1 MiB
PATHS = {"hello": ("/hello", len(HELLO)), "1mib": ("/1mib", len(MIB))}
SERVERS = ("pounce-h3", "hypercorn-h3", "pounce-h2")
BEFORE = "pounce-h3-before"  # Pounce's HTTP/3 from the tree given with --before


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The served app: /hello and /1mib (what the servers run, as ``h3_bench:app``)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"].startswith("/callgrind/"):  # h3_callgrind.py: zero or dump the counters
        action = scope["path"].rsplit("/", 1)[1]
        if "pysplit" in sys.modules:
            getattr(sys.modules["pysplit"], action)()
        if "quic_counts" in sys.modules:  # h3_callgrind.py --counts
            getattr(sys.modules["quic_counts"], {"zero": "zero", "dump": "freeze"}[action])()
    body = MIB if scope["path"] == "/1mib" else HELLO
    headers = [(b"content-type", b"application/octet-stream")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


# -- servers ---------------------------------------------------------------------------------------


def free_port() -> int:
    """A port free for both TCP and UDP (HTTP/3 listens on the TLS listener's port)."""
    while True:
        with socket.socket() as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                try:
                    udp.bind(("127.0.0.1", port))
                except OSError:
                    continue
            return port


def server_command(name: str, port: int, cert: str, key: str) -> list[str]:
    python = sys.executable
    if name == "hypercorn-h3":
        return [
            python, "-m", "hypercorn", "h3_bench:app", "--bind", f"127.0.0.1:{port}",
            "--quic-bind", f"127.0.0.1:{port}", "--certfile", cert, "--keyfile", key,
            "--log-level", "warning",
        ]  # fmt: skip
    command = [
        python, "-m", "pounce", "h3_bench:app", "--port", str(port), "--ssl-certfile", cert,
        "--ssl-keyfile", key, "--no-access-log", "--log-level", "warning",
    ]  # fmt: skip
    return [*command, "--http3"] if name.startswith("pounce-h3") else command


def group_cpu(pgid: int) -> tuple[float, float] | None:
    """CPU seconds (user, system) of every process in the group `pgid`, or None off Linux.

    The server runs in its own session (its pid is the group id), so this is
    the server with any worker processes, and not the load client.
    """
    proc = Path("/proc")
    if not (proc / str(pgid)).exists():
        return None
    ticks = os.sysconf("SC_CLK_TCK")
    user = system = 0
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[2]) == pgid:  # pgrp; then utime, stime, cutime, cstime
            user += int(fields[11]) + int(fields[13])
            system += int(fields[12]) + int(fields[14])
    return user / ticks, system / ticks


SYSCALLS = (
    "sendmsg",
    "sendto",
    "sendmmsg",
    "recvmsg",
    "recvfrom",
    "recvmmsg",
    "epoll_wait",
    "epoll_pwait",
)


def strace_counts(path: str) -> dict[str, int]:
    """The calls of each of `SYSCALLS` in an ``strace -c`` summary."""
    counts: dict[str, int] = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) >= 5 and parts[-1] in SYSCALLS and re.fullmatch(r"\d+", parts[3]):
            counts[parts[-1]] = int(parts[3])
    return counts


def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            time.sleep(0.3)  # the UDP endpoint opens right after the TCP one
            return
        except OSError:
            time.sleep(0.1)
    raise SystemExit(f"nothing listening on {port} after {timeout} s")


# -- load clients ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    requests: int = 0
    bytes: int = 0
    errors: int = 0
    datagrams: int = 0  # HTTP/3: datagrams the client received
    cpu: float = 0.0  # the client process's CPU seconds

    def __add__(self, other: Result) -> Result:
        return Result(
            self.requests + other.requests,
            self.bytes + other.bytes,
            self.errors + other.errors,
            self.datagrams + other.datagrams,
            self.cpu + other.cpu,
        )


async def h3_connection(
    port: int, ca: str, path: str, size: int, streams: int, until: float
) -> Result:
    from aioquic.asyncio import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration
    from aioquic.quic.events import ConnectionTerminated, StreamReset

    class Client(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.waiting: dict[int, tuple[asyncio.Future[tuple[int, int]], list[int]]] = {}
            self.datagrams = 0

        def datagram_received(self, data: bytes | str, addr: Any) -> None:
            self.datagrams += 1
            super().datagram_received(data, addr)

        def quic_event_received(self, event: Any) -> None:
            if isinstance(event, ConnectionTerminated):  # the requests waiting fail, not hang
                for future, _ in self.waiting.values():
                    if not future.done():
                        reason = f"closed: {event.error_code:#x} {event.reason_phrase}"
                        future.set_exception(ConnectionError(reason))
                self.waiting.clear()
                return
            if isinstance(event, StreamReset) and event.stream_id in self.waiting:
                future, _ = self.waiting.pop(event.stream_id)  # refused, or reset: a bad one
                if not future.done():
                    future.set_result((0, 0))
            for e in self.h3.handle_event(event):
                entry = self.waiting.get(getattr(e, "stream_id", -1))
                if entry is None:
                    continue
                future, state = entry  # [status, bytes]
                if isinstance(e, HeadersReceived):
                    state[0] = int(dict(e.headers).get(b":status", b"0"))
                elif isinstance(e, DataReceived):
                    state[1] += len(e.data)
                if getattr(e, "stream_ended", False) and not future.done():
                    del self.waiting[e.stream_id]
                    future.set_result((state[0], state[1]))

        async def get(self) -> tuple[int, int]:
            sid = self._quic.get_next_available_stream_id()
            future: asyncio.Future[tuple[int, int]] = self._loop.create_future()
            self.waiting[sid] = (future, [0, 0])
            head = [(b":method", b"GET"), (b":scheme", b"https"), (b":authority", b"localhost")]
            self.h3.send_headers(sid, [*head, (b":path", path.encode())], end_stream=True)
            self.transmit()
            return await future

    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, max_stream_data=4 << 20)
    config.load_verify_locations(ca)
    config.server_name = "localhost"
    measured: list[Result] = []

    async def session() -> None:
        async with connect("127.0.0.1", port, configuration=config, create_protocol=Client) as c:
            assert isinstance(c, Client)
            result = await _drive(c.get, size, streams, until)
            measured.append(Result(result.requests, result.bytes, result.errors, c.datagrams))

    task = asyncio.create_task(session())
    while not measured and not task.done():
        await asyncio.wait([task], timeout=0.1)
    if not task.done():  # closing: aioquic's client can wait for ever on a lost close
        await asyncio.wait([task], timeout=5)
        task.cancel()
    elif task.exception() is not None:
        raise task.exception()
    return measured[0]


async def h2_connection(
    port: int, ca: str, path: str, size: int, streams: int, until: float
) -> Result:
    import h2.config
    import h2.connection
    import h2.events

    context = ssl.create_default_context(cafile=ca)
    context.set_alpn_protocols(["h2"])
    reader, writer = await asyncio.open_connection(
        "127.0.0.1", port, ssl=context, server_hostname="localhost"
    )
    conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    conn.increment_flow_control_window(64 << 20)
    waiting: dict[int, tuple[asyncio.Future[tuple[int, int]], list[int]]] = {}

    async def pump() -> None:
        while data := await reader.read(1 << 16):
            for e in conn.receive_data(data):
                entry = waiting.get(getattr(e, "stream_id", -1))
                if isinstance(e, h2.events.DataReceived):
                    conn.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                if entry is None:
                    continue
                future, state = entry
                if isinstance(e, h2.events.ResponseReceived):
                    state[0] = int(dict(e.headers).get(b":status", b"0"))
                elif isinstance(e, h2.events.DataReceived):
                    state[1] += len(e.data)
                elif isinstance(e, h2.events.StreamEnded | h2.events.StreamReset):
                    del waiting[e.stream_id]
                    future.set_result((state[0], state[1]))
            writer.write(conn.data_to_send())

    async def get() -> tuple[int, int]:
        sid = conn.get_next_available_stream_id()
        future: asyncio.Future[tuple[int, int]] = asyncio.get_running_loop().create_future()
        waiting[sid] = (future, [0, 0])
        head = [(":method", "GET"), (":scheme", "https"), (":authority", "localhost")]
        conn.send_headers(sid, [*head, (":path", path)], end_stream=True)
        conn.increment_flow_control_window(8 << 20, stream_id=sid)
        writer.write(conn.data_to_send())
        return await future

    writer.write(conn.data_to_send())
    task = asyncio.create_task(pump())
    try:
        return await _drive(get, size, streams, until)
    finally:
        task.cancel()
        writer.close()


async def _drive(
    get: Callable[[], Awaitable[tuple[int, int]]], size: int, streams: int, until: float
) -> Result:
    done = received = errors = 0

    async def worker() -> None:
        nonlocal done, received, errors
        while time.monotonic() < until:
            try:
                status, length = await get()
            except ConnectionError:
                errors += 1
                return  # the connection is gone
            if status != 200 or length != size:
                errors += 1
            else:
                done += 1
                received += length

    await asyncio.gather(*(worker() for _ in range(streams)))
    return Result(done, received, errors)


def client_process(args: tuple[str, int, str, str, int, int, int, float]) -> Result:
    protocol, port, ca, scenario, size, connections, streams, duration = args
    path = PATHS[scenario][0]
    one = h3_connection if protocol == "h3" else h2_connection

    async def run() -> Result:
        until = time.monotonic() + duration
        results = await asyncio.wait_for(
            asyncio.gather(
                *(one(port, ca, path, size, streams, until) for _ in range(connections))
            ),
            duration + 60,
        )
        return sum(results, Result())

    started = time.process_time()
    result = asyncio.run(run())
    return result + Result(cpu=time.process_time() - started)


# -- C load clients (--client gtls) ---------------------------------------------------------------

GTLS_TIMEOUT = 120.0  # seconds: one gtlsclient run, or h2load past its duration
# gtlsclient's connection window: its default (15 MiB) binds a connection of 16 MiB, and
# Hypercorn then stalled one connection in three until the client's idle timeout (30 s;
# every stream stopped at ~982 KB): none with a window that never binds. Pounce: none
# either way. The benchmark measures the servers' speed, not that.
GTLS_WINDOW = "64M"


def run_child(command: list[str], timeout: float) -> tuple[int, float, str]:
    """Run `command`; its exit code, its CPU seconds (``wait4``) and its output's tail."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
        timer = threading.Timer(timeout, proc.kill)  # every wait bounded
        timer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            timer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        tail = out.read()[-4000:].decode(errors="replace")
    return proc.returncode, usage.ru_utime + usage.ru_stime, tail


def gtls_slot(port: int, scenario: str, count: int, until: float, scratch: Path) -> Result:
    """One gtlsclient at a time, one connection of `count` requests each, until `until`."""
    path, size = PATHS[scenario]
    expected = MIB if scenario == "1mib" else HELLO
    name = path.lstrip("/")
    total = Result()
    while time.monotonic() < until:
        into = Path(tempfile.mkdtemp(dir=scratch))
        uris = [f"https://127.0.0.1:{port}{path}?{n}" for n in range(count)]
        command = ["gtlsclient", "-q", "--exit-on-all-streams-close", "--download", str(into),
                   f"--max-data={GTLS_WINDOW}"]  # fmt: skip
        code, cpu, tail = run_child([*command, "127.0.0.1", str(port), *uris], GTLS_TIMEOUT)
        good = sum(_saved(into / f"{name}?{n}") == expected for n in range(count))
        shutil.rmtree(into)
        if code != 0 and not good:
            print(f"gtlsclient exited with {code}: {tail.strip()[-300:]}", file=sys.stderr)
        total += Result(good, good * size, count - good, 0, cpu)
    return total


def _saved(file: Path) -> bytes | None:
    try:
        return file.read_bytes()
    except OSError:
        return None  # not saved: the request failed


def gtls_load(port: int, scenario: str, options: argparse.Namespace) -> Result:
    """`--clients` gtlsclient slots at once for `--duration` seconds."""
    count = options.downloads if scenario == "1mib" else options.requests
    until = time.monotonic() + options.duration
    shm = Path("/dev/shm")  # the saved bodies: memory, not disk, where there is one
    results: list[Result] = []
    with tempfile.TemporaryDirectory(dir=shm if shm.is_dir() else None) as scratch:
        threads = [
            threading.Thread(
                target=lambda: results.append(
                    gtls_slot(port, scenario, count, until, Path(scratch))
                )
            )
            for _ in range(options.clients)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    return sum(results, Result())


def h2load_load(port: int, scenario: str, options: argparse.Namespace) -> tuple[Result, float]:
    """h2load over TLS (ALPN h2) for `--duration` seconds; the result and its measured seconds."""
    from harness.h2load import H2LoadFailed, parse

    path, size = PATHS[scenario]
    streams = min(options.downloads if scenario == "1mib" else options.requests, 100)
    seconds = max(1, round(options.duration))
    command = ["h2load", f"-c{options.clients}", f"-m{streams}", "-D", str(seconds)]
    code, cpu, out = run_child([*command, f"https://127.0.0.1:{port}{path}"], seconds + 60)
    try:
        got = parse(out)
    except H2LoadFailed as exc:
        raise SystemExit(f"h2load exited with {code}: {exc}") from exc
    result = Result(got.succeeded, got.succeeded * size, got.non_2xx, 0, cpu)
    return result, got.succeeded / got.rps if got.rps else float(seconds)


# -- the command -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One server, one scenario: what the clients got, and what it cost the server."""

    name: str
    scenario: str
    seconds: float
    result: Result
    server_cpu: float | None
    elapsed: float
    syscalls: dict[str, int] | None = None
    server_system: float | None = None  # of server_cpu, the seconds in the kernel
    counts: str | None = None  # --counts: what aioquic did in the server, per MiB

    @property
    def rate(self) -> float:
        return self.result.requests / self.seconds

    @property
    def mib(self) -> float:
        return self.result.bytes / 2**20

    @property
    def cost(self) -> float | None:
        """Server CPU per unit: ms per MiB for a download, µs per request for hello."""
        if self.server_cpu is None or not self.result.requests:
            return None
        if self.scenario == "hello":
            return self.server_cpu / self.result.requests * 1e6
        return self.server_cpu / self.mib * 1e3

    def line(self) -> str:
        r = self.result
        unit = "µs/req" if self.scenario == "hello" else "ms/MiB"
        per = r.requests if self.scenario == "hello" else max(self.mib, 1e-9)
        scale = 1e6 if self.scenario == "hello" else 1e3
        text = f"{self.name:14} {self.scenario:6} "
        if self.syscalls is not None:
            calls = "  ".join(f"{name} {n / max(self.mib, 1e-9):.0f}" for name, n in
                              sorted(self.syscalls.items()))  # fmt: skip
            return text + f"syscalls per MiB (strace -c -f): {calls}  ({r.requests} ok)"
        text += f"{self.rate:9.1f} req/s {self.mib / self.seconds:7.1f} MiB/s"
        if self.cost is not None:
            text += f"  server CPU {self.cost:7.1f} {unit}"
            if self.server_system is not None and self.server_cpu:
                text += f" ({self.server_system / self.server_cpu:4.0%} kernel)"
        if per:  # (a short run on a loaded machine may finish no request)
            text += f"  client CPU {r.cpu / per * scale:7.1f} {unit}"
        if r.datagrams and self.scenario != "hello":
            text += f"  {r.datagrams / self.mib:5.0f} datagrams/MiB"
        text += f"  ({r.requests} ok, {r.errors} bad, {self.elapsed:.1f} s)"
        return text if self.counts is None else f"{text}\n{'':22}{self.counts}"


def measure(
    name: str, scenario: str, options: argparse.Namespace, files: tuple[str, str, str]
) -> Run:
    cert, key, ca = files
    port = free_port()
    root = options.before if name == BEFORE else str(ROOT)
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{root}"}
    counting = None
    if options.counts:  # quic_counts.py, imported by the server (and its workers) at start
        counting = Path(tempfile.mkdtemp())
        (counting / "sitecustomize.py").write_text(quic_counts.SITECUSTOMIZE)
        (counting / "out").mkdir()
        env["PYTHONPATH"] = f"{counting}{os.pathsep}{env['PYTHONPATH']}"
        env["QUIC_COUNTS_DIR"] = str(counting / "out")
        if options.counts == "time":
            env["QUIC_COUNTS_TIME"] = "1"
    command = server_command(name, port, cert, key)
    trace = None
    if options.syscalls:
        trace = tempfile.mktemp(suffix=".strace")
        command = ["strace", "-f", "-c", "-o", trace, *command]
    proc = subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True)
    try:
        wait_listening(port, proc)
        protocol = "h2" if name.endswith("h2") else "h3"
        result, seconds, elapsed, cpu = load(protocol, port, scenario, options, ca, proc.pid)
        if counting is not None:
            time.sleep(0.6)  # quic_counts writes every half second
    finally:
        # SIGINT: strace, when there, writes its summary on the way out
        os.killpg(proc.pid, signal.SIGINT if trace else signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    syscalls = None
    if trace is not None:
        syscalls = strace_counts(trace)
        os.unlink(trace)
    total = None if cpu is None else cpu[0] + cpu[1]
    system = None if cpu is None else cpu[1]
    counts = None
    if counting is not None:
        counts = quic_counts.per_mib(quic_counts.total(str(counting / "out")))
        shutil.rmtree(counting)
    return Run(name, scenario, seconds, result, total, elapsed, syscalls, system, counts)


def load(
    protocol: str, port: int, scenario: str, options: argparse.Namespace, ca: str, pgid: int
) -> tuple[Result, float, float, tuple[float, float] | None]:
    """The load, measured: what the clients got, the seconds the rate is over, the elapsed
    seconds and the server's CPU seconds meanwhile, user and system (None off Linux)."""
    if options.client == "gtls":
        before = group_cpu(pgid)
        started = time.monotonic()
        if protocol == "h2":
            result, seconds = h2load_load(port, scenario, options)
        else:
            result = gtls_load(port, scenario, options)
            seconds = time.monotonic() - started  # runs started before the end finish after it
        elapsed = time.monotonic() - started
    else:
        size = PATHS[scenario][1]
        work = (protocol, port, ca, scenario, size, options.connections, options.streams,
                options.duration)  # fmt: skip
        with multiprocessing.get_context("spawn").Pool(options.clients) as pool:
            pool.apply(time.sleep, (0,))  # the clients are started before the clock
            before = group_cpu(pgid)
            started = time.monotonic()
            result = sum(pool.map(client_process, [work] * options.clients), Result())
            elapsed = time.monotonic() - started
        seconds = options.duration  # requests are counted while it runs (not the start-up)
    after = group_cpu(pgid)
    if after is None or before is None:
        return result, seconds, elapsed, None
    return result, seconds, elapsed, (after[0] - before[0], after[1] - before[1])


def summary(runs: list[Run]) -> list[str]:
    """Medians over the rounds, and Pounce's HTTP/3 against Hypercorn's."""
    lines = []
    for scenario in dict.fromkeys(run.scenario for run in runs):
        rate: dict[str, float] = {}
        cost: dict[str, float] = {}
        for name in dict.fromkeys(run.name for run in runs):
            mine = [run for run in runs if (run.name, run.scenario) == (name, scenario)]
            if not mine:
                continue
            rate[name] = statistics.median(run.rate for run in mine)
            costs = [run.cost for run in mine if run.cost is not None]
            if costs:
                cost[name] = statistics.median(costs)
            lines.append(
                f"median {name:14} {scenario:6} {rate[name]:9.1f} req/s"
                + (f"  server CPU {cost[name]:7.1f}" if name in cost else "")
            )
        ours, theirs = "pounce-h3", "hypercorn-h3"
        if ours in rate and theirs in rate and rate[theirs]:
            text = f"pounce-h3 / hypercorn-h3 {scenario}: {rate[ours] / rate[theirs]:.2f}x req/s"
            if ours in cost and theirs in cost and cost[ours]:
                ratio = cost[theirs] / cost[ours]
                text += f"; server CPU per unit, hypercorn's / pounce's: {ratio:.2f}"
            lines.append(text)
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("--clients", type=int, default=3, help="client processes (3)")
    parser.add_argument("--connections", type=int, default=4, help="per client process (4)")
    parser.add_argument("--streams", type=int, default=16, help="in flight per connection (16)")
    parser.add_argument(
        "--client",
        choices=("aioquic", "gtls"),
        default="aioquic",
        help="load clients: aioquic and h2 in Python (default), or gtlsclient and h2load in C",
    )
    parser.add_argument(
        "--requests", type=int, default=500, help="gtls: hellos per connection (500)"
    )
    parser.add_argument(
        "--downloads", type=int, default=16, help="gtls: 1 MiB downloads per connection (16)"
    )
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"of {', '.join(SERVERS)}")
    parser.add_argument("--scenarios", default="hello,1mib", help="of hello, 1mib")
    parser.add_argument("--rounds", type=int, default=1, help="servers interleaved this often (1)")
    parser.add_argument(
        "--syscalls", action="store_true", help="run servers under strace -c -f: calls per MiB"
    )
    parser.add_argument(
        "--before",
        metavar="DIR",
        help=f"another Pounce source tree (e.g. git archive main | tar -x -C DIR): adds {BEFORE}",
    )
    parser.add_argument(
        "--counts",
        nargs="?",
        const="on",
        choices=("on", "time"),
        help="count aioquic's datagrams, transmits and ACKs in the server per MiB"
        " (quic_counts.py); 'time' adds the CPU time in them",
    )
    options = parser.parse_args(argv)
    if options.client == "gtls":
        needs = {"gtlsclient": "ngtcp2-client", "h2load": "nghttp2-client"}
        if "pounce-h2" not in options.servers.split(","):
            del needs["h2load"]
        for tool, package in needs.items():
            if shutil.which(tool) is None:
                raise SystemExit(f"--client gtls needs {tool} (apt-get install {package})")
    if options.before and BEFORE not in options.servers.split(","):
        options.servers = f"{BEFORE},{options.servers}"
    import trustme

    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        files = (f"{tmp}/cert.pem", f"{tmp}/key.pem", f"{tmp}/ca.pem")
        issued.cert_chain_pems[0].write_to_path(files[0])
        issued.private_key_pem.write_to_path(files[1])
        ca.cert_pem.write_to_path(files[2])
        runs = []
        for scenario in options.scenarios.split(","):
            for _ in range(options.rounds):
                for name in options.servers.split(","):
                    runs.append(measure(name, scenario, options, files))
                    print(runs[-1].line(), flush=True)
        if not options.syscalls:
            for line in summary(runs):
                print(line)


if __name__ == "__main__":
    main()
