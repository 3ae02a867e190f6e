"""Clients for the edge tests: PROXY headers, TLS over a memory BIO, a CLI runner."""

from __future__ import annotations

import ipaddress
import json
import os
import re
import socket
import ssl
import struct
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

TIMEOUT = 10.0  # seconds, for every network wait
HERE = Path(__file__).parent
V2_SIGNATURE = b"\r\n\r\n\x00\r\nQUIT\n"
REQUEST = b"GET /where HTTP/1.1\r\nHost: example\r\nConnection: close\r\n\r\n"


def proxy_v1(client: tuple[str, int], server: tuple[str, int]) -> bytes:
    family = "TCP6" if ":" in client[0] else "TCP4"
    return f"PROXY {family} {client[0]} {server[0]} {client[1]} {server[1]}\r\n".encode()


def proxy_v2(
    client: tuple[str, int] | None, server: tuple[str, int] | None = None, tlvs: bytes = b""
) -> bytes:
    """A v2 PROXY header; `client` None makes a LOCAL (health check) header."""
    if client is None or server is None:
        return V2_SIGNATURE + b"\x20\x00" + struct.pack("!H", len(tlvs)) + tlvs
    src, dst = ipaddress.ip_address(client[0]), ipaddress.ip_address(server[0])
    family = 0x11 if src.version == 4 else 0x21
    body = src.packed + dst.packed + struct.pack("!HH", client[1], server[1]) + tlvs
    return V2_SIGNATURE + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


def read_until_closed(sock: socket.socket) -> bytes:
    """Everything until the server closes (a reset counts as closed)."""
    sock.settimeout(TIMEOUT)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def json_body(response: bytes) -> dict[str, Any]:
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), response[:200]
    result: dict[str, Any] = json.loads(body)
    return result


def plain_request(port: int, preamble: bytes, *, source: str | None = None) -> bytes:
    """`preamble` and a request in one write; everything the server sent until it closed."""
    with socket.create_connection(
        ("127.0.0.1", port), timeout=TIMEOUT, source_address=(source, 0) if source else None
    ) as sock:
        sock.sendall(preamble + REQUEST)
        return read_until_closed(sock)


def tls_request(port: int, preamble: bytes, context: ssl.SSLContext) -> bytes:
    """`preamble` and the ClientHello in ONE write, then TLS over a memory BIO."""
    incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls = context.wrap_bio(incoming, outgoing, server_hostname="127.0.0.1")
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT) as sock:
        first = True
        while True:
            try:
                tls.do_handshake()
                break
            except ssl.SSLWantReadError:
                pass
            out = outgoing.read()
            sock.sendall((preamble if first else b"") + out)
            first = False
            data = sock.recv(65536)
            if not data:
                raise ConnectionError("closed during the handshake")
            incoming.write(data)
        sock.sendall(outgoing.read())
        tls.write(REQUEST)
        sock.sendall(outgoing.read())
        received = b""
        while True:
            try:
                chunk = tls.read(65536)
                if not chunk:  # close_notify
                    return received
                received += chunk
                continue
            except ssl.SSLWantReadError:
                pass
            except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                return received
            data = sock.recv(65536)
            if not data:
                return received
            incoming.write(data)


class Running:
    """A ``pounce`` CLI subprocess; its port read from the start-up line."""

    STARTED = re.compile(r"Pounce running on https?://(?P<host>[^ ]+):(?P<port>\d+)")

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.port = 0
        self._started = threading.Event()
        self._seen = threading.Condition()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._seen:
                self.lines.append(line)
                self._seen.notify_all()
            match = self.STARTED.search(line)
            if match and not self.port:
                self.port = int(match["port"])
                self._started.set()
        self._started.set()

    def wait_for(self, text: str) -> None:
        with self._seen:
            assert self._seen.wait_for(lambda: text in self.output(), TIMEOUT), self.output()

    def output(self) -> str:
        return "".join(self.lines)


@contextmanager
def cli(*args: str, env: dict[str, str] | None = None) -> Iterator[Running]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "pounce", "--app-dir", str(HERE), "--port", "0", *args],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, **(env or {})},
    )
    running = Running(proc)
    try:
        assert running._started.wait(15), running.output()
        assert running.port, "server exited: " + running.output()
        yield running
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)
