"""ASGI response extensions over both protocols, and HTTP/2 reached by ``Upgrade: h2c``.

`http.response.trailers` and `http.response.early_hint` go through the shared
`Exchange`, so each is checked on the wire of HTTP/1.1 (raw sockets, both
parsers) and HTTP/2 (the h2 library as client). The h2c upgrade (RFC 7540
§3.2) is driven by the h2 library and by ``curl --http2`` (skipped without
curl). Every socket wait has a timeout.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
from collections.abc import Iterator

import h2.config
import h2.connection
import h2.events
import pytest

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer

TIMEOUT = 10.0  # seconds: the bound on every network wait here
LINK = b"</style.css>; rel=preload; as=style"


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """``/trailers``: body then an ``x-checksum`` trailer; ``/hint``: a 103 first."""
    if scope["type"] != "http":
        return
    path = scope["path"]
    if path == "/hint":
        await send({"type": "http.response.early_hint", "links": [LINK]})
    trailers = path == "/trailers"
    start = {"type": "http.response.start", "status": 200, "headers": [], "trailers": trailers}
    await send(start)
    body = f"{scope['http_version']} {sorted(scope.get('extensions', {}))}".encode()
    await send({"type": "http.response.body", "body": body, "more_body": trailers})
    if trailers:
        await send({"type": "http.response.body", "body": b"|tail"})
        await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc")]})


@pytest.fixture(scope="module", params=["fast", "h11"])
def server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    builder = Server.builder().bind("127.0.0.1", 0).h1(parser=request.param).h2()
    with TestServer(builder.timeouts(graceful_shutdown=2).asgi(app)) as ts:
        yield ts


def http1(ts: TestServer, head: bytes) -> bytes:
    """Send one request with ``Connection: close``; everything until the server closes."""
    with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
        sock.sendall(head)
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


class H2Client:
    """The h2 library as a client over a blocking socket with a timeout."""

    def __init__(self, sock: socket.socket, conn: h2.connection.H2Connection) -> None:
        self.sock, self.conn = sock, conn

    @classmethod
    def connect(cls, ts: TestServer) -> H2Client:
        sock = socket.create_connection((ts.host, ts.port), timeout=TIMEOUT)
        conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
        conn.initiate_connection()
        sock.sendall(conn.data_to_send())
        return cls(sock, conn)

    def get(self, path: bytes, authority: bytes = b"x") -> int:
        sid = self.conn.get_next_available_stream_id()
        headers = [(b":method", b"GET"), (b":scheme", b"http"), (b":authority", authority)]
        self.conn.send_headers(sid, [*headers, (b":path", path)], end_stream=True)
        self.sock.sendall(self.conn.data_to_send())
        return sid

    def feed(self, data: bytes) -> list[h2.events.Event]:
        events = self.conn.receive_data(data)
        self.sock.sendall(self.conn.data_to_send())
        return events

    def until_ended(self, sid: int, events: list[h2.events.Event] | None = None) -> list[object]:
        seen: list[h2.events.Event] = list(events or [])
        while not any(isinstance(e, h2.events.StreamEnded) and e.stream_id == sid for e in seen):
            data = self.sock.recv(65536)
            assert data, "the server closed the connection"
            seen += self.feed(data)
        return [e for e in seen if getattr(e, "stream_id", None) == sid]

    def close(self) -> None:
        self.sock.close()


# -- HTTP/1.1 -------------------------------------------------------------------------------


def test_http1_trailers_follow_a_chunked_body(server: TestServer) -> None:
    raw = http1(server, b"GET /trailers HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200") and b"transfer-encoding: chunked" in head.lower()
    assert b"content-length" not in head.lower()
    assert body.endswith(b"0\r\nx-checksum: abc\r\n\r\n")
    assert b"|tail" in body


def test_http1_0_client_gets_the_body_without_trailers(server: TestServer) -> None:
    raw = http1(server, b"GET /trailers HTTP/1.0\r\nhost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200") and b"x-checksum" not in raw
    assert raw.endswith(b"|tail")


def test_http1_early_hint_is_a_103_before_the_response(server: TestServer) -> None:
    raw = http1(server, b"GET /hint HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 103 Early Hints\r\nlink: " + LINK + b"\r\n\r\nHTTP/1.1 200")
    assert b"http.response.early_hint" in raw and b"http.response.trailers" in raw


def test_http1_0_client_gets_no_103(server: TestServer) -> None:
    raw = http1(server, b"GET /hint HTTP/1.0\r\nhost: x\r\n\r\n")
    assert raw.startswith(b"HTTP/1.1 200")


# -- HTTP/2 ---------------------------------------------------------------------------------


def test_http2_trailers_and_early_hint(server: TestServer) -> None:
    client = H2Client.connect(server)
    try:
        events = client.until_ended(client.get(b"/trailers"))
        trailers = [e for e in events if isinstance(e, h2.events.TrailersReceived)]
        assert trailers and (b"x-checksum", b"abc") in trailers[0].headers
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert body.startswith(b"2 ") and body.endswith(b"|tail")
        events = client.until_ended(client.get(b"/hint"))
        kinds = [type(e) for e in events]
        assert kinds.index(h2.events.InformationalResponseReceived) < kinds.index(
            h2.events.ResponseReceived
        )
        hint = next(e for e in events if isinstance(e, h2.events.InformationalResponseReceived))
        assert (b":status", b"103") in hint.headers and (b"link", LINK) in hint.headers
    finally:
        client.close()


# -- h2c upgrade ------------------------------------------------------------------------------


def _upgrade(ts: TestServer, path: bytes, settings: bytes | None) -> tuple[bytes, socket.socket]:
    head = b"GET %s HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings\r\n" % path
    head += b"upgrade: h2c\r\n"
    if settings is not None:
        head += b"http2-settings: " + settings + b"\r\n"
    sock = socket.create_connection((ts.host, ts.port), timeout=TIMEOUT)
    sock.sendall(head + b"\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, "closed before a response head"
        data += chunk
    return data, sock


def test_h2c_upgrade_serves_the_request_on_stream_1_then_more_streams(server: TestServer) -> None:
    conn = h2.connection.H2Connection(h2.config.H2Configuration(header_encoding=None))
    settings = conn.initiate_upgrade_connection()
    assert settings is not None
    data, sock = _upgrade(server, b"/trailers", settings.rstrip(b"="))
    client = H2Client(sock, conn)
    try:
        head, _, rest = data.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.1 101 ") and b"upgrade: h2c" in head.lower()
        sock.sendall(conn.data_to_send())  # our preface, after the 101 (RFC 7540 §3.5)
        events = client.until_ended(1, client.feed(rest))
        response = next(e for e in events if isinstance(e, h2.events.ResponseReceived))
        assert (b":status", b"200") in response.headers
        body = b"".join(e.data for e in events if isinstance(e, h2.events.DataReceived))
        assert body.startswith(b"2 ") and body.endswith(b"|tail")
        assert any(isinstance(e, h2.events.TrailersReceived) for e in events)
        events = client.until_ended(client.get(b"/plain"))  # the connection goes on: stream 3
        assert any(isinstance(e, h2.events.DataReceived) for e in events)
    finally:
        client.close()


@pytest.mark.parametrize("settings", [None, b"not base64!"], ids=["missing", "invalid"])
def test_h2c_without_valid_http2_settings_stays_http1(
    server: TestServer, settings: bytes | None
) -> None:
    data, sock = _upgrade(server, b"/plain", settings)
    sock.close()
    assert data.startswith(b"HTTP/1.1 200")  # RFC 7540 §3.2.1: MUST NOT upgrade


def test_h2c_request_with_a_body_stays_http1(server: TestServer) -> None:
    head = (
        b"POST /plain HTTP/1.1\r\nhost: x\r\nconnection: Upgrade, HTTP2-Settings, close\r\n"
        b"upgrade: h2c\r\nhttp2-settings: \r\ncontent-length: 2\r\n\r\nhi"
    )
    assert http1(server, head).startswith(b"HTTP/1.1 200")


@pytest.mark.skipif(shutil.which("curl") is None, reason="curl is not installed")
def test_curl_http2_upgrades_a_plain_http_url(server: TestServer) -> None:
    result = subprocess.run(
        ["curl", "-sS", "-i", "--http2", "--max-time", str(TIMEOUT), server.url + "/trailers"],
        capture_output=True,
        timeout=TIMEOUT + 5,
        check=True,
    )
    out = result.stdout
    assert out.startswith(b"HTTP/1.1 101 ") and b"\r\n\r\nHTTP/2 200" in out
    assert b"|tail" in out
