#!/usr/bin/env python3
"""Capture the request head headless Chromium sends for a top-level navigation.

The ``browser`` scenario (harness/scenarios.py) and ``inproc.py --head browser``
send the header fields frozen in ``browser_head.py``; this is how they were
captured, and how to capture them again after a Chromium upgrade::

    python benchmarks/capture_browser_head.py            # prints the raw head, then the fields
    python benchmarks/capture_browser_head.py --chromium /usr/bin/chromium

A one-shot socket server on 127.0.0.1 records the raw bytes of the first
``GET /hello`` it reads and answers a tiny page with ``Connection: close``;
Chromium (a fresh profile, no sandbox, no background fetches) loads
``http://127.0.0.1:PORT/hello`` with ``--dump-dom`` and exits. Standard library only.
"""

from __future__ import annotations

import argparse
import shutil
import socket
import subprocess
import sys
import tempfile
import threading

PAGE = b"<!doctype html><title>hello</title><p>Hello, world!</p>"
TIMEOUT_S = 60.0
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)


def _read_head(conn: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data.partition(b"\r\n\r\n")[0] + b"\r\n\r\n" if b"\r\n\r\n" in data else data


def _answer(head: bytes, cookies: tuple[str, ...]) -> bytes:
    """The page; for /start with the cookies set (kept a day, so they reach the disk)."""
    lines = ["HTTP/1.1 200 OK", "Content-Type: text/html; charset=utf-8"]
    if head.startswith(b"GET /start "):
        lines += [f"Set-Cookie: {cookie}; Path=/; Max-Age=86400" for cookie in cookies]
    lines += [f"Content-Length: {len(PAGE)}", "Connection: close"]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + PAGE


def _serve(listener: socket.socket, cookies: tuple[str, ...], heads: list[bytes]) -> None:
    """Answer every request until the listener closes; keep the heads of GET /hello."""
    while True:
        try:
            conn, _ = listener.accept()
        except OSError:
            return  # closed: the capture is over
        with conn:
            conn.settimeout(TIMEOUT_S)
            try:
                head = _read_head(conn)
                conn.sendall(_answer(head, cookies))
            except OSError:
                continue
        if head.startswith(b"GET /hello "):
            heads.append(head)


def _load(chromium: str, profile: str, url: str, timeout: float) -> None:
    argv = [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", url]
    subprocess.run(argv, capture_output=True, timeout=timeout, check=False)


def capture(chromium: str, cookies: tuple[str, ...] = (), timeout: float = TIMEOUT_S) -> bytes:
    """The raw head (request line to the blank line) Chromium sent for ``GET /hello``.

    With `cookies` (``name=value`` each) Chromium first loads /start, which sets
    them, and exits; then a second run in the same profile navigates to /hello:
    a top-level navigation to a site whose cookies the browser holds, each field
    where Chromium puts it."""
    heads: list[bytes] = []
    with (
        socket.create_server(("127.0.0.1", 0)) as listener,
        tempfile.TemporaryDirectory(prefix="capture-chromium-") as profile,
    ):
        origin = f"http://127.0.0.1:{listener.getsockname()[1]}"
        server = threading.Thread(target=_serve, args=(listener, cookies, heads), daemon=True)
        server.start()
        if cookies:
            _load(chromium, profile, f"{origin}/start", timeout)
        _load(chromium, profile, f"{origin}/hello", timeout)
        listener.shutdown(socket.SHUT_RDWR)
    server.join(timeout)
    if not heads:
        raise SystemExit(f"{chromium} sent no GET /hello within {timeout:.0f} s")
    return heads[-1]


def fields(head: bytes) -> list[tuple[str, str]]:
    """The header fields of a raw head, in order and case as sent."""
    lines = head.decode("latin-1").split("\r\n")[1:]
    return [(name, value.strip()) for name, _, value in (ln.partition(":") for ln in lines if ln)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chromium", default=shutil.which("chromium") or "/usr/bin/chromium")
    parser.add_argument(
        "--cookie",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a cookie for Chromium to hold (set by a redirect first); repeat for more",
    )
    args = parser.parse_args()
    head = capture(args.chromium, tuple(args.cookie))
    sys.stdout.write(head.decode("latin-1"))
    print(f"# {len(head)} bytes; the fields, in order and case as sent:")
    for name, value in fields(head):
        print(f"    ({name!r}, {value!r}),")


if __name__ == "__main__":
    main()
