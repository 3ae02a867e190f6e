"""Hostile clients: every connection bounded in time and memory.

Each test here drives a real server over real sockets the way an attacker
would — a socket that says nothing (or only the start of a preface), a
client that pipelines and never reads, WebSocket pings never read, a body
trickled a byte at a time, port probes during shutdown — and asserts the
bound: the connection closes, the server's memory stays flat while other
clients are served, the 408 comes in time.
"""

from __future__ import annotations

import base64
import contextlib
import logging
import os
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import h2.config
import h2.connection
import pytest
from wsproto.events import Ping

from pounce import Server
from pounce.builder import ServerBuilder
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.edge_clients import TIMEOUT, Running, cli, proxy_v1
from tests.integration.h2ws import h2_websocket
from tests.integration.hostile_apps import app

PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
HALF_PREFACE = PREFACE[:12]
SHORT = 0.3  # seconds: every phase timeout of the servers under test
CLOSED_WITHIN = 6.0  # seconds; the phases add up to ~1.5 s, the rest is slack for CI

# -- every phase of a connection has a deadline ---------------------------------------------

PROTOCOL_SETS = {
    "h1": lambda b: b.h1(),
    "h2": lambda b: b.h2(),
    "h1+h2": lambda b: b.h1().h2(),
    "h1+ws": lambda b: b.h1().websocket(),
    "h1+h2+ws": lambda b: b.h1().h2().websocket(),
}
FRONTS = ("plain", "proxy", "tls", "proxy+tls")

Probe = Callable[[int], socket.socket]
"""Opens a connection in one partial shape; returns the socket to watch for the close."""


def _raw(port: int, first: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
    if first:
        sock.sendall(first)
    return sock


def _proxy_header(sock: socket.socket) -> bytes:
    return proxy_v1(("203.0.113.7", 4242), ("127.0.0.1", sock.getpeername()[1]))


def _client_context(pki: PKI) -> ssl.SSLContext:
    return ssl.create_default_context(cafile=str(pki.ca))  # no ALPN offered


def client_hello(context: ssl.SSLContext) -> bytes:
    """The bytes of a ClientHello, to send and then fall silent."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="localhost")
    with pytest.raises(ssl.SSLWantReadError):
        tls.do_handshake()
    return outgoing.read()


def _probes(front: str, pki: PKI) -> dict[str, Probe]:
    ctx = _client_context(pki)

    def proxied(first: bytes = b"") -> Probe:
        def probe(port: int) -> socket.socket:
            sock = _raw(port)
            sock.sendall(_proxy_header(sock) + first)
            return sock

        return probe

    def handshaken(first: bytes = b"", *, proxy: bool = False) -> Probe:
        def probe(port: int) -> socket.socket:
            sock = _raw(port)
            if proxy:
                sock.sendall(_proxy_header(sock))
            tls = ctx.wrap_socket(sock, server_hostname="localhost")
            if first:
                tls.sendall(first)
            return tls

        return probe

    if front == "plain":
        return {
            "nothing": _raw,
            "P": lambda port: _raw(port, b"P"),
            "half preface": lambda port: _raw(port, HALF_PREFACE),
            "half head": lambda port: _raw(port, b"GET / HTTP/1.1\r\n"),
        }
    if front == "proxy":
        return {
            "half proxy header": lambda port: _raw(port, b"PROXY TCP4 203.0"),
            "proxy header": proxied(),
            "proxy header, P": proxied(b"P"),
            "proxy header, half preface": proxied(HALF_PREFACE),
        }
    if front == "tls":
        return {
            "nothing": _raw,
            "client hello": lambda port: _raw(port, client_hello(ctx)),
            "handshake": handshaken(),
            "handshake, P": handshaken(b"P"),
            "handshake, half preface": handshaken(HALF_PREFACE),
        }
    return {
        "proxy header": proxied(),
        "proxy header, client hello": proxied(client_hello(ctx)),
        "proxy header, handshake": handshaken(proxy=True),
        "proxy header, handshake, P": handshaken(b"P", proxy=True),
    }


def _front(builder: ServerBuilder, front: str, pki: PKI, timeout: float) -> ServerBuilder:
    if "proxy" in front:
        builder = builder.proxy_protocol(trusted=["127.0.0.1"], header_timeout=timeout)
    if "tls" in front:
        builder = builder.tls(cert=str(pki.cert), key=str(pki.key), handshake_timeout=timeout)
    return builder


def _seconds_until_closed(sock: socket.socket) -> float:
    """How long until the server closes `sock` (a reset counts); inf if it never does."""
    start = time.monotonic()
    sock.settimeout(CLOSED_WITHIN)
    try:
        while sock.recv(65536):
            pass
    except (ConnectionError, ssl.SSLError):
        pass
    except TimeoutError:
        return float("inf")
    finally:
        sock.close()
    return time.monotonic() - start


@pytest.mark.parametrize("front", FRONTS)
@pytest.mark.parametrize("protocols", list(PROTOCOL_SETS))
def test_a_connection_that_stalls_in_any_phase_is_closed(
    protocols: str, front: str, pki: PKI
) -> None:
    """Silent, or silent after a prefix: every shape closes, whatever the stack."""
    builder = _front(Server.builder().bind("127.0.0.1", 0), front, pki, SHORT)
    server = PROTOCOL_SETS[protocols](builder).timeouts(request_head=SHORT).asgi(app)
    probes = _probes(front, pki)
    with TestServer(server) as ts, ThreadPoolExecutor(len(probes)) as pool:
        socks = {name: probe(ts.port) for name, probe in probes.items()}
        waits = {name: pool.submit(_seconds_until_closed, s) for name, s in socks.items()}
        took = {name: wait.result() for name, wait in waits.items()}
    assert all(seconds < CLOSED_WITHIN for seconds in took.values()), took


# -- shutdown never waits for a connection that has not started --------------------------------

LOOPS = ["asyncio", "uvloop"]


@pytest.mark.parametrize("loop", LOOPS)
def test_shutdown_drops_connections_that_have_not_started(loop: str, pki: PKI) -> None:
    """Port probes, half ClientHellos, half PROXY headers, silent sockets: none delays stop."""
    long = 20.0  # no phase timeout may be what ends them
    tls = _front(Server.builder().bind("127.0.0.1", 0), "tls", pki, long)
    proxy = _front(Server.builder().bind("127.0.0.1", 0), "proxy", pki, long)
    plain = Server.builder().bind("127.0.0.1", 0)
    servers = [
        PROTOCOL_SETS["h1+h2+ws"](b).timeouts(request_head=long, graceful_shutdown=long).asgi(app)
        for b in (tls, proxy, plain)
    ]
    hello = client_hello(_client_context(pki))
    running = [TestServer(s, loop=loop).start() for s in servers]
    try:
        tls_port, proxy_port, plain_port = (ts.port for ts in running)
        socks = []
        for _ in range(5):  # port probes: connect, close at once
            _raw(tls_port).close()
            _raw(plain_port).close()
        socks += [_raw(tls_port, hello[:20]) for _ in range(2)]  # mid-ClientHello
        socks += [_raw(tls_port, hello) for _ in range(2)]  # mid-handshake
        socks += [_raw(proxy_port, b"PROXY TCP4 ") for _ in range(2)]
        socks += [_raw(plain_port) for _ in range(2)]  # silent, no protocol chosen
        socks += [_raw(plain_port, b"P") for _ in range(2)]
        time.sleep(0.3)
        for ts in running:
            start = time.monotonic()
            ts.stop()
            # Gone, mid-handshake, mid-header: dropped at once. Open but silent: a
            # request may be on its way, so SHUTDOWN_HEAD_GRACE (1 s) — never the
            # 20 s graceful timeout.
            assert time.monotonic() - start < 3.0, ts.server.describe()
    finally:
        for ts in running:
            ts.stop()
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("loop", LOOPS)
def test_a_tls_handshake_under_way_at_shutdown_finishes_and_is_answered_with_close(
    loop: str, pki: PKI, caplog: pytest.LogCaptureFixture
) -> None:
    """A client that connected just before the drain began (a rolling restart) is served.

    Its ClientHello is in, the rest of its handshake comes after shutdown has
    begun: within the handshake's grace (`HANDSHAKE_SHUTDOWN_GRACE`) it
    finishes, and the request that follows is answered with ``connection:
    close`` — not an EOF in the middle of the handshake.
    """
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .timeouts(graceful_shutdown=10.0)
        .asgi(app)
    )
    ts = TestServer(server, loop=loop).start()
    stopping = threading.Thread(target=ts.stop)
    sock = _raw(ts.port)
    try:
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = _client_context(pki).wrap_bio(incoming, outgoing, server_hostname="localhost")
        with pytest.raises(ssl.SSLWantReadError):
            tls.do_handshake()
        sock.sendall(outgoing.read())  # the ClientHello, then the server's flight back
        with caplog.at_level(logging.INFO, logger="pounce.error"):
            stopping.start()
            deadline = time.monotonic() + TIMEOUT
            while not any("Shutting down" in r.getMessage() for r in caplog.records):
                assert time.monotonic() < deadline, "the server never began to shut down"
                time.sleep(0.01)
            time.sleep(0.05)  # (the drain reaches the connections: a few loop turns)
            while True:  # the rest of the handshake, after the drain began
                try:
                    tls.do_handshake()
                    break
                except ssl.SSLWantReadError:
                    sock.sendall(outgoing.read())
                    data = sock.recv(65536)
                    assert data, "the server closed the connection during the handshake"
                    incoming.write(data)
            tls.write(b"GET / HTTP/1.1\r\nhost: localhost\r\n\r\n")
            sock.sendall(outgoing.read())
            answer = b""
            while b"\r\n\r\n" not in answer:
                data = sock.recv(65536)
                assert data, f"closed before a response: {answer!r}"
                incoming.write(data)
                with contextlib.suppress(ssl.SSLWantReadError):
                    answer += tls.read(65536)
        head = answer.split(b"\r\n\r\n")[0].lower()
        assert head.startswith(b"http/1.1 200"), head
        assert b"\r\nconnection: close" in head, head
    finally:
        sock.close()
        if stopping.ident is None:
            ts.stop()
        else:
            stopping.join(TIMEOUT)


# -- a client that does not read stops being read ----------------------------------------------

FLOOD_SECONDS = 3.0
RSS_BOUND = 16 * 1024 * 1024  # bytes of growth allowed while flooded


def rss(pid: int) -> int:
    """Resident set size of `pid` in bytes (Linux)."""
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def non_reading_socket(port: int) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.settimeout(TIMEOUT)
    sock.connect(("127.0.0.1", port))
    return sock


def flood(sock: socket.socket, data: bytes, seconds: float = FLOOD_SECONDS) -> int:
    """Send `data` again and again for `seconds`, never reading; bytes sent."""
    sock.settimeout(0.05)
    view, offset, sent = memoryview(data), 0, 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            n = sock.send(view[offset:])
        except TimeoutError:
            continue  # the server stopped reading us: the point of the test
        except ConnectionError:
            break  # or gave up on us
        sent += n
        offset = (offset + n) % len(data)
    return sent


def hello_over_new_connection(port: int) -> bytes:
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data


@contextmanager
def flooded_server(*args: str) -> Iterator[Running]:
    with cli("hostile_apps:app", "--no-access-log", *args) as server:
        for _ in range(20):  # warm up: imports, first requests, allocator arenas
            assert hello_over_new_connection(server.port).endswith(b"hello")
        yield server


def assert_bounded(server: Running, before: int) -> None:
    grown = rss(server.proc.pid) - before
    assert grown < RSS_BOUND, f"server RSS grew by {grown / 2**20:.0f} MiB"
    assert hello_over_new_connection(server.port).endswith(b"hello")  # others still served


@pytest.mark.parametrize("parser", ["fast", "h11"])
def test_pipelining_client_that_never_reads(parser: str) -> None:
    with flooded_server("--http", parser) as server:
        before = rss(server.proc.pid)
        sock = non_reading_socket(server.port)
        try:
            sent = flood(sock, b"GET /16k HTTP/1.1\r\nHost: t\r\n\r\n" * 2000)
            assert_bounded(server, before)
        finally:
            sock.close()
        assert sent > 0


def test_websocket_client_that_pings_and_never_reads() -> None:
    with flooded_server() as server:
        before = rss(server.proc.pid)
        sock = non_reading_socket(server.port)
        try:
            key = base64.b64encode(os.urandom(16))
            sock.sendall(
                b"GET /ws HTTP/1.1\r\nHost: t\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: " + key + b"\r\n\r\n"
            )
            assert b" 101 " in sock.recv(4096)
            mask, payload = b"\x01\x02\x03\x04", b"p" * 125
            masked = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
            ping = b"\x89\xfd" + mask + masked  # PING, masked, 125 bytes
            flood(sock, ping * 500)
            assert_bounded(server, before)
        finally:
            sock.close()


def test_http2_client_that_never_reads_its_streams() -> None:
    """Streamed DATA to a peer that reads none: bounded by drain and windows, not memory."""
    with flooded_server() as server:
        before = rss(server.proc.pid)
        sock = non_reading_socket(server.port)
        try:
            conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
            conn.initiate_connection()
            conn.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 2**31 - 1})
            conn.increment_flow_control_window(2**31 - 2**16 - 1)
            for i in range(20):
                conn.send_headers(
                    1 + 2 * i,
                    [
                        (":method", "GET"),
                        (":scheme", "http"),
                        (":authority", "t"),
                        (":path", "/stream"),
                    ],
                    end_stream=True,
                )
            sock.sendall(conn.data_to_send())
            flood(sock, b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping")  # PINGs, never read
            assert_bounded(server, before)
        finally:
            sock.close()


# -- a trickled body is cut off; an honest slow one is not ------------------------------------


def _trickle(port: int, result: dict[str, float | bytes]) -> None:
    """Content-Length 1000, then one byte a second: the 408 and when it came."""
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n")
        sock.settimeout(1.0)
        while time.monotonic() - start < 40:
            try:
                sock.sendall(b"x")
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except ConnectionError:
                break
            result["answer"] = answer
            break
    result["seconds"] = time.monotonic() - start


def _slow_upload(port: int, result: dict[str, float | bytes]) -> None:
    """1 MiB at 64 KiB/s, in 8 KiB pieces: slow but honest."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 1048576\r\n\r\n")
        for _ in range(128):
            sock.sendall(b"y" * 8192)
            time.sleep(0.125)
        result["answer"] = sock.recv(65536)


def test_trickled_body_gets_408_and_honest_slow_upload_succeeds() -> None:
    """Defaults, and --timeout-request-body 5: 1 B/s is cut off within 30 s."""
    with (
        cli("hostile_apps:app") as defaults,
        cli("hostile_apps:app", "--timeout-request-body", "5") as short,
    ):
        results: list[dict[str, float | bytes]] = [{}, {}, {}]
        threads = [
            threading.Thread(target=_trickle, args=(defaults.port, results[0])),
            threading.Thread(target=_trickle, args=(short.port, results[1])),
            threading.Thread(target=_slow_upload, args=(defaults.port, results[2])),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(45)
        for trickled in results[:2]:
            assert trickled["answer"].startswith(b"HTTP/1.1 408 "), trickled  # type: ignore[union-attr]
            assert 15 < trickled["seconds"] < 30, trickled
        upload = results[2]["answer"]
        assert upload.startswith(b"HTTP/1.1 200 ") and upload.endswith(b"1048576"), upload  # type: ignore[union-attr]
        for server in (defaults, short):
            server.wait_for("request body slower than 500 B/s")


def test_websocket_over_http2_pings_unread_stop_being_credited() -> None:
    """RFC 8441: pongs wait for the stream's window; meanwhile we stop crediting the pings."""
    server = Server.builder().bind("127.0.0.1", 0).h1().h2().websocket().asgi(app)
    with TestServer(server) as ts, h2_websocket(ts.port) as client:
        sid, status, _ = client.open()
        assert status == 200
        ping = client.ws[sid].send(Ping(payload=b"p" * 125))
        sent, stalled = 0, 0.0
        deadline = time.monotonic() + FLOOD_SECONDS
        client.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            if client.h2.local_flow_control_window(sid) >= len(ping):
                client.h2.send_data(sid, ping)
                client.sock.sendall(client.h2.data_to_send())
                sent += len(ping)
                continue
            try:  # for WINDOW_UPDATE; the pongs' DATA is never acknowledged
                data = client.sock.recv(65536)
            except TimeoutError:
                stalled += 0.2
                continue
            assert data, "the server closed the connection"
            client.h2.receive_data(data)
            client.sock.sendall(client.h2.data_to_send())
        # One stream window of pings and one of pongs in flight, not a flood's worth.
        assert sent < 4 * 65_535, sent
        assert stalled > 0


def test_client_that_reads_nothing_of_a_response_is_aborted_after_send_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="pounce.error")
    server = Server.builder().bind("127.0.0.1", 0).h1().timeouts(send=0.5).asgi(app)
    with TestServer(server) as ts:
        sock = non_reading_socket(ts.port)
        with sock:
            sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
            start = time.monotonic()
            time.sleep(1.5)  # read nothing while the server fills its buffers
            with pytest.raises(ConnectionResetError):
                while sock.recv(65536):
                    pass
            assert time.monotonic() - start < 1.5 + TIMEOUT
        assert any("read nothing of our output" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("loop", LOOPS)
def test_shutdown_does_not_wait_for_a_tls_client_that_never_answers_our_close(
    loop: str, pki: PKI
) -> None:
    """An idle TLS client that reads nothing never sends close_notify back: our close
    gives up after TLS_SHUTDOWN_TIMEOUT (2 s), not asyncio's 30 s or the graceful timeout."""
    server = (
        _front(Server.builder().bind("127.0.0.1", 0), "tls", pki, 20.0)
        .h1()
        .timeouts(request_head=20.0, graceful_shutdown=20.0)
        .asgi(app)
    )
    ts = TestServer(server, loop=loop).start()
    tls = _client_context(pki).wrap_socket(_raw(ts.port), server_hostname="localhost")
    try:
        start = time.monotonic()
        ts.stop()
        assert time.monotonic() - start < 6.0
    finally:
        tls.close()
