"""HTTP/2 over real sockets: the h2 core, its driver and the shared exchange together.

Clients: httpx (``http2=True``), curl ``--http2-prior-knowledge``, nghttp and
h2load (Debian ``nghttp2-client``; skipped when missing) and the raw-frame
client of the conformance suite for what no real client sends (floods,
resets, stalled windows). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import hashlib
import logging
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Iterator

import httpx
import pytest
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from pounce import Server, ServerBuilder
from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.testing import TestServer
from tests.conformance.h2wire import (
    CANCEL,
    ENHANCE_YOUR_CALM,
    INTERNAL_ERROR,
    NO_ERROR,
    PROTOCOL_ERROR,
    ConnectionClosed,
    Wire,
    request_headers,
)
from tests.integration.conftest import PKI

TIMEOUT = 10.0  # seconds: the bound on every network wait here
MiB = 1024 * 1024


def builder(**h2: int) -> ServerBuilder:
    return Server.builder().bind("127.0.0.1", 0).h1().h2(**h2).timeouts(graceful_shutdown=3)


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """Answers with the protocol, method, path and a digest of the request body.

    ``/big/N`` streams N bytes in 64 KiB messages instead.
    """
    if scope["type"] != "http":
        return
    digest = hashlib.sha256()
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return
        digest.update(message.get("body", b""))
        size += len(message.get("body", b""))
        if not message.get("more_body"):
            break
    await send({"type": "http.response.start", "status": 200, "headers": []})
    path = scope["path"]
    if path.startswith("/big/"):
        left = int(path[5:])
        chunk = b"z" * 65536
        while left:
            part = chunk[: min(left, len(chunk))]
            left -= len(part)
            await send({"type": "http.response.body", "body": part, "more_body": True})
        await send({"type": "http.response.body", "body": b""})
        return
    text = f"{scope['http_version']} {scope['method']} {path} {size} {digest.hexdigest()}"
    await send({"type": "http.response.body", "body": text.encode()})


@pytest.fixture(scope="module")
def echo_server() -> Iterator[TestServer]:
    with TestServer(builder().asgi(echo)) as ts:
        yield ts


# -- real clients ---------------------------------------------------------------------------------


def test_httpx_http2_get_and_post(echo_server: TestServer) -> None:
    body = b"q" * 300_000
    with httpx.Client(http2=True, http1=False, timeout=TIMEOUT) as client:
        response = client.get(echo_server.url + "/a?b=1")
        assert response.http_version == "HTTP/2"
        assert response.text.startswith("2 GET /a 0 ")
        response = client.post(echo_server.url + "/up", content=body)
        assert response.text == f"2 POST /up {len(body)} {hashlib.sha256(body).hexdigest()}"


def test_httpx_many_concurrent_streams_on_one_connection(echo_server: TestServer) -> None:
    async def main() -> list[str]:
        async with httpx.AsyncClient(http2=True, http1=False, timeout=TIMEOUT) as client:
            responses = await asyncio.gather(
                *(client.get(f"{echo_server.url}/s{i}") for i in range(50))
            )
            return [r.text.split()[2] for r in responses]

    paths = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    assert paths == [f"/s{i}" for i in range(50)]


def test_large_response_arrives_intact(echo_server: TestServer) -> None:
    size = 100 * MiB
    with Wire(echo_server.port) as wire:
        wire.handshake({SettingsFrame.INITIAL_WINDOW_SIZE: 2**31 - 1})
        wire.send(WindowUpdateFrame(0, window_increment=2**31 - 1 - 65535))
        sid = wire.headers(request_headers(f"/big/{size}".encode()))
        received = 0
        for frame in wire.frames():
            if isinstance(frame, DataFrame) and frame.stream_id == sid:
                received += len(frame.data)
                if "END_STREAM" in frame.flags:
                    break
            assert not isinstance(frame, RstStreamFrame | GoAwayFrame), repr(frame)
        assert received == size


def test_client_goaway_lets_responses_in_flight_finish() -> None:
    """RFC 9113 §6.8: a graceful GOAWAY from the client stops new streams, not started ones.

    The response is four windows long, so it also needs the client's
    WINDOW_UPDATEs after its GOAWAY; then the server closes the connection.
    """
    size = 4 * 65_535
    with TestServer(builder().asgi(echo)) as ts, Wire(ts.port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(f"/big/{size}".encode()))
        wire.send(GoAwayFrame(0, last_stream_id=0, error_code=NO_ERROR))
        _, body = wire.response(sid)
        assert len(body) == size
        left = list(wire.frames())  # returns when the server closes (times out if not)
        assert not any(isinstance(frame, DataFrame | HeadersFrame) for frame in left)


def test_priority_header_decides_who_gets_the_window() -> None:
    """RFC 9218 over a real socket: two responses wait for window; when it opens, the
    urgent one (u=0) gets the whole connection window before the other (u=7)."""
    size = 100_000
    with TestServer(builder().asgi(echo)) as ts, Wire(ts.port) as wire:
        wire.handshake({SettingsFrame.INITIAL_WINDOW_SIZE: 0})  # no DATA until we say so
        path = f"/big/{size}".encode()
        late = wire.headers([*request_headers(path), (b"priority", b"u=7")])
        urgent = wire.headers([*request_headers(path), (b"priority", b"u=0")])
        heads = set()
        while heads != {late, urgent}:  # both apps have answered and wait for window
            frame = wire.read_frame()
            if isinstance(frame, HeadersFrame):
                heads.add(frame.stream_id)
        # One write: the late stream's window first, so arrival order cannot explain it.
        wire.send(
            WindowUpdateFrame(late, window_increment=size),
            WindowUpdateFrame(urgent, window_increment=size),
        )
        order: list[int] = []
        while sum(1 for sid in order if sid == urgent) * 16_384 < 65_535:
            frame = wire.read_frame()
            if isinstance(frame, DataFrame) and frame.data:
                order.append(frame.stream_id)
        # The connection window (65 535 B) went to the urgent stream alone.
        assert set(order) == {urgent}, order


needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="curl not installed")
needs_nghttp = pytest.mark.skipif(shutil.which("nghttp") is None, reason="nghttp2-client missing")
needs_h2load = pytest.mark.skipif(shutil.which("h2load") is None, reason="nghttp2-client missing")


def run(*cmd: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(cmd, capture_output=True, timeout=TIMEOUT * 3, check=False)


@needs_curl
def test_curl_prior_knowledge(echo_server: TestServer) -> None:
    done = run("curl", "-sS", "--http2-prior-knowledge", "-d", "hello", echo_server.url + "/c")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(b"2 POST /c 5 ")


@needs_curl
def test_curl_large_download(echo_server: TestServer) -> None:
    done = run("curl", "-sS", "--http2-prior-knowledge", f"{echo_server.url}/big/{20 * MiB}")
    assert done.returncode == 0, done.stderr
    assert len(done.stdout) == 20 * MiB


@needs_nghttp
def test_nghttp(echo_server: TestServer) -> None:
    done = run("nghttp", "-nv", "--timeout=10", echo_server.url + "/n")
    assert done.returncode == 0, done.stdout[-2000:]
    assert b":status: 200" in done.stdout


@needs_h2load
def test_h2load_many_streams_all_2xx(echo_server: TestServer) -> None:
    done = run("h2load", "-n", "2000", "-c", "4", "-m", "32", echo_server.url + "/")
    out = done.stdout.decode()
    assert done.returncode == 0, out
    assert "2000 succeeded, 0 failed, 0 errored" in out, out
    assert "status codes: 2000 2xx" in out, out


# -- stream lifecycle -----------------------------------------------------------------------------


class Recorder:
    """An app that waits for the test, reporting what receive/send saw."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.finished = threading.Event()
        self.messages: list[Message] = []
        self.send_error: BaseException | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"x" * 10, "more_body": True})
        self.started.set()
        self.messages.append(await receive())
        self.messages.append(await receive())
        try:
            for _ in range(100):
                await send({"type": "http.response.body", "body": b"y", "more_body": True})
                await asyncio.sleep(0.01)
        except OSError as exc:
            self.send_error = exc
        self.finished.set()


def test_client_reset_disconnects_the_app_and_stops_its_send() -> None:
    app = Recorder()
    with TestServer(builder().asgi(app)) as ts, Wire(ts.port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(b"/r", b"POST"), end_stream=False)
        assert app.started.wait(TIMEOUT)
        wire.send(RstStreamFrame(sid, error_code=CANCEL))
        assert app.finished.wait(TIMEOUT)
        assert app.messages[-1] == {"type": "http.disconnect"}
        assert app.send_error is not None
        wire.expect_alive()  # only the stream ended


async def mislength(scope: Scope, receive: Receive, send: Send) -> None:
    """``/N/a/b``: declares ``content-length: N``, then sends the body messages a, b …

    Any other path: ``fine`` with its exact length.
    """
    if scope["type"] != "http":
        return
    declared, *pieces = scope["path"].strip("/").split("/")
    if not declared.isdigit():
        declared, pieces = "4", ["fine"]
    headers = [(b"content-length", declared.encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    for i, piece in enumerate(pieces, 1):
        more = i < len(pieces)
        await send({"type": "http.response.body", "body": piece.encode(), "more_body": more})


@pytest.mark.parametrize(
    ("path", "sent"),
    [
        (b"/3/1234567", b""),  # declared 3, sent 7: refused before a byte of it
        (b"/3/12/34567", b"12"),  # the same across two messages: the first one fits
        (b"/100/12345", b""),  # declared 100, sent 5 and finished
        (b"/100/12/345", b"12"),
    ],
)
def test_body_against_its_content_length_resets_the_stream(
    path: bytes, sent: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """RFC 9113 §8.1.1: the body must match its content-length; a proxy that turns
    the response into HTTP/1.1 would trust the field."""
    caplog.set_level(logging.ERROR, logger="pounce.error")
    with TestServer(builder().asgi(mislength)) as ts, Wire(ts.port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(path))
        body = b""
        for frame in wire.frames():
            assert frame.stream_id in (0, sid) and not isinstance(frame, GoAwayFrame), repr(frame)
            if isinstance(frame, DataFrame):
                body += frame.data
                assert "END_STREAM" not in frame.flags
            elif isinstance(frame, RstStreamFrame):
                assert frame.error_code == INTERNAL_ERROR
                break
        assert body == sent  # never more than the declared 3
        declared = path.split(b"/")[1]
        assert (b"content-length", declared) in wire.received[sid]
        _, fine = wire.response(wire.headers(request_headers(b"/ok")))
        assert fine == b"fine"  # the connection goes on
    [error] = [r.getMessage() for r in caplog.records if r.name == "pounce.error"]
    expected = "Too much" if b"/3/" in path else "Too little"
    assert f"ASGI app error (protocol.local): {expected} data for declared Content-Length" in error


def test_head_response_keeps_its_content_length_and_sends_no_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="pounce.error")
    with TestServer(builder().asgi(mislength)) as ts, Wire(ts.port) as wire:
        wire.handshake()
        headers, body = wire.response(wire.headers(request_headers(b"/5/hello", b"HEAD")))
        assert (b"content-length", b"5") in headers and body == b""
    assert not caplog.records


def test_conflicting_content_lengths_are_a_500() -> None:
    """Refused with the head, before anything is on the wire (as on HTTP/1.1)."""

    async def conflicting(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        headers = [(b"content-length", b"2"), (b"content-length", b"3")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"ok"})

    with (
        TestServer(builder().asgi(conflicting)) as ts,
        httpx.Client(http2=True, http1=False, timeout=TIMEOUT) as client,
    ):
        response = client.get(ts.url + "/")
    assert (response.http_version, response.status_code) == ("HTTP/2", 500)


def test_graceful_shutdown_goaway_lets_streams_finish() -> None:
    gate = threading.Event()

    async def slow(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"started ", "more_body": True})
        while not gate.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.body", "body": b"finished"})

    ts = TestServer(builder().asgi(slow)).start()
    try:
        with Wire(ts.port) as wire:
            wire.handshake()
            sid = wire.headers(request_headers(b"/slow"))
            wire.expect(DataFrame, stream_id=sid)
            stopper = threading.Thread(target=ts.stop)
            stopper.start()
            goaway = wire.expect(GoAwayFrame)
            assert goaway.last_stream_id == sid and goaway.error_code == NO_ERROR
            late = wire.headers(request_headers(b"/late"))  # discarded: no frame for it
            gate.set()
            data = wire.expect(DataFrame, stream_id=sid)
            assert data.data == b"finished" and "END_STREAM" in data.flags
            with pytest.raises(ConnectionClosed):
                while True:  # then the connection closes, with nothing on the late stream
                    assert wire.read_frame().stream_id != late
            stopper.join(TIMEOUT)
    finally:
        gate.set()
        ts.stop()


def _gated_app(entered: threading.Event, gate: threading.Event) -> ASGIApp:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        entered.set()
        while not gate.is_set():
            await asyncio.sleep(0.01)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    return app


def _wait_until_refused(port: int) -> None:
    """Until the listener is closed (the shutdown has begun); bounded."""
    for _ in range(int(TIMEOUT / 0.02)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT).close()
        except (ConnectionRefusedError, ConnectionResetError):
            return  # (reset: accepted into the queue as it closed)
        threading.Event().wait(0.02)
    raise AssertionError("the listener never closed")


def test_a_draining_connection_sends_its_goaway_after_its_last_stream(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The GOAWAY waits for a moment with no stream in flight, then goes out last."""
    monkeypatch.setattr("pounce.drivers.http2.GOAWAY_GRACE", TIMEOUT * 2)
    entered, gate = threading.Event(), threading.Event()
    ts = TestServer(builder().asgi(_gated_app(entered, gate))).start()
    stopper = threading.Thread(target=ts.stop)
    try:
        with Wire(ts.port) as wire:
            wire.handshake()
            sid = wire.headers(request_headers(b"/slow"))
            assert entered.wait(TIMEOUT)
            stopper.start()
            _wait_until_refused(ts.port)
            gate.set()
            frames = []
            with pytest.raises(ConnectionClosed):
                while True:
                    frames.append(wire.read_frame())
            kinds = [type(f) for f in frames if isinstance(f, DataFrame | GoAwayFrame)]
            assert kinds == [DataFrame, GoAwayFrame], frames
            assert frames[-1].last_stream_id == sid and frames[-1].error_code == NO_ERROR
    finally:
        gate.set()
        if stopper.ident is None:
            stopper.start()
        stopper.join(TIMEOUT)


def test_httpx_request_in_flight_at_shutdown_is_answered() -> None:
    """httpx (over the Python h2 library) fails every stream still open when a
    GOAWAY arrives (python-hyper/h2 #1181): the server's GOAWAY must come after."""
    entered, gate = threading.Event(), threading.Event()
    ts = TestServer(builder().asgi(_gated_app(entered, gate))).start()
    stopper = threading.Thread(target=ts.stop)
    try:
        with (
            httpx.Client(http2=True, http1=False, timeout=TIMEOUT) as client,
            concurrent.futures.ThreadPoolExecutor(1) as pool,
        ):
            answer = pool.submit(client.get, ts.url + "/slow")
            assert entered.wait(TIMEOUT)
            stopper.start()
            _wait_until_refused(ts.port)
            gate.set()
            response = answer.result(TIMEOUT)
            assert (response.http_version, response.status_code) == ("HTTP/2", 200)
            assert response.content == b"finished"
    finally:
        gate.set()
        if stopper.ident is None:
            stopper.start()
        stopper.join(TIMEOUT)


def test_request_body_limit_is_a_413_on_the_stream_only() -> None:
    server = builder().limit_request_body(10).asgi(echo)
    with TestServer(server) as ts, Wire(ts.port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(b"/too-big", b"POST"), end_stream=False)
        wire.data(sid, b"x" * 100)
        headers, _ = wire.response(sid)
        assert (b":status", b"413") in headers
        ok = wire.headers(request_headers(b"/fine"))
        assert wire.response(ok)[1].startswith(b"2 GET /fine")


@pytest.mark.parametrize("path", [b"abc", b"/a b", b"/a\x01b", b"*"])
def test_a_path_that_is_not_origin_form_is_a_stream_error(
    echo_server: TestServer, path: bytes
) -> None:
    # RFC 9113 §8.3.1: ":path" is origin-form ("*" only for OPTIONS); §8.1.1:
    # a malformed request is a stream error of type PROTOCOL_ERROR.
    with Wire(echo_server.port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(path))
        wire.expect_error(PROTOCOL_ERROR, stream_id=sid)
        ok = wire.headers(request_headers(b"/after"))
        assert wire.response(ok)[1].startswith(b"2 GET /after")


# -- hardening ------------------------------------------------------------------------------------


def test_rapid_reset_gets_goaway_enhance_your_calm(echo_server: TestServer) -> None:
    """CVE-2023-44487: HEADERS + RST_STREAM without end; bounded by the reset budget."""
    with Wire(echo_server.port) as wire:
        wire.handshake()
        sent = 0
        try:
            for _ in range(5000):
                sid = wire.headers(end_stream=False)
                wire.send(RstStreamFrame(sid, error_code=CANCEL))
                sent += 1
        except OSError:
            pass  # the server closed the connection mid-flood
        goaway = wire.expect_goaway(ENHANCE_YOUR_CALM)
        assert goaway.last_stream_id <= 2 * 201 + 1  # no stream past the budget was served
        assert sent > 200


def test_made_you_reset_counts_server_resets(echo_server: TestServer) -> None:
    """CVE-2025-8671: frames that make the *server* reset count against the same budget."""
    with Wire(echo_server.port) as wire:
        wire.handshake()
        try:
            for _ in range(1000):
                sid = wire.headers(end_stream=False)
                wire.send(WindowUpdateFrame(sid, window_increment=2**31 - 1))  # overflow → reset
        except OSError:
            pass
        wire.expect_goaway(ENHANCE_YOUR_CALM)


def test_refused_requests_count_as_server_resets(echo_server: TestServer) -> None:
    """Requests we reset ourselves (here: CONNECT, not served) count against the budget.

    Sent in batches below the stream limit: h2 opens every stream of one read
    before we see any, and more than 100 at once is a connection error anyway.
    """
    connect = [(b":method", b"CONNECT"), (b":authority", b"t:443")]
    with Wire(echo_server.port) as wire:
        wire.handshake()
        for _ in range(20):
            for _ in range(50):
                wire.headers(connect)
            wire.ping(b"batchend")
            for frame in wire.frames():
                if isinstance(frame, GoAwayFrame):
                    assert frame.error_code == ENHANCE_YOUR_CALM
                    return
                if isinstance(frame, PingFrame):
                    break
        raise AssertionError("no GOAWAY after 1000 refused streams")


def test_continuation_flood_is_a_connection_error(echo_server: TestServer) -> None:
    """CVE-2024-27316 family: endless CONTINUATION frames without END_HEADERS."""
    with Wire(echo_server.port) as wire:
        wire.handshake()
        wire.send(HeadersFrame(1, wire.block(request_headers()), flags=["END_STREAM"]))
        try:
            for _ in range(10_000):
                wire.send(ContinuationFrame(1, b"\x00\x01a\x01b" * 100))
        except OSError:
            pass
        frame = wire.expect(GoAwayFrame)
        assert frame.error_code in (PROTOCOL_ERROR, ENHANCE_YOUR_CALM)


def test_hpack_bomb_is_bounded(echo_server: TestServer) -> None:
    """One 4 KiB header in the dynamic table, referenced until the decoded list explodes."""
    with Wire(echo_server.port) as wire:
        wire.handshake()
        first = wire.block([*request_headers(), (b"bomb", b"b" * 4000)])
        wire.send(HeadersFrame(1, first, flags=["END_HEADERS", "END_STREAM"]))
        wire.response(1)
        again = wire.block([*request_headers(), *[(b"bomb", b"b" * 4000)] * 1000])
        assert len(again) < 16_384
        wire.send(HeadersFrame(3, again, flags=["END_HEADERS", "END_STREAM"]))
        wire.expect_goaway(ENHANCE_YOUR_CALM)


def test_ping_flood_from_a_peer_that_does_not_read_is_disconnected(
    echo_server: TestServer,
) -> None:
    """CVE-2019-9512: PING flood, never reading the ACKs → the server gives up on us."""
    wire = Wire(echo_server.port, rcvbuf=4096)
    try:
        wire.handshake()
        ping = PingFrame(0, opaque_data=b"floodflo").serialize() * 1000
        with pytest.raises(OSError):  # reset or broken pipe once the server aborts
            for _ in range(2000):  # at most 2 million PINGs, 34 MB
                wire.sock.sendall(ping)
    finally:
        wire.close()


def test_settings_flood_from_a_peer_that_does_not_read_is_disconnected(
    echo_server: TestServer,
) -> None:
    wire = Wire(echo_server.port, rcvbuf=4096)
    try:
        wire.handshake()
        settings = SettingsFrame(0, settings={SettingsFrame.MAX_FRAME_SIZE: 16384}).serialize()
        with pytest.raises(OSError):
            for _ in range(2000):
                wire.sock.sendall(settings * 1000)
    finally:
        wire.close()


def test_empty_data_frame_flood_gets_goaway(echo_server: TestServer) -> None:
    """CVE-2019-9518: DATA frames with neither payload nor END_STREAM."""
    with Wire(echo_server.port) as wire:
        wire.handshake()
        sid = wire.headers(request_headers(b"/e", b"POST"), end_stream=False)
        with contextlib.suppress(OSError):
            wire.send(*[DataFrame(sid, b"") for _ in range(2000)])
        wire.expect_goaway(ENHANCE_YOUR_CALM)


def test_zero_window_stream_does_not_block_others(echo_server: TestServer) -> None:
    with Wire(echo_server.port) as wire:
        wire.handshake({SettingsFrame.INITIAL_WINDOW_SIZE: 0})
        stuck = wire.headers(request_headers(b"/big/1000000"))
        wire.expect(HeadersFrame, stream_id=stuck)
        for i in range(5):
            sid = wire.headers(request_headers(f"/other{i}".encode()))
            wire.send(WindowUpdateFrame(sid, window_increment=1000))
            _, body = wire.response(sid)
            assert body.startswith(f"2 GET /other{i} ".encode())
        wire.expect_alive()


def test_h2_only_server_rejects_http1_cleanly() -> None:
    server = Server.builder().bind("127.0.0.1", 0).h2().asgi(echo)
    with TestServer(server) as ts, socket.create_connection(("127.0.0.1", ts.port), 5) as sock:
        sock.settimeout(TIMEOUT)
        sock.sendall(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        data = b""
        while chunk := sock.recv(4096):
            data += chunk
        assert b"HTTP/1.1 200" not in data


def test_builder_h2_app_type() -> None:
    app: ASGIApp = echo
    assert "h2 (max streams 100" in builder().asgi(app).describe()


def test_alpn_h2_over_tls(pki: PKI) -> None:
    """Over TLS the bridge picks HTTP/2 by ALPN; HTTP/1.1 clients still get HTTP/1.1."""
    server = builder().tls(cert=str(pki.cert), key=str(pki.key)).asgi(echo)
    with TestServer(server) as ts:
        url = f"https://localhost:{ts.port}/tls"
        context = ssl.create_default_context(cafile=str(pki.ca))
        with httpx.Client(http2=True, verify=context, timeout=TIMEOUT) as client:
            response = client.get(url)
            assert response.http_version == "HTTP/2"
            assert response.text.startswith("2 GET /tls 0 ")
        with httpx.Client(verify=context, timeout=TIMEOUT) as client:
            assert client.get(url).text.startswith("1.1 GET /tls 0 ")


def test_frames_between_streams_do_not_stretch_the_keep_alive_time(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An idle connection that sends PING and WINDOW_UPDATE still gets its GOAWAY after the
    keep-alive time, not after the (here much longer) request-head timeout, and no line
    about a missing request head."""
    server = builder().timeouts(keep_alive=0.3, request_head=60).asgi(echo)
    with TestServer(server) as ts, Wire(ts.port) as wire, caplog.at_level(logging.INFO):
        wire.handshake()
        sid = wire.headers()
        wire.response(sid)  # sends WINDOW_UPDATEs for the body
        wire.ping()
        wire.expect(PingFrame)
        goaway = wire.expect(GoAwayFrame)  # within TIMEOUT, far below the head timeout
        assert goaway.error_code == NO_ERROR and goaway.last_stream_id == sid
        with pytest.raises(ConnectionClosed):
            while True:
                wire.read_frame()
    assert "no complete request head" not in caplog.text
