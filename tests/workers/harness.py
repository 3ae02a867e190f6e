"""Run `serve_app` in a subprocess and talk to it: raw HTTP/1.1, every wait bounded.

`Running` reads the server's log as it comes; tests wait for lines with
`wait_for` (a timeout each). `get` makes one request on a new connection;
`KeepAliveClient` reuses one, retrying a request only where RFC 9112
§9.3.1 lets a client: the reused connection closed before any byte of the
answer (it counts those retries).
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
STARTED = re.compile(r"Pounce running on https?://127\.0\.0\.1:(\d+)")
TIMEOUT = 5.0  # seconds for any one network operation
REFUSED_STREAM = 0x7  # RFC 9113 §8.7: the stream was not processed; a client may retry it


class Running:
    def __init__(self, proc: subprocess.Popen[str], *, started: bool = True) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self._changed = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()
        self.port = int(self.wait_for(STARTED, 20)[1]) if started else 0

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self.lines.append("<exited>\n")
            self._changed.notify_all()

    def wait_for(self, pattern: str | re.Pattern[str], timeout: float = 10, after: int = 0) -> Any:
        """The first log line from index `after` on that matches; fail after `timeout` s."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[after:]:
                    match = regex.search(line)
                    if match:
                        return match
                left = deadline - time.monotonic()
                if left <= 0 or (self.lines and self.lines[-1] == "<exited>\n"):
                    raise AssertionError(f"no log line {regex.pattern!r}:\n{self.output()}")
                self._changed.wait(left)

    def wait_count(self, pattern: str, count: int, timeout: float = 10) -> None:
        """Wait until `count` log lines match `pattern`; fail after `timeout` s."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self.count(pattern) < count:
                left = deadline - time.monotonic()
                if left <= 0 or self.lines[-1:] == ["<exited>\n"]:
                    raise AssertionError(f"not {count} lines {pattern!r}:\n{self.output()}")
                self._changed.wait(left)

    def count(self, pattern: str) -> int:
        return sum(1 for line in list(self.lines) if re.search(pattern, line))

    def mark(self) -> int:
        return len(self.lines)

    def output(self) -> str:
        return "".join(self.lines)

    def signal(self, signum: signal.Signals) -> None:
        os.kill(self.proc.pid, signum)

    def wait(self, timeout: float = 15) -> int:
        return self.proc.wait(timeout)


@contextmanager
def launched(
    argv: list[str], env: dict[str, str] | None = None, started: bool = True
) -> Iterator[Running]:
    """`argv` (run with this Python, in the repository) as a server; see `serving`."""
    proc = subprocess.Popen(
        [sys.executable, *argv],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    try:
        yield Running(proc, started=started)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        _kill_orphans(proc.pid)


def serving(
    env: dict[str, str] | None = None, started: bool = True, **options: Any
) -> AbstractContextManager[Running]:
    """The server run with `options`; `started`: wait for its start-up line."""
    argv = ["-m", "tests.workers.serve_app", json.dumps(options)]
    return launched(argv, env, started)


def _kill_orphans(pid: int) -> None:
    """Workers of a supervisor killed by the test notice it and drain; make sure."""
    for path in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = path.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:  # our supervisor's child
            with_pid = int(path.parent.name)
            with suppress(ProcessLookupError):
                os.kill(with_pid, signal.SIGKILL)


def request_bytes(path: str, *, close: bool) -> bytes:
    extra = b"connection: close\r\n" if close else b""
    return b"GET " + path.encode() + b" HTTP/1.1\r\nhost: test\r\n" + extra + b"\r\n"


def read_response(sock: socket.socket) -> tuple[int, bytes, bool]:
    """(status, body, closing) of one response with a content-length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            raise EmptyAnswerError(data)
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status = int(head.split(b" ", 2)[1])
    length = int(re.search(rb"(?i)content-length: *(\d+)", head)[1])  # type: ignore[index]
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("closed in the middle of a body")
        body += chunk
    return status, body, re.search(rb"(?i)\r\nconnection: *close", head) is not None


class EmptyAnswerError(ConnectionError):
    """The connection closed before the first byte of an answer."""

    def __init__(self, partial: bytes) -> None:
        super().__init__(f"closed before a whole answer head ({len(partial)} bytes)")
        self.partial = partial


def get(port: int, path: str = "/", timeout: float = TIMEOUT) -> tuple[int, str]:
    """One request on a new connection (``connection: close``)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request_bytes(path, close=True))
        status, body, _ = read_response(sock)
    return status, body.decode()


class KeepAliveClient:
    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.retries = 0

    def get(self, path: str = "/") -> tuple[int, str]:
        if self.sock is not None:
            try:
                return self._exchange(self.sock, path)
            except (EmptyAnswerError, ConnectionResetError, BrokenPipeError) as exc:
                if isinstance(exc, EmptyAnswerError) and exc.partial:
                    raise
                self.retries += 1  # RFC 9112 §9.3.1: idle connection closed under us
                self.close()
        self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=TIMEOUT)
        return self._exchange(self.sock, path)

    def _exchange(self, sock: socket.socket, path: str) -> tuple[int, str]:
        sock.sendall(request_bytes(path, close=False))
        status, body, closing = read_response(sock)
        if closing:
            self.close()
        return status, body.decode()

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


def pid_of(body: str) -> int:
    return int(body.split()[0])


class Load:
    """Clients requesting in a loop on threads until `stop()`, bounded in count and time.

    `fresh` clients open a new connection per request, `keep_alive` ones reuse
    theirs. Every request that does not end in a 200 is a failure — a refused
    or reset new connection included; the only thing not counted is the retry
    RFC 9112 §9.3.1 allows on a reused connection closed before it answered
    (`retries`).
    """

    def __init__(
        self,
        port: int,
        *,
        fresh: int = 2,
        keep_alive: int = 1,
        path: str = "/",
        limit: int = 5000,
        seconds: float = 20.0,
    ) -> None:
        self.port, self.path, self.limit = port, path, limit
        self.deadline = time.monotonic() + seconds
        self.ok = 0
        self.failures: list[str] = []
        self.retries = 0
        self.pids: set[int] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(reuse,), daemon=True)
            for reuse in [False] * fresh + [True] * keep_alive
        ]
        for thread in self._threads:
            thread.start()

    def running(self) -> bool:
        """Still requesting: neither stopped nor past its bounds."""
        return self._more()

    def _more(self) -> bool:
        with self._lock:
            count = self.ok + len(self.failures)
        return not self._stop.is_set() and count < self.limit and time.monotonic() < self.deadline

    def _run(self, reuse: bool) -> None:
        client = KeepAliveClient(self.port) if reuse else None
        while self._more():
            try:
                status, body = client.get(self.path) if client else get(self.port, self.path)
                outcome = None if status == 200 else f"status {status}"
            except OSError as exc:
                outcome = f"{'keep-alive' if reuse else 'new connection'}: {exc!r}"
                if client:
                    client.close()
            with self._lock:
                if outcome is None:
                    self.ok += 1
                    self.pids.add(pid_of(body))
                else:
                    self.failures.append(outcome)
        if client:
            with self._lock:
                self.retries += client.retries
            client.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)


class H2Load:
    """HTTP/2 clients requesting in a loop until `stop()`, bounded in count and
    time, as `Load`; prior knowledge on the cleartext port.

    `connections` httpx clients (over the h2 library) keep one connection
    each, one stream at a time. `multiplexed` `MuxClient`s keep `depth`
    streams open at once on one connection each. Any request that does not
    end in a 200 is a failure — a refused connection, a stream failed or reset,
    a connection closed with a stream owed. Retried, and counted apart, is
    only what RFC 9113 lets a client retry: a stream above the last stream id
    of a GOAWAY (§6.8: never processed) — httpx does that by itself.
    """

    def __init__(
        self,
        port: int,
        *,
        connections: int = 2,
        multiplexed: int = 1,
        depth: int = 4,
        limit: int = 5000,
        seconds: float = 20.0,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        import httpx

        self.port = port
        self.tls = tls  # a client context trusting the server: TLS with ALPN h2
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{port}/"
        self.limit = limit
        self.deadline = time.monotonic() + seconds
        self.ok = 0
        self.failures: list[str] = []
        self.retries = 0
        self.goaways = 0
        self.pids: set[int] = set()
        self.versions: set[str] = set()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._clients = [
            httpx.Client(http1=False, http2=True, timeout=TIMEOUT, verify=tls or True)
            for _ in range(connections)
        ]
        self._threads = [
            threading.Thread(target=self._run_httpx, args=(client,), daemon=True)
            for client in self._clients
        ] + [
            threading.Thread(target=MuxClient(self, depth).run, daemon=True)
            for _ in range(multiplexed)
        ]
        for thread in self._threads:
            thread.start()

    def running(self) -> bool:
        with self._lock:
            count = self.ok + len(self.failures)
        return not self._stop.is_set() and count < self.limit and time.monotonic() < self.deadline

    def record(self, outcome: str | None, body: str = "", version: str = "HTTP/2") -> None:
        """One request's end: None for a 200 whose body is `body`, else the failure."""
        with self._lock:
            if outcome is None:
                self.ok += 1
                self.pids.add(pid_of(body))
                self.versions.add(version)
            else:
                self.failures.append(outcome)

    def _run_httpx(self, client: Any) -> None:
        while self.running():
            try:
                response = client.get(self.url)
            except Exception as exc:  # every failure counts, whatever httpx raises
                self.record(f"httpx: {exc!r}")
                continue
            status = response.status_code
            self.record(
                None if status == 200 else f"status {status}", response.text, response.http_version
            )

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(10)
        for client in self._clients:
            client.close()


class MuxClient:
    """One HTTP/2 connection at a time with `depth` streams open at once, on the
    h2 library and a blocking socket, every wait bounded by `TIMEOUT`.

    On a GOAWAY it does what RFC 9113 §6.8 asks: streams above the last stream
    id are retried on a new connection; streams at or below it must still be
    answered. (The h2 library closes its state machine on a GOAWAY —
    python-hyper/h2 #1181 — so the client puts it back to open to read them.)
    """

    REQUEST = (
        (b":method", b"GET"),
        (b":path", b"/"),
        (b":scheme", b"http"),
        (b":authority", b"127.0.0.1"),
    )

    def __init__(self, load: H2Load, depth: int) -> None:
        self.load, self.depth = load, depth

    def run(self) -> None:
        while self.load.running():
            try:
                sock = socket.create_connection(("127.0.0.1", self.load.port), timeout=TIMEOUT)
                if self.load.tls is not None:
                    sock = self.load.tls.wrap_socket(sock, server_hostname="localhost")
                    if sock.selected_alpn_protocol() != "h2":
                        raise ConnectionError(f"ALPN chose {sock.selected_alpn_protocol()!r}")
            except OSError as exc:
                self.load.record(f"mux: new connection: {exc!r}")
                continue
            with sock:
                self._serve(sock)

    def _serve(self, sock: socket.socket) -> None:
        import h2.config
        import h2.connection
        import h2.events

        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=True, header_encoding=None)
        )
        conn.initiate_connection()
        owed: dict[int, list[Any]] = {}  # stream id -> [status, body]
        last: int | None = None  # the GOAWAY's last stream id
        try:
            while True:
                while last is None and len(owed) < self.depth and self.load.running():
                    sid = conn.get_next_available_stream_id()
                    conn.send_headers(sid, self.REQUEST, end_stream=True)
                    owed[sid] = [0, b""]
                data = conn.data_to_send()
                if data:
                    sock.sendall(data)
                if not owed:
                    return
                chunk = sock.recv(65536)
                if not chunk:
                    for sid in owed:
                        self.load.record(f"mux: connection closed with stream {sid} owed")
                    return
                for event in conn.receive_data(chunk):
                    if isinstance(event, h2.events.ConnectionTerminated):
                        last = event.last_stream_id
                        with self.load._lock:
                            self.load.goaways += 1
                        conn.state_machine.state = h2.connection.ConnectionState.CLIENT_OPEN
                        for sid in [sid for sid in owed if sid > last]:
                            del owed[sid]  # never processed: retried on the next connection
                            with self.load._lock:
                                self.load.retries += 1
                    elif isinstance(event, h2.events.ResponseReceived):
                        owed[event.stream_id][0] = int(dict(event.headers)[b":status"])
                    elif isinstance(event, h2.events.DataReceived):
                        owed[event.stream_id][1] += event.data
                        conn.acknowledge_received_data(
                            event.flow_controlled_length, event.stream_id
                        )
                    elif isinstance(event, h2.events.StreamEnded):
                        status, body = owed.pop(event.stream_id)
                        self.load.record(
                            None if status == 200 else f"status {status}", body.decode()
                        )
                    elif isinstance(event, h2.events.StreamReset):
                        owed.pop(event.stream_id, None)
                        if event.error_code == REFUSED_STREAM:  # §8.7: not processed
                            with self.load._lock:
                                self.load.retries += 1
                        else:
                            self.load.record(f"mux: stream reset {event.error_code!r}")
        except Exception as exc:  # a reset, a timeout, a protocol error: all failures
            for sid in owed:
                self.load.record(f"mux: stream {sid}: {exc!r}")
            if not owed:
                self.load.record(f"mux: {exc!r}")


def answers_from_every_worker(running: Running, workers: int) -> dict[tuple[str, str], str]:
    """(pid, thread id) → TCP_NODELAY, for each worker seen: requests that block
    their worker's loop for a moment, started 0.1 s apart, so each new one must
    be accepted by a worker that is not blocked (bounded: 4 rounds)."""
    seen: dict[tuple[str, str], str] = {}
    with concurrent.futures.ThreadPoolExecutor(workers + 1) as pool:
        for _ in range(4):
            futures = []
            for _ in range(workers + 1):
                futures.append(pool.submit(get, running.port, "/block?s=0.3"))
                time.sleep(0.1)
            for future in futures:
                status, body = future.result(timeout=10)
                assert status == 200
                pid, tid, flag = body.split()
                seen[(pid, tid)] = flag
            if len(seen) >= workers:
                break
    return seen
