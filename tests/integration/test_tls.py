"""TLS over real sockets: httpx, curl, openssl s_client; mTLS; bad handshakes; reloads."""

from __future__ import annotations

import logging
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from pounce import BuildError, ProtocolFactory, Server, TLSError
from pounce.builder import ServerBuilder
from pounce.conn import Conn, ConnectionHandler
from pounce.drivers.service import ServiceContext
from pounce.layers.tls.layer import TLSLayer
from pounce.testing import TestServer
from tests.integration.conftest import PASSWORD, PKI, need
from tests.integration.edge_apps import app

TIMEOUT = 10.0  # seconds, for every network wait


def builder(pki: PKI, **tls: Any) -> ServerBuilder:
    options: dict[str, Any] = {"cert": str(pki.cert), "key": str(pki.key), **tls}
    return Server.builder().bind("127.0.0.1", 0).tls(**options)


@contextmanager
def serving(server: Server, loop: Any = "asyncio") -> Iterator[TestServer]:
    with TestServer(server, loop=loop) as ts:
        yield ts


def client_context(pki: PKI, cert: Path | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.ca))
    if cert is not None:
        context.load_cert_chain(str(cert))
    return context


def get(ts: TestServer, pki: PKI, cert: Path | None = None) -> dict[str, Any]:
    response = httpx.get(ts.url + "/", verify=client_context(pki, cert), timeout=TIMEOUT)
    assert response.status_code == 200
    result: dict[str, Any] = response.json()
    return result


def read_until_closed(sock: socket.socket) -> bytes:
    sock.settimeout(TIMEOUT)
    data = b""
    while chunk := sock.recv(4096):
        data += chunk
    return data


# -- build time ------------------------------------------------------------------------


def test_build_errors_name_the_file(pki: PKI, tmp_path: Path) -> None:
    b = Server.builder().bind("127.0.0.1", 0)
    missing = str(tmp_path / "nope.pem")
    with pytest.raises(BuildError, match=r"certificate file .*nope.pem.* not found"):
        b.tls(cert=missing, key=str(pki.key))
    with pytest.raises(BuildError, match=r"key file .*nope.pem.* not found"):
        b.tls(cert=str(pki.cert), key=missing)
    with pytest.raises(BuildError, match=r"CA file .*nope.pem.* not found"):
        b.tls(cert=str(pki.cert), key=str(pki.key), ca=missing)
    with pytest.raises(BuildError, match=r"key file .*other.key.* does not match .*server.pem"):
        b.tls(cert=str(pki.cert), key=str(pki.other_key))
    with pytest.raises(BuildError, match=r"wrong password for key file .*server-encrypted.key"):
        b.tls(cert=str(pki.cert), key=str(pki.encrypted_key), password="wrong")
    with pytest.raises(BuildError, match=r"server-encrypted.key.* is encrypted"):
        b.tls(cert=str(pki.cert), key=str(pki.encrypted_key))
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    with pytest.raises(BuildError, match=r"garbage.pem.* holds no PEM certificate"):
        b.tls(cert=str(garbage), key=str(pki.key))
    with pytest.raises(BuildError, match=r"cannot load CA file .*garbage.pem"):
        b.tls(cert=str(pki.cert), key=str(pki.key), ca=str(garbage))


def test_build_accepts_good_variants(pki: PKI) -> None:
    b = Server.builder().bind("127.0.0.1", 0)
    b.tls(cert=str(pki.combined))  # key inside the certificate file
    b.tls(cert=str(pki.cert), key=str(pki.encrypted_key), password=PASSWORD)
    b.tls(cert=str(pki.cert), key=str(pki.key), client_certs=2, ca=str(pki.ca), min_version="1.3")
    b.tls(cert=str(pki.cert), key=str(pki.key), client_certs="optional")  # truststore
    b.tls(cert=str(pki.cert), key=str(pki.key), min_version="17", ciphers="ECDHE+AESGCM")


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ciphers": "NOPE-NOTHING"}, "ciphers"),
        ({"min_version": "1.1"}, "min_version"),
        ({"client_certs": "maybe"}, "client_certs"),
        ({"handshake_timeout": 0}, "handshake_timeout"),
        ({"cert": ""}, "cert= is required"),
    ],
)
def test_bad_options(pki: PKI, options: dict[str, Any], match: str) -> None:
    with pytest.raises(BuildError, match=match):
        builder(pki, **options)


def test_tls_must_be_next_to_the_wire(pki: PKI) -> None:
    from pounce.layers.proxy.protocol import ProxyProtocolLayer

    b = Server.builder().bind("127.0.0.1", 0).h1()
    tls = builder(pki).h1().asgi(app).spec.stream_layers[0]
    with pytest.raises(BuildError, match="must be the first layer"):
        b.layer(ProxyProtocolLayer()).layer(ProxyProtocolLayer()).asgi(app)
    with pytest.raises(BuildError, match="must come before every other layer"):
        b.health().tls(cert=str(pki.cert), key=str(pki.key))
    with pytest.raises(BuildError, match="called twice"):
        builder(pki).tls(cert=str(pki.cert), key=str(pki.key))
    with pytest.raises(BuildError, match="TLS layer must be first"):
        b.health().layer(tls).asgi(app)
    b.proxy_protocol().tls(cert=str(pki.cert), key=str(pki.key)).asgi(app)  # the one good order


class Greeter(ProtocolFactory):
    """A protocol reached only through its ALPN id (the bridge picks by ALPN)."""

    name = "greeter"

    def __init__(self, alpn: str) -> None:
        self.alpn_ids = (alpn,)

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        return _Greeting()


class _Greeting:
    def connection_made(self, conn: Conn) -> None:
        conn.write(f"hello over {conn.info.alpn} {conn.info.tls_version}\n".encode())
        conn.close()

    def data_received(self, data: bytes) -> None: ...
    def eof_received(self) -> None: ...
    def connection_lost(self, exc: Exception | None) -> None: ...
    def begin_shutdown(self) -> None: ...


def test_alpn_offers_every_protocol_h2_first(pki: PKI) -> None:
    server = builder(pki).h1().protocol(Greeter("h2")).asgi(app)
    layer = server.spec.stream_layers[0]
    assert isinstance(layer, TLSLayer)
    assert layer.alpn == ("h2", "http/1.1")
    assert server.describe().splitlines()[1] == (
        f"stream   tls {pki.cert} (TLS 1.2+; alpn h2,http/1.1; client certs none; handshake 10 s)"
    )
    assert server.uses_tls


# -- real clients ------------------------------------------------------------------------


def test_httpx_sees_https_and_the_tls_extension(pki: PKI, loop_name: str) -> None:
    with serving(builder(pki).h1().asgi(app), loop_name) as ts:
        assert ts.url.startswith("https://127.0.0.1:")
        body = get(ts, pki)
    assert body["scheme"] == "https"
    tls = body["tls"]
    assert tls["tls_version"] in (0x0303, 0x0304)
    assert isinstance(tls["cipher_suite"], int)
    assert tls["server_cert"] == pki.cert.read_text().split("-----END CERTIFICATE-----")[0] + (
        "-----END CERTIFICATE-----\n"
    )
    assert tls["client_cert_chain"] == [] and tls["client_cert_name"] is None


def test_curl_with_cacert(pki: PKI) -> None:
    curl = need("curl")
    with serving(builder(pki).h1().asgi(app)) as ts:
        out = subprocess.run(
            [curl, "-sS", "--http1.1", "--cacert", str(pki.ca), "--max-time", "10", ts.url + "/c"],
            capture_output=True,
            text=True,
            timeout=30,
            check=True,
        ).stdout
    assert '"scheme": "https"' in out and '"path": "/c"' in out


def s_client(port: int, pki: PKI, alpn: str, *extra: str) -> str:
    openssl = need("openssl")
    proc = subprocess.run(
        [openssl, "s_client", "-connect", f"127.0.0.1:{port}", "-CAfile", str(pki.ca),
         "-alpn", alpn, "-servername", "localhost", *extra],
        input="", capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    return proc.stdout + proc.stderr


def test_openssl_negotiates_alpn(pki: PKI) -> None:
    with serving(builder(pki).h1().protocol(Greeter("pounce-test/1")).asgi(app)) as ts:
        out = s_client(ts.port, pki, "h2,http/1.1")
        assert "ALPN protocol: http/1.1" in out
        assert "Verify return code: 0 (ok)" in out
        out = s_client(ts.port, pki, "pounce-test/1", "-ign_eof")
        assert "ALPN protocol: pounce-test/1" in out
        assert "hello over pounce-test/1 TLSv1." in out  # the bridge picked by ALPN


def test_min_version_13_refuses_12(pki: PKI) -> None:
    with serving(builder(pki, min_version="1.3").h1().asgi(app)) as ts:
        out = s_client(ts.port, pki, "http/1.1", "-tls1_2")
        assert "ALPN protocol" not in out
        assert get(ts, pki)["tls"]["tls_version"] == 0x0304


# -- mTLS ----------------------------------------------------------------------------------


def test_mtls_required(pki: PKI, loop_name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="pounce.error")
    server = builder(pki, client_certs="required", ca=str(pki.ca)).h1().asgi(app)
    with serving(server, loop_name) as ts:
        body = get(ts, pki, cert=pki.client)
        assert body["tls"]["client_cert_name"].startswith("CN=alice,O")
        assert body["tls"]["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
        for cert in (None, pki.stranger):  # no certificate; one from an unknown CA
            with pytest.raises(httpx.HTTPError):
                get(ts, pki, cert=cert)
        assert get(ts, pki, cert=pki.client)["scheme"] == "https"  # still serving
    failures = [r for r in caplog.records if "TLS handshake with 127.0.0.1" in r.getMessage()]
    assert len(failures) == 2 and all(r.levelno == logging.DEBUG for r in failures)


def test_mtls_optional(pki: PKI) -> None:
    server = builder(pki, client_certs="optional", ca=str(pki.ca)).h1().asgi(app)
    with serving(server) as ts:
        assert get(ts, pki)["tls"]["client_cert_chain"] == []
        assert get(ts, pki, cert=pki.client)["tls"]["client_cert_name"].startswith("CN=alice")


# -- bad input, each followed by a good request ----------------------------------------------


def test_plain_http_to_the_tls_port(
    pki: PKI, loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pounce.error")
    with serving(builder(pki).h1().asgi(app), loop_name) as ts:
        with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            assert b"HTTP/1.1" not in read_until_closed(sock)
        assert get(ts, pki)["scheme"] == "https"
    assert any("HTTP_REQUEST" in r.getMessage() for r in caplog.records)


def test_unknown_ca_client_side(pki: PKI) -> None:
    with serving(builder(pki).h1().asgi(app)) as ts:
        stranger = ssl.create_default_context(cafile=str(pki.stranger_ca))
        with pytest.raises(httpx.ConnectError):
            httpx.get(ts.url + "/", verify=stranger, timeout=TIMEOUT)
        assert get(ts, pki)["scheme"] == "https"


@pytest.mark.parametrize("sent", [b"", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"])
def test_stalled_handshake_times_out(
    pki: PKI, sent: bytes, loop_name: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="pounce.error")
    with serving(builder(pki, handshake_timeout=0.3).h1().asgi(app), loop_name) as ts:
        with socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(sent)  # nothing, or the start of a ClientHello
            assert read_until_closed(sock) == b""
        assert get(ts, pki)["scheme"] == "https"
    assert any("no handshake within 0.3 s" in r.getMessage() for r in caplog.records)


# -- reload --------------------------------------------------------------------------------


def peer_common_name(ts: TestServer, pki: PKI) -> str:
    context = ssl.create_default_context(cafile=str(pki.ca))
    with (
        socket.create_connection((ts.host, ts.port), timeout=TIMEOUT) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        cert = tls.getpeercert()
    assert cert
    names = dict(pair for rdn in cert["subject"] for pair in rdn)
    return str(names.get("commonName", ""))


def test_reload_reaches_every_serve_of_one_server(pki: PKI, tmp_path: Path) -> None:
    """The layer is immutable; each serve (worker) holds its own live context, and
    reload_tls() swaps them all."""
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    served = Server.builder().bind("127.0.0.1", 0).tls(cert=str(cert), key=str(key)).h1().asgi(app)
    layer = served.spec.stream_layers[0]
    with pytest.raises(AttributeError):
        layer.config = layer.config  # type: ignore[misc]  # frozen
    with serving(served) as one, serving(served) as two:
        assert peer_common_name(one, pki) == peer_common_name(two, pki) != "second"
        shutil.copy(pki.second_cert, cert)
        shutil.copy(pki.second_key, key)
        served.reload_tls()
        assert peer_common_name(one, pki) == peer_common_name(two, pki) == "second"


def test_reload_swaps_the_certificate_for_new_connections(pki: PKI, tmp_path: Path) -> None:
    cert, key = tmp_path / "live.pem", tmp_path / "live.key"
    shutil.copy(pki.cert, cert)
    shutil.copy(pki.key, key)
    server = Server.builder().bind("127.0.0.1", 0).tls(cert=str(cert), key=str(key)).h1()
    served = server.asgi(app)
    with serving(served) as ts, httpx.Client(verify=client_context(pki), timeout=TIMEOUT) as kept:
        assert kept.get(ts.url + "/").status_code == 200
        first = peer_common_name(ts, pki)
        shutil.copy(pki.second_cert, cert)
        shutil.copy(pki.second_key, key)
        served.reload_tls()
        assert peer_common_name(ts, pki) == "second" != first
        assert kept.get(ts.url + "/").status_code == 200  # the open connection carries on
        key.write_text("broken\n")
        with pytest.raises(TLSError, match="keeping the old one"):
            served.reload_tls()
        assert peer_common_name(ts, pki) == "second"
