"""The development error page in a real browser: Debian's headless Chromium.

Chromium loads a URL whose app raises, once with ``--dump-dom`` (the page as
the browser parsed it: its text, what a developer reads) and once with
``--screenshot`` (a PNG of the rendered page, decoded here with zlib to show
that something was drawn, the page's red header among it). Skipped when
``chromium`` is missing; every run has a timeout.
"""

from __future__ import annotations

import html
import re
import shutil
import struct
import subprocess
import zlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from pounce.asgi.types import Receive, Scope, Send
from pounce.testing import TestServer
from tests.integration.test_websocket_browser import CHROMIUM_ARGS

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
TIMEOUT = 60.0  # seconds for one Chromium run (start, load, render)
HEADER_RED = (0xB0, 0x00, 0x20)  # the page's header colour (pounce/layers/debug/page.py)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="needs chromium (apt-get install chromium)"
)


class CartError(Exception):
    pass


async def shop(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    items: dict[str, int] = {}
    raise CartError(f"the cart has {len(items)} items")  # line shown on the page


@pytest.fixture
def server() -> Iterator[TestServer]:
    with TestServer(shop, debug=True) as ts:
        yield ts


def chromium(tmp_path: Path, *args: str) -> str:
    assert CHROMIUM is not None
    command = [CHROMIUM, *CHROMIUM_ARGS, f"--user-data-dir={tmp_path / 'profile'}", *args]
    done = subprocess.run(command, capture_output=True, text=True, timeout=TIMEOUT, check=True)
    return done.stdout


@pytest.mark.timeout(180)
def test_chromium_shows_the_exception_and_the_failing_line(
    server: TestServer, tmp_path: Path
) -> None:
    url = f"{server.url}/cart?id=7"
    dom = chromium(tmp_path, "--dump-dom", url)
    text = html.unescape(re.sub(r"<[^>]+>", "", dom))
    assert "CartError: the cart has 0 items" in text
    assert 'raise CartError(f"the cart has {len(items)} items")  # line shown on the page' in text
    assert "GET /cart?id=7 HTTP/1.1" in text
    assert '<h1 id="exception">' in dom

    shot = tmp_path / "page.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1200,900", url)
    width, height, pixels = decode_png(shot.read_bytes())
    assert (width, height) == (1200, 900)
    assert len(set(pixels)) > 10, "the screenshot is blank"
    assert sum(p[:3] == HEADER_RED for p in pixels) > 1000, "no error header drawn"


# -- a PNG decoder for 8-bit RGB(A) images, enough for Chromium's screenshots --------------------


def decode_png(data: bytes) -> tuple[int, int, list[tuple[int, ...]]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, chunk = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        pos += 12 + length
        if kind == b"IHDR":
            header = chunk
        elif kind == b"IDAT":
            idat += chunk
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6), f"unexpected PNG format {depth}-bit type {colour}"
    channels = 3 if colour == 2 else 4
    rows = unfilter(zlib.decompress(idat), width * channels, channels)
    pixels = [tuple(row[i : i + channels]) for row in rows for i in range(0, len(row), channels)]
    return width, height, pixels


def unfilter(raw: bytes, stride: int, bpp: int) -> list[bytes]:
    """Undo the PNG row filters (PNG spec §9)."""
    rows: list[bytes] = []
    previous = bytearray(stride)
    for start in range(0, len(raw), stride + 1):
        kind, row = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        for i in range(stride):
            left = row[i - bpp] if i >= bpp else 0
            up, corner = previous[i], previous[i - bpp] if i >= bpp else 0
            if kind == 1:
                row[i] = (row[i] + left) & 0xFF
            elif kind == 2:
                row[i] = (row[i] + up) & 0xFF
            elif kind == 3:
                row[i] = (row[i] + (left + up) // 2) & 0xFF
            elif kind == 4:
                row[i] = (row[i] + paeth(left, up, corner)) & 0xFF
        rows.append(bytes(row))
        previous = row
    return rows


def paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c
