"""The demo's WebSocket echo page in a real browser: Debian's headless Chromium.

Chromium is driven through ``chromedriver`` (W3C WebDriver over HTTP, spoken
here with urllib: no Selenium, no browser download). The page opens a
WebSocket to ``/ws``; the test submits the page's form and waits for the echo
to appear in the page's log. Skipped when ``chromium`` or ``chromedriver`` is
missing (Debian packages ``chromium`` and ``chromium-driver``). Every wait
has a timeout.

Over TLS with HTTP/2, Chromium opens the WebSocket as an RFC 8441 extended
CONNECT on the page's own HTTP/2 connection; the access log shows which way
it came.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from pounce import Server
from pounce.demo import DemoApp
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_asgi_http import logged

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CHROMEDRIVER = shutil.which("chromedriver")
TIMEOUT = 20.0  # seconds: driver start, session start, page load, each poll loop
ELEMENT = "element-6066-11e4-a52e-4f735466cecf"  # W3C WebDriver §12: the web element key
CHROMIUM_ARGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
)

pytestmark = pytest.mark.skipif(
    CHROMIUM is None or CHROMEDRIVER is None,
    reason="needs Debian's chromium and chromium-driver (apt-get install chromium chromium-driver)",
)


class WebDriver:
    """The few W3C WebDriver commands the test needs, over urllib."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = ""

    def call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(
            self.base + path, data=data, method=method, headers={"content-type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=TIMEOUT) as response:
            return json.loads(response.read())["value"]

    def start(self, binary: str, profile: Path, *extra: str) -> None:
        args = [*CHROMIUM_ARGS, *extra, f"--user-data-dir={profile}"]
        options = {"binary": binary, "args": args}
        caps = {"alwaysMatch": {"goog:chromeOptions": options, "pageLoadStrategy": "normal"}}
        self.session = self.call("POST", "/session", {"capabilities": caps})["sessionId"]
        timeouts = {"pageLoad": int(TIMEOUT * 1000), "script": int(TIMEOUT * 1000)}
        self.call("POST", f"/session/{self.session}/timeouts", timeouts)

    def quit(self) -> None:
        if self.session:
            self.call("DELETE", f"/session/{self.session}")

    def go(self, url: str) -> None:
        self.call("POST", f"/session/{self.session}/url", {"url": url})

    def find(self, css: str) -> str:
        body = {"using": "css selector", "value": css}
        return str(self.call("POST", f"/session/{self.session}/element", body)[ELEMENT])

    def text(self, css: str) -> str:
        return str(self.call("GET", f"/session/{self.session}/element/{self.find(css)}/text"))

    def type(self, css: str, text: str) -> None:
        element = f"/session/{self.session}/element/{self.find(css)}"
        self.call("POST", element + "/clear", {})
        self.call("POST", element + "/value", {"text": text})

    def click(self, css: str) -> None:
        self.call("POST", f"/session/{self.session}/element/{self.find(css)}/click", {})


def wait_for(predicate: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def start_chromedriver() -> tuple[subprocess.Popen[str], int]:
    """Start chromedriver on a free port and read the port from its banner."""
    assert CHROMEDRIVER is not None
    process = subprocess.Popen(
        [CHROMEDRIVER, "--port=0"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    found: list[int] = []
    ready = threading.Event()

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            match = re.search(r"started successfully on port (\d+)", line)
            if match and not found:
                found.append(int(match[1]))
                ready.set()
        ready.set()  # EOF: it exited

    threading.Thread(target=read, daemon=True).start()
    if not ready.wait(TIMEOUT) or not found:
        process.kill()
        process.wait(TIMEOUT)
        raise AssertionError("chromedriver did not start")
    return process, found[0]


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    # The TLS test's certificate is from a throw-away CA this profile does not trust.
    yield from _browser(tmp_path, "--ignore-certificate-errors")


def _browser(tmp_path: Path, *extra: str) -> Iterator[WebDriver]:
    assert CHROMIUM is not None
    process, port = start_chromedriver()
    driver = WebDriver(f"http://127.0.0.1:{port}")
    try:
        driver.start(CHROMIUM, tmp_path / "profile", *extra)
        yield driver
    finally:
        try:
            driver.quit()
        finally:
            process.terminate()
            try:
                process.wait(TIMEOUT)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(TIMEOUT)


@pytest.fixture
def demo() -> Iterator[TestServer]:
    built = Server.builder().bind("127.0.0.1", 0).h1().websocket().lifespan("on").asgi(DemoApp())
    with TestServer(built) as ts:
        yield ts


@pytest.mark.timeout(120)
def test_chromium_echoes_through_the_demo_page(browser: WebDriver, demo: TestServer) -> None:
    browser.go(f"http://127.0.0.1:{demo.port}/websocket")
    wait_for(lambda: browser.text("#status") == "connected", "the page's WebSocket to open")
    browser.type("#send input[name=message]", "héllo from chromium")
    browser.click("#send button")
    wait_for(lambda: "echo: héllo from chromium" in browser.text("#log"), "the echo in the log")
    assert browser.text("#log").splitlines() == [
        "sent: héllo from chromium",
        "echo: héllo from chromium",
    ]
    assert browser.text("#status") == "connected"


@pytest.mark.timeout(120)
def test_chromium_uses_websocket_over_http2(browser: WebDriver, pki: PKI) -> None:
    built = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .websocket()
        .access_log()
        .lifespan("on")
        .asgi(DemoApp())
    )
    with logged("pounce.access") as log, TestServer(built) as ts:
        browser.go(f"https://localhost:{ts.port}/websocket")
        wait_for(lambda: browser.text("#status") == "connected", "the page's WebSocket to open")
        browser.type("#send input[name=message]", "over one h2 connection")
        browser.click("#send button")
        wait_for(lambda: "echo: over one h2 connection" in browser.text("#log"), "the echo")
        page = log.wait_for(lambda r: " /websocket " in r.getMessage()).getMessage()
        socket = log.wait_for(lambda r: " /ws " in r.getMessage()).getMessage()
    assert '"GET /websocket HTTP/2" 200 ' in page
    assert '"CONNECT /ws HTTP/2" 200 0 ' in socket  # RFC 8441, not an HTTP/1.1 Upgrade
    # One TCP connection carried both: the same client address and port.
    assert page.split(" - ")[0] == socket.split(" - ")[0]
