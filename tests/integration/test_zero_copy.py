"""The zero-copy ASGI extensions over real sockets: ``http.response.pathsend`` and
``http.response.zerocopysend``, by ``sendfile`` on plain HTTP/1.1 and by chunked reads
under TLS, HTTP/2 and uvloop; Starlette's FileResponse; a slow reader, a reader that reads
nothing (the send timeout), a client that leaves mid-file; the static layer behind the
compression layer (compressed where it should be, zero-copy otherwise)."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
import socket
import threading
import time
import tracemalloc
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import brotli
import httpx
import pytest

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, builder, wait_for

DATA = os.urandom(3 * 1024 * 1024 + 17)  # 3 MiB and a bit: a dozen sendfile slices


@pytest.fixture
def big(tmp_path: Path) -> Path:
    path = tmp_path / "big.bin"
    path.write_bytes(DATA)
    return path


class Sendfiles:
    """Counts the bytes ``os.sendfile`` moved (the server runs in this process)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self.bytes = 0
        real = os.sendfile
        lock = threading.Lock()

        def counting(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
            sent = real(out_fd, in_fd, offset, count)
            with lock:
                self.calls += 1
                self.bytes += sent
            return sent

        monkeypatch.setattr(os, "sendfile", counting)

    def reach(self, total: int) -> None:
        """Wait for the count to reach `total`: the server's thread counts a call after it
        returns, so the client may have the bytes a moment before the count does."""
        wait_for(lambda: self.bytes >= total, f"{total} bytes by sendfile")
        assert self.bytes == total


@pytest.fixture
def sendfiles(monkeypatch: pytest.MonkeyPatch) -> Sendfiles:
    return Sendfiles(monkeypatch)


def file_app(path: Path) -> Any:
    """/path: pathsend of the whole file; /spans: two zerocopysend spans around a body;
    /relative, /missing: pathsend mistakes; /position: zerocopysend from the file's position."""

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        assert "http.response.pathsend" in scope["extensions"]
        assert "http.response.zerocopysend" in scope["extensions"]
        route = scope["path"]
        headers: list[tuple[bytes, bytes]] = [(b"content-type", b"application/octet-stream")]
        if route == "/spans":
            headers.append((b"content-length", b"%d" % (100 + 5 + 200_000)))
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        if route == "/path":
            await send({"type": "http.response.pathsend", "path": str(path)})
        elif route == "/relative":
            await send({"type": "http.response.pathsend", "path": "big.bin"})
        elif route == "/missing":
            await send({"type": "http.response.pathsend", "path": str(path) + ".nope"})
        elif route == "/spans":
            with path.open("rb") as file:
                span = {"type": "http.response.zerocopysend", "file": file}
                await send({**span, "offset": 10, "count": 100, "more_body": True})
                await send({"type": "http.response.body", "body": b"hello", "more_body": True})
                await send({**span, "offset": 1000, "count": 200_000})
        elif route == "/position":
            with path.open("rb") as file:
                file.seek(len(DATA) - 1000)
                await send({"type": "http.response.zerocopysend", "file": file})
                assert file.tell() == len(DATA)

    return app


SPANS = DATA[10:110] + b"hello" + DATA[1000:201_000]


def check_bodies(client: httpx.Client) -> None:
    whole = client.get("/path")
    assert whole.status_code == 200
    assert whole.headers["content-length"] == str(len(DATA))  # added: the file's size
    assert whole.content == DATA
    assert client.get("/spans").content == SPANS
    assert client.get("/position").content == DATA[-1000:]
    head = client.head("/path")
    assert (head.headers["content-length"], head.content) == (str(len(DATA)), b"")


def test_plain_http1_sends_by_sendfile(big: Path, sendfiles: Sendfiles) -> None:
    with TestServer(file_app(big)) as ts, ts.client() as client:
        check_bodies(client)
    # Every body byte of /path, /spans' two spans and /position went by sendfile.
    sendfiles.reach(len(DATA) + 100 + 200_000 + 1000)


@pytest.mark.parametrize(
    "options",
    [{"tls": True}, {"http2": True, "tls": True}, {"loop": "uvloop"}],
    ids=["tls", "http2", "uvloop"],
)
def test_chunked_reads_where_sendfile_cannot(
    big: Path, sendfiles: Sendfiles, options: dict[str, Any]
) -> None:
    if options.get("loop") == "uvloop":
        pytest.importorskip("uvloop")
    with TestServer(file_app(big), **options) as ts, ts.client(http2="http2" in options) as c:
        check_bodies(c)
        assert c.get("/path").http_version == ("HTTP/2" if "http2" in options else "HTTP/1.1")
    assert sendfiles.calls == 0


def test_h2c_prior_knowledge(big: Path, sendfiles: Sendfiles) -> None:
    with (
        TestServer(file_app(big), http2=True) as ts,
        httpx.Client(base_url=ts.url, http1=False, http2=True, timeout=TIMEOUT) as client,
    ):
        check_bodies(client)
        assert client.get("/path").http_version == "HTTP/2"
    assert sendfiles.calls == 0


def test_a_bad_pathsend_is_a_500_and_one_log_line(
    big: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TestServer(file_app(big)) as ts, ts.client() as client:
        for route in ("/relative", "/missing"):
            with caplog.at_level(logging.ERROR, logger="pounce.error"):
                assert client.get(route).status_code == 500
    messages = [r.getMessage() for r in caplog.records if r.name == "pounce.error"]
    assert any("must be absolute" in m for m in messages)
    assert any("cannot open" in m for m in messages)


def test_starlette_file_response_uses_pathsend(big: Path, sendfiles: Sendfiles) -> None:
    starlette = pytest.importorskip("starlette.applications")
    from starlette.responses import FileResponse
    from starlette.routing import Route

    async def download(request: Any) -> FileResponse:
        return FileResponse(big)

    app = starlette.Starlette(routes=[Route("/file", download)])
    with TestServer(app) as ts, ts.client() as client:
        response = client.get("/file")
        assert response.content == DATA
        assert response.headers["content-length"] == str(len(DATA))
        ranged = client.get("/file", headers={"range": "bytes=5-9"})
        assert (ranged.status_code, ranged.content) == (206, DATA[5:10])
    wait_for(lambda: sendfiles.bytes >= len(DATA), "the file by sendfile")


# -- backpressure: slow readers, readers that read nothing, readers that leave ---------------


def slow_read(port: int, path: bytes, pause: float) -> tuple[int, bytes]:
    """GET `path`, then read the body with a pause between reads; its length and SHA-256
    (kept as a digest, so the client's memory does not hide the server's)."""
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 16 * 1024)
        sock.sendall(b"GET %s HTTP/1.1\r\nhost: test\r\n\r\n" % path)
        data = b""
        while b"\r\n\r\n" not in data:
            data += sock.recv(4096)
        head, _, body = data.partition(b"\r\n\r\n")
        length = int(next(v for n, _, v in _fields(head) if n == "content-length"))
        digest = hashlib.sha256(body)
        received = len(body)
        reads = 0
        while received < length:
            chunk = sock.recv(64 * 1024)
            if not chunk:
                break
            digest.update(chunk)
            received += len(chunk)
            reads += 1
            if reads < 40:
                time.sleep(pause)  # slow at first, so the server's buffers fill and it waits
        return received, digest.digest()


def _fields(head: bytes) -> Iterator[tuple[str, str, str]]:
    for line in head.decode("latin-1").split("\r\n")[1:]:
        name, sep, value = line.partition(":")
        yield name.strip().lower(), sep, value.strip()


def test_a_slow_reader_gets_every_byte_and_others_are_served(
    big: Path, sendfiles: Sendfiles
) -> None:
    tracemalloc.start()
    try:
        with TestServer(file_app(big)) as ts, ts.client() as client:
            result: list[bytes] = []
            reader = threading.Thread(
                target=lambda: result.append(slow_read(ts.port, b"/path", 0.02))
            )
            reader.start()
            # While the slow reader holds a sendfile in flight, the loop serves others.
            for _ in range(3):
                assert client.get("/spans").content == SPANS
            reader.join(10 * TIMEOUT)
            assert result == [(len(DATA), hashlib.sha256(DATA).digest())]
            peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    wait_for(lambda: sendfiles.bytes >= len(DATA), "the file by sendfile")
    assert peak < len(DATA) // 2  # the file never sat in Python memory


def test_a_reader_that_reads_nothing_is_aborted_after_the_send_timeout(
    big: Path, caplog: pytest.LogCaptureFixture
) -> None:
    server = builder().timeouts(send=0.5).asgi(file_app(big))
    with TestServer(server) as ts, caplog.at_level(logging.INFO, logger="pounce.error"):
        sock = socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /path HTTP/1.1\r\nhost: test\r\n\r\n")
        deadline = time.monotonic() + 4 * TIMEOUT
        while "read nothing" not in caplog.text and time.monotonic() < deadline:
            time.sleep(0.05)
        received = 0
        with pytest.raises(OSError):  # the connection was reset, short of the file
            while chunk := sock.recv(1 << 20):
                received += len(chunk)
            raise ConnectionResetError(f"closed after {received} bytes")
        sock.close()
        assert received < len(DATA)
        # The server goes on serving.
        assert httpx.get(ts.url + "/spans", timeout=TIMEOUT).content == SPANS
    assert "read nothing of our output" in caplog.text
    assert "Traceback" not in caplog.text


def test_a_client_that_leaves_mid_file_costs_one_quiet_close(
    big: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with TestServer(file_app(big)) as ts, caplog.at_level(logging.DEBUG, logger="pounce"):
        for _ in range(3):
            sock = socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT)
            sock.sendall(b"GET /path HTTP/1.1\r\nhost: test\r\n\r\n")
            sock.recv(65536)
            sock.setsockopt(
                socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
            )
            sock.close()  # a reset, mid-file
        assert httpx.get(ts.url + "/spans", timeout=TIMEOUT).content == SPANS
    assert "Exception in ASGI application" not in caplog.text


# -- the static layer, with and without compression on the way -------------------------------

# Compressible (hex halves under brotli), and still over the static layer's chunk size
# (64 KiB: a file that small goes from memory) once compressed, so its sibling goes by
# sendfile too.
JS = b"".join(b"var v%d = '%s';\n" % (i, os.urandom(16).hex().encode()) for i in range(6000))


@pytest.fixture
def site(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    public.mkdir()
    (public / "app.js").write_bytes(JS)
    (public / "pre.js").write_bytes(JS)
    (public / "pre.js.br").write_bytes(brotli.compress(JS))
    (public / "photo.png").write_bytes(DATA)
    return public


def static_server(site: Path, *, compress: bool) -> Server:
    stack = builder()
    if compress:
        stack = stack.compress()
    return stack.static("/s", str(site)).asgi(file_app(site / "photo.png"))


def test_static_files_go_by_sendfile(site: Path, sendfiles: Sendfiles) -> None:
    with TestServer(static_server(site, compress=False)) as ts, ts.client() as client:
        assert client.get("/s/photo.png").content == DATA
        one = client.get("/s/photo.png", headers={"range": "bytes=100-199"})
        assert (one.status_code, one.content) == (206, DATA[100:200])
        many = client.get("/s/photo.png", headers={"range": "bytes=0-9,1000-1009"})
        assert many.status_code == 206
        assert DATA[:10] in many.content and DATA[1000:1010] in many.content
    sendfiles.reach(len(DATA) + 100 + 20)


def test_behind_compression_a_compressible_file_is_encoded_the_rest_zero_copy(
    site: Path, sendfiles: Sendfiles
) -> None:
    with TestServer(static_server(site, compress=True)) as ts, ts.client() as client:
        br = {"accept-encoding": "br"}
        dynamic = client.get("/s/app.js", headers=br)  # no sibling: encoded here, chunk by chunk
        assert dynamic.headers["content-encoding"] == "br"
        assert "content-length" not in dynamic.headers
        assert dynamic.content == JS  # httpx decodes br
        assert sendfiles.calls == 0
        sibling = client.get("/s/pre.js", headers=br)  # the .br sibling, as it is on disk
        assert sibling.headers["content-encoding"] == "br"
        assert sibling.content == JS
        moved = len(brotli.compress(JS))
        sendfiles.reach(moved)
        image = client.get("/s/photo.png", headers=br)  # incompressible: not encoded
        assert "content-encoding" not in image.headers
        assert image.content == DATA
        sendfiles.reach(moved + len(DATA))
        identity = client.get("/s/app.js", headers={"accept-encoding": "identity"})
        assert identity.content == JS
        sendfiles.reach(moved + len(DATA) + len(JS))


def test_behind_compression_over_http2(site: Path) -> None:
    options = builder().h2().compress()
    server = options.static("/s", str(site)).asgi(file_app(site / "photo.png"))
    with (
        TestServer(server) as ts,
        httpx.Client(base_url=ts.url, http1=False, http2=True, timeout=TIMEOUT) as client,
    ):
        dynamic = client.get("/s/app.js", headers={"accept-encoding": "br"})
        assert dynamic.http_version == "HTTP/2"
        assert dynamic.headers["content-encoding"] == "br"
        assert dynamic.content == JS
        assert client.get("/s/photo.png").content == DATA


def test_raw_head_of_a_pathsend_response(big: Path) -> None:
    with TestServer(file_app(big)) as ts:
        sock = socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT)
        sock.sendall(
            b"HEAD /path HTTP/1.1\r\nhost: test\r\n\r\nGET /spans HTTP/1.1\r\nhost: t\r\n\r\n"
        )
        data = b""
        while b"hello" not in data or len(data) < len(SPANS):
            chunk = sock.recv(1 << 20)
            if not chunk:
                break
            data += chunk
        sock.close()
    head, _, rest = data.partition(b"\r\n\r\n")
    assert b"content-length: %d" % len(DATA) in head
    assert rest.startswith(b"HTTP/1.1 200")  # the next response follows at once: no body


def test_when_the_kernel_refuses_sendfile_the_transport_writes_the_file(
    big: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``os.sendfile`` failing before a byte moved (EINVAL: a file system without it) is
    asyncio's SendfileNotAvailableError: the rest is read off the loop and written."""
    refused = []

    def refusing(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        refused.append(count)
        raise OSError(errno.EINVAL, "sendfile not supported here")

    monkeypatch.setattr(os, "sendfile", refusing)
    with TestServer(file_app(big)) as ts, ts.client() as client:
        check_bodies(client)
    assert refused  # it was tried, and every body still arrived whole
