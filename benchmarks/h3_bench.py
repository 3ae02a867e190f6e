"""HTTP/3: Pounce against Hypercorn (both on aioquic) and against Pounce's own HTTP/2.

    python benchmarks/h3_bench.py                       # 10 s per run, every server and scenario
    python benchmarks/h3_bench.py --duration 1 --clients 1 --connections 1 --streams 2  # smoke

Scenarios: ``hello`` (13 bytes) and ``1mib`` (a 1 MiB download). Servers:
``pounce-h3`` (``pounce --http3``), ``hypercorn-h3`` (``hypercorn --quic-bind``)
and ``pounce-h2`` (the same Pounce over TLS and HTTP/2), each one process on
127.0.0.1 with a throwaway trustme certificate, run one after another.

The load client speaks the protocol under test with the library Pounce uses
for it — aioquic for HTTP/3, h2 for HTTP/2 — from `--clients` processes,
each with `--connections` connections and `--streams` requests in flight
on each. Every response is checked (status and length) before it counts.
The client is Python too, so it can be the bottleneck: give it more
processes than the server has (`--clients`, default 3) and read the
ratios, not the absolute numbers. Numbers taken on a busy machine are
meaningless; run it in a quiet window.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
HELLO = b"Hello, world!"
MIB = bytes(range(256)) * 4096  # 1 MiB
PATHS = {"hello": ("/hello", len(HELLO)), "1mib": ("/1mib", len(MIB))}
SERVERS = ("pounce-h3", "hypercorn-h3", "pounce-h2")


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """The served app: /hello and /1mib (what the servers run, as ``h3_bench:app``)."""
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
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
    return [*command, "--http3"] if name == "pounce-h3" else command


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


Result = tuple[int, int, int]  # requests, bytes, errors


async def h3_connection(
    port: int, ca: str, path: str, size: int, streams: int, until: float
) -> Result:
    from aioquic.asyncio import connect
    from aioquic.asyncio.protocol import QuicConnectionProtocol
    from aioquic.h3.connection import H3_ALPN, H3Connection
    from aioquic.h3.events import DataReceived, HeadersReceived
    from aioquic.quic.configuration import QuicConfiguration

    class Client(QuicConnectionProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.h3 = H3Connection(self._quic)
            self.waiting: dict[int, tuple[asyncio.Future[tuple[int, int]], list[int]]] = {}

        def quic_event_received(self, event: Any) -> None:
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
    async with connect("127.0.0.1", port, configuration=config, create_protocol=Client) as c:
        assert isinstance(c, Client)
        return await _drive(c.get, size, streams, until)


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
            status, length = await get()
            if status != 200 or length != size:
                errors += 1
            else:
                done += 1
                received += length

    await asyncio.gather(*(worker() for _ in range(streams)))
    return done, received, errors


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
        return sum(r[0] for r in results), sum(r[1] for r in results), sum(r[2] for r in results)

    return asyncio.run(run())


# -- the command -----------------------------------------------------------------------------------


def measure(
    name: str, scenario: str, options: argparse.Namespace, files: tuple[str, str, str]
) -> str:
    cert, key, ca = files
    port = free_port()
    env = {**os.environ, "PYTHONPATH": f"{HERE}{os.pathsep}{ROOT}"}
    command = server_command(name, port, cert, key)
    proc = subprocess.Popen(command, cwd=HERE, env=env, start_new_session=True)
    try:
        wait_listening(port, proc)
        protocol = "h2" if name.endswith("h2") else "h3"
        size = PATHS[scenario][1]
        work = (
            protocol,
            port,
            ca,
            scenario,
            size,
            options.connections,
            options.streams,
            options.duration,
        )
        started = time.monotonic()
        with multiprocessing.get_context("spawn").Pool(options.clients) as pool:
            results = pool.map(client_process, [work] * options.clients)
        elapsed = time.monotonic() - started
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
    done = sum(r[0] for r in results)
    received = sum(r[1] for r in results)
    errors = sum(r[2] for r in results)
    seconds = options.duration  # requests are counted while it runs (not the start-up)
    return (
        f"{name:14} {scenario:6} {done / seconds:10.1f} req/s {received / seconds / 2**20:9.1f} "
        f"MiB/s  ({done} ok, {errors} bad, {elapsed:.1f} s with client start-up)"
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds per run (10)")
    parser.add_argument("--clients", type=int, default=3, help="client processes (3)")
    parser.add_argument("--connections", type=int, default=4, help="per client process (4)")
    parser.add_argument("--streams", type=int, default=16, help="in flight per connection (16)")
    parser.add_argument("--servers", default=",".join(SERVERS), help=f"of {', '.join(SERVERS)}")
    parser.add_argument("--scenarios", default="hello,1mib", help="of hello, 1mib")
    options = parser.parse_args(argv)
    import trustme

    with tempfile.TemporaryDirectory() as tmp:
        ca = trustme.CA()
        issued = ca.issue_cert("localhost", "127.0.0.1")
        files = (f"{tmp}/cert.pem", f"{tmp}/key.pem", f"{tmp}/ca.pem")
        issued.cert_chain_pems[0].write_to_path(files[0])
        issued.private_key_pem.write_to_path(files[1])
        ca.cert_pem.write_to_path(files[2])
        for scenario in options.scenarios.split(","):
            for name in options.servers.split(","):
                print(measure(name, scenario, options, files), flush=True)


if __name__ == "__main__":
    main()
