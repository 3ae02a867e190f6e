"""Development error pages (`.debug()`) over real sockets, HTTP/1.1 and HTTP/2, with httpx."""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from pounce import BuildError, Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.layers.debug.page import failures, render_html, wants_html
from pounce.presets import StandardOptions, standard
from pounce.testing import TestServer
from tests.integration.test_asgi_http import logged

HOSTILE = "<script>alert('x')</script>"
SECRETS = {
    "cookie": "session=cookie-secret",
    "authorization": "Bearer auth-secret",
    "x-api-key": "key-secret",
    "x-csrf-token": "csrf-secret",
}


async def failing_app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    if scope["path"] == "/after-start":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        raise RuntimeError("failed between the head and the body")
    if scope["path"] == "/streaming":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"partial", "more_body": True})
        raise RuntimeError("failed in the middle of the body")
    if scope["path"] == "/chained":
        try:
            {}["missing"]
        except KeyError as exc:
            raise ValueError("wrapped") from exc
    raise LookupError(f"no such thing: {HOSTILE}")  # the failing line


@pytest.fixture(params=["http/1.1", "h2"])
def server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    with TestServer(failing_app, debug=True, http2=request.param == "h2") as ts:
        yield ts


def test_a_browser_gets_an_html_page(server: TestServer) -> None:
    headers = {"accept": "text/html,application/xhtml+xml;q=0.9", "x-note": HOSTILE, **SECRETS}
    with server.client() as client:
        response = client.get("/broken?access_token=query-secret&page=2", headers=headers)
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    assert "default-src 'none'" in response.headers["content-security-policy"]
    assert response.headers["cache-control"] == "no-store"
    page = response.text
    assert "LookupError: no such thing:" in page
    assert "raise LookupError(f&quot;no such thing: {HOSTILE}&quot;)  # the failing line" in page
    assert 'class="line failing"' in page
    assert "GET /broken?access_token=[masked]&amp;page=2 HTTP/" in page
    # Attacker-influenced text (the message, a header) is escaped, never markup.
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    for name, value in SECRETS.items():
        assert f"<td>{name}</td><td>[masked]</td>" in page
        assert value not in page
    assert "query-secret" not in page


def test_other_clients_get_plain_text(server: TestServer) -> None:
    with server.client() as client:
        response = client.get("/broken", headers={"accept": "application/json", **SECRETS})
    assert response.status_code == 500
    assert response.headers["content-type"] == "text/plain; charset=utf-8"
    text = response.text
    assert "Traceback (most recent call last):" in text
    assert f"LookupError: no such thing: {HOSTILE}" in text
    assert 'raise LookupError(f"no such thing: {HOSTILE}")  # the failing line' in text
    assert "  authorization: [masked]" in text
    assert not any(value in text for value in SECRETS.values())


def test_the_exception_chain_is_shown(server: TestServer) -> None:
    with server.client() as client:
        text = client.get("/chained").text
    assert text.index("KeyError: 'missing'") < text.index("ValueError: wrapped")
    assert "The above exception was the direct cause of the following exception:" in text


def test_a_failure_between_head_and_body_still_gets_the_page(server: TestServer) -> None:
    with server.client() as client:
        response = client.get("/after-start")
    assert response.status_code == 500
    assert "RuntimeError: failed between the head and the body" in response.text


def test_a_failure_after_the_body_began_is_not_a_page(server: TestServer) -> None:
    seen = b""
    with (
        server.client() as client,
        pytest.raises(httpx.HTTPError),  # reset, or closed early
        client.stream("GET", "/streaming") as response,
    ):
        assert response.status_code == 200
        for chunk in response.iter_bytes():
            seen += chunk
    assert b"Traceback" not in seen


def test_the_server_still_logs_the_exception_once() -> None:
    with logged("pounce.error", logging.ERROR) as log, TestServer(failing_app, debug=True) as ts:
        with ts.client() as client:
            assert client.get("/broken").status_code == 500
        record = log.wait_for(lambda r: r.exc_info is not None)
    assert record.exc_info is not None and record.exc_info[0] is LookupError
    assert sum(r.exc_info is not None for r in log.records) == 1


def test_without_debug_the_500_stays_opaque() -> None:
    with TestServer(failing_app) as ts, ts.client() as client:
        response = client.get("/broken", headers={"accept": "text/html"})
    assert response.status_code == 500
    assert response.text == "Internal Server Error\n"
    assert response.headers["content-type"] == "text/plain; charset=utf-8"


def test_debug_is_off_by_default() -> None:
    assert "debug: error pages" not in standard().asgi(failing_app).describe()
    debugging = standard(StandardOptions(debug=True)).asgi(failing_app)
    assert "debug: error pages" in debugging.describe()


# -- who may see it: loopback only unless forced --------------------------------------------


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "192.0.2.7", "example.com"])
def test_a_listener_others_can_reach_is_refused(host: str) -> None:
    with pytest.raises(BuildError, match=r"\.debug\(\).*not a loopback") as caught:
        Server.builder().bind(host, 8000).h1().debug().asgi(failing_app)
    assert "--debug-allow-remote" in str(caught.value.hint)
    with pytest.raises(BuildError, match="not a loopback"):
        standard(StandardOptions(host=host, debug=True)).asgi(failing_app)


def test_forcing_allows_any_listener() -> None:
    built = Server.builder().bind("0.0.0.0", 8000).h1().debug(allow_remote=True).asgi(failing_app)
    assert "debug: error pages with tracebacks (any listener)" in built.describe()
    options = StandardOptions(host="0.0.0.0", debug=True, debug_allow_remote=True)
    standard(options).asgi(failing_app)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.8.9.10"])
def test_loopback_listeners_are_allowed(host: str) -> None:
    Server.builder().bind(host, 8000).h1().debug().asgi(failing_app)


def test_unix_sockets_and_inherited_sockets_are_checked() -> None:
    Server.builder().bind_unix("/tmp/pounce-debug.sock").h1().debug().asgi(failing_app)
    with socket.socket() as local, socket.socket() as public:
        local.bind(("127.0.0.1", 0))
        public.bind(("0.0.0.0", 0))
        Server.builder().bind_fd(local.fileno()).h1().debug().asgi(failing_app)
        with pytest.raises(BuildError, match=r"fd .* not a loopback"):
            Server.builder().bind_fd(public.fileno()).h1().debug().asgi(failing_app)


def test_allow_remote_alone_is_a_mistake() -> None:
    with pytest.raises(BuildError, match="debug_allow_remote needs"):
        standard(StandardOptions(debug_allow_remote=True))


# -- the page itself ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (b"text/html", True),
        (b"application/json, TEXT/HTML;q=0.5", True),
        (b"text/html;q=0, text/plain", False),
        (b"*/*", False),
        (None, False),
    ],
)
def test_html_is_for_clients_that_accept_it(accept: bytes | None, html: bool) -> None:
    headers = [] if accept is None else [(b"accept", accept)]
    assert wants_html({"headers": headers}) is html


def test_a_message_that_cannot_be_printed_still_renders() -> None:
    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    try:
        raise Unprintable()
    except Unprintable as exc:
        scope = {"method": "GET", "path": "/", "http_version": "1.1", "headers": []}
        page = render_html(exc, scope).decode()
        assert "Unprintable" in page
        assert [f.title.split(":")[0] for f in failures(exc)][-1].endswith("Unprintable")


# -- frameworks that answer their own 500 and re-raise ---------------------------------------


def starlette_app() -> Any:
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    async def broken(request: Any) -> Any:
        raise ZeroDivisionError("starlette view failed")  # the view's failing line

    async def own_500(request: Any) -> Any:
        return PlainTextResponse("the app's own 500", status_code=500)

    return Starlette(routes=[Route("/broken", broken), Route("/own-500", own_500)])


def test_a_framework_500_that_re_raises_becomes_the_page() -> None:
    with TestServer(starlette_app(), debug=True) as ts, ts.client() as client:
        response = client.get("/broken", headers={"accept": "text/html"})
        assert response.status_code == 500
        assert "ZeroDivisionError: starlette view failed" in response.text
        assert "# the view&#x27;s failing line" in response.text
        own = client.get("/own-500", headers={"accept": "text/html"})
        assert (own.status_code, own.text) == (500, "the app's own 500")
