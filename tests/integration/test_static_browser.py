"""A page served by ``.static()`` behind ``.compress()``, loaded in headless Chromium.

The page's CSS and SVG are compressed on the way (no sibling on disk), its
script comes from a precompressed ``app.js.br`` sibling, its PNG goes as it
is. The script proves the page ran with every asset decoded: it reads the
stylesheet's effect, waits for both images, and writes the result into the
page and its title, which the test reads through WebDriver. A layer outside
the compression layer records what the server sent for each path, so the
test also checks that the browser got ``br`` where it should. Over TLS
(Chromium offers ``br`` only to secure origins), with HTTP/2 and with
HTTP/1.1. Chromium is driven as in test_websocket_browser.py.
"""

from __future__ import annotations

import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import brotli
import pytest

from pounce import Server
from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.layer import AppLayer
from pounce.layers.static import not_found
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_websocket_browser import (
    CHROMEDRIVER,
    CHROMIUM,
    WebDriver,
    _browser,
    wait_for,
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)

FILLER = "".join(
    f"<!-- line {i} of a page long enough to be worth compressing -->\n" for i in range(40)
)
INDEX = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>loading</title>
<link rel="stylesheet" href="/site.css">
<script src="/app.js" defer></script></head>
<body><p id="styled">styled?</p><img id="logo" src="/logo.svg"><img id="dot" src="/dot.png">
<p id="result">not run</p>
{FILLER}</body></html>
""".encode()
CSS = (
    "#styled { color: rgb(1, 2, 3); }\n"
    + "".join(f".unused-{i} {{ margin: {i}px; padding: {i}px; }}\n" for i in range(60))
).encode()
SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" width="40" height="20">'
    + "".join(
        f'<rect x="{i}" y="0" width="1" height="20" fill="#{i:02x}{i:02x}ff"/>' for i in range(40)
    )
    + "</svg>"
).encode()
JS = (
    """
function loaded(img) {
  return img.complete && img.naturalWidth > 0
    ? Promise.resolve()
    : new Promise((ok, fail) => { img.onload = ok; img.onerror = fail; });
}
Promise.all([loaded(document.getElementById("logo")), loaded(document.getElementById("dot"))])
  .then(() => {
    const color = getComputedStyle(document.getElementById("styled")).color;
    const logo = document.getElementById("logo").naturalWidth;
    const result = `ran: color ${color}, logo ${logo}`;
    document.getElementById("result").textContent = result;
    document.title = "ran";
  }, () => { document.title = "an image failed"; });
"""
    + "".join(f"// a comment to make the script worth compressing, line {i}\n" for i in range(40))
).encode()


def png(width: int, height: int) -> bytes:
    """A valid RGB PNG, all pixels red (incompressible type: sent as it is)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    rows = b"".join(b"\x00" + b"\xff\x00\x00" * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    image = chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")
    return b"\x89PNG\r\n\x1a\n" + image


@dataclass(frozen=True)
class Recorder(AppLayer):
    """Records the response fields the client got, by path (outside the compression layer)."""

    sent: dict[str, dict[str, str]] = field(default_factory=dict)

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        sent = self.sent

        async def recording(scope: Scope, receive: Receive, send: Send) -> None:
            async def record(message: Message) -> None:
                if message["type"] == "http.response.start":
                    fields = {n.decode(): v.decode() for n, v in message.get("headers", ())}
                    sent[scope["path"]] = {"status": str(message["status"]), **fields}
                await send(message)

            await inner(scope, receive, record if scope["type"] == "http" else send)

        return recording


@pytest.fixture
def site(tmp_path: Path) -> Path:
    root = tmp_path / "site"
    root.mkdir()
    (root / "index.html").write_bytes(INDEX)
    (root / "site.css").write_bytes(CSS)
    (root / "logo.svg").write_bytes(SVG)
    (root / "app.js").write_bytes(b"document.title = 'the uncompressed file was sent';")
    (root / "app.js.br").write_bytes(brotli.compress(JS))  # what a build step leaves
    (root / "dot.png").write_bytes(png(8, 8))
    return root


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    # The test certificate is from a throw-away CA this profile does not trust.
    yield from _browser(tmp_path, "--ignore-certificate-errors")


@pytest.mark.timeout(120)
@pytest.mark.parametrize("http2", [True, False], ids=["h2", "h1"])
def test_chromium_renders_a_br_encoded_page(
    browser: WebDriver, pki: PKI, site: Path, http2: bool
) -> None:
    recorder = Recorder()
    stack = Server.builder().bind("127.0.0.1", 0).tls(cert=str(pki.cert), key=str(pki.key)).h1()
    if http2:
        stack = stack.h2()
    built = stack.layer(recorder).compress().static("/", str(site)).asgi(not_found)
    with TestServer(built) as ts:
        browser.go(f"https://localhost:{ts.port}/")
        title = f"/session/{browser.session}/title"
        wait_for(lambda: browser.call("GET", title) != "loading", "the page's script to run")
        assert browser.call("GET", title) == "ran"
        assert browser.text("#result") == "ran: color rgb(1, 2, 3), logo 40"
    sent = recorder.sent
    for path, size in (("/", len(INDEX)), ("/site.css", len(CSS)), ("/logo.svg", len(SVG))):
        assert sent[path]["content-encoding"] == "br", path  # compressed on the way
        assert int(sent[path]["content-length"]) < size, path  # small files: in one message
    script = sent["/app.js"]  # the precompressed sibling, as it lies on disk
    assert script["content-encoding"] == "br"
    assert script["content-length"] == str(len(brotli.compress(JS)))
    assert "content-encoding" not in sent["/dot.png"]  # an image: as it is
