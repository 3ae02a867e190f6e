"""HTTP/3 against a client that is not aioquic: ngtcp2's example client in C.

Debian's ``ngtcp2-client`` package ships ``gtlsclient`` (ngtcp2 and nghttp3,
GnuTLS for the TLS 1.3 handshake): another QUIC stack, another QPACK and
another acknowledgement pattern than aioquic's client, which every other
HTTP/3 test uses. It is an example client: it has no CA option and does not
verify the certificate, so what is tested here is QUIC v1, ALPN ``h3``, the
requests and the bytes. Responses are saved with ``--download DIR`` (one
file per URI, named after the path's last segment, query included) and
compared byte for byte. Every run is bounded by ``TIMEOUT``.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import threading
from pathlib import Path

import pytest

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_http3 import read_body

pytest.importorskip("aioquic")

GTLSCLIENT = shutil.which("gtlsclient")
pytestmark = pytest.mark.skipif(
    GTLSCLIENT is None, reason="needs ngtcp2's example client (apt-get install ngtcp2-client)"
)
TIMEOUT = 10.0  # seconds: one client run
HELLO = b"Hello, world!"
MIB = bytes(range(256)) * 4096  # 1 MiB, a pattern a shifted or dropped chunk would break


class Recorder:
    """The app: ``/hello``, ``/1mib``, and ``POST /echo`` (length and SHA-256 of the body).

    It records each request's client address, protocol version and path, so
    a test can tell how many connections carried them.
    """

    def __init__(self) -> None:
        self.seen: list[tuple[tuple[str, int] | None, str, str]] = []
        self._lock = threading.Lock()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        client = scope["client"]
        with self._lock:
            self.seen.append((client, scope["http_version"], scope["path"]))
        if scope["path"] == "/echo":
            answer = f"{scope['method']} {len(body)} {hashlib.sha256(body).hexdigest()}".encode()
        else:
            answer = MIB if scope["path"] == "/1mib" else HELLO
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": answer})


def served(pki: PKI, app: Recorder) -> Server:
    return (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h3()
        .timeouts(graceful_shutdown=2)
        .asgi(app)
    )


def gtlsclient(port: int, paths: list[str], into: Path, *options: str, quiet: bool = True) -> str:
    """Fetch `paths` over one QUIC connection, saving each response body in `into`; the
    client's log when not `quiet`."""
    assert GTLSCLIENT is not None
    into.mkdir(exist_ok=True)
    uris = [f"https://127.0.0.1:{port}{path}" for path in paths]
    command = [GTLSCLIENT, "--exit-on-all-streams-close", "--download", str(into)]
    command += ["-q"] if quiet else ["--no-quic-dump", "--no-http-dump"]
    run = subprocess.run(
        [*command, *options, "127.0.0.1", str(port), *uris],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    return run.stdout + run.stderr


def test_hello_and_a_mebibyte(pki: PKI, tmp_path: Path) -> None:
    app = Recorder()
    with TestServer(served(pki, app)) as ts:
        gtlsclient(ts.port, ["/hello", "/1mib"], tmp_path)
    assert (tmp_path / "hello").read_bytes() == HELLO
    assert (tmp_path / "1mib").read_bytes() == MIB
    assert sorted(path for _, _, path in app.seen) == ["/1mib", "/hello"]
    assert {version for _, version, _ in app.seen} == {"3"}


def test_many_requests_share_one_connection(pki: PKI, tmp_path: Path) -> None:
    """Twenty requests, three of them 1 MiB, concurrent on one connection."""
    app = Recorder()
    paths = [f"/hello?{n}" for n in range(17)] + [f"/1mib?{n}" for n in range(3)]
    with TestServer(served(pki, app)) as ts:
        gtlsclient(ts.port, paths, tmp_path)
    for n in range(17):
        assert (tmp_path / f"hello?{n}").read_bytes() == HELLO
    for n in range(3):
        assert (tmp_path / f"1mib?{n}").read_bytes() == MIB
    assert len(app.seen) == 20
    assert len({client for client, _, _ in app.seen}) == 1  # one connection, one address


def test_an_upload(pki: PKI, tmp_path: Path) -> None:
    """2 MiB up: past the stream and connection windows (256 KiB, 1 MiB), credited as read."""
    upload = tmp_path / "upload.bin"
    upload.write_bytes(MIB * 2)
    app = Recorder()
    with TestServer(served(pki, app)) as ts:
        gtlsclient(ts.port, ["/echo"], tmp_path / "got", "-m", "POST", "-d", str(upload))
    digest = hashlib.sha256(upload.read_bytes()).hexdigest()
    assert (tmp_path / "got" / "echo").read_bytes() == f"POST {2 << 20} {digest}".encode()


def test_a_client_that_moves_to_another_port(pki: PKI, tmp_path: Path) -> None:
    """Connection migration (RFC 9000 §9): after the handshake the client changes its local
    port and sends its request from there; the server validates the new path and answers
    on it."""
    app = Recorder()
    with TestServer(served(pki, app)) as ts:
        log = gtlsclient(
            ts.port,
            ["/1mib"],
            tmp_path,
            "--change-local-addr=50ms",
            "--delay-stream=300ms",
            quiet=False,
        )
    moved = re.search(r"Local address is now \[127\.0\.0\.1\]:(\d+)", log)
    assert moved is not None, log[-2000:]
    assert "Path validation against path" in log and "succeeded" in log
    assert (tmp_path / "1mib").read_bytes() == MIB
    assert [client for client, _, _ in app.seen] == [("127.0.0.1", int(moved.group(1)))]


def test_a_key_update(pki: PKI, tmp_path: Path) -> None:
    """The client updates its 1-RTT keys (RFC 9001 §6) before it sends its requests; the
    server follows into the next key phase."""
    app = Recorder()
    with TestServer(served(pki, app)) as ts:
        log = gtlsclient(
            ts.port,
            ["/1mib", "/hello"],
            tmp_path,
            "--key-update=50ms",
            "--delay-stream=300ms",
            quiet=False,
        )
    assert (tmp_path / "1mib").read_bytes() == MIB
    assert (tmp_path / "hello").read_bytes() == HELLO
    # the server's packets came back in the next key phase, and the client saw it
    assert re.search(r"pkt rx .*type=1RTT k=1", log), log[-2000:]
    assert "key update confirmed" in log
