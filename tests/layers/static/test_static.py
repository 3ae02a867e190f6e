"""The static layer over real sockets: answers, conditional requests, ranges,
precompressed siblings, fall-through to the app, and every containment rule
over a raw socket (the bytes of the request line exactly as written here)."""

from __future__ import annotations

import asyncio
import gzip
import os
import shutil
import socket
import subprocess
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from pounce import BuildError, Server
from pounce.asgi.types import Message
from pounce.layers.static import Static, StaticOptions, not_found
from pounce.presets import StandardOptions, standard
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT, HeldApp, builder, read_response

SECRET = b"TOP SECRET, outside the root"
APP_JS = b"console.log('hello');\n" * 100
BIG = bytes(range(256)) * 4096  # 1 MiB


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """public/ with files, an index, a hidden file and symlinks; a secret beside it."""
    (tmp_path / "secret.txt").write_bytes(SECRET)
    public = tmp_path / "public"
    (public / "sub").mkdir(parents=True)
    (public / "empty").mkdir()
    (public / "index.html").write_bytes(b"<h1>home</h1>")
    (public / "sub" / "index.html").write_bytes(b"<h1>sub</h1>")
    (public / "app.js").write_bytes(APP_JS)
    (public / "app.js.gz").write_bytes(gzip.compress(APP_JS))
    (public / "app.js.br").write_bytes(b"pretend brotli")
    (public / "big.bin").write_bytes(BIG)
    (public / ".env").write_bytes(SECRET)
    (public / "out.txt").symlink_to(tmp_path / "secret.txt")
    (public / "outdir").symlink_to(tmp_path)
    (public / "in.js").symlink_to(public / "app.js")
    return public


@pytest.fixture
def app() -> HeldApp:
    return HeldApp()


@pytest.fixture
def ts(site: Path, app: HeldApp) -> Iterator[TestServer]:
    with TestServer(builder().static("/assets", str(site)).asgi(app)) as server:
        yield server


def get(ts: TestServer, path: str, **headers: str) -> httpx.Response:
    """A GET that asks for no content coding unless `headers` say otherwise."""
    headers.setdefault("accept_encoding", "identity")
    fields = {name.replace("_", "-"): value for name, value in headers.items()}
    return httpx.get(ts.url + path, headers=fields, timeout=TIMEOUT)


def raw(
    ts: TestServer, target: bytes, method: bytes = b"GET", extra: bytes = b""
) -> tuple[int, dict[str, str], bytes]:
    """One request with `target` sent byte for byte."""
    with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
        if method == b"HEAD":  # the head alone, then the server closes
            extra += b"connection: close\r\n"
        sock.sendall(b"%s %s HTTP/1.1\r\nhost: test\r\n%s\r\n" % (method, target, extra))
        if method != b"HEAD":
            return read_response(sock)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        status, headers, body = read_response(_Replay(data.replace(b"content-length", b"x-length")))
        return status, {**headers, "content-length": headers["x-length"]}, body


class _Replay:
    """Bytes already read, handed out as a socket's `recv` would."""

    def __init__(self, data: bytes) -> None:
        self.data = data

    def recv(self, size: int) -> bytes:
        chunk, self.data = self.data[:size], self.data[size:]
        return chunk


# -- answers ---------------------------------------------------------------------------------


def test_a_file_with_its_validators(ts: TestServer, app: HeldApp) -> None:
    response = get(ts, "/assets/app.js")
    assert response.status_code == 200
    assert response.content == APP_JS
    assert response.headers["content-type"].endswith("javascript; charset=utf-8")
    assert response.headers["content-length"] == str(len(APP_JS))
    assert response.headers["accept-ranges"] == "bytes"
    assert response.headers["etag"].startswith('"')
    assert response.headers["last-modified"].endswith("GMT")
    assert "cache-control" not in response.headers
    assert app.entered == []


def test_head_has_the_headers_and_no_body(ts: TestServer) -> None:
    status, headers, body = raw(ts, b"/assets/big.bin", b"HEAD")
    assert (status, headers["content-length"], body) == (200, str(len(BIG)), b"")
    assert headers["content-type"] == "application/octet-stream"


def test_conditional_requests_answer_304(ts: TestServer) -> None:
    first = get(ts, "/assets/app.js")
    tag, modified = first.headers["etag"], first.headers["last-modified"]
    assert get(ts, "/assets/app.js", if_none_match=tag).status_code == 304
    assert get(ts, "/assets/app.js", if_none_match=f'"x", W/{tag}').status_code == 304
    assert get(ts, "/assets/app.js", if_modified_since=modified).status_code == 304
    assert (
        get(ts, "/assets/app.js", if_none_match='"other"', if_modified_since=modified).status_code
        == 200
    )
    assert (
        get(ts, "/assets/app.js", if_modified_since="Thu, 01 Jan 1970 00:00:00 GMT").status_code
        == 200
    )


def test_preconditions_answer_412_in_the_rfc_order(ts: TestServer) -> None:
    """RFC 9110 §13.2.2: If-Match, else If-Unmodified-Since (412) before If-None-Match,
    else If-Modified-Since (304), before If-Range and Range."""
    first = get(ts, "/assets/big.bin")
    tag, modified = first.headers["etag"], first.headers["last-modified"]
    old = "Thu, 01 Jan 1970 00:00:00 GMT"
    failed = get(ts, "/assets/big.bin", if_match='"other"')
    assert (failed.status_code, failed.content) == (412, b"precondition failed\n")
    assert get(ts, "/assets/big.bin", if_match=f"W/{tag}").status_code == 412  # strong only
    assert get(ts, "/assets/big.bin", if_match=f'"x", {tag}').status_code == 200
    assert get(ts, "/assets/big.bin", if_match="*").status_code == 200
    assert get(ts, "/assets/big.bin", if_unmodified_since=old).status_code == 412
    assert get(ts, "/assets/big.bin", if_unmodified_since=modified).status_code == 200
    # If-Match present: If-Unmodified-Since is not looked at.
    assert get(ts, "/assets/big.bin", if_match=tag, if_unmodified_since=old).status_code == 200
    # 412 comes before 304 ...
    both = get(ts, "/assets/big.bin", if_match='"other"', if_none_match=tag)
    assert both.status_code == 412
    # ... and a passed If-Match goes on to If-None-Match, then to Range.
    assert get(ts, "/assets/big.bin", if_match=tag, if_none_match=tag).status_code == 304
    ranged = get(ts, "/assets/big.bin", if_match=tag, range="bytes=0-3")
    assert (ranged.status_code, ranged.content) == (206, BIG[:4])
    status, _, body = raw(ts, b"/assets/big.bin", b"HEAD", b'if-match: "other"\r\n')
    assert (status, body) == (412, b"")


def test_ranges(ts: TestServer) -> None:
    one = get(ts, "/assets/big.bin", range="bytes=10-19")
    assert (one.status_code, one.content) == (206, BIG[10:20])
    assert one.headers["content-range"] == f"bytes 10-19/{len(BIG)}"
    suffix = get(ts, "/assets/big.bin", range="bytes=-5")
    assert (suffix.status_code, suffix.content) == (206, BIG[-5:])
    none = get(ts, "/assets/big.bin", range=f"bytes={len(BIG)}-")
    assert none.status_code == 416
    assert none.headers["content-range"] == f"bytes */{len(BIG)}"
    ignored = get(ts, "/assets/big.bin", range="lines=1-2")
    assert (ignored.status_code, len(ignored.content)) == (200, len(BIG))


def test_if_range(ts: TestServer) -> None:
    tag = get(ts, "/assets/app.js").headers["etag"]
    kept = get(ts, "/assets/app.js", range="bytes=0-3", if_range=tag)
    assert (kept.status_code, kept.content) == (206, APP_JS[:4])
    stale = get(ts, "/assets/app.js", range="bytes=0-3", if_range='"stale"')
    assert (stale.status_code, stale.content) == (200, APP_JS)


def test_several_ranges_are_multipart(ts: TestServer) -> None:
    response = get(ts, "/assets/big.bin", range="bytes=0-1, 100-103")
    assert response.status_code == 206
    kind, _, boundary = response.headers["content-type"].partition("; boundary=")
    assert kind == "multipart/byteranges"
    assert int(response.headers["content-length"]) == len(response.content)
    parts = response.content.split(b"--" + boundary.encode())
    assert parts[0] == b"" and parts[-1] == b"--\r\n"
    bodies = [part.partition(b"\r\n\r\n")[2].removesuffix(b"\r\n") for part in parts[1:-1]]
    assert bodies == [BIG[0:2], BIG[100:104]]
    assert f"content-range: bytes 100-103/{len(BIG)}".encode() in parts[2]


def test_too_many_ranges_are_ignored(ts: TestServer) -> None:
    header = "bytes=" + ", ".join(f"{n}-{n}" for n in range(17))
    response = get(ts, "/assets/app.js", range=header)
    assert (response.status_code, response.content) == (200, APP_JS)


def test_other_methods_get_405_but_a_miss_is_the_apps(ts: TestServer, app: HeldApp) -> None:
    status, headers, _ = raw(ts, b"/assets/app.js", b"POST", b"content-length: 0\r\n")
    assert (status, headers["allow"]) == (405, "GET, HEAD")
    status, _, body = raw(ts, b"/assets/upload", b"POST", b"content-length: 0\r\n")
    assert (status, body) == (200, b"/assets/upload")


def test_index_files_and_the_trailing_slash(ts: TestServer, app: HeldApp) -> None:
    assert get(ts, "/assets/").content == b"<h1>home</h1>"
    assert get(ts, "/assets/sub/").text == "<h1>sub</h1>"
    assert get(ts, "/assets/sub/").headers["content-type"] == "text/html; charset=utf-8"
    status, headers, _ = raw(ts, b"/assets/sub?x=1")
    assert (status, headers["location"]) == (308, "/assets/sub/?x=1")
    assert get(ts, "/assets/empty/").status_code == 200  # no index, no listing: the app's
    assert app.entered == ["/assets/empty/"]


def test_misses_and_other_paths_fall_through(ts: TestServer, app: HeldApp) -> None:
    assert get(ts, "/assets/nope.js").text == "/assets/nope.js"
    assert get(ts, "/assetsx/app.js").text == "/assetsx/app.js"
    assert get(ts, "/assets/app.js/").text == "/assets/app.js/"  # a file is not a directory
    assert app.entered == ["/assets/nope.js", "/assetsx/app.js", "/assets/app.js/"]


# -- precompressed siblings ------------------------------------------------------------------


def test_precompressed_siblings(ts: TestServer) -> None:
    status, headers, body = raw(ts, b"/assets/app.js", extra=b"accept-encoding: gzip, br\r\n")
    assert (status, headers["content-encoding"], body) == (200, "br", b"pretend brotli")
    assert headers["vary"] == "accept-encoding"
    assert headers["content-type"].endswith("javascript; charset=utf-8")
    status, headers, body = raw(ts, b"/assets/app.js", extra=b"accept-encoding: gzip, br;q=0\r\n")
    assert (headers["content-encoding"], gzip.decompress(body)) == ("gzip", APP_JS)
    status, headers, body = raw(ts, b"/assets/app.js", extra=b"accept-encoding: identity\r\n")
    assert ("content-encoding" not in headers, body, headers["vary"]) == (
        True,
        APP_JS,
        "accept-encoding",
    )
    assert "vary" not in raw(ts, b"/assets/big.bin", b"HEAD")[1]  # no sibling: no Vary


def test_a_precompressed_sibling_has_its_own_etag(ts: TestServer) -> None:
    plain = raw(ts, b"/assets/app.js")[1]["etag"]
    encoded = raw(ts, b"/assets/app.js", extra=b"accept-encoding: br\r\n")[1]["etag"]
    assert plain != encoded and encoded.endswith('-br"')


# -- containment, over a raw socket ------------------------------------------------------------

ESCAPES = [
    b"/assets/../secret.txt",
    b"/assets/sub/../../secret.txt",
    b"/assets/%2e%2e/secret.txt",
    b"/assets/%2E%2E/secret.txt",
    b"/assets/..%2fsecret.txt",
    b"/assets/sub%2f..%2f..%2fsecret.txt",
    b"/assets/..%5csecret.txt",
    b"/assets/..\\secret.txt",
    b"/assets/app.js%00.html",
    b"/assets/C:/secret.txt",
    b"/assets/c%3a%5csecret.txt",
    b"/assets//etc/passwd",
    b"/assets/%2fetc%2fpasswd",
    b"/assets/out.txt",  # a symlink to a file outside the root
    b"/assets/outdir/secret.txt",  # through a symlinked directory
    b"/assets/in.js",  # a symlink inside the root: refused too while follow_symlinks is off
]


@pytest.mark.parametrize("target", ESCAPES, ids=[t.decode() for t in ESCAPES])
def test_escapes_are_refused_and_never_reach_the_app(
    ts: TestServer, app: HeldApp, target: bytes
) -> None:
    status, _, body = raw(ts, target)
    assert (status, body) == (404, b"not found\n")  # the layer's answer, not the parser's
    assert SECRET not in body and APP_JS not in body
    assert app.entered == []


def test_absolute_paths_are_refused(ts: TestServer, site: Path, app: HeldApp) -> None:
    absolute = str(site.parent / "secret.txt").encode()
    for target in (b"/assets/" + absolute, b"/assets/%2f" + absolute[1:]):
        assert raw(ts, target)[:3:2] == (404, b"not found\n")
    assert app.entered == []


def test_hidden_files_are_a_miss_unless_asked(site: Path, app: HeldApp) -> None:
    with TestServer(builder().static("/assets", str(site)).asgi(app)) as ts:
        status, _, body = raw(ts, b"/assets/.env")
        assert (status, body) == (200, b"/assets/.env")  # the app's answer, not the file
    with TestServer(builder().static("/assets", str(site), hidden=True).asgi(app)) as ts:
        assert raw(ts, b"/assets/.env")[2] == SECRET


def test_follow_symlinks_stays_inside_the_root(site: Path, app: HeldApp) -> None:
    with TestServer(builder().static("/assets", str(site), follow_symlinks=True).asgi(app)) as ts:
        assert raw(ts, b"/assets/in.js")[2] == APP_JS
        for target in (b"/assets/out.txt", b"/assets/outdir/secret.txt"):
            status, _, body = raw(ts, target)
            assert (status, SECRET in body) == (404, False)
    assert app.entered == []


# -- options ---------------------------------------------------------------------------------


def test_cache_control(site: Path, app: HeldApp) -> None:
    shutil.copy(site / "app.js", site / "app.3f9a1c2e.js")
    layer = builder().static("/assets", str(site), max_age=60, immutable=True)
    with TestServer(layer.asgi(app)) as ts:
        assert get(ts, "/assets/app.js").headers["cache-control"] == "public, max-age=60"
        hashed = get(ts, "/assets/app.3f9a1c2e.js").headers["cache-control"]
        assert hashed == "public, max-age=31536000, immutable"


def test_large_files_go_out_in_chunks(site: Path) -> None:
    """The layer reads and sends `chunk_size` bytes at a time, never the whole file."""
    sent: list[Message] = []
    layer = Static("/assets", str(site), StaticOptions(chunk_size=4096))
    inner = layer.wrap(not_found)

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/assets/big.bin",
        "raw_path": b"/assets/big.bin",
        "root_path": "",
        "query_string": b"",
        "headers": [],
    }
    asyncio.run(inner(scope, receive, send))
    bodies = [m["body"] for m in sent[1:]]
    assert b"".join(bodies) == BIG
    assert max(len(b) for b in bodies) == 4096 and len(bodies) > len(BIG) // 4096
    assert all(m.get("more_body") for m in sent[1:-1])


# -- no app: the preset and the CLI ----------------------------------------------------------


def test_static_dir_with_no_app_answers_404_for_the_rest(site: Path) -> None:
    options = StandardOptions(host="127.0.0.1", port=0, static_dir=str(site), access_log=False)
    server: Server = standard(options).asgi(not_found)
    with TestServer(server) as ts:
        assert get(ts, "/").text == "<h1>home</h1>"
        assert get(ts, "/app.js").content == APP_JS
        assert get(ts, "/nope").status_code == 404
        assert raw(ts, b"/../secret.txt")[0] in (400, 404)


def test_pounce_static_dir_serves_a_directory(site: Path) -> None:
    from tests.integration.test_cli import serving

    identity = {"accept-encoding": "identity"}
    with serving("--static-dir", str(site), "--static", f"/more={site / 'sub'}") as running:
        for path, answer in (("/app.js", APP_JS), ("/more/", b"<h1>sub</h1>")):
            assert (
                httpx.get(running.url + path, headers=identity, timeout=TIMEOUT).content == answer
            )
        assert httpx.get(running.url + "/nope", timeout=TIMEOUT).status_code == 404


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_curl_ranges_and_time_conditions(ts: TestServer, site: Path) -> None:
    def curl(*args: str) -> bytes:
        run = subprocess.run(
            ["curl", "-s", "--max-time", "5", *args], capture_output=True, timeout=10, check=True
        )
        return run.stdout

    assert curl("-r", "0-9", f"{ts.url}/assets/big.bin") == BIG[:10]
    assert curl("-r", "-3", f"{ts.url}/assets/app.js") == APP_JS[-3:]
    future = site / "later"
    future.write_bytes(b"")
    os.utime(future, (os.path.getmtime(site / "app.js") + 60,) * 2)
    status = curl(
        "-o", "/dev/null", "-w", "%{http_code}", "-z", str(future), f"{ts.url}/assets/app.js"
    )
    assert status == b"304"
    status = curl(
        "-o", "/dev/null", "-w", "%{http_code}", "-z", "-" + str(future), f"{ts.url}/assets/app.js"
    )
    assert status == b"200"  # -z -file: If-Unmodified-Since, not evaluated: the file


def test_static_mounts_from_flags_the_environment_and_run_keywords(site: Path) -> None:
    from pounce.cli import build_parser, settings_from

    sub = site / "sub"
    args = build_parser().parse_args(["--static", f"/a={site}", "--static", f"/b={sub}"])
    settings, _ = settings_from(args, environ={"POUNCE_STATIC_MAX_AGE": "60"})
    assert settings["static"].value == (f"/a={site}", f"/b={sub}")
    assert settings["static_max_age"].value == 60
    env, _ = settings_from(
        build_parser().parse_args([]), environ={"POUNCE_STATIC": f"/a={site},/b={sub}"}
    )
    assert env["static"].value == (f"/a={site}", f"/b={sub}")
    described = (
        standard(StandardOptions(static=[f"/a={site}"], static_dir=str(sub)))
        .asgi(not_found)
        .describe()
    )
    assert f"static /a from {site}" in described and f"static / from {sub}" in described
    with pytest.raises(BuildError, match="PREFIX=DIR"):
        StandardOptions(static=["assets=./public"])
    with pytest.raises(BuildError, match="not a directory"):
        standard(StandardOptions(static_dir=str(site / "nope")))


def test_memory_stays_one_chunk_whatever_the_file_size(tmp_path: Path) -> None:
    """16 MiB through the layer: the peak of traced allocations stays near one chunk."""
    (tmp_path / "huge.bin").write_bytes(os.urandom(16 * 1024 * 1024))
    inner = Static("/", str(tmp_path)).wrap(not_found)
    total = 0

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        nonlocal total
        total += len(message.get("body", b""))

    scope = {
        "type": "http",
        "method": "GET",
        "path": "/huge.bin",
        "raw_path": b"/huge.bin",
        "headers": [],
    }
    tracemalloc.start()
    try:
        asyncio.run(inner(scope, receive, send))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert total == 16 * 1024 * 1024
    assert peak < 2 * 1024 * 1024, peak


def test_over_http2(site: Path, app: HeldApp) -> None:
    """The layer is plain ASGI: the same answers through an HTTP/2 stream (prior knowledge)."""
    pytest.importorskip("h2")
    server = builder().h2().static("/assets", str(site)).asgi(app)
    with TestServer(server) as ts, httpx.Client(http1=False, http2=True, timeout=TIMEOUT) as client:
        identity = {"accept-encoding": "identity"}
        whole = client.get(f"{ts.url}/assets/big.bin", headers=identity)
        assert (whole.http_version, whole.content) == ("HTTP/2", BIG)
        part = client.get(f"{ts.url}/assets/big.bin", headers={**identity, "range": "bytes=5-9"})
        assert (part.status_code, part.content) == (206, BIG[5:10])
        assert client.get(f"{ts.url}/assets/%2e%2e/secret.txt").status_code == 404


@pytest.mark.parametrize("zero_copy", [False, True], ids=["read by the layer", "zerocopysend"])
def test_ranges_without_and_with_the_zero_copy_extension(site: Path, zero_copy: bool) -> None:
    """Under a server that offers no ``zerocopysend`` the layer reads the spans itself;
    under one that does, it hands over the file and the spans. Same bytes either way."""
    inner = Static("/", str(site)).wrap(not_found)
    sent: list[Message] = []

    async def receive() -> Message:
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        if message["type"] == "http.response.zerocopysend":
            file = message["file"]
            data = os.pread(file.fileno(), message["count"], message["offset"])
            message = {"type": "http.response.body", "body": data, "more_body": True}
        sent.append(message)

    def get(range_header: bytes) -> tuple[int, bytes]:
        sent.clear()
        scope = {
            "type": "http",
            "method": "GET",
            "path": "/big.bin",
            "raw_path": b"/big.bin",
            "headers": [(b"range", range_header)],
            "extensions": {"http.response.zerocopysend": {}} if zero_copy else {},
        }
        asyncio.run(inner(scope, receive, send))
        return sent[0]["status"], b"".join(m.get("body", b"") for m in sent[1:])

    assert get(b"bytes=100-199") == (206, BIG[100:200])
    status, body = get(b"bytes=0-9,500000-500009")
    assert status == 206
    assert BIG[:10] in body and BIG[500000:500010] in body
    assert body.count(b"content-range: bytes ") == 2
