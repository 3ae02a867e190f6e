"""HTTP/3 over real UDP sockets: aioquic's client against the h3 core, its driver and the
shared exchange.

The client is aioquic's own (`tests/integration/h3client.py`); the
amplification test speaks single datagrams. Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import socket
import ssl
import sys
import threading
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme
from aioquic.quic.connection import QuicConnection

from pounce import Server, ServerBuilder
from pounce.asgi.types import Message, Receive, Scope, Send
from pounce.errors import BuildError
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.h3client import client_configuration, h3_connect
from tests.integration.test_asgi_http import logged

pytest.importorskip("aioquic")

TIMEOUT = 10.0  # seconds: the bound on every network wait here
H3_REQUEST_CANCELLED = 0x10C
H3_MESSAGE_ERROR = 0x10E
H3_EXCESSIVE_LOAD = 0x107
H3_REQUEST_REJECTED = 0x10B
H3_NO_ERROR = 0x100


def builder(pki: PKI, **h3: Any) -> ServerBuilder:
    return (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .h3(**h3)
        .timeouts(graceful_shutdown=5)
    )


async def read_body(receive: Receive) -> bytes:
    body = b""
    while True:
        message = await receive()
        body += message.get("body", b"")
        if not message.get("more_body"):
            return body


async def echo(scope: Scope, receive: Receive, send: Send) -> None:
    """The protocol, the TLS extension's suite and a digest of the request body."""
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    tls = scope["extensions"].get("tls", {})
    text = f"{scope['http_version']} {tls.get('cipher_suite')} {len(body)} "
    text += hashlib.sha256(body).hexdigest()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": text.encode()})


def https_client(pki: PKI, **options: Any) -> httpx.Client:
    verify = ssl.create_default_context(cafile=str(pki.ca))
    return httpx.Client(verify=verify, timeout=TIMEOUT, **options)


def run(scenario: Callable[[], Awaitable[None]]) -> None:
    async def bounded() -> None:
        async with asyncio.timeout(TIMEOUT):
            await scenario()

    asyncio.run(bounded())


@pytest.fixture
def served(pki: PKI) -> Iterator[TestServer]:
    with TestServer(builder(pki).asgi(echo)) as server:
        yield server


# -- requests and bodies --------------------------------------------------------------------------


def test_request_and_body_through_the_shared_exchange(served: TestServer, pki: PKI) -> None:
    body = bytes(range(256)) * 4096  # 1 MiB: more than the stream and connection windows

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", served.port, str(pki.ca)) as client:
            reply = await client.request("POST", "/upload", body=body)
            assert reply.status == 200
            version, suite, size, digest = reply.body.decode().split()
            assert (version, int(size)) == ("3", len(body))
            assert digest == hashlib.sha256(body).hexdigest()
            assert int(suite) in (0x1301, 0x1302, 0x1303)  # TLS 1.3 suites, via the tls extension
            assert reply.headers[b"server"] == b"pounce"
            assert b"connection" not in reply.headers  # connection-specific: never in HTTP/3
            again = await client.request("GET", "/")
            assert again.body.startswith(b"3 ")

    run(scenario)


def test_streamed_response_larger_than_the_send_buffer(pki: PKI) -> None:
    chunk = b"x" * 65536

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "headers": []})
        for _ in range(16):  # 1 MiB: each send waits while the client has not acknowledged
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    async def scenario() -> None:
        # A client window of 64 KiB: the response must wait for it, send by send.
        small = {"max_stream_data": 65536, "max_data": 65536}
        async with h3_connect("127.0.0.1", server.port, str(pki.ca), **small) as client:
            reply = await client.request("GET", "/big")
            assert reply.status == 200 and reply.body == chunk * 16

    with TestServer(builder(pki).asgi(app)) as server:
        run(scenario)


def test_request_body_window_opens_only_as_the_app_reads(pki: PKI) -> None:
    """The client may send one stream window ahead of the app, no more (as HTTP/2)."""
    window = 64 * 1024
    release = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        body = await read_body(receive)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"%d" % len(body)})

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = client.open("POST", "/", end=False)
            client.send_body(reply.stream_id, b"y" * (4 * window), end=True)
            for _ in range(5):  # round trips: any raised limit would have arrived
                await client.ping()
            stream = client._quic._streams[reply.stream_id]
            assert stream.max_stream_data_remote == window
            assert stream.sender.highest_offset <= window
            release.set()
            await reply.done.wait()
            assert reply.body == b"%d" % (4 * window)

    with TestServer(builder(pki, stream_window=window).asgi(app)) as server:
        run(scenario)


# -- trailers, resets, bad input ------------------------------------------------------------------


def test_trailers_both_ways(pki: PKI) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        start: Message = {"type": "http.response.start", "status": 200, "trailers": True}
        await send({**start, "headers": [(b"trailer", b"x-digest")]})
        await send({"type": "http.response.body", "body": body})
        digest = hashlib.sha256(body).hexdigest().encode()
        await send({"type": "http.response.trailers", "headers": [(b"x-digest", digest)]})

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = client.open("POST", "/", [(b"te", b"trailers")], end=False)
            client.send_body(reply.stream_id, b"hello")
            client.send_trailers(reply.stream_id, [(b"x-client", b"done")])
            await reply.done.wait()
            assert reply.status == 200 and reply.body == b"hello"
            assert reply.trailers == [(b"x-digest", hashlib.sha256(b"hello").hexdigest().encode())]

    with TestServer(builder(pki).asgi(app)) as server:
        run(scenario)


def test_a_reset_stream_reaches_the_app_as_disconnect(pki: PKI) -> None:
    seen: list[str] = []
    done = threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await echo(scope, receive, send)
            return
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                seen.append("disconnect")
                done.set()
                return

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = client.open("POST", "/", end=False)
            client.send_body(reply.stream_id, b"partial")
            await client.ping()
            client.reset(reply.stream_id, H3_REQUEST_CANCELLED)
            await asyncio.get_running_loop().run_in_executor(None, done.wait, TIMEOUT)
            assert seen == ["disconnect"]
            ok = await client.request("GET", "/")  # the connection goes on
            assert ok.status == 200

    with TestServer(builder(pki).asgi(app)) as server:
        run(scenario)


def test_malformed_request_is_a_stream_error_and_the_connection_goes_on(
    served: TestServer, pki: PKI
) -> None:
    async def scenario() -> None:
        async with h3_connect("127.0.0.1", served.port, str(pki.ca)) as client:
            bad = client.open(
                raw=[
                    (b":method", b"GET"),
                    (b":scheme", b"https"),
                    (b":authority", b"localhost"),
                    (b":path", b"/"),
                    (b"Upper-Case", b"no"),  # RFC 9114 §4.2: names are lower case
                ],
                unchecked=True,
            )
            await bad.done.wait()
            assert bad.reset == H3_MESSAGE_ERROR and not bad.heads
            good = await client.request("GET", "/")
            assert good.status == 200 and client.terminated is None

    run(scenario)


def test_oversized_request_head_is_answered_431(pki: PKI) -> None:
    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = await client.request("GET", "/", [(b"x-big", b"v" * 2000)])
            assert reply.status == 431
            assert (await client.request("GET", "/")).status == 200

    with TestServer(builder(pki, max_header_list_size=1024).asgi(echo)) as server:
        run(scenario)


def test_request_body_limit_is_413_on_the_stream(pki: PKI) -> None:
    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = await client.request("POST", "/", body=b"z" * 5000)
            assert reply.status == 413
            assert (await client.request("GET", "/")).status == 200

    with TestServer(builder(pki).limit_request_body(1000).asgi(echo)) as server:
        run(scenario)


def test_rapid_reset_flood_closes_the_connection_excessive_load(pki: PKI) -> None:
    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            for _ in range(20):
                reply = client.open("POST", "/", end=False)
                client.reset(reply.stream_id)
            await asyncio.wait_for(client.closed_event.wait(), TIMEOUT)
            assert client.terminated is not None
            assert client.terminated.error_code == H3_EXCESSIVE_LOAD

    slow = builder(pki, max_resets=5)
    with logged("pounce.error") as log, TestServer(slow.asgi(echo)) as server:
        run(scenario)
        line = log.wait_for(lambda r: "Rapid Reset" in r.getMessage()).getMessage()
    assert line.startswith("HTTP/3 connection from 127.0.0.1:")


def test_a_connection_error_is_one_log_line_and_a_close(served: TestServer, pki: PKI) -> None:
    """Closing the control stream is a connection error (RFC 9114 §6.2.1)."""

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", served.port, str(pki.ca)) as client:
            assert (await client.request("GET", "/")).status == 200
            control = client.h3._local_control_stream_id
            client._quic.send_stream_data(control, b"", end_stream=True)
            client.transmit()
            await client.closed_event.wait()
            assert client.terminated is not None
            assert client.terminated.error_code == 0x104  # H3_CLOSED_CRITICAL_STREAM

    with logged("pounce.error") as log:
        run(scenario)
        line = log.wait_for(lambda r: "HTTP/3 connection error" in r.getMessage()).getMessage()
    assert "0x104" in line


# -- shutdown -------------------------------------------------------------------------------------


def test_shutdown_sends_goaway_and_drains_the_request_in_flight(pki: PKI) -> None:
    started, release = threading.Event(), threading.Event()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        started.set()
        await asyncio.get_running_loop().run_in_executor(None, release.wait, TIMEOUT)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"finished"})

    server = TestServer(builder(pki).asgi(app)).start()

    async def scenario() -> None:
        loop = asyncio.get_running_loop()
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            reply = client.open("GET", "/slow")
            await loop.run_in_executor(None, started.wait, TIMEOUT)
            server.request_stop()
            while not client.goaways:
                await client.ping()
            assert client.goaways == [reply.stream_id + 4]  # the first stream not served
            late = client.open("GET", "/late")
            await late.done.wait()
            assert late.reset == H3_REQUEST_REJECTED  # RFC 9114 §5.2
            release.set()
            await reply.done.wait()
            assert reply.status == 200 and reply.body == b"finished"
            await client.closed_event.wait()
            assert client.terminated is not None and client.terminated.error_code == H3_NO_ERROR

    try:
        run(scenario)
    finally:
        release.set()
        server.stop()


# -- Alt-Svc and the certificate ------------------------------------------------------------------


@pytest.mark.parametrize("http2", [False, True])
def test_tls_listeners_advertise_h3_with_alt_svc(served: TestServer, pki: PKI, http2: bool) -> None:
    with https_client(pki, http2=http2) as client:
        response = client.get(f"https://127.0.0.1:{served.port}/")
    assert response.http_version == ("HTTP/2" if http2 else "HTTP/1.1")
    assert response.headers["alt-svc"] == f'h3=":{served.port}"; ma=86400'


def test_alt_svc_can_be_turned_off(pki: PKI) -> None:
    with TestServer(builder(pki, alt_svc=False).asgi(echo)) as server, https_client(pki) as client:
        response = client.get(f"https://127.0.0.1:{server.port}/")
    assert "alt-svc" not in response.headers


def test_certificate_reload_reaches_new_quic_connections(pki: PKI, tmp_path: Any) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.write_bytes(pki.cert.read_bytes())
    key.write_bytes(pki.key.read_bytes())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        pem = scope["extensions"]["tls"]["server_cert"]
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": pem.encode()})

    built = (
        Server.builder().bind("127.0.0.1", 0).tls(cert=str(cert), key=str(key)).h1().h3().asgi(app)
    )

    async def fetch() -> bytes:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            return (await client.request("GET", "/")).body

    with TestServer(built) as server:
        bodies: list[bytes] = []

        async def scenario() -> None:
            bodies.append(await fetch())

        run(scenario)
        cert.write_bytes(pki.second_cert.read_bytes())
        key.write_bytes(pki.second_key.read_bytes())
        built.reload_tls()
        run(scenario)
    assert bodies[0] != bodies[1]
    assert bodies[1].decode().strip() in pki.second_cert.read_text()


# -- the amplification limit ----------------------------------------------------------------------


def test_a_lone_initial_gets_at_most_three_times_its_size_back(tmp_path: Path) -> None:
    """RFC 9000 §8.1: before the client's address is validated, 3× what it sent.

    One Initial from a socket that then never answers (a spoofed source): the
    server's handshake flight and all its retransmissions together stay
    within three times the datagram. The certificate names 150 hosts, so the
    flight alone (about 7 KB) is over that budget and the limit must bite.
    """
    ca = trustme.CA()
    issued = ca.issue_cert("localhost", *(f"host-{i}.example.org" for i in range(150)))
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    assert len(cert.read_bytes()) > 3 * 1200 * 4 // 3  # PEM is 4/3 of the DER sent

    client = QuicConnection(configuration=client_configuration(str(ca_file)))
    client.connect(("127.0.0.1", 0), now=0.0)
    datagrams = client.datagrams_to_send(now=0.0)
    initial = datagrams[0][0]
    assert len(datagrams) == 1 and len(initial) >= 1200

    built = Server.builder().bind("127.0.0.1", 0).tls(cert=str(cert), key=str(key)).h1().h3()
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with TestServer(built.asgi(echo)) as server, udp:
        udp.settimeout(2.0)  # PTO retransmissions come within this
        udp.sendto(initial, ("127.0.0.1", server.port))
        received = 0
        try:
            while True:
                received += len(udp.recv(65536))
        except TimeoutError:
            pass
    assert 0 < received <= 3 * len(initial)


# -- the builder ----------------------------------------------------------------------------------


def test_h3_without_tls_is_a_build_error() -> None:
    with pytest.raises(BuildError, match=r"\.h3\(\): HTTP/3 needs \.tls\(\)"):
        Server.builder().bind("127.0.0.1", 0).h1().h3().asgi(echo)


def test_h3_with_client_certificates_is_a_build_error(pki: PKI) -> None:
    tls = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key), client_certs="required", ca=str(pki.ca))
    )
    with pytest.raises(BuildError, match="client certificates"):
        tls.h1().h3().asgi(echo)


def test_h3_bind_elsewhere(pki: PKI) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    built = builder(pki, bind=f"127.0.0.1:{port}").asgi(echo)
    assert f"udp 127.0.0.1:{port}" in built.describe()

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", port, str(pki.ca)) as client:
            assert (await client.request("GET", "/")).status == 200

    with TestServer(built) as server:
        run(scenario)
        with https_client(pki) as http:
            response = http.get(f"https://127.0.0.1:{server.port}/")
        assert response.headers["alt-svc"] == f'h3=":{port}"; ma=86400'


# -- WebSocket over HTTP/3 (RFC 9220) -----------------------------------------------------------


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] == "websocket":
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send(
                {"type": "websocket.send", "text": f"{scope['http_version']}: {message['text']}"}
            )
    elif scope["type"] == "http":
        await echo(scope, receive, send)


def test_websocket_over_http3_extended_connect(pki: PKI) -> None:
    from wsproto.frame_protocol import CloseReason, FrameProtocol, Opcode

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            stream = client.open(
                raw=[
                    (b":method", b"CONNECT"),
                    (b":protocol", b"websocket"),
                    (b":scheme", b"https"),
                    (b":authority", b"localhost"),
                    (b":path", b"/ws"),
                    (b"sec-websocket-version", b"13"),
                ],
                end=False,
            )
            while not stream.heads:
                await client.ping()
            assert stream.status == 200
            frames = FrameProtocol(client=True, extensions=[])
            client.send_body(stream.stream_id, bytes(frames.send_data("hello")))
            while not stream.body:
                await client.ping()
            frames.receive_bytes(stream.body)
            (frame,) = list(frames.received_frames())
            assert frame.opcode is Opcode.TEXT and frame.payload == "3: hello"
            close = bytes(frames.close(CloseReason.NORMAL_CLOSURE))
            client.send_body(stream.stream_id, close, end=True)
            await stream.done.wait()
            unknown = client.open(
                raw=[
                    (b":method", b"CONNECT"),
                    (b":protocol", b"not-a-protocol"),
                    (b":scheme", b"https"),
                    (b":authority", b"localhost"),
                    (b":path", b"/ws"),
                ],
                end=False,
            )
            await unknown.done.wait()
            assert unknown.status == 501

    built = builder(pki).websocket().asgi(ws_echo)
    with TestServer(built) as server:
        run(scenario)


# -- the exchange's answers, over HTTP/3 ---------------------------------------------------------


def test_app_failures_early_hints_and_a_lying_content_length(pki: PKI) -> None:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        if scope["path"] == "/fail":
            raise RuntimeError("boom")
        if scope["path"] == "/hints":
            link = [(b"link", b"</style.css>; rel=preload")]
            await send(
                {"type": "http.response.early_hint", "links": [b"</style.css>; rel=preload"]}
            )
            await send({"type": "http.response.start", "status": 200, "headers": link})
            await send({"type": "http.response.body", "body": b"page"})
            return
        headers = [(b"content-length", b"3")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"1234567"})

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            failed = await client.request("GET", "/fail")
            assert failed.status == 500
            hinted = await client.request("GET", "/hints")
            assert [int(dict(h)[b":status"]) for h in hinted.heads] == [103, 200]
            assert hinted.body == b"page"
            lying = await client.request("GET", "/lie")
            assert lying.reset is not None or lying.status == 500  # never 7 bytes as 3
            assert b"1234567" not in lying.body
            assert (await client.request("GET", "/fail")).status == 500  # the connection goes on

    with TestServer(builder(pki).asgi(app)) as server:
        run(scenario)


def test_the_cli_and_run_options_turn_it_on(pki: PKI) -> None:
    from pounce.presets import StandardOptions, standard

    options = StandardOptions(
        ssl_certfile=str(pki.cert),
        ssl_keyfile=str(pki.key),
        http3=True,
        http3_bind="127.0.0.1:0",
        http3_max_concurrent_streams=7,
        http3_alt_svc=False,
    )
    described = standard(options).asgi(echo).describe()
    assert "protocol h3 (udp 127.0.0.1:0, max streams 7," in described
    assert "Alt-Svc" not in described
    with pytest.raises(BuildError, match=r"needs \.tls\(\)"):
        standard(StandardOptions(http3=True)).asgi(echo)


# -- Retry and version negotiation ---------------------------------------------------------------


def first_initial(ca: str, version: int | None = None) -> bytes:
    options = {} if version is None else {"supported_versions": [version]}
    client = QuicConnection(configuration=client_configuration(ca, **options))
    client.connect(("127.0.0.1", 0), now=0.0)
    return client.datagrams_to_send(now=0.0)[0][0]


def exchange_one(port: int, datagram: bytes) -> list[bytes]:
    """Send one datagram from a fresh socket; what comes back within a second."""
    replies: list[bytes] = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        udp.settimeout(1.0)
        udp.sendto(datagram, ("127.0.0.1", port))
        try:
            while True:
                replies.append(udp.recv(65536))
        except TimeoutError:
            pass
    return replies


def test_many_pending_handshakes_make_new_clients_prove_their_address(
    pki: PKI, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Above the handshake threshold (here 0) a lone Initial gets only a stateless Retry,
    and a real client that echoes the token is served."""
    import pounce.drivers.http3_endpoint

    monkeypatch.setattr(pounce.drivers.http3_endpoint, "RETRY_ABOVE_HANDSHAKES", 0)

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            assert (await client.request("GET", "/")).status == 200

    with TestServer(builder(pki).asgi(echo)) as server:
        replies = exchange_one(server.port, first_initial(str(pki.ca)))
        assert len(replies) == 1 and replies[0][0] & 0xF0 == 0xF0  # long header, type Retry
        run(scenario)


def test_an_unknown_version_gets_version_negotiation(served: TestServer, pki: PKI) -> None:
    initial = first_initial(str(pki.ca), version=0x1A2A3A4A)  # a reserved, greasing version
    replies = exchange_one(served.port, initial)
    assert len(replies) == 1 and replies[0][1:5] == b"\0\0\0\0"  # RFC 9000 §17.2.1
    padded = replies[0].ljust(1200, b"\0")  # past the size check: the version decides
    assert exchange_one(served.port, padded) == []  # a VN is never answered (no loop)


def test_a_connection_without_requests_closes_after_the_keep_alive_timeout(pki: PKI) -> None:
    """As HTTP/2's: GOAWAY, then CONNECTION_CLOSE H3_NO_ERROR (PINGs do not keep it)."""

    async def scenario() -> None:
        async with h3_connect("127.0.0.1", server.port, str(pki.ca)) as client:
            assert (await client.request("GET", "/")).status == 200
            while client.terminated is None:
                await asyncio.sleep(0.1)
                with contextlib.suppress(ConnectionError):
                    await client.ping()  # liveness is not a request
            assert client.goaways == [4]
            assert client.terminated.error_code == H3_NO_ERROR

    with TestServer(builder(pki).timeouts(keep_alive=0.5).asgi(echo)) as server:
        run(scenario)


def test_without_aioquic_h3_is_a_build_error_naming_the_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    kept = ("pounce.drivers.http3_options", "pounce.protocols.h3_settings")
    for name in list(sys.modules):
        ours = name.startswith(("aioquic", "pounce.drivers.http3", "pounce.protocols.h3"))
        if ours and name not in kept:
            monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "aioquic", None)  # import aioquic → ImportError
    with pytest.raises(BuildError, match=r"pip install 'pounce\[h3\]'"):
        Server.builder().bind("127.0.0.1", 0).h3()
