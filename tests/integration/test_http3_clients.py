"""HTTP/3 with real third-party clients: headless Chromium, and curl when it has HTTP/3.

Chromium is forced onto QUIC for the test origin (``--origin-to-force-quic-on``)
and trusts the test certificate by the SHA-256 of its public key
(``--ignore-certificate-errors-spki-list``), the way Chromium's own QUIC
tests do; which protocol carried each request is read from the access log.
Every wait is bounded.
"""

from __future__ import annotations

import base64
import hashlib
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.demo import DemoApp
from pounce.testing import TestServer
from tests.integration.conftest import PKI
from tests.integration.test_asgi_http import logged

pytest.importorskip("aioquic")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
CURL = shutil.which("curl")
TIMEOUT = 30.0  # seconds: a browser start and one page load


def spki_hash(cert_file: str) -> str:
    """Base64 SHA-256 of the certificate's SubjectPublicKeyInfo, as Chromium's flag wants it."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    spki = cert.public_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(spki).digest()).decode()


def served(pki: PKI) -> Server:
    return (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .h3()
        .access_log()
        .timeouts(graceful_shutdown=2)
        .asgi(DemoApp())
    )


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_headless_chromium_loads_the_demo_page_over_http3(pki: PKI) -> None:
    assert CHROMIUM is not None
    with (
        logged("pounce.access") as log,
        TestServer(served(pki)) as ts,
        tempfile.TemporaryDirectory() as profile,
    ):
        origin = f"127.0.0.1:{ts.port}"
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                "--disable-background-networking",
                f"--user-data-dir={profile}",
                "--enable-quic",
                f"--origin-to-force-quic-on={origin}",
                f"--ignore-certificate-errors-spki-list={spki_hash(str(pki.cert))}",
                "--dump-dom",
                f"https://{origin}/",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert "<html" in result.stdout.lower(), result.stderr[-2000:]
        line = log.wait_for(lambda r: '"GET / HTTP/' in r.getMessage()).getMessage()
    assert '"GET / HTTP/3" 200 ' in line


PAGE = b"""<html><body><div id="out">waiting</div><script>
async function go() {
  const seen = [];
  for (let i = 0; i < 6; i++) {
    await new Promise(done => setTimeout(done, 400));
    const response = await fetch("/version?" + i, {cache: "no-store"});
    seen.push(await response.text());
  }
  document.getElementById("out").textContent = seen.join(",");
}
go();
</script></body></html>"""


async def versions_page(scope: Scope, receive: Receive, send: Send) -> None:
    """``/``: a page that fetches ``/version`` six times; ``/version``: the HTTP version."""
    if scope["type"] != "http":
        return
    body = PAGE if scope["path"] == "/" else scope["http_version"].encode()
    headers = [(b"content-type", b"text/html"), (b"cache-control", b"no-store")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium (apt-get install chromium)")
def test_chromium_discovers_http3_through_alt_svc(pki: PKI) -> None:
    """Loaded over TCP, the page's Alt-Svc makes Chromium try QUIC for its later requests.

    The TCP connection must be trusted (the SPKI list) for Chromium to take the
    Alt-Svc at all. It then refuses our test CA for the alternative service
    (it wants a publicly trusted certificate there, whatever the SPKI list or
    --ignore-certificate-errors say), so its QUIC handshake fails and it stays
    on HTTP/2: the test asserts the attempt, or HTTP/3 itself should a
    Chromium accept the certificate.
    """
    assert CHROMIUM is not None
    built = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .tls(cert=str(pki.cert), key=str(pki.key))
        .h1()
        .h2()
        .h3()
        .timeouts(graceful_shutdown=2)
        .asgi(versions_page)
    )
    with (
        logged("pounce.error") as log,
        TestServer(built) as ts,
        tempfile.TemporaryDirectory() as profile,
    ):
        result = subprocess.run(
            [
                CHROMIUM,
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--no-first-run",
                f"--user-data-dir={profile}",
                "--enable-quic",
                "--ignore-certificate-errors",
                f"--ignore-certificate-errors-spki-list={spki_hash(str(pki.cert))}",
                "--host-resolver-rules=MAP localhost 127.0.0.1",
                "--virtual-time-budget=8000",
                "--dump-dom",
                f"https://localhost:{ts.port}/",
            ],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        seen = re.findall(r'<div id="out">(.*?)</div>', result.stdout)
        assert seen and seen[0] != "waiting", result.stderr[-2000:]
        versions = seen[0].split(",")
        if "3" not in versions:
            attempt = log.wait_for(lambda r: "HTTP/3 connection error" in r.getMessage())
            assert "certificate unknown" in attempt.getMessage()
    assert set(versions) <= {"2", "3"}


def test_curl_over_http3(pki: PKI) -> None:
    if CURL is None:
        pytest.skip("no curl on PATH")
    features = subprocess.run([CURL, "--version"], capture_output=True, text=True, timeout=10)
    if "HTTP3" not in features.stdout:
        pytest.skip("this curl was built without HTTP/3 (curl --version lists no HTTP3 feature)")
    with logged("pounce.access") as log, TestServer(served(pki)) as ts:
        out = subprocess.run(
            [CURL, "--http3-only", "--cacert", str(pki.ca), "-s", f"https://localhost:{ts.port}/"],
            capture_output=True,
            text=True,
            timeout=TIMEOUT,
        )
        assert out.returncode == 0, out.stderr
        line = log.wait_for(lambda r: '"GET / HTTP/' in r.getMessage()).getMessage()
    assert '"GET / HTTP/3" 200 ' in line
