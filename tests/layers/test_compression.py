"""The compression layer over real sockets: round trips, negotiation, skip rules, headers,
streaming chunk by chunk, and request-body inflation under its bound (413 on a bomb)."""

from __future__ import annotations

import asyncio
import gzip
import shutil
import socket
import subprocess
import threading
import time
import tracemalloc
import zlib
from collections.abc import Iterator
from urllib.parse import unquote

import brotli
import httpx
import pytest

from pounce import BuildError, Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.layers.compression import Compression
from pounce.layers.compression.codecs import MissingCodec, codec
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, builder

PAGE = b"<li>pounce compresses this line, and the next</li>\n" * 200  # 10 kB


def zstd_installed() -> bool:
    try:
        codec("zstd")
    except MissingCodec:
        return False
    return True


class App:
    """Answers per path: /page (one message), /stream (chunks, waits for `go` between),
    /small, /typed?TYPE, /head?NAME=VALUE (extra fields), /echo (the request body's size)."""

    def __init__(self) -> None:
        self.go = threading.Event()  # set by the test thread, polled by the app
        self.waited_out = False  # a part was not read before the app gave up waiting
        self.received = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        path, query = scope["path"], scope["query_string"].decode()
        headers = [(b"content-type", b"text/html; charset=utf-8")]
        if path == "/typed":
            headers = [(b"content-type", query.encode())]
        elif path == "/head":
            name, _, value = query.partition("=")
            headers.append((name.encode(), unquote(value).encode()))
        if path == "/stream":
            await self._stream(send, headers)
            return
        if path == "/echo":
            body = await self._drain(receive)
        else:
            body = b"tiny" if path == "/small" else PAGE
        status = 206 if path == "/partial" else 200
        headers.append((b"content-length", b"%d" % len(body)))
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def _drain(self, receive: Receive) -> bytes:
        self.received = 0
        while True:
            message = await receive()
            self.received += len(message.get("body", b""))  # counted, not kept
            if not message.get("more_body", False):
                return b"%d" % self.received

    async def _stream(self, send: Send, headers: list[tuple[bytes, bytes]]) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(3):
            await send(
                {"type": "http.response.body", "body": b"<p>part %d</p>" % i, "more_body": True}
            )
            deadline = time.monotonic() + TIMEOUT
            while not self.go.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.005)  # the test reads this part before the next is sent
            self.waited_out = self.waited_out or not self.go.is_set()
            self.go.clear()
        await send({"type": "http.response.body", "body": b""})


def serve(app: App | None = None, **options: object) -> TestServer:
    return TestServer(builder().compress(**options).asgi(app or App()))  # type: ignore[arg-type]


def get(
    ts: TestServer, path: str, accept: str | None = "br, zstd, gzip", **headers: str
) -> httpx.Response:
    if accept is not None:
        headers["accept-encoding"] = accept
    client = httpx.Client(headers={"accept-encoding": ""}, timeout=TIMEOUT)
    with client, client.stream("GET", ts.url + path, headers=headers) as r:
        r.raw = b"".join(r.iter_raw())  # type: ignore[attr-defined]  # as sent, not decoded
    return r


def decode(coding: str | None, data: bytes) -> bytes:
    if coding == "gzip":
        return gzip.decompress(data)
    if coding == "br":
        return bytes(brotli.decompress(data))
    if coding == "zstd":
        return _zstd_decoder()(data)
    return data


def _zstd_decoder():  # type: ignore[no-untyped-def]
    """A streaming zstd decoder: the standard library's (3.14), else zstandard's."""
    try:
        from compression import zstd  # type: ignore[import-not-found]
    except ImportError:
        import zstandard  # type: ignore[import-not-found]

        return zstandard.ZstdDecompressor().decompressobj().decompress
    return zstd.ZstdDecompressor().decompress


CODINGS = [
    "br",
    "gzip",
    pytest.param(
        "zstd", marks=pytest.mark.skipif(not zstd_installed(), reason="zstd not installed")
    ),
]


@pytest.fixture(scope="module")
def ts() -> Iterator[TestServer]:
    with serve() as server:
        yield server


@pytest.mark.parametrize("coding", CODINGS)
def test_each_coding_round_trips(ts: TestServer, coding: str) -> None:
    r = get(ts, "/page", accept=coding)
    assert r.headers["content-encoding"] == coding
    assert decode(coding, r.raw) == PAGE
    assert int(r.headers["content-length"]) == len(r.raw) < len(PAGE) // 5
    assert r.headers["vary"] == "Accept-Encoding"


@pytest.mark.parametrize(
    ("accept", "coding"),
    [
        ("gzip, br", "br"),
        ("br;q=0.4, gzip", "gzip"),
        ("*", "br"),
        ("identity", None),
        (None, None),
        ("br;q=0, *;q=0.1", "gzip" if not zstd_installed() else "zstd"),
        ("gzip;q=0.5, identity", None),
    ],
)
def test_negotiation(ts: TestServer, accept: str | None, coding: str | None) -> None:
    r = get(ts, "/page", accept=accept)
    assert r.headers.get("content-encoding") == coding
    assert decode(coding, r.raw) == PAGE
    assert r.headers["vary"] == "Accept-Encoding"  # this client's choice only: a cache must know


def test_the_servers_order_is_configurable() -> None:
    with serve(algorithms=("gzip", "br")) as ts:
        assert get(ts, "/page", accept="br, gzip").headers["content-encoding"] == "gzip"


@pytest.mark.parametrize(
    "path",
    [
        "/small",
        "/typed?image/png",
        "/typed?video/mp4",
        "/typed?application/zip",
        "/typed?font/woff2",
        "/typed?text/event-stream",
        "/head?content-encoding=identity-ish",
        "/head?cache-control=no-transform",
        "/head?content-range=bytes%200-9/100",
        "/partial",
    ],
)
def test_skip_rules_send_the_body_as_it_is(ts: TestServer, path: str) -> None:
    r = get(ts, path)
    assert r.headers.get("content-encoding") in (None, "identity-ish")
    assert "vary" not in r.headers
    assert r.raw in (PAGE, b"tiny")


def test_svg_is_compressed(ts: TestServer) -> None:
    assert get(ts, "/typed?image/svg+xml").headers["content-encoding"] == "br"


def test_head_gets_the_fields_of_get_and_no_body(ts: TestServer) -> None:
    """RFC 9110 §9.3.2: the same Content-Encoding, Vary and (weak) ETag as a GET; the encoded
    length is known only by encoding, so no Content-Length (as nginx)."""
    with httpx.Client(timeout=TIMEOUT) as client:
        url = ts.url + '/head?etag="v1"'
        got = client.get(url, headers={"accept-encoding": "br"})
        head = client.head(url, headers={"accept-encoding": "br"})
        small = client.head(ts.url + "/small", headers={"accept-encoding": "br"})
    for name in ("content-encoding", "vary", "etag", "content-type"):
        assert head.headers[name] == got.headers[name], name
    assert head.headers["content-encoding"] == "br"
    assert "content-length" not in head.headers
    assert head.content == b""
    # Below the minimum size: the fields a GET gets, which are not encoded either.
    assert "content-encoding" not in small.headers
    assert small.headers["content-length"] == "4"


def test_vary_is_merged_and_a_strong_etag_weakened(ts: TestServer) -> None:
    r = get(ts, "/head?vary=Cookie")
    assert r.headers["vary"] == "Cookie, Accept-Encoding"
    assert get(ts, '/head?etag="v1"').headers["etag"] == 'W/"v1"'
    assert get(ts, '/head?etag=W/"v1"').headers["etag"] == 'W/"v1"'
    assert get(ts, '/head?etag="v1"', accept=None).headers["etag"] == '"v1"'


def _read_until(sock: socket.socket, data: bytes, marker: bytes) -> bytes:
    while marker not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed early: {data!r}"
        data += chunk
    return data


@pytest.mark.parametrize("coding", CODINGS)
def test_each_streamed_chunk_decodes_before_the_response_ends(coding: str) -> None:
    app = App()
    with serve(app) as ts:
        sock = socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT)
        request = (
            b"GET /stream HTTP/1.1\r\nhost: t\r\naccept-encoding: %s\r\n\r\n" % coding.encode()
        )
        sock.sendall(request)
        data = _read_until(sock, b"", b"\r\n\r\n")
        head, _, rest = data.partition(b"\r\n\r\n")
        assert b"content-encoding: " + coding.encode() in head.lower()
        assert b"transfer-encoding: chunked" in head.lower()
        decoder = _decoder(coding)
        text = b""
        for i in range(3):
            while b"part %d" % i not in text:  # arrives decodable while the app waits
                rest = _read_until(sock, rest, b"\r\n")
                size, _, rest = rest.partition(b"\r\n")
                length = int(size, 16)
                while len(rest) < length + 2:
                    rest += sock.recv(65536)
                text += decoder(rest[:length])
                rest = rest[length + 2 :]
            app.go.set()
        sock.close()
    assert not app.waited_out


def _decoder(coding: str):  # type: ignore[no-untyped-def]
    if coding == "gzip":
        return zlib.decompressobj(31).decompress
    if coding == "br":
        return brotli.Decompressor().process
    return _zstd_decoder()


def test_curl_compressed(ts: TestServer) -> None:
    curl = shutil.which("curl")
    if curl is None:
        pytest.skip("curl is not installed")
    out = subprocess.run(
        [curl, "-s", "--compressed", "-D", "-", ts.url + "/page"],
        capture_output=True,
        timeout=TIMEOUT,
        check=True,
    ).stdout
    head, _, body = out.partition(b"\r\n\r\n")
    assert b"content-encoding:" in head.lower()
    assert body == PAGE


# -- request bodies -----------------------------------------------------------------------------


def post(ts: TestServer, body: bytes, coding: str) -> httpx.Response:
    headers = {"content-encoding": coding, "accept-encoding": ""}
    return httpx.post(ts.url + "/echo", content=body, headers=headers, timeout=4 * TIMEOUT)


def test_request_bodies_pass_as_they_came_unless_asked(ts: TestServer) -> None:
    body = gzip.compress(PAGE)
    assert post(ts, body, "gzip").text == str(len(body))


@pytest.mark.parametrize(
    ("coding", "encode"),
    [("gzip", gzip.compress), ("br", brotli.compress), ("deflate", zlib.compress)],
)
def test_request_bodies_are_inflated_when_asked(coding: str, encode: object) -> None:
    with serve(decompress_requests=True) as ts:
        assert post(ts, encode(PAGE), coding).text == str(len(PAGE))  # type: ignore[operator]
        r = post(ts, b"xx", "compress")
        assert (r.status_code, r.headers["accept-encoding"]) == (415, "br, deflate, gzip, x-gzip")
        assert post(ts, b"not gzip at all", "gzip").status_code == 400


def _bomb(size: int) -> bytes:
    """gzip of `size` zero bytes (about size / 1000 bytes)."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    parts = [z.compress(block) for _ in range(size >> 20)]
    return b"".join(parts) + z.flush()


def test_a_decompression_bomb_is_refused_with_413_in_bounded_memory() -> None:
    bomb = _bomb(1 << 30)  # 1 GiB of zeros in about 1 MiB
    assert len(bomb) < 2 << 20
    app = App()
    with serve(app, decompress_requests=True) as ts:
        tracemalloc.start()
        try:
            r = post(ts, bomb, "gzip")
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert r.status_code == 413
    assert app.received <= 16 * 1024 * 1024 + 64 * 1024  # one piece past the bound, no more
    assert peak < 32 * 1024 * 1024  # the request (2 MiB) and pieces, never the inflated body


def test_a_missing_coding_named_is_a_build_error() -> None:
    if zstd_installed():
        pytest.skip("zstd is installed")
    with pytest.raises(BuildError, match="zstd") as info:
        Server.builder().compress(algorithms=["zstd", "gzip"])
    assert "pounce[zstd]" in str(info.value)
    assert "zstd" not in [c.name for c in Compression().codecs()]  # not named: not offered


# -- HTTP/2: the same layer over another protocol ------------------------------------------


def serve_h2(app: App) -> TestServer:
    return TestServer(builder().h2().compress().asgi(app))


def test_http2_responses_are_compressed_and_head_gets_the_get_fields() -> None:
    with (
        serve_h2(App()) as ts,
        httpx.Client(base_url=ts.url, http1=False, http2=True, timeout=TIMEOUT) as client,
    ):
        page = client.get("/page", headers={"accept-encoding": "br"})
        assert page.http_version == "HTTP/2"
        assert page.headers["content-encoding"] == "br"
        assert page.content == PAGE  # httpx decodes br
        assert int(page.headers["content-length"]) < len(PAGE)  # recomputed, one message
        head = client.head("/page", headers={"accept-encoding": "br"})
        assert head.http_version == "HTTP/2"
        assert (head.headers["content-encoding"], head.headers["vary"]) == ("br", "Accept-Encoding")
        assert "content-length" not in head.headers
        assert head.content == b""


def test_http2_streamed_chunks_decode_before_the_response_ends() -> None:
    """Over h2c (prior knowledge), with the h2 library as the client: each DATA frame
    decodes on arrival while the app waits to send the next part."""
    import h2.config
    import h2.connection
    import h2.events

    app = App()
    with serve_h2(app) as ts:
        sock = socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT)
        client = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        client.initiate_connection()
        headers = [(":method", "GET"), (":scheme", "http"), (":authority", "t")]
        headers += [(":path", "/stream"), ("accept-encoding", "br")]
        client.send_headers(1, headers, end_stream=True)
        sock.sendall(client.data_to_send())
        decoder = brotli.Decompressor()
        text, fields, part, ended = b"", {}, 0, False
        while not ended:
            data = sock.recv(65536)
            assert data, "closed before the stream ended"
            for event in client.receive_data(data):
                if isinstance(event, h2.events.ResponseReceived):
                    fields = {bytes(n).decode(): bytes(v).decode() for n, v in event.headers}
                elif isinstance(event, h2.events.DataReceived):
                    client.acknowledge_received_data(event.flow_controlled_length, 1)
                    text += decoder.process(event.data)
                elif isinstance(event, h2.events.StreamEnded):
                    ended = True
            while part < 3 and b"part %d" % part in text:
                part += 1
                app.go.set()  # decoded before the app sends the next part
            sock.sendall(client.data_to_send())
        sock.close()
    assert (fields["content-encoding"], part) == ("br", 3)
    assert "content-length" not in fields
    assert text == b"<p>part 0</p><p>part 1</p><p>part 2</p>"
    assert not app.waited_out
