"""HTTP/1.1 over real sockets: the h11 core, the driver and the exchange together.

Clients are httpx and raw sockets (for what httpx will not send: pipelining,
malformed heads, slow heads). Every socket has a timeout and every wait on the
server's app is bounded, so a regression fails a test instead of hanging it.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import httpx
import pytest

from pounce import Server, ServerBuilder
from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.drivers.http import HTTPDriver
from pounce.drivers.http1 import H1Parser
from pounce.testing import TestServer

TIMEOUT = 5.0  # seconds: the bound on every network wait in this module
KiB = 1024
MiB = 1024 * KiB


# -- helpers ------------------------------------------------------------------------------


# Both HTTP/1.1 cores sit under the same driver; every test runs on each.
PARSERS: tuple[H1Parser, ...] = ("fast", "h11")
_parser: list[H1Parser] = ["fast"]


@pytest.fixture(autouse=True, params=PARSERS)
def parser(request: pytest.FixtureRequest) -> Iterator[H1Parser]:
    _parser[0] = request.param
    yield request.param
    _parser[0] = "fast"


def http1(
    *, max_incomplete_event_size: int = 16 * KiB, max_request_line: int = 8 * KiB
) -> ServerBuilder:
    """A loopback server on the parser under test, quick to shut down."""
    return (
        Server.builder()
        .bind("127.0.0.1", 0)
        .timeouts(graceful_shutdown=2)
        .h1(
            parser=_parser[0],
            max_incomplete_event_size=max_incomplete_event_size,
            max_request_line=max_request_line,
        )
    )


def serve(app: ASGIApp, builder: ServerBuilder | None = None) -> TestServer:
    builder = builder if builder is not None else http1()
    return TestServer(builder.asgi(app))


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        if message["type"] != "http.request":
            raise ConnectionError(message["type"])
        chunk: bytes = message.get("body", b"")
        body += chunk
        if not message.get("more_body", False):
            return body


async def respond(
    send: Send, body: bytes, status: int = 200, headers: list[tuple[bytes, bytes]] | None = None
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers or []})
    await send({"type": "http.response.body", "body": body})


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the request body and what it saw of the request."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    client = scope["client"]
    headers = [
        (b"x-method", scope["method"].encode()),
        (b"x-path", scope["path"].encode()),
        (b"x-http-version", scope["http_version"].encode()),
        (b"x-client-port", str(client[1] if client else 0).encode()),
        (b"x-body-length", str(len(body)).encode()),
    ]
    await respond(send, body, headers=headers)


class BodyWatcher:
    """An app that reads the request body and records each message type it receives."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.done = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            while True:
                message = await receive()
                self.seen.append(message["type"])
                if message["type"] != "http.request" or not message.get("more_body"):
                    break
            self.done.set()


async def wait_thread_event(event: threading.Event) -> None:
    """Await a `threading.Event` set by the test thread (bounded)."""
    if not await asyncio.to_thread(event.wait, TIMEOUT):
        raise TimeoutError("the test never released the app")


def connect(
    ts: TestServer, *, rcvbuf: int | None = None, sndbuf: int | None = None
) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.settimeout(TIMEOUT)
    if rcvbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    if sndbuf is not None:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
    sock.connect((ts.host, ts.port))
    return sock


@dataclass
class Response:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        values = [value for key, value in self.headers if key == name]
        return b", ".join(values) if values else None


@dataclass
class Reader:
    """Reads HTTP/1.1 responses off a raw socket, keeping what it read ahead."""

    sock: socket.socket
    buffer: bytes = field(default=b"")

    def _more(self) -> bytes:
        data = self.sock.recv(256 * KiB)
        if not data:
            raise EOFError("connection closed")
        return data

    def until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            self.buffer += self._more()
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def exactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            self.buffer += self._more()
        data, self.buffer = self.buffer[:size], self.buffer[size:]
        return data

    def head(self) -> Response:
        lines = self.until(b"\r\n\r\n").split(b"\r\n")
        _version, status, reason = [*lines[0].split(b" ", 2), b""][:3]
        headers = []
        for line in lines[1:]:
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        return Response(int(status), reason, headers)

    def response(self, *, head_request: bool = False) -> Response:
        response = self.head()
        while 100 <= response.status < 200:
            response = self.head()
        if head_request or response.status in (204, 304):
            return response
        length = response.header(b"content-length")
        if length is not None:
            response.body = self.exactly(int(length))
        elif response.header(b"transfer-encoding") == b"chunked":
            response.body = self.chunked()
        else:
            response.body = self.rest()
        return response

    def chunked(self) -> bytes:
        body = b""
        while True:
            size = int(self.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                self.until(b"\r\n")  # no trailers in these tests
                return body
            body += self.exactly(size)
            assert self.exactly(2) == b"\r\n"

    def rest(self) -> bytes:
        data, self.buffer = self.buffer, b""
        while chunk := self.sock.recv(256 * KiB):
            data += chunk
        return data

    def closed(self) -> bool:
        """True once the server has closed: EOF (or a reset) with nothing more to read."""
        try:
            return not self.buffer and self.sock.recv(1) == b""
        except ConnectionResetError:
            return True


def raw_request(
    method: str = "GET",
    target: str = "/",
    headers: list[tuple[str, str]] | None = None,
    body: bytes = b"",
    *,
    version: str = "1.1",
) -> bytes:
    lines = [f"{method} {target} HTTP/{version}", "host: test"]
    lines += [f"{name}: {value}" for name, value in headers or []]
    if body:
        lines.append(f"content-length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def exchange(ts: TestServer, data: bytes, *, head_request: bool = False) -> tuple[Response, Reader]:
    sock = connect(ts)
    sock.sendall(data)
    reader = Reader(sock)
    return reader.response(head_request=head_request), reader


@pytest.fixture
def echo_server() -> Iterator[TestServer]:
    with serve(echo) as ts:
        yield ts


def wait_until(predicate: Callable[[], bool], timeout: float = TIMEOUT) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.01)
    return predicate()


# -- connection reuse and framing -----------------------------------------------------------


def test_keep_alive_reuses_one_connection(echo_server: TestServer) -> None:
    with httpx.Client(base_url=echo_server.url, timeout=TIMEOUT) as client:
        responses = [client.post(f"/{i}", content=b"x" * i) for i in range(1, 5)]
    assert [r.status_code for r in responses] == [200] * 4
    assert [r.content for r in responses] == [b"x" * i for i in range(1, 5)]
    ports = {r.headers["x-client-port"] for r in responses}
    assert len(ports) == 1  # every request arrived on the same TCP connection
    assert all("connection" not in r.headers for r in responses)


def test_keep_alive_on_a_raw_socket(echo_server: TestServer) -> None:
    sock = connect(echo_server)
    reader = Reader(sock)
    with sock:
        for i in range(3):
            sock.sendall(raw_request("POST", f"/{i}", body=b"%d" % i))
            response = reader.response()
            assert response.status == 200
            assert response.body == b"%d" % i
            assert response.header(b"x-path") == b"/%d" % i


@pytest.mark.skipif(sys.version_info < (3, 12), reason="asyncio.eager_task_factory: 3.12+")
def test_an_eager_task_factory_runs_each_app_to_its_end() -> None:
    """An app that sets ``asyncio.eager_task_factory`` (3.12+) at startup runs each request
    inside the read that brought it; requests that end at once, and one that waits, are all
    answered, and the driver holds no exchange once its app returned."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await receive()
            factory = asyncio.eager_task_factory  # type: ignore[attr-defined,unused-ignore]
            asyncio.get_running_loop().set_task_factory(factory)
            await send({"type": "lifespan.startup.complete"})
            await receive()
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/wait":
            await asyncio.sleep(0.01)
        await echo(scope, receive, send)

    with serve(app) as ts:
        sock = connect(ts)
        with sock:
            reader = Reader(sock)
            for path in ("/", "/wait", "/", "/"):
                sock.sendall(raw_request(target=path))
                response = reader.response()
                assert response.status == 200 and response.header(b"x-path") == path.encode()
            drivers = [d for d in gc.get_objects() if isinstance(d, HTTPDriver)]
            assert drivers and not any(driver._running for driver in drivers)


def test_pipelined_requests_are_answered_in_order() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        # "/unread" answers without reading its (fully sent) body.
        body = b"-" if scope["path"] == "/unread" else await read_body(receive)
        if scope["path"] == "/slow":
            await asyncio.sleep(0.2)  # a later request must still wait its turn
        await respond(send, scope["path"].encode() + b":" + body)

    with serve(app) as ts:
        sock = connect(ts)
        requests = [
            raw_request("GET", "/slow"),
            raw_request("POST", "/two", body=b"2222"),
            raw_request("POST", "/unread", body=b"ignored"),
            raw_request("POST", "/three", body=b"33", headers=[("x-a", "b")]),
            raw_request("GET", "/four"),
        ]
        with sock:
            sock.sendall(b"".join(requests))
            reader = Reader(sock)
            bodies = [reader.response().body for _ in requests]
    assert bodies == [b"/slow:", b"/two:2222", b"/unread:-", b"/three:33", b"/four:"]


def test_chunked_request_body(echo_server: TestServer) -> None:
    sock = connect(echo_server)
    with sock:
        sock.sendall(b"POST /c HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n")
        for part in (b"hello", b" ", b"chunked world"):
            sock.sendall(b"%x\r\n%s\r\n" % (len(part), part))
            time.sleep(0.01)
        sock.sendall(b"0\r\n\r\n")
        response = Reader(sock).response()
    assert response.status == 200
    assert response.body == b"hello chunked world"
    assert response.header(b"x-body-length") == b"19"


def test_chunked_request_body_from_httpx(echo_server: TestServer) -> None:
    def parts() -> Iterator[bytes]:
        yield from (b"a" * 1000, b"b" * 70_000, b"c")

    response = httpx.post(echo_server.url + "/", content=parts(), timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == b"a" * 1000 + b"b" * 70_000 + b"c"


def test_chunked_response_streams() -> None:
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"first", "more_body": True})
        await wait_thread_event(release)
        await send({"type": "http.response.body", "body": b"second", "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})

    with serve(app) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(raw_request())
            reader = Reader(sock)
            head = reader.head()
            assert head.header(b"transfer-encoding") == b"chunked"
            assert head.header(b"content-length") is None
            # The first chunk is on the wire while the app is still waiting.
            assert reader.until(b"\r\n") == b"5"
            assert reader.exactly(7) == b"first\r\n"
            release.set()
            assert reader.chunked() == b"second"
            # Keep-alive survives a chunked response.
            sock.sendall(raw_request())
            release.set()
            assert reader.response().body == b"firstsecond"


def test_content_length_responses() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/declared":
            headers = [(b"content-length", b"10")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"01234", "more_body": True})
            await send({"type": "http.response.body", "body": b"56789"})
        else:
            await respond(send, b"one message")

    with serve(app) as ts:
        declared, first = exchange(ts, raw_request("GET", "/declared"))
        single, second = exchange(ts, raw_request("GET", "/single"))
        first.sock.close()
        second.sock.close()
    assert declared.header(b"content-length") == b"10"
    assert declared.header(b"transfer-encoding") is None
    assert declared.body == b"0123456789"
    assert single.header(b"content-length") == b"11"
    assert single.header(b"transfer-encoding") is None
    assert single.body == b"one message"


def test_large_request_and_response_bodies(echo_server: TestServer) -> None:
    payload = bytes(range(256)) * (4 * 1024)  # 1 MiB, no body limit by default
    response = httpx.post(echo_server.url + "/", content=payload, timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["x-body-length"] == str(len(payload))
    assert response.content == payload


# -- Expect: 100-continue ----------------------------------------------------------------------


def test_100_continue_is_sent_when_the_app_first_reads() -> None:
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await wait_thread_event(release)
        await respond(send, b"got " + await read_body(receive))

    with serve(app) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(
                b"PUT / HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n"
            )
            sock.settimeout(0.3)
            with pytest.raises(TimeoutError):
                sock.recv(1)  # nothing yet: the app has not asked for the body
            sock.settimeout(TIMEOUT)
            release.set()
            reader = Reader(sock)
            interim = reader.head()
            assert interim.status == 100
            sock.sendall(b"data")
            response = reader.response()
    assert response.status == 200
    assert response.body == b"got data"


def test_no_100_continue_when_the_app_answers_without_reading() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, b"no thanks", status=417)

    with serve(app) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(
                b"PUT / HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 4\r\n\r\n"
            )
            reader = Reader(sock)
            response = reader.response()
            assert response.status == 417
            assert response.body == b"no thanks"
            # The body never came, so the connection cannot be reused.
            assert reader.closed()


def test_100_continue_with_httpx(echo_server: TestServer) -> None:
    response = httpx.put(
        echo_server.url + "/",
        content=b"payload",
        headers={"expect": "100-continue"},
        timeout=TIMEOUT,
    )
    assert response.status_code == 200
    assert response.content == b"payload"


# -- HEAD, HTTP/1.0, Connection: close -----------------------------------------------------------


def test_head_sends_headers_but_no_body() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(b"content-length", b"13"), (b"x-seen", scope["method"].encode())]
            await respond(send, b"would-be body", headers=headers)

    with serve(app) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(raw_request("HEAD", "/"))
            reader = Reader(sock)
            head = reader.response(head_request=True)
            assert head.status == 200
            assert head.header(b"content-length") == b"13"
            assert head.header(b"x-seen") == b"HEAD"
            # The next bytes on the wire are the next response: no body was sent.
            sock.sendall(raw_request("GET", "/"))
            assert reader.buffer == b"" or reader.buffer.startswith(b"HTTP/1.1 200")
            following = reader.response()
            assert following.body == b"would-be body"
            assert following.header(b"x-seen") == b"GET"


def test_head_with_httpx(echo_server: TestServer) -> None:
    response = httpx.head(echo_server.url + "/h", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.headers["x-method"] == "HEAD"
    assert response.content == b""


def test_http_1_0_client_gets_an_answer_and_a_close(echo_server: TestServer) -> None:
    response, reader = exchange(echo_server, b"POST /old HTTP/1.0\r\ncontent-length: 3\r\n\r\nabc")
    with reader.sock:
        assert response.status == 200
        assert response.body == b"abc"
        assert response.header(b"x-http-version") == b"1.0"
        assert reader.closed()


def test_http_1_0_keep_alive_request_is_declined_clearly(echo_server: TestServer) -> None:
    # h11 does not do keep-alive with HTTP/1.0 peers: the answer says close, and closes.
    response, reader = exchange(echo_server, b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n")
    with reader.sock:
        assert response.status == 200
        assert response.header(b"connection") == b"close"
        assert reader.closed()


def test_streamed_response_to_http_1_0_is_delimited_by_close() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for part in (b"one ", b"two ", b"three"):
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    with serve(app) as ts:
        response, reader = exchange(ts, b"GET / HTTP/1.0\r\n\r\n")
        reader.sock.close()
    assert response.header(b"transfer-encoding") is None  # no chunked for HTTP/1.0
    assert response.body == b"one two three"


def test_upgrade_request_answered_normally_keeps_the_connection(echo_server: TestServer) -> None:
    upgrade = raw_request(headers=[("connection", "upgrade"), ("upgrade", "websocket")])
    response, reader = exchange(echo_server, upgrade)
    with reader.sock:
        assert response.status == 200
        reader.sock.sendall(raw_request("POST", "/after", body=b"again"))
        assert reader.response().body == b"again"


def test_connection_close_is_honoured(echo_server: TestServer) -> None:
    response, reader = exchange(echo_server, raw_request(headers=[("connection", "close")]))
    with reader.sock:
        assert response.status == 200
        assert response.header(b"connection") == b"close"
        assert reader.closed()
    with httpx.Client(timeout=TIMEOUT) as client:
        answer = client.get(echo_server.url + "/", headers={"connection": "close"})
    assert answer.headers["connection"] == "close"


def test_requests_after_connection_close_are_not_served(echo_server: TestServer) -> None:
    closing = raw_request("POST", "/first", headers=[("connection", "close")], body=b"1")
    response, reader = exchange(echo_server, closing + raw_request("POST", "/second", body=b"2"))
    with reader.sock:
        assert response.status == 200
        assert response.body == b"1"
        assert response.header(b"connection") == b"close"
        assert reader.closed()  # no second response, no 400 either


# -- closing: a lingering close only where the client may still send (RFC 9112 §9.6) ------------


def _after_our_close(reader: Reader) -> str:
    """Read the EOF, then keep sending: "reset" once the server's socket is gone,
    "read" when the server lingers, reading and dropping all of it (8 MiB)."""
    assert reader.closed()
    chunk = b"x" * (64 * KiB)
    try:
        for _ in range(128):
            reader.sock.sendall(chunk)
    except (BrokenPipeError, ConnectionResetError):
        return "reset"
    return "read"


def test_a_close_the_client_asked_for_closes_at_once(echo_server: TestServer) -> None:
    """The client said its request was its last and sent nothing after it: nothing can
    arrive to turn our close into a reset, so the socket closes without lingering."""
    closing = raw_request("POST", "/", headers=[("connection", "close")], body=b"last")
    response, reader = exchange(echo_server, closing)
    with reader.sock:
        assert response.status == 200 and response.body == b"last"
        assert _after_our_close(reader) == "reset"


@pytest.mark.parametrize(
    "why",
    [
        "app says close",  # our idea: the client may be sending its next request
        "bytes after the last request",  # a client that broke its promise
        "body not read",  # the rest of the body is still on its way
        "HTTP/1.0",  # h11 closes even one that asked for keep-alive
    ],
)
def test_a_close_the_client_may_not_expect_lingers(why: str) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(b"connection", b"close")] if why == "app says close" else []
            await respond(send, b"bye", headers=headers)

    requests = {
        "app says close": raw_request(),
        "bytes after the last request": raw_request(headers=[("connection", "close")])
        + raw_request(),
        "body not read": raw_request("POST", headers=[("content-length", "100000")]) + b"x",
        "HTTP/1.0": raw_request(version="1.0", headers=[("connection", "keep-alive")]),
    }
    with serve(app) as ts:
        response, reader = exchange(ts, requests[why])
        with reader.sock:
            assert response.status == 200 and response.body == b"bye"
            assert _after_our_close(reader) == "read"


# -- default headers ---------------------------------------------------------------------------


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "http":
        await respond(send, b"hello")


def test_date_and_server_headers_by_default() -> None:
    with serve(hello) as ts:
        response = httpx.get(ts.url + "/", timeout=TIMEOUT)
    assert response.headers["server"] == "pounce"
    # RFC 9110 §5.6.7 IMF-fixdate, e.g. "Sun, 06 Nov 1994 08:49:37 GMT".
    date = response.headers["date"]
    assert date.endswith(" GMT")
    assert time.strptime(date, "%a, %d %b %Y %H:%M:%S GMT")


@pytest.mark.parametrize(
    ("server", "date", "extra", "present", "absent"),
    [
        (False, True, [], {"date"}, {"server"}),
        (True, False, [], {"server"}, {"date"}),
        (False, False, [], set(), {"server", "date"}),
        (True, True, [("x-a", "1"), ("x-b", "two")], {"server", "date", "x-a", "x-b"}, set()),
    ],
)
def test_default_headers_are_configurable(
    server: bool,
    date: bool,
    extra: list[tuple[str, str]],
    present: set[str],
    absent: set[str],
) -> None:
    builder = http1().response_headers(server=server, date=date, extra=extra)
    with serve(hello, builder) as ts:
        response, reader = exchange(ts, raw_request())
        reader.sock.close()
    names = {name.decode() for name, _ in response.headers}
    assert present <= names
    assert not absent & names
    for name, value in extra:
        assert response.header(name.encode()) == value.encode()


def test_app_header_replaces_a_default() -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await respond(send, b"", headers=[(b"server", b"mine")])

    with serve(app) as ts:
        response, reader = exchange(ts, raw_request())
        reader.sock.close()
    assert response.header(b"server") == b"mine"


# -- limits --------------------------------------------------------------------------------------


def expect_error(ts: TestServer, data: bytes, status: int) -> Response:
    """Send `data`; expect a `status` answer with `connection: close`, then EOF."""
    response, reader = exchange(ts, data)
    with reader.sock:
        assert response.status == status
        assert response.header(b"connection") == b"close"
        assert reader.closed()
    return response


def assert_still_serving(ts: TestServer) -> None:
    response = httpx.post(ts.url + "/after", content=b"fine", timeout=TIMEOUT)
    assert response.status_code == 200
    assert response.content == b"fine"


def test_oversized_header_block_is_431(echo_server: TestServer) -> None:
    headers = [(f"x-filler-{i}", "v" * 1000) for i in range(20)]
    response = expect_error(echo_server, raw_request(headers=headers), 431)
    assert response.header(b"server") == b"pounce"
    assert_still_serving(echo_server)


def test_configured_header_limit() -> None:
    builder = http1(max_incomplete_event_size=2048)
    with serve(echo, builder) as ts:
        expect_error(ts, raw_request(headers=[("x-big", "v" * 3000)]), 431)
        response, reader = exchange(ts, raw_request(headers=[("x-ok", "v" * 1000)]))
        reader.sock.close()
        assert response.status == 200


def test_over_long_request_line_is_414(echo_server: TestServer) -> None:
    expect_error(echo_server, raw_request(target="/" + "a" * (9 * KiB)), 414)
    # Longer than the whole head limit, with no line end at all.
    expect_error(echo_server, b"GET /" + b"a" * (20 * KiB), 414)
    assert_still_serving(echo_server)


def test_configured_request_line_limit() -> None:
    with serve(echo, http1(max_request_line=256)) as ts:
        expect_error(ts, raw_request(target="/" + "a" * 300), 414)
        response, reader = exchange(ts, raw_request(target="/" + "a" * 200))
        reader.sock.close()
        assert response.status == 200


def test_body_over_the_limit_by_content_length_is_413() -> None:
    called = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            called.set()
            await echo(scope, receive, send)

    with serve(app, http1().limit_request_body(100)) as ts:
        # Answered from the head alone: the body need not be sent.
        expect_error(ts, b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 101\r\n\r\n", 413)
        assert not called.is_set()
        at_limit = httpx.post(ts.url + "/", content=b"x" * 100, timeout=TIMEOUT)
        assert at_limit.status_code == 200
        assert at_limit.content == b"x" * 100


def test_body_over_the_limit_when_chunked_is_413() -> None:
    with serve(echo, http1().limit_request_body(100)) as ts:
        body = b"40\r\n" + b"a" * 64 + b"\r\n" + b"40\r\n" + b"b" * 64 + b"\r\n0\r\n\r\n"
        head = b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
        expect_error(ts, head + body, 413)
        under = b"40\r\n" + b"a" * 64 + b"\r\n0\r\n\r\n"
        response, reader = exchange(ts, head + under)
        reader.sock.close()
        assert response.status == 200
        assert response.body == b"a" * 64


def test_expect_100_over_the_limit_gets_413_not_100() -> None:
    with serve(echo, http1().limit_request_body(10)) as ts:
        data = b"PUT / HTTP/1.1\r\nhost: t\r\nexpect: 100-continue\r\ncontent-length: 11\r\n\r\n"
        response = expect_error(ts, data, 413)
        assert response.status == 413  # the first thing on the wire, no 100 before it


def test_a_head_the_core_refuses_is_answered_500() -> None:
    """Two different Content-Lengths from the app pass the ASGI checks but not the
    core's framing: nothing was written yet, so the client gets a 500, not a cut."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = [(b"content-length", b"5"), (b"content-length", b"7")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": b"hello"})

    with serve(app) as ts:
        response, reader = exchange(ts, raw_request())
        with reader.sock:
            assert response.status == 500
            assert reader.closed()


# -- timeouts ----------------------------------------------------------------------------------


def test_keep_alive_timeout_closes_an_idle_connection() -> None:
    with serve(echo, http1().timeouts(keep_alive=0.3)) as ts:
        response, reader = exchange(ts, raw_request())
        with reader.sock:
            assert response.status == 200
            assert reader.closed()  # within the socket timeout, long before it


def test_keep_alive_timeout_never_closes_before_its_time() -> None:
    """The serve's idle clock (`IdleClock`) closes an idle connection between 1 and 1.25
    times the timeout after its last response, never before it."""
    with serve(echo, http1().timeouts(keep_alive=0.4)) as ts:
        response, reader = exchange(ts, raw_request())
        answered = time.monotonic()  # (just after the server's own mark)
        with reader.sock:
            assert response.status == 200
            assert reader.closed()
            assert time.monotonic() - answered >= 0.4 - 0.02


def test_requests_within_the_keep_alive_timeout_keep_the_connection_open() -> None:
    """Each response starts the idle time afresh: a connection used every half timeout
    outlives several timeouts, then closes once it goes quiet."""
    with serve(echo, http1().timeouts(keep_alive=0.3)) as ts:
        sock = connect(ts)
        with sock:
            reader = Reader(sock)
            for _ in range(6):  # 0.9 s in all: three timeouts' worth
                sock.sendall(raw_request())
                assert reader.response().status == 200
                time.sleep(0.15)
            assert reader.closed()


def test_a_partial_head_after_keep_alive_gets_the_head_timeout() -> None:
    """Bytes of a head after an idle spell stop the keep-alive clock: the head has its own
    (longer) timeout, and the request then completes."""
    with serve(echo, http1().timeouts(keep_alive=0.2, request_head=5)) as ts:
        sock = connect(ts)
        with sock:
            reader = Reader(sock)
            sock.sendall(raw_request())
            assert reader.response().status == 200
            head = raw_request()
            sock.sendall(head[:5])  # the keep-alive clock would close within 0.25 s
            time.sleep(0.6)
            sock.sendall(head[5:])
            assert reader.response().status == 200


def test_idle_new_connection_is_closed_after_the_head_timeout() -> None:
    with serve(echo, http1().timeouts(request_head=0.3)) as ts:
        sock = connect(ts)
        with sock:
            assert Reader(sock).closed()


def test_slowloris_head_is_cut_off() -> None:
    called = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            called.set()
            await hello(scope, receive, send)

    with serve(app, http1().timeouts(request_head=0.5, keep_alive=30)) as ts:
        sock = connect(ts)
        head = raw_request(headers=[(f"x-{i}", "y" * 10) for i in range(100)])
        closed = False
        start = time.monotonic()
        with sock:
            try:
                for byte in head[:-4]:  # never the blank line that ends the head
                    sock.sendall(bytes([byte]))
                    time.sleep(0.01)
                    if time.monotonic() - start > TIMEOUT:
                        break
            except (BrokenPipeError, ConnectionResetError):
                closed = True
            closed = closed or Reader(sock).closed()
        assert closed
        assert not called.is_set()


@pytest.mark.parametrize("first", [b"G", b"GET / HTTP/1.1\r\nhost: x\r\n"])
def test_a_first_head_that_is_not_whole_gets_the_head_timeout(first: bytes) -> None:
    """With HTTP/2 beside HTTP/1.1, the bridge waits for bytes and hands the driver the
    first ones (`start_with`): a head not whole in them is still timed (0.3 s), though
    one that is whole starts no clock."""
    called = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            called.set()
            await hello(scope, receive, send)

    with serve(app, http1().h2().timeouts(request_head=0.3, keep_alive=60)) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(first)
            assert Reader(sock).closed()  # within the socket timeout, long before it
        assert not called.is_set()
        response, reader = exchange(ts, raw_request())  # a whole head is served
        with reader.sock:
            assert response.status == 200


def test_partial_pipelined_head_gets_the_head_timeout() -> None:
    # A response done with part of the next head buffered: the head timeout
    # (0.3 s) applies, not the long keep-alive one.
    with serve(echo, http1().timeouts(request_head=0.3, keep_alive=60)) as ts:
        response, reader = exchange(ts, raw_request() + b"GET /next HTTP/1.1\r\nhost")
        with reader.sock:
            assert response.status == 200
            assert reader.closed()


def test_stalled_request_body_is_408_and_the_app_hears_a_disconnect() -> None:
    app = BodyWatcher()

    with serve(app, http1().timeouts(request_body=0.3)) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(raw_request("POST", "/up", [("content-length", "10")]) + b"abc")
            reader = Reader(sock)
            assert reader.response().status == 408
            assert reader.closed()
        assert app.done.wait(TIMEOUT)
    assert app.seen[-1] == "http.disconnect"


def test_a_slow_but_steady_body_is_not_cut_off() -> None:
    with serve(echo, http1().timeouts(request_body=0.4)) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(raw_request("POST", "/up", [("transfer-encoding", "chunked")]))
            for _ in range(5):  # 1 s in all, never more than 0.15 s of silence
                sock.sendall(b"3\r\nabc\r\n")
                time.sleep(0.15)
            sock.sendall(b"0\r\n\r\n")
            response = Reader(sock).response()
        assert response.status == 200
        assert response.body == b"abc" * 5


def test_body_timer_rests_while_the_app_does_not_read() -> None:
    """Reading pauses past 64 KiB of unread body: that silence is the app's, not the
    client's, so no 408 however long the app takes."""

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(1.0)
            await echo(scope, receive, send)

    body = b"x" * MiB
    with serve(slow, http1().timeouts(request_body=0.3)) as ts:
        response, reader = exchange(ts, raw_request("POST", "/up", body=body))
        with reader.sock:
            assert response.status == 200
            assert response.body == body


def test_expect_continue_body_timer_starts_with_the_body() -> None:
    """The client waits for 100 Continue, which comes when the app first reads."""

    async def late_reader(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            await asyncio.sleep(0.8)  # longer than the body timeout
            await echo(scope, receive, send)

    with serve(late_reader, http1().timeouts(request_body=0.3)) as ts:
        sock = connect(ts)
        with sock:
            head = raw_request("POST", "/up", [("content-length", "5"), ("expect", "100-continue")])
            sock.sendall(head)
            reader = Reader(sock)
            assert reader.head().status == 100
            sock.sendall(b"hello")
            response = reader.response()
        assert response.status == 200
        assert response.body == b"hello"


# -- the client's FIN ------------------------------------------------------------------------------


def test_a_fin_mid_body_is_a_disconnect() -> None:
    app = BodyWatcher()

    with serve(app) as ts:
        sock = connect(ts)
        with sock:
            sock.sendall(raw_request("POST", "/up", [("content-length", "10")]) + b"abc")
            sock.shutdown(socket.SHUT_WR)
            assert Reader(sock).closed()  # no answer: the request can never be whole
        assert app.done.wait(TIMEOUT)
    assert app.seen[-1] == "http.disconnect"


# -- malformed input ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "status"),
    [
        pytest.param(b"THIS IS NOT HTTP\r\n\r\n", 400, id="malformed-request-line"),
        pytest.param(b"GET /\r\nhost: t\r\n\r\n", 400, id="missing-version"),
        pytest.param(b"GET / HTTP/1.1\r\nho(st: t\r\n\r\n", 400, id="bad-header-name"),
        pytest.param(b"GET / HTTP/1.1\r\nhost: t\r\nx-a: 1\r\n  2\r\n\r\n", 400, id="obs-fold"),
        pytest.param(b"GET / HTTP/1.1\r\nhost : t\r\n\r\n", 400, id="whitespace-before-colon"),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 5\r\ntransfer-encoding: chunked"
            b"\r\n\r\n0\r\n\r\n",
            400,
            id="content-length-and-transfer-encoding",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\nab",
            400,
            id="two-content-lengths",
        ),
        pytest.param(b"\n\n\n\n", 400, id="bare-lf"),
        pytest.param(b"GARBAGE\nMORE GARBAGE\n\n", 400, id="bare-lf-garbage"),
        pytest.param(b"GET / HTTP/1.1\r\n\r\n", 400, id="no-host"),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\nxyz\r\n",
            400,
            id="bad-chunk-size",
        ),
        pytest.param(b"GET / HTTP/2.0\r\nhost: t\r\n\r\n", 505, id="http-2.0"),
        # RFC 9112 §7.1.1: no bare CR or NUL in a chunk extension.
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5;ext=a\rb\r\nhello\r\n0\r\n\r\n",
            400,
            id="chunk-extension-bare-cr",
        ),
        pytest.param(
            b"POST / HTTP/1.1\r\nhost: t\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5;a\x00\r\nhello\r\n0\r\n\r\n",
            400,
            id="chunk-extension-nul",
        ),
        # RFC 9112 §3.2: Host = uri-host [ ":" port ].
        pytest.param(b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n", 400, id="host-with-space"),
        pytest.param(b"GET / HTTP/1.1\r\nhost: user@evil\r\n\r\n", 400, id="host-userinfo"),
        # RFC 9112 §3.2.2 / RFC 9110 §4.2.4: no userinfo in an absolute-form target.
        pytest.param(
            b"GET http://user@evil/ HTTP/1.1\r\nhost: t\r\n\r\n", 400, id="target-userinfo"
        ),
    ],
)
def test_bad_requests_are_answered_and_closed(
    echo_server: TestServer, data: bytes, status: int
) -> None:
    response = expect_error(echo_server, data, status)
    assert response.header(b"content-type") == b"text/plain; charset=utf-8"
    assert_still_serving(echo_server)


def test_an_absolute_form_target_is_seen_as_origin_form_with_its_host() -> None:
    seen: list[Scope] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            seen.append(scope)
            await respond(send, b"ok")

    with serve(app) as ts:
        data = b"GET http://other.example/p?q=1 HTTP/1.1\r\nHost: whatever\r\n\r\n"
        response, reader = exchange(ts, data)
        reader.sock.close()
    assert response.status == 200
    (scope,) = seen
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == ("/p", b"/p", b"q=1")
    assert [v for n, v in scope["headers"] if n == b"host"] == [b"other.example"]


def test_bad_request_after_a_good_one_on_the_same_connection(echo_server: TestServer) -> None:
    sock = connect(echo_server)
    with sock:
        sock.sendall(raw_request("POST", "/", body=b"ok") + b"NOT HTTP AT ALL\r\n\r\n")
        reader = Reader(sock)
        first = reader.response()
        second = reader.response()
        assert first.status == 200
        assert first.body == b"ok"
        assert second.status == 400
        assert reader.closed()


# -- flow control --------------------------------------------------------------------------------


def test_server_stops_reading_a_body_the_app_does_not_read() -> None:
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await wait_thread_event(release)
        body = await read_body(receive)
        digest = hashlib.sha256(body).hexdigest().encode()
        await respond(send, digest, headers=[(b"x-body-length", str(len(body)).encode())])

    total = 16 * MiB
    payload = (bytes(range(251)) * (total // 251 + 1))[:total]
    with serve(app) as ts:
        sock = connect(ts, sndbuf=64 * KiB)
        with sock:
            sock.sendall(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: %d\r\n\r\n" % total)
            sent = 0
            sock.settimeout(0.5)
            try:
                while sent < total:
                    sent += sock.send(payload[sent : sent + 64 * KiB])
            except TimeoutError:
                pass
            # The server stopped reading: the upload stalled well short of the end.
            assert sent < total // 2
            sock.settimeout(TIMEOUT)
            release.set()
            sock.sendall(payload[sent:])
            response = Reader(sock).response()
    assert response.status == 200
    assert response.header(b"x-body-length") == str(total).encode()
    assert response.body == hashlib.sha256(payload).hexdigest().encode()


def test_disconnect_mid_request_reaches_the_app() -> None:
    first_chunk = threading.Event()
    seen: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            message = await receive()
            seen.append(message["type"])
            first_chunk.set()
            message = await asyncio.wait_for(receive(), TIMEOUT)
            seen.append(message["type"])
        finally:
            done.set()

    with serve(app) as ts:
        sock = connect(ts)
        sock.sendall(b"POST / HTTP/1.1\r\nhost: t\r\ncontent-length: 1000\r\n\r\n0123456789")
        assert first_chunk.wait(TIMEOUT)
        sock.close()
        assert done.wait(TIMEOUT)
    assert seen == ["http.request", "http.disconnect"]


def test_disconnect_while_the_app_waits_to_answer() -> None:
    received = threading.Event()
    outcome: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await read_body(receive)
        received.set()
        try:
            message = await asyncio.wait_for(receive(), TIMEOUT)
            outcome.append(message["type"])
            try:
                await respond(send, b"too late")
            except OSError as exc:  # ASGI 2.4: send on a closed connection raises OSError
                outcome.append(type(exc).__name__)
        finally:
            done.set()

    with serve(app) as ts:
        sock = connect(ts)
        sock.sendall(raw_request())
        assert received.wait(TIMEOUT)
        sock.close()
        assert done.wait(TIMEOUT)
    assert outcome == ["http.disconnect", "ClientDisconnectedError"]


def test_send_waits_for_the_client_to_read() -> None:
    chunk = 64 * KiB
    count = 200  # 12.5 MiB, far more than the socket buffers between us hold
    sent = [0]
    finished = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for i in range(count):
            body = bytes([i % 256]) * chunk
            await send({"type": "http.response.body", "body": body, "more_body": True})
            sent[0] = i + 1
        await send({"type": "http.response.body", "body": b""})
        finished.set()

    with serve(app) as ts:
        sock = connect(ts, rcvbuf=64 * KiB)
        with sock:
            sock.sendall(raw_request())
            reader = Reader(sock)
            head = reader.head()
            assert head.status == 200

            # Wait for the app to stall: its count stops moving, short of the end.
            def stalled() -> bool:
                before = sent[0]
                time.sleep(0.2)
                return sent[0] == before and before > 0

            assert wait_until(stalled)
            assert sent[0] < count
            assert not finished.is_set()
            body = reader.chunked()
    assert finished.wait(TIMEOUT)
    assert len(body) == count * chunk
    for i in range(count):
        assert body[i * chunk : (i + 1) * chunk] == bytes([i % 256]) * chunk
