"""The ASGI adapter over real sockets: scope, streaming, failures, access log.

A real Pounce server (`TestServer`) on 127.0.0.1, driven with httpx, or with
a raw socket where the exact bytes on the wire are the point; every test runs
on each HTTP/1.1 core, since the adapter must behave the same over both. Log records are
collected by a handler on the named logger itself, since they are emitted on
the server's thread and the ``pounce`` logger may not propagate to the root.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.drivers.http1 import H1Parser
from pounce.testing import TestServer

TIMEOUT = 5.0  # seconds for every network wait and every poll
PARSERS: tuple[H1Parser, ...] = ("fast", "h11")


class RecordList(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def wait_for(self, predicate: Callable[[logging.LogRecord], bool]) -> logging.LogRecord:
        """The first matching record; polls since the server logs on its own thread."""
        deadline = time.monotonic() + TIMEOUT
        while True:
            for record in list(self.records):
                if predicate(record):
                    return record
            if time.monotonic() > deadline:
                seen = [r.getMessage() for r in self.records]
                raise AssertionError(f"no matching log record; saw {seen}")
            time.sleep(0.01)


@contextlib.contextmanager
def logged(name: str, level: int = logging.INFO) -> Iterator[RecordList]:
    logger = logging.getLogger(name)
    handler = RecordList()
    old_level = logger.level
    logger.addHandler(handler)
    logger.setLevel(level)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)
        logger.setLevel(old_level)


def raw_request(ts: TestServer, data: bytes) -> tuple[bytes, tuple[str, int]]:
    """Send `data`, read until the server closes; return the bytes and our address."""
    with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
        local = sock.getsockname()
        sock.sendall(data)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks), (local[0], local[1])


def split_response(raw: bytes) -> tuple[bytes, list[bytes], bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    status, *lines = head.split(b"\r\n")
    return status, [line.lower() for line in lines], body


# -- apps --------------------------------------------------------------------------------------


async def respond(send: Send, status: int, body: bytes, headers: list[Any] | None = None) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def scope_echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    shown = {
        key: value.decode("latin-1") if isinstance(value, bytes) else value
        for key, value in scope.items()
        if key != "headers"
    }
    shown["headers"] = [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]]
    await respond(send, 200, json.dumps(shown).encode(), [(b"content-type", b"application/json")])


async def behaviours(scope: Scope, receive: Receive, send: Send) -> None:
    """One app, many misbehaviours, chosen by path."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/stream":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one,", b"two,", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
    elif path == "/echo":
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        await respond(send, 200, b"%d:%s" % (len(body), body[:16]))
    elif path == "/boom":
        raise RuntimeError("boom before start")
    elif path == "/boom-late":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("boom after start")
    elif path == "/split":
        value = b"ok\r\nx-injected: evil"
        await respond(send, 200, b"hello", [(b"x-user", value)])
    elif path == "/out-of-order":
        await send({"type": "http.response.body", "body": b"too soon"})
    elif path == "/no-content":
        await respond(send, 204, b"")
    elif path == "/bad-te":
        await respond(send, 200, b"x", [(b"transfer-encoding", b"gzip")])
    else:
        await respond(send, 200, b"hello")


def serve(
    app: Any, parser: H1Parser, *, root_path: str = "", access_log: bool = False
) -> TestServer:
    builder = Server.builder().bind("127.0.0.1", 0).h1(parser=parser).lifespan("off")
    builder = builder.root_path(root_path)
    if access_log:
        builder = builder.access_log()
    return TestServer(builder.asgi(app), timeout=TIMEOUT)


@pytest.fixture(scope="module", params=PARSERS)
def parser(request: pytest.FixtureRequest) -> H1Parser:
    parser: H1Parser = request.param
    return parser


@pytest.fixture(scope="module")
def server(parser: H1Parser) -> Iterator[TestServer]:
    with serve(behaviours, parser) as ts:
        yield ts


@pytest.fixture
def client(server: TestServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=TIMEOUT) as client:
        yield client


# -- scope -------------------------------------------------------------------------------------


def test_full_scope_over_a_socket(parser: H1Parser) -> None:
    with serve(scope_echo, parser, root_path="/api") as ts:
        raw, local = raw_request(
            ts,
            b"GET /items/caf%C3%A9?x=1&y=%20 HTTP/1.1\r\nHost: example.com\r\n"
            b"X-Custom: Mixed Case\r\nConnection: close\r\n\r\n",
        )
    status, _, body = split_response(raw)
    assert status == b"HTTP/1.1 200 OK"
    scope = json.loads(body)
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "GET"
    assert scope["scheme"] == "http"
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/café"
    assert scope["raw_path"] == "/api/items/caf%C3%A9"
    assert scope["query_string"] == "x=1&y=%20"
    assert ["host", "example.com"] in scope["headers"]
    assert ["x-custom", "Mixed Case"] in scope["headers"]  # names lower-cased, values kept
    assert tuple(scope["client"]) == local
    assert tuple(scope["server"]) == (ts.host, ts.port)
    assert scope["state"] == {}


def test_http_1_0_scope(parser: H1Parser) -> None:
    with serve(scope_echo, parser) as ts:
        raw, _ = raw_request(ts, b"GET /old HTTP/1.0\r\n\r\n")
    _, _, body = split_response(raw)
    scope = json.loads(body)
    assert scope["http_version"] == "1.0"
    assert scope["path"] == "/old"


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        (b"1.2.3.4:80", ["1.2.3.4", 0]),  # docs/proxies.md: port 0 unless Forwarded names one
        (b"[2001:db8::1]:80", ["2001:db8::1", 0]),
        (b"not-an-ip", None),  # ignored: the client stays the peer
    ],
)
def test_forwarded_client_over_a_socket(
    parser: H1Parser, forwarded_for: bytes, expected: list[object] | None
) -> None:
    builder = Server.builder().bind("127.0.0.1", 0).h1(parser=parser).lifespan("off")
    server = builder.proxy_headers(trusted=["127.0.0.1"]).asgi(scope_echo)
    with TestServer(server, timeout=TIMEOUT) as ts, logged("pounce.error", logging.DEBUG) as log:
        raw, local = raw_request(
            ts,
            b"GET / HTTP/1.1\r\nHost: t\r\nX-Forwarded-For: %b\r\n"
            b"Connection: close\r\n\r\n" % forwarded_for,
        )
        if expected is None:
            log.wait_for(lambda r: r.levelno == logging.DEBUG and "not-an-ip" in r.getMessage())
    scope = json.loads(split_response(raw)[2])
    assert scope["client"] == (expected or list(local))


def test_absolute_form_scope_over_a_socket(parser: H1Parser) -> None:
    with serve(scope_echo, parser) as ts:
        raw, _ = raw_request(
            ts,
            b"GET http://other.example/p?q=1 HTTP/1.1\r\nHost: whatever\r\n"
            b"Connection: close\r\n\r\n",
        )
    scope = json.loads(split_response(raw)[2])
    assert (scope["path"], scope["query_string"], scope["scheme"]) == ("/p", "q=1", "http")
    assert [v for n, v in scope["headers"] if n == "host"] == ["other.example"]


# -- bodies ------------------------------------------------------------------------------------


def test_streaming_response(client: httpx.Client) -> None:
    with client.stream("GET", "/stream") as response:
        parts = list(response.iter_bytes())
        assert response.headers["transfer-encoding"] == "chunked"
        assert "content-length" not in response.headers
    assert b"".join(parts) == b"one,two,three"


def test_single_message_response_has_content_length(client: httpx.Client) -> None:
    response = client.get("/")
    assert response.headers["content-length"] == "5"
    assert response.content == b"hello"


def test_head_has_no_body(client: httpx.Client) -> None:
    response = client.head("/")
    assert response.status_code == 200
    assert response.content == b""
    # The connection is still usable: no stray body bytes were written.
    assert client.get("/").content == b"hello"


def test_no_content_response_on_the_wire(server: TestServer) -> None:
    raw, _ = raw_request(
        server, b"GET /no-content HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    status, lines, body = split_response(raw)
    assert status == b"HTTP/1.1 204 No Content"
    assert not any(line.startswith(b"content-length") for line in lines)
    assert body == b""


@pytest.mark.parametrize("size", [0, 5, 1024 * 1024])
def test_request_body_is_received_whole(client: httpx.Client, size: int) -> None:
    body = bytes(range(256)) * (size // 256) + b"x" * (size % 256)
    response = client.post("/echo", content=body)
    assert response.content == b"%d:%s" % (size, body[:16])


def test_chunked_request_body(client: httpx.Client) -> None:
    response = client.post("/echo", content=iter([b"ab", b"cd", b"ef"]))
    assert response.content == b"6:abcdef"


# -- failures ----------------------------------------------------------------------------------


def test_exception_is_a_500_with_a_logged_traceback(client: httpx.Client) -> None:
    with logged("pounce.error") as log:
        response = client.get("/boom")
        record = log.wait_for(lambda r: "Exception in ASGI application" in r.getMessage())
    assert response.status_code == 500
    assert response.text == "Internal Server Error\n"
    assert response.headers["connection"] == "close"
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert isinstance(record.exc_info[1], RuntimeError)
    assert "boom before start" in str(record.exc_info[1])


def test_exception_after_start_closes_the_connection(client: httpx.Client) -> None:
    with logged("pounce.error") as log:
        with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):
            client.get("/boom-late")
        log.wait_for(lambda r: r.exc_info is not None and "boom after start" in str(r.exc_info[1]))


def test_response_splitting_is_refused(server: TestServer) -> None:
    with logged("pounce.error") as log:
        raw, _ = raw_request(server, b"GET /split HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        log.wait_for(lambda r: "control character" in r.getMessage())
    status, lines, body = split_response(raw)
    assert status == b"HTTP/1.1 500 Internal Server Error"
    assert b"injected" not in raw
    assert not any(line.startswith(b"x-user") for line in lines)
    assert body == b"Internal Server Error\n"


def test_out_of_order_message_is_a_logged_contract_error(client: httpx.Client) -> None:
    with logged("pounce.error") as log:
        response = client.get("/out-of-order")
        record = log.wait_for(lambda r: "asgi.contract" in r.getMessage())
    assert response.status_code == 500
    assert "'http.response.body'" in record.getMessage()
    assert b"too soon" not in response.content


def test_framing_the_server_cannot_honour_is_a_500(client: httpx.Client) -> None:
    response = client.get("/bad-te")  # transfer-encoding: gzip, without chunked
    assert response.status_code == 500


def test_server_keeps_serving_after_failures(client: httpx.Client) -> None:
    for path in ("/boom", "/out-of-order", "/split"):
        assert client.get(path).status_code == 500
    assert client.get("/").content == b"hello"


# -- disconnects -------------------------------------------------------------------------------


class DisconnectProbe:
    """Streams until the client goes; records what `receive` and `send` did then."""

    def __init__(self) -> None:
        self.received: list[str] = []
        self.send_error: BaseException | None = None
        self.waiting = threading.Event()
        self.finished = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            self.received.append((await receive())["type"])  # the (empty) body
            if scope["path"] == "/wait":
                self.waiting.set()
                self.received.append((await receive())["type"])  # blocks until disconnect
                return
            await send({"type": "http.response.start", "status": 200, "headers": []})
            for _ in range(int(TIMEOUT * 100)):
                await send({"type": "http.response.body", "body": b"x" * 1024, "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            self.send_error = exc
        finally:
            self.finished.set()


@pytest.mark.parametrize("path", ["/wait", "/stream"])
def test_client_disconnect_reaches_the_app(path: str, parser: H1Parser) -> None:
    probe = DisconnectProbe()
    with serve(probe, parser) as ts:
        with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
            if path == "/stream":
                assert sock.recv(1024).startswith(b"HTTP/1.1 200 OK")
            else:
                assert probe.waiting.wait(TIMEOUT)
        assert probe.finished.wait(TIMEOUT)
    if path == "/wait":
        assert probe.received == ["http.request", "http.disconnect"]
    else:
        assert type(probe.send_error).__name__ == "ClientDisconnectedError"


# -- access log --------------------------------------------------------------------------------


def test_access_log_line(parser: H1Parser) -> None:
    with logged("pounce.access") as log, serve(behaviours, parser, access_log=True) as ts:
        raw, local = raw_request(
            ts, b"GET /hello?name=cat HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        record = log.wait_for(lambda r: "/hello" in r.getMessage())
    assert raw.startswith(b"HTTP/1.1 200 OK")
    message = record.getMessage()
    assert message.startswith(f"{local[0]}:{local[1]} - ")
    assert '"GET /hello?name=cat HTTP/1.1" 200 5 ' in message
    assert record.levelno == logging.INFO


def test_access_log_escapes_control_characters(parser: H1Parser) -> None:
    # CVE-2020-7694: a request for /%1b[31m must not colour the operator's terminal.
    with logged("pounce.access") as log, serve(behaviours, parser, access_log=True) as ts:
        raw, _ = raw_request(
            ts, b"GET /%1b[31mred?q=%1b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        record = log.wait_for(lambda r: "red" in r.getMessage())
    assert raw.startswith(b"HTTP/1.1 200 OK")
    message = record.getMessage()
    assert "\x1b" not in message
    assert "\\x1b[31mred" in message
    assert "\x1b" not in logging.Formatter("%(message)s").format(record)


def test_access_log_records_the_500_of_a_failing_app(parser: H1Parser) -> None:
    with logged("pounce.access") as log, serve(behaviours, parser, access_log=True) as ts:
        with httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client:
            assert client.get("/boom").status_code == 500
        record = log.wait_for(lambda r: "/boom" in r.getMessage())
    assert '"GET /boom HTTP/1.1" 500 ' in record.getMessage()


@pytest.mark.parametrize(
    ("method", "path", "logged_line"),
    [
        # refused start: the client got Pounce's 500 and its 22 bytes of body
        ("GET", "/split", '"GET /split HTTP/1.1" 500 22 '),
        ("HEAD", "/hello", '"HEAD /hello HTTP/1.1" 200 0 '),  # no body bytes went out
        ("GET", "/out-of-order", '"GET /out-of-order HTTP/1.1" 500 22 '),
    ],
)
def test_access_log_reports_what_the_client_got(
    method: str, path: str, logged_line: str, parser: H1Parser
) -> None:
    with logged("pounce.access") as log, serve(behaviours, parser, access_log=True) as ts:
        with httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client:
            response = client.request(method, path)
        record = log.wait_for(lambda r: path in r.getMessage())
    assert str(response.status_code) in logged_line
    assert logged_line in record.getMessage()
