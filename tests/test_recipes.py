"""The recipes in ``recipes/``, each served by a real Pounce server on real sockets.

Recipes are scripts, not a package: they are imported with ``recipes/`` on
``sys.path``, exactly as ``python recipes/<name>.py`` would see it.
"""

from __future__ import annotations

import asyncio
import importlib
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import httpx
import pytest

from pounce import BuildError, Server
from pounce.asgi.types import Message, Receive, Scope, Send
from pounce.testing import TestServer, check_protocol

RECIPES = Path(__file__).resolve().parent.parent / "recipes"
TIMEOUT = 5.0  # seconds, for every network wait


def _recipe(name: str) -> ModuleType:
    if str(RECIPES) not in sys.path:
        sys.path.insert(0, str(RECIPES))
    return importlib.import_module(name)


add_header = _recipe("add_header")
line_echo = _recipe("line_echo")
connection_cap = _recipe("connection_cap")
upgrade_echo = _recipe("upgrade_echo")


# -- socket helpers --------------------------------------------------------------------


def _connect(ts: TestServer) -> socket.socket:
    return socket.create_connection((ts.host, ts.port), timeout=TIMEOUT)


def _recv_exactly(sock: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = sock.recv(size - len(data))
        assert chunk, f"closed after {data!r}"
        data += chunk
    return data


def _recv_to_eof(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def _nothing_arrives(sock: socket.socket, wait: float = 0.1) -> bool:
    sock.settimeout(wait)
    try:
        sock.recv(1)
    except TimeoutError:
        return True
    finally:
        sock.settimeout(TIMEOUT)
    return False


# -- add_header.py ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def header_server() -> Iterator[TestServer]:
    with TestServer(add_header.build_server("127.0.0.1", 0)) as ts:
        yield ts


@pytest.mark.parametrize(
    ("method", "path", "status"),
    [
        ("GET", "/", 200),
        ("GET", "/json", 200),
        ("GET", "/missing", 404),
        ("HEAD", "/download", 200),
    ],
)
def test_add_header_on_every_response(
    header_server: TestServer, method: str, path: str, status: int
) -> None:
    r = httpx.request(method, header_server.url + path, timeout=TIMEOUT)
    assert r.status_code == status
    assert r.headers["x-served-by"] == "pounce-recipe"
    assert r.headers["x-content-type-options"] == "nosniff"  # the app's own headers stay


def test_add_header_describes_itself() -> None:
    lines = add_header.build_server("127.0.0.1", 0).describe().splitlines()
    assert "app      add header x-served-by: pounce-recipe" in lines


def test_add_header_leaves_the_apps_message_alone() -> None:
    start: Message = {"type": "http.response.start", "status": 200, "headers": [(b"a", b"1")]}
    sent: list[Message] = []

    async def inner(scope: Scope, receive: Receive, send: Send) -> None:
        await send(start)

    async def record(message: Message) -> None:
        sent.append(message)

    async def nothing() -> Message:
        return {}

    wrapped = add_header.AddHeader(b"X-Test", b"yes").wrap(inner)
    asyncio.run(wrapped({"type": "http"}, nothing, record))
    assert sent[0]["headers"] == [(b"a", b"1"), (b"x-test", b"yes")]
    assert start["headers"] == [(b"a", b"1")]
    sent.clear()
    asyncio.run(wrapped({"type": "lifespan"}, nothing, record))
    assert sent == [start]  # other scopes pass through untouched


@pytest.mark.parametrize(
    ("name", "value"), [(b"", b"v"), (b"a b", b"v"), (b"a:", b"v"), (b"a", b"x\r\ny")]
)
def test_add_header_rejects_bad_headers(name: bytes, value: bytes) -> None:
    with pytest.raises(BuildError):
        add_header.AddHeader(name, value)


# -- line_echo.py -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def echo_server() -> Iterator[TestServer]:
    with TestServer(line_echo.build_server("127.0.0.1", 0)) as ts:
        yield ts


@pytest.fixture(scope="module")
def short_echo_server() -> Iterator[TestServer]:
    server = Server.builder().bind("127.0.0.1", 0).protocol(line_echo.LineEcho(max_line=16)).build()
    with TestServer(server) as ts:
        yield ts


def test_line_echo_answers_a_line(echo_server: TestServer) -> None:
    with _connect(echo_server) as sock:
        sock.sendall(b"hello, world\n")
        assert _recv_exactly(sock, 13) == b"HELLO, WORLD\n"


def test_line_echo_buffers_a_partial_line(echo_server: TestServer) -> None:
    with _connect(echo_server) as sock:
        sock.sendall(b"hel")
        assert _nothing_arrives(sock)
        sock.sendall(b"lo\nwor")
        assert _recv_exactly(sock, 6) == b"HELLO\n"
        sock.sendall(b"ld\n")
        assert _recv_exactly(sock, 6) == b"WORLD\n"


def test_line_echo_answers_several_lines_in_one_packet(echo_server: TestServer) -> None:
    with _connect(echo_server) as sock:
        sock.sendall(b"a\nb\r\n\nc\xc3\xa9\n")
        assert _recv_exactly(sock, 10) == b"A\nB\r\n\nC\xc3\xa9\n"  # non-ASCII passes through


def test_line_echo_answers_the_last_partial_line_at_eof(echo_server: TestServer) -> None:
    with _connect(echo_server) as sock:
        sock.sendall(b"one\ntwo")
        sock.shutdown(socket.SHUT_WR)
        assert _recv_to_eof(sock) == b"ONE\nTWO"


def test_line_echo_accepts_a_line_of_exactly_the_limit(echo_server: TestServer) -> None:
    line = b"x" * line_echo.MAX_LINE + b"\n"
    with _connect(echo_server) as sock:
        sock.sendall(line)
        assert _recv_exactly(sock, len(line)) == line.upper()


def test_line_echo_closes_on_a_partial_line_past_the_limit(echo_server: TestServer) -> None:
    with _connect(echo_server) as sock:
        sock.sendall(b"x" * (line_echo.MAX_LINE + 1))  # no newline; nothing left unread
        assert _recv_to_eof(sock) == b"ERR line too long (max 65536 bytes)\n"


def test_line_echo_closes_on_a_complete_line_past_the_limit(
    short_echo_server: TestServer,
) -> None:
    with _connect(short_echo_server) as sock:
        sock.sendall(b"ok\n" + b"x" * 17 + b"\n")
        assert _recv_to_eof(sock) == b"OK\nERR line too long (max 16 bytes)\n"


def test_line_echo_rejects_a_bad_limit() -> None:
    with pytest.raises(BuildError):
        line_echo.LineEcho(max_line=0)


def test_line_echo_closes_idle_clients_at_shutdown() -> None:
    ts = TestServer(line_echo.build_server("127.0.0.1", 0)).start()
    try:
        sock = _connect(ts)
        sock.sendall(b"hi\n")
        assert _recv_exactly(sock, 3) == b"HI\n"
    finally:
        started = time.monotonic()
        ts.stop()
    with sock:
        assert _recv_to_eof(sock) == b""
    assert time.monotonic() - started < TIMEOUT  # not the 30 s graceful timeout


# -- connection_cap.py ----------------------------------------------------------------------


def _admitted(ts: TestServer) -> socket.socket | None:
    """A connection the server answers, or None if it was closed at once."""
    sock = _connect(ts)
    try:
        sock.sendall(b"ping\n")
        reply = sock.recv(5)
    except ConnectionError:
        reply = b""
    if reply:
        assert reply + _recv_exactly(sock, 5 - len(reply)) == b"PING\n"
        return sock
    sock.close()
    return None


def test_connection_cap_closes_the_connection_past_the_cap() -> None:
    with TestServer(connection_cap.build_server("127.0.0.1", 0, cap=2)) as ts:
        first, second = _admitted(ts), _admitted(ts)
        assert first is not None and second is not None
        with _connect(ts) as third:
            assert _recv_to_eof(third) == b""  # closed before a byte was read
        first.close()
        deadline = time.monotonic() + TIMEOUT
        while (again := _admitted(ts)) is None:  # the server sees the close asynchronously
            assert time.monotonic() < deadline, "a freed slot was never reused"
            time.sleep(0.01)
        again.close()
        second.close()


def test_connection_cap_describes_itself() -> None:
    lines = connection_cap.build_server("127.0.0.1", 0, cap=3).describe().splitlines()
    assert lines[1:3] == [
        "stream   connection cap (3 connections)",
        "protocol line-echo (max line 65536 B)",
    ]


def test_connection_cap_rejects_a_bad_cap() -> None:
    with pytest.raises(BuildError, match="positive integer"):
        connection_cap.ConnectionCap(0)


def test_line_echo_stops_reading_from_a_client_that_never_reads(echo_server: TestServer) -> None:
    block = (b"x" * 1023 + b"\n") * 1024  # 1 MiB of lines
    sent = 0
    with _connect(echo_server) as sock:
        sock.settimeout(0.3)  # a send that stalls this long means the server stopped reading
        with pytest.raises(TimeoutError):
            while sent < 256 * 1024 * 1024:
                sent += sock.send(block)
    assert sent < 256 * 1024 * 1024


def test_connection_cap_composes_with_http() -> None:
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .layer(connection_cap.ConnectionCap(1))
        .h1()
        .layer(add_header.AddHeader(b"x-capped", b"1"))
        .asgi(add_header.demo_app)
    )
    with TestServer(server) as ts, httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client:
        assert client.get("/json").headers["x-capped"] == "1"
        assert client.get("/json").status_code == 200  # the one place, kept alive


# -- upgrade_echo.py ----------------------------------------------------------------------------


def _upgrade(path: bytes = b"/echo", after: bytes = b"") -> bytes:
    return (
        b"GET " + path + b" HTTP/1.1\r\nhost: x\r\nupgrade: echo\r\n"
        b"connection: upgrade\r\n\r\n" + after
    )


def _recv_head(sock: socket.socket) -> tuple[bytes, bytes]:
    """The response head, and whatever arrived behind it."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed after {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    return head, rest


@pytest.fixture(scope="module")
def upgrade_server() -> Iterator[TestServer]:
    with TestServer(upgrade_echo.build_server("127.0.0.1", 0)) as ts:
        yield ts


def test_upgrade_echo_switches_and_echoes(upgrade_server: TestServer) -> None:
    with _connect(upgrade_server) as sock:
        sock.sendall(_upgrade(after=b"early"))  # bytes right behind the head: the echo's
        head, rest = _recv_head(sock)
        assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
        assert b"upgrade: echo" in head.lower()
        rest += _recv_exactly(sock, 5 - len(rest))
        assert rest == b"early"
        sock.sendall(b"GET / HTTP/1.1\r\n\r\n")  # no longer HTTP: echoed back as bytes
        assert _recv_exactly(sock, 18) == b"GET / HTTP/1.1\r\n\r\n"
        sock.shutdown(socket.SHUT_WR)
        assert _recv_to_eof(sock) == b""


def test_upgrade_echo_refused_elsewhere_is_plain_http(upgrade_server: TestServer) -> None:
    with _connect(upgrade_server) as sock:
        sock.sendall(_upgrade(b"/other"))  # accepts_upgrade says no: the app answers
        head, _ = _recv_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
    r = httpx.get(upgrade_server.url + "/echo", timeout=TIMEOUT)  # no Upgrade: plain HTTP
    assert r.status_code == 200 and "Upgrade: echo" in r.text


def test_upgrade_echo_closes_at_shutdown() -> None:
    ts = TestServer(upgrade_echo.build_server("127.0.0.1", 0)).start()
    try:
        sock = _connect(ts)
        sock.sendall(_upgrade())
        _recv_head(sock)
    finally:
        started = time.monotonic()
        ts.stop()
    with sock:
        assert _recv_to_eof(sock) == b""
    assert time.monotonic() - started < TIMEOUT  # not the 30 s graceful timeout


def test_upgrade_echo_describes_itself() -> None:
    lines = upgrade_echo.build_server("127.0.0.1", 0).describe().splitlines()
    assert "protocol echo (Upgrade: echo at /echo)" in lines


def test_upgrade_echo_passes_the_conformance_kit() -> None:
    check_protocol(upgrade_echo.UpgradeEcho(), upgrade_target=b"/echo")
