"""Idle keep-alive connections during a graceful shutdown, over real sockets.

A request its client sent on an idle keep-alive connection just as the
worker began to drain is answered — with ``connection: close`` — not lost
to a connection closed under it; past ``timeout_shutdown_idle`` (or at once
with 0) the idle connection closes. A readiness probe on such a connection
sees the 503 a load balancer needs.
"""

from __future__ import annotations

import contextlib
import socket
import time

from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, HeldApp, builder, read_response, send_request, wait_for

SETTLE = 0.3  # seconds after the listener closed: the drain has reached the connections


def _keep_alive(port: int) -> socket.socket:
    """A connection that has had one answer and is now idle, kept alive."""
    sock = send_request(port, "/first")
    status, headers, _ = read_response(sock)
    assert status == 200 and "connection" not in headers
    return sock


def _listener_closed(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
    except (ConnectionRefusedError, ConnectionResetError):
        # (reset: the connect reached the backlog of a listener closing under it)
        return True
    return False


def _drain(ts: TestServer) -> None:
    ts.request_stop()
    wait_for(lambda: _listener_closed(ts.port), "the listener to close")
    time.sleep(SETTLE)


def _closed_by_server(sock: socket.socket) -> bool:
    sock.settimeout(TIMEOUT)
    try:
        return sock.recv(1) == b""
    except ConnectionResetError:
        return True


def test_a_request_on_an_idle_connection_after_the_drain_began_is_answered_with_close() -> None:
    app = HeldApp()
    server = builder().timeouts(keep_alive=60.0, shutdown_idle=5.0).asgi(app)
    ts = TestServer(server).start()
    try:
        sock = _keep_alive(ts.port)
        _drain(ts)
        sock.sendall(b"GET /late HTTP/1.1\r\nhost: test\r\n\r\n")
        status, headers, body = read_response(sock)
        assert (status, body, headers["connection"]) == (200, b"/late", "close")
        assert _closed_by_server(sock)
        sock.close()
    finally:
        ts.stop()
    assert app.entered == ["/first", "/late"]


def test_a_readiness_probe_on_a_kept_alive_connection_sees_the_drain() -> None:
    server = builder().timeouts(keep_alive=60.0, shutdown_idle=5.0).health().asgi(HeldApp())
    ts = TestServer(server).start()
    try:
        sock = _keep_alive(ts.port)
        _drain(ts)
        sock.sendall(b"GET /readyz HTTP/1.1\r\nhost: test\r\n\r\n")
        status, headers, body = read_response(sock)
        assert (status, body, headers["connection"]) == (503, b"not ready: draining\n", "close")
        sock.close()
    finally:
        ts.stop()


def test_an_idle_connection_closes_after_the_grace_and_the_shutdown_ends() -> None:
    server = builder().timeouts(keep_alive=60.0, shutdown_idle=0.5).asgi(HeldApp())
    ts = TestServer(server).start()
    try:
        sock = _keep_alive(ts.port)
        ts.request_stop()
        assert _closed_by_server(sock)  # no request came: closed, nothing sent
        sock.close()
    finally:
        ts.stop()


def test_shutdown_idle_0_closes_idle_connections_at_once() -> None:
    server = builder().timeouts(keep_alive=60.0, shutdown_idle=0).asgi(HeldApp())
    ts = TestServer(server).start()
    try:
        sock = _keep_alive(ts.port)
        _drain(ts)
        # Already closed before the request: it is lost (what the grace prevents).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            sock.sendall(b"GET /late HTTP/1.1\r\nhost: test\r\n\r\n")
        assert _closed_by_server(sock)
        sock.close()
    finally:
        ts.stop()
