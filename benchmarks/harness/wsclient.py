#!/usr/bin/env python3
"""The WebSocket echo load client: standard library only, one thread, ``selectors``.

    python wsclient.py --port 8000 --connections 16 --size 32 --seconds 5

Opens N WebSocket connections to ``ws://127.0.0.1:PORT/ws`` (no extensions:
permessage-deflate is never offered, so every server does the same work),
then each connection sends one binary message, waits for its echo, and sends
the next, for ``--seconds``. Frames are prebuilt (one masked frame, RFC 6455
§5.3, reused: the key is fixed, which a benchmark may do), and echoes are
counted by parsing only frame headers, so the client stays cheap. Every echo's
length is checked, and the first echo on each connection byte for byte.

Prints one line: ``WS_JSON {"messages": .., "seconds": .., "bytes": .., "errors": ..}``.
Run by ``harness/wsecho.py`` on the client CPU, separate from the server.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import selectors
import socket
import struct
import sys
import time

HANDSHAKE_TIMEOUT_S = 10.0
MASK = b"\x37\xfa\x21\x3d"


def masked_frame(payload: bytes) -> bytes:
    """One final binary frame from a client (RFC 6455 §5.2), masked with `MASK`."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x82, 0x80 | n)
    elif n < 65536:
        head = struct.pack("!BBH", 0x82, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x82, 0x80 | 127, n)
    mask = (MASK * (n // 4 + 1))[:n]
    body = (int.from_bytes(payload, "big") ^ int.from_bytes(mask, "big")).to_bytes(n, "big")
    return head + MASK + body


def handshake(port: int, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=HANDSHAKE_TIMEOUT_S)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    key = base64.b64encode(os.urandom(16)).decode()
    request = (
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
    )
    sock.sendall(request.encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            raise ConnectionError("closed during the handshake")
        head += chunk
    status = head.split(b"\r\n", 1)[0]
    if b" 101 " not in status + b" ":
        raise ConnectionError(f"handshake refused: {status!r}")
    if head.split(b"\r\n\r\n", 1)[1]:
        raise ConnectionError("bytes after the 101 before any message was sent")
    sock.setblocking(False)
    return sock


class Echoer:
    """One connection: send, wait for the whole echo, repeat."""

    def __init__(self, sock: socket.socket, frame: bytes, payload: bytes) -> None:
        self.sock = sock
        self.frame = frame
        self.payload = payload
        self.buffer = bytearray()
        self.unsent = memoryview(b"")
        self.echoes = 0
        self.errors = 0

    def send_next(self) -> None:
        self.unsent = memoryview(self.frame)
        self.flush()

    def flush(self) -> None:
        while self.unsent:
            try:
                sent = self.sock.send(self.unsent)
            except BlockingIOError:
                return
            self.unsent = self.unsent[sent:]

    def readable(self) -> bool:
        """Read what is there; True when a whole echo arrived (the next one may go)."""
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("server closed the connection")
        self.buffer += chunk
        return self._echo_complete()

    def _echo_complete(self) -> bool:
        buf = self.buffer
        if len(buf) < 2:
            return False
        length, start = buf[1] & 0x7F, 2
        if length == 126:
            if len(buf) < 4:
                return False
            length, start = struct.unpack_from("!H", buf, 2)[0], 4
        elif length == 127:
            if len(buf) < 10:
                return False
            length, start = struct.unpack_from("!Q", buf, 2)[0], 10
        if len(buf) < start + length:
            return False
        if buf[0] & 0x0F in (0x9, 0xA):  # a keep-alive ping or pong: not an echo
            del buf[: start + length]
            return self._echo_complete()
        if buf[0] != 0x82 or length != len(self.payload):
            self.errors += 1  # a close, a fragment, or a wrong length
        elif self.echoes == 0 and buf[start : start + length] != self.payload:
            self.errors += 1
        del buf[: start + length]
        self.echoes += 1
        return True


def run(port: int, path: str, connections: int, size: int, seconds: float) -> dict[str, float]:
    payload = bytes(range(256)) * (size // 256) + bytes(range(size % 256))
    frame = masked_frame(payload)
    echoers = [Echoer(handshake(port, path), frame, payload) for _ in range(connections)]
    selector = selectors.DefaultSelector()
    for echoer in echoers:
        selector.register(echoer.sock, selectors.EVENT_READ, echoer)
    started = time.perf_counter()
    deadline = started + seconds
    for echoer in echoers:
        echoer.send_next()
    while (now := time.perf_counter()) < deadline:
        for key, _ in selector.select(timeout=deadline - now):
            echoer = key.data
            if echoer.readable():
                echoer.send_next()
            else:
                echoer.flush()
    elapsed = time.perf_counter() - started
    for echoer in echoers:
        echoer.sock.close()
    selector.close()
    messages = sum(e.echoes for e in echoers)
    return {
        "messages": messages,
        "seconds": elapsed,
        "bytes": messages * size,
        "errors": sum(e.errors for e in echoers),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--path", default="/ws")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--size", type=int, default=32, help="bytes per message")
    parser.add_argument("--seconds", type=float, default=5.0)
    args = parser.parse_args(argv)
    try:
        result = run(args.port, args.path, args.connections, args.size, args.seconds)
    except (OSError, ConnectionError) as exc:
        print(f"WS_ERROR {type(exc).__name__}: {exc}", flush=True)
        return 1
    print("WS_JSON " + json.dumps(result), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
