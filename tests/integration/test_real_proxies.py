"""Pounce behind a real HAProxy (PROXY v1/v2, plain and TLS passthrough) and a real nginx.

Both are started here on 127.0.0.1 with configs written to tmp_path — the
same snippets docs/proxies.md shows. The tests skip only when the binary is
missing; .ci/run installs both.
"""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import Any

import pytest

from pounce import Server
from pounce.testing import TestServer
from tests.integration.conftest import PKI, need
from tests.integration.edge_apps import app
from tests.integration.edge_clients import TIMEOUT, json_body, read_until_closed

REQUEST = b"GET /where HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_listening(port: int, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + TIMEOUT
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"proxy exited ({proc.returncode}): {log.read_text(errors='replace')}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.05)
    pytest.fail(f"proxy not listening on {port}: {log.read_text(errors='replace')}")


@contextmanager
def run_proxy(cmd: list[str], ports: list[int], log: Path) -> Iterator[None]:
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        for port in ports:
            wait_listening(port, proc, log)
        yield
    finally:
        proc.terminate()
        try:
            proc.wait(TIMEOUT)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(TIMEOUT)


# -- HAProxy ---------------------------------------------------------------------------------

HAPROXY_CFG = """\
global
    maxconn 64

defaults
    mode tcp
    timeout connect 5s
    timeout client 30s
    timeout server 30s

# Plain TCP, PROXY v1 / v2 in front of Pounce's --proxy-protocol port
listen plain_v1
    bind 127.0.0.1:{plain_v1}
    server pounce 127.0.0.1:{pounce_plain} send-proxy

listen plain_v2
    bind 127.0.0.1:{plain_v2}
    server pounce 127.0.0.1:{pounce_plain} send-proxy-v2

# TLS passthrough: HAProxy does not decrypt; Pounce terminates TLS after the header
listen tls_v1
    bind 127.0.0.1:{tls_v1}
    server pounce 127.0.0.1:{pounce_tls} send-proxy

listen tls_v2
    bind 127.0.0.1:{tls_v2}
    server pounce 127.0.0.1:{pounce_tls} send-proxy-v2
"""


@pytest.fixture
def haproxy(pki: PKI, tmp_path: Path) -> Iterator[dict[str, int]]:
    binary = need("haproxy")
    with ExitStack() as stack:
        plain = Server.builder().bind("127.0.0.1", 0).proxy_protocol(trusted=["127.0.0.1"])
        tls = plain.tls(cert=str(pki.cert), key=str(pki.key))
        pounce_plain = stack.enter_context(TestServer(plain.h1().asgi(app)))
        pounce_tls = stack.enter_context(TestServer(tls.h1().asgi(app)))
        ports = {name: free_port() for name in ("plain_v1", "plain_v2", "tls_v1", "tls_v2")}
        config = tmp_path / "haproxy.cfg"
        config.write_text(
            HAPROXY_CFG.format(pounce_plain=pounce_plain.port, pounce_tls=pounce_tls.port, **ports)
        )
        cmd = [binary, "-db", "-f", str(config)]
        stack.enter_context(run_proxy(cmd, list(ports.values()), tmp_path / "haproxy.log"))
        yield ports


@pytest.mark.parametrize("frontend", ["plain_v1", "plain_v2"])
def test_haproxy_send_proxy_plain(haproxy: dict[str, int], frontend: str) -> None:
    with socket.create_connection(("127.0.0.1", haproxy[frontend]), timeout=TIMEOUT) as sock:
        local = sock.getsockname()
        sock.sendall(REQUEST)
        body = json_body(read_until_closed(sock))
    # The client address is ours, not HAProxy's own outgoing connection's.
    assert body["client"] == [local[0], local[1]]
    assert body["server"] == ["127.0.0.1", haproxy[frontend]]
    assert body["scheme"] == "http"


@pytest.mark.parametrize("frontend", ["tls_v1", "tls_v2"])
def test_haproxy_send_proxy_tls_passthrough(
    haproxy: dict[str, int], frontend: str, pki: PKI
) -> None:
    context = ssl.create_default_context(cafile=str(pki.ca))
    raw = socket.create_connection(("127.0.0.1", haproxy[frontend]), timeout=TIMEOUT)
    local = raw.getsockname()
    with context.wrap_socket(raw, server_hostname="localhost") as sock:
        sock.sendall(REQUEST)
        body = json_body(read_until_closed(sock))
    assert body["client"] == [local[0], local[1]]
    assert body["scheme"] == "https"
    assert body["tls"]["tls_version"] in (0x0303, 0x0304)


# -- nginx -----------------------------------------------------------------------------------

NGINX_CFG = """\
{user}worker_processes 1;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/error.log info;
events {{ worker_connections 64; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;

    server {{
        listen 127.0.0.1:{http_port};
        listen 127.0.0.1:{https_port} ssl;
        ssl_certificate {cert};
        ssl_certificate_key {key};

        location / {{
            proxy_pass http://127.0.0.1:{pounce};
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-Host $http_host;
        }}

        # The app mounted under /api: nginx strips the prefix, Pounce runs with --root-path /api
        location /api/ {{
            proxy_pass http://127.0.0.1:{pounce_api}/;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}
    }}
}}
"""


@pytest.fixture
def nginx(pki: PKI, tmp_path: Path) -> Iterator[dict[str, int]]:
    binary = need("nginx")
    with ExitStack() as stack:
        base = Server.builder().bind("127.0.0.1", 0).h1()
        pounce = stack.enter_context(TestServer(base.proxy_headers().asgi(app)))
        mounted = base.root_path("/api").proxy_headers(trusted=["127.0.0.1"])
        pounce_api = stack.enter_context(TestServer(mounted.asgi(app)))
        ports = {"http_port": free_port(), "https_port": free_port()}
        config = tmp_path / "nginx.conf"
        config.write_text(
            NGINX_CFG.format(
                user="user root;\n" if os.geteuid() == 0 else "",
                tmp=tmp_path,
                cert=pki.cert,
                key=pki.key,
                pounce=pounce.port,
                pounce_api=pounce_api.port,
                **ports,
            )
        )
        cmd = [binary, "-c", str(config), "-p", str(tmp_path), "-e", str(tmp_path / "error.log")]
        stack.enter_context(run_proxy(cmd, list(ports.values()), tmp_path / "nginx.log"))
        yield ports


def via_nginx(port: int, request: bytes, *, tls: PKI | None = None) -> dict[str, Any]:
    # From 127.0.0.2: an address Pounce does not trust, so it is the client.
    raw = socket.create_connection(("127.0.0.1", port), TIMEOUT, ("127.0.0.2", 0))
    sock: socket.socket = raw
    if tls is not None:
        sock = ssl.create_default_context(cafile=str(tls.ca)).wrap_socket(
            raw, server_hostname="localhost"
        )
    with sock:
        sock.sendall(request)
        return json_body(read_until_closed(sock))


def test_nginx_x_forwarded_for_and_proto(nginx: dict[str, int], pki: PKI) -> None:
    spoofed = b"GET /x HTTP/1.1\r\nHost: shop.example\r\nX-Forwarded-For: 6.6.6.6\r\n"
    spoofed += b"Connection: close\r\n\r\n"
    body = via_nginx(nginx["http_port"], spoofed)
    assert body["client"] == ["127.0.0.2", 0]  # the spoofed 6.6.6.6 is ignored
    assert body["scheme"] == "http"
    assert body["host"] == "shop.example"
    body = via_nginx(nginx["https_port"], REQUEST, tls=pki)
    assert body["scheme"] == "https"  # nginx terminated TLS; X-Forwarded-Proto says so
    assert body["client"] == ["127.0.0.2", 0]
    assert body["tls"] is None  # the hop from nginx to Pounce is plain HTTP


def test_nginx_prefix_and_root_path(nginx: dict[str, int]) -> None:
    request = b"GET /api/items?q=1 HTTP/1.1\r\nHost: shop.example\r\nConnection: close\r\n\r\n"
    body = via_nginx(nginx["http_port"], request)
    assert body["root_path"] == "/api"
    assert body["path"] == "/api/items"  # ASGI: path includes root_path
    assert body["client"] == ["127.0.0.2", 0]
