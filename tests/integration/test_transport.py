"""Listeners over real sockets: IPv4, IPv6, several binds, Unix sockets, inherited fds."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import stat
import subprocess
from pathlib import Path

import httpx
import pytest

from pounce import Server, TransportError
from pounce.asgi.types import Receive, Scope, Send
from pounce.conn import Conn, ConnectionHandler
from pounce.drivers.bridge import ProtocolFactory
from pounce.drivers.service import ServiceContext
from pounce.testing import TestServer


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    server = scope["server"]
    body = f"hello from {server[0]}".encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as probe:
            probe.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv4() -> None:
    with TestServer(Server.builder().bind("127.0.0.1", 0).h1().asgi(hello)) as ts:
        response = httpx.get(ts.url + "/", timeout=5)
    assert response.text == "hello from 127.0.0.1"


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6() -> None:
    with TestServer(Server.builder().bind("::1", 0).h1().asgi(hello)) as ts:
        assert ts.url.startswith("http://[::1]:")
        response = httpx.get(ts.url + "/", timeout=5)
    assert response.text == "hello from ::1"


def test_several_binds_in_one_server(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    server = Server.builder().bind("127.0.0.1", 0).bind("127.0.0.2", 0).bind_unix(path).h1()
    with TestServer(server.asgi(hello)) as ts:
        first, second, unix = ts.addresses
        assert httpx.get(f"http://127.0.0.1:{first[1]}/", timeout=5).status_code == 200
        assert httpx.get(f"http://127.0.0.2:{second[1]}/", timeout=5).text == "hello from 127.0.0.2"
        transport = httpx.HTTPTransport(uds=unix)
        with httpx.Client(transport=transport, timeout=5) as client:
            assert client.get("http://local/").text == f"hello from {path}"


def test_unix_socket_mode_and_cleanup(tmp_path: Path) -> None:
    path = tmp_path / "pounce.sock"
    server = Server.builder().bind_unix(str(path), mode=0o600).h1().asgi(hello)
    with TestServer(server):
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        with httpx.Client(transport=httpx.HTTPTransport(uds=str(path)), timeout=5) as client:
            response = client.get("http://local/")
        assert response.status_code == 200
        scope_client = response  # the scope's client is None on a Unix socket
        assert scope_client.text.startswith("hello from ")
    assert not path.exists(), "the socket file is removed on shutdown"


def test_stale_unix_socket_file_is_replaced(tmp_path: Path) -> None:
    path = tmp_path / "stale.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: stale
    server = Server.builder().bind_unix(str(path)).h1().asgi(hello)
    transport = httpx.HTTPTransport(uds=str(path))
    with TestServer(server), httpx.Client(transport=transport, timeout=5) as client:
        assert client.get("http://local/").status_code == 200


def test_live_unix_socket_is_not_stolen(tmp_path: Path) -> None:
    path = tmp_path / "live.sock"
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(path))
    live.listen()
    try:
        server = Server.builder().bind_unix(str(path)).h1().asgi(hello)
        with pytest.raises(TransportError, match="another server is listening"):
            TestServer(server).start()
    finally:
        live.close()


def test_regular_file_at_unix_path_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "not-a-socket"
    path.write_text("data")
    server = Server.builder().bind_unix(str(path)).h1().asgi(hello)
    with pytest.raises(TransportError, match="not a socket"):
        TestServer(server).start()
    assert path.read_text() == "data"


def test_inherited_fd() -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]
    fd = os.dup(listener.fileno())
    listener.close()
    with TestServer(Server.builder().bind_fd(fd).h1().asgi(hello)):
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).status_code == 200


def test_bad_fd_is_a_transport_error() -> None:
    r, w = os.pipe()
    try:
        server = Server.builder().bind_fd(r).h1().asgi(hello)
        with pytest.raises(TransportError, match="fd"):
            TestServer(server).start()
    finally:
        os.close(w)


def test_port_in_use_is_a_clear_transport_error() -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen()
    port = holder.getsockname()[1]
    try:
        server = Server.builder().bind("127.0.0.1", port).h1().asgi(hello)
        with pytest.raises(TransportError, match="cannot bind") as info:
            TestServer(server).start()
        assert info.value.hint and "--port" in info.value.hint
    finally:
        holder.close()


def listen_queue_limit(port: int) -> int | None:
    """The backlog of the listener on `port`, from /proc/net/tcp's view via ss."""
    out = subprocess.run(
        ["ss", "-ltnH", f"sport = :{port}"], capture_output=True, text=True, timeout=5
    ).stdout.split()
    return int(out[2]) if len(out) > 2 else None


@pytest.mark.skipif(shutil.which("ss") is None, reason="needs ss (iproute2)")
def test_backlog_is_passed_to_listen() -> None:
    with TestServer(Server.builder().bind("127.0.0.1", 0).backlog(7).h1().asgi(hello)) as ts:
        assert listen_queue_limit(ts.port) == 7
        assert httpx.get(ts.url + "/", timeout=5).status_code == 200


def test_tcp_nodelay_is_set_on_accepted_sockets(loop_name: str) -> None:
    """Set by the adapter on asyncio, by uvloop itself (the adapter then leaves it)."""
    from pounce.net.loops import loop_factory

    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:  # type: ignore[arg-type]
        runner.run(_accept_one_and_check_nodelay())


class _Record:
    """A handler that reports its connection, and its loss, through futures."""

    def __init__(
        self, accepted: asyncio.Future[Conn], lost: asyncio.Future[None] | None = None
    ) -> None:
        self.accepted = accepted
        self.lost = lost

    def connection_made(self, conn: Conn) -> None:
        self.accepted.set_result(conn)

    def data_received(self, data: bytes) -> None: ...

    def eof_received(self) -> None: ...

    def connection_lost(self, exc: Exception | None) -> None:
        if self.lost is not None:
            self.lost.set_result(None)

    def begin_shutdown(self) -> None: ...


async def _accept_one_and_check_nodelay() -> None:
    from pounce.net.transport import ConnectionTracker, TransportAdapter

    accepted: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()

    def factory() -> ConnectionHandler:
        return _Record(accepted)

    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()  # pre-bound: the case where asyncio does not set TCP_NODELAY itself
    loop = asyncio.get_running_loop()
    tracker = ConnectionTracker()
    server = await loop.create_server(lambda: TransportAdapter(factory, tracker), sock=listener)
    _reader, writer = await asyncio.open_connection(*listener.getsockname())
    conn = await asyncio.wait_for(accepted, 5)
    assert isinstance(conn, TransportAdapter)
    sock = conn._transport.get_extra_info("socket") if conn._transport else None
    assert sock is not None
    assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
    writer.close()
    server.close()


class _LateAnswer:
    """Answers a moment after the client's FIN, which it may only do if it kept the write side."""

    def __init__(self, keep_writing: bool) -> None:
        self.keep_writing = keep_writing
        self.conn: Conn | None = None

    def connection_made(self, conn: Conn) -> None:
        self.conn = conn

    def data_received(self, data: bytes) -> None:
        pass

    def eof_received(self) -> bool | None:
        def answer() -> None:
            if self.conn is not None and not self.conn.is_closing():
                self.conn.write(b"late answer\n")
                self.conn.close()

        asyncio.get_running_loop().call_later(0.1, answer)
        return self.keep_writing or None

    def connection_lost(self, exc: Exception | None) -> None:
        self.conn = None

    def begin_shutdown(self) -> None:
        if self.conn is not None:
            self.conn.close()


class _LateAnswerProtocol(ProtocolFactory):
    name = "late-answer"

    def __init__(self, keep_writing: bool) -> None:
        self.keep_writing = keep_writing

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        return _LateAnswer(self.keep_writing)


@pytest.mark.parametrize(("keep_writing", "expected"), [(True, b"late answer\n"), (False, b"")])
def test_eof_received_true_keeps_the_write_side_open(keep_writing: bool, expected: bytes) -> None:
    """The half-close seam: a handler that returns True from `eof_received` may still write."""
    server = Server.builder().bind("127.0.0.1", 0).protocol(_LateAnswerProtocol(keep_writing))
    with TestServer(server.build()) as ts:
        sock = socket.create_connection((ts.host, ts.port), timeout=5)
        with sock:
            sock.sendall(b"question\n")
            sock.shutdown(socket.SHUT_WR)
            received = b""
            while chunk := sock.recv(1024):
                received += chunk
    assert received == expected


@pytest.mark.parametrize("loop_name", ["asyncio", "uvloop"])
def test_closing_a_connection_the_peer_already_reset_raises_nothing(loop_name: str) -> None:
    """A client that resets right after its request (wrk with ``Connection: close`` does,
    under load) must not turn our close into an OSError in the app's ``send``."""
    from pounce.net.loops import loop_factory

    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:  # type: ignore[arg-type]
        runner.run(_close_after_peer_reset())


async def _close_after_peer_reset() -> None:
    import struct
    import time

    from pounce.net.transport import ConnectionTracker, TransportAdapter

    accepted: asyncio.Future[Conn] = asyncio.get_running_loop().create_future()
    lost: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    listener = socket.create_server(("127.0.0.1", 0))
    tracker = ConnectionTracker()
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: TransportAdapter(lambda: _Record(accepted, lost), tracker), sock=listener
    )
    client = socket.create_connection(listener.getsockname(), timeout=5)
    conn = await asyncio.wait_for(accepted, 5)
    client.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    client.close()  # RST
    time.sleep(0.1)  # the kernel has it; the loop has not run to notice
    conn.close()  # shutdown(SHUT_WR) on a reset socket: ENOTCONN
    await asyncio.wait_for(lost, 5)
    server.close()


async def _serve_one(
    family: int = socket.AF_INET, path: str | None = None
) -> tuple[asyncio.AbstractServer, socket.socket, Conn]:
    """A `TransportAdapter` over one real accepted connection, and the client's socket."""
    from pounce.net.transport import ConnectionTracker, TransportAdapter

    loop = asyncio.get_running_loop()
    accepted: asyncio.Future[Conn] = loop.create_future()
    tracker = ConnectionTracker()
    if family == socket.AF_UNIX:
        assert path is not None
        listener = socket.socket(socket.AF_UNIX)
        listener.bind(path)
        listener.listen()
        address: object = path
    else:
        listener = socket.create_server(("127.0.0.1", 0))
        address = listener.getsockname()
    server = await loop.create_server(
        lambda: TransportAdapter(lambda: _Record(accepted), tracker), sock=listener
    )
    client = socket.socket(family)
    client.settimeout(5)
    client.connect(address)
    conn = await asyncio.wait_for(accepted, 5)
    return server, client, conn


async def _read_to_eof(client: socket.socket) -> bytes:
    received = b""
    while chunk := await asyncio.to_thread(client.recv, 1024):  # (the client's 5 s timeout)
        received += chunk
    return received


@pytest.mark.skipif(not hasattr(socket, "TCP_CORK"), reason="TCP_CORK is Linux's")
@pytest.mark.parametrize("peer_done", [True, False], ids=["peer-done", "lingering"])
def test_write_last_holds_the_bytes_for_the_close(loop_name: str, peer_done: bool) -> None:
    """The connection's last response waits in the kernel (``TCP_CORK``) for the close,
    which sends it — after the client's ``Connection: close`` (a close at once) or before
    lingering (the half-close sends it)."""
    from pounce.net.loops import loop_factory

    async def scenario() -> None:
        server, client, conn = await _serve_one()
        assert isinstance(conn, TransportAdapter)
        with client:
            conn.write_last(b"the last response")
            sock = conn._transport.get_extra_info("socket") if conn._transport else None
            assert sock is not None
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_CORK) == 1
            if peer_done:
                conn.input_finished()
            conn.close()
            assert await _read_to_eof(client) == b"the last response"
        server.close()

    from pounce.net.transport import TransportAdapter

    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:  # type: ignore[arg-type]
        runner.run(scenario())


def test_write_last_on_a_unix_socket_writes_as_write_does(loop_name: str, tmp_path: Path) -> None:
    """No TCP there to cork: the bytes go at once, before any close."""
    from pounce.net.loops import loop_factory

    async def scenario() -> None:
        server, client, conn = await _serve_one(socket.AF_UNIX, str(tmp_path / "s.sock"))
        with client:
            assert isinstance(conn, TransportAdapter)
            conn.write_last(b"the last response")
            assert await asyncio.to_thread(client.recv, 1024) == b"the last response"
            conn.close()
            assert await _read_to_eof(client) == b""
        server.close()

    from pounce.net.transport import TransportAdapter

    with asyncio.Runner(loop_factory=loop_factory(loop_name)) as runner:  # type: ignore[arg-type]
        runner.run(scenario())


@pytest.mark.parametrize(
    "closing",
    [b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", b"GET / HTTP/1.0\r\n\r\n"],
    ids=["one-call", "two-events"],
)
def test_the_response_that_ends_a_connection_is_its_last_write(
    monkeypatch: pytest.MonkeyPatch, closing: bytes
) -> None:
    """The driver writes a response that ends the connection by `write_last` (so it leaves
    with the FIN) — by `send_whole`'s one call or as head and body events (HTTP/1.0) — and a
    kept-alive one by `write`."""
    from pounce.net.transport import TransportAdapter

    last: list[bytes] = []
    write_last = TransportAdapter.write_last

    def recording(self: TransportAdapter, data: bytes) -> None:
        last.append(data)
        write_last(self, data)

    monkeypatch.setattr(TransportAdapter, "write_last", recording)
    server = Server.builder().bind("127.0.0.1", 0).h1().asgi(hello)
    with TestServer(server) as ts, socket.create_connection((ts.host, ts.port), timeout=5) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        first = sock.recv(4096)
        assert first.endswith(b"hello from 127.0.0.1")
        assert last == []
        sock.sendall(closing)
        received = b""
        while chunk := sock.recv(4096):
            received += chunk
    assert received.startswith(b"HTTP/1.1 200 OK\r\n")
    assert received.endswith(b"hello from 127.0.0.1")
    assert last == [received]
