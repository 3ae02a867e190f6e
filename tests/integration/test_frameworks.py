"""Real Django, FastAPI, Litestar, Quart and Starlette apps served by Pounce.

The matrix: every framework's app (tests/integration/framework_apps.py) over
HTTP/1.1, HTTP/2 with prior knowledge (h2c) and HTTP/2 over TLS (ALPN, a
trustme CA), driven by httpx (``http2=True``) and, for WebSocket, by the
``websockets`` client over HTTP/1.1 and an RFC 8441 client over HTTP/2:
routing, JSON in and out, a 4 MiB streamed upload, a streamed response, an
exception → 500, lifespan startup, state and shutdown, WebSocket echo.
README.md's framework table is rendered from the same definitions
(`matrix_table`) and checked here, so it says only what these tests prove.

Then what is particular to FastAPI and Starlette (validation, exception
handlers, background tasks, ``root_path``), over each protocol too.
"""

from __future__ import annotations

import logging
import re
import socket
import threading
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h2.config
import h2.connection
import h2.errors
import h2.events
import httpx
import pytest
from websockets.sync.client import connect
from wsproto.events import TextMessage

from pounce.testing import TestServer
from tests.integration.framework_apps import SITES, Site, fastapi_site, starlette_site
from tests.integration.h2ws import H2WebSocket

TIMEOUT = 5.0  # seconds for every network wait
README = Path(__file__).resolve().parents[2] / "README.md"

PROTOCOLS: dict[str, dict[str, Any]] = {
    "http1": {},  # HTTP/1.1, cleartext
    "h2c": {"http2": True},  # HTTP/2 with prior knowledge, cleartext
    "h2": {"http2": True, "tls": True},  # HTTP/2 over TLS, negotiated by ALPN
}
HTTP_VERSION = {"http1": "HTTP/1.1", "h2c": "HTTP/2", "h2": "HTTP/2"}
UPLOAD = 4 * 1024 * 1024  # bytes: several MiB, sent in 64 KiB pieces


@dataclass(frozen=True)
class Served:
    site: Site
    protocol: str
    server: TestServer


def start(site: Site, protocol: str, **options: Any) -> TestServer:
    return TestServer(site.app, timeout=TIMEOUT, **PROTOCOLS[protocol], **options)


MATRIX = [(framework, protocol) for framework in SITES for protocol in PROTOCOLS]


@pytest.fixture(scope="module", params=MATRIX, ids=[f"{f}-{p}" for f, p in MATRIX])
def served(request: pytest.FixtureRequest) -> Iterator[Served]:
    framework, protocol = request.param
    site = SITES[framework]()
    # The event bus asks at the serve's start (then once a second) whether an access line
    # would be written: a test right after the start must find the logger as `logs` sets it.
    access = logging.getLogger("pounce.access")
    level, disabled = access.level, access.disabled
    access.setLevel(logging.INFO)
    access.disabled = False
    try:
        with start(site, protocol) as server:
            yield Served(site, protocol, server)
    finally:
        access.setLevel(level)
        access.disabled = disabled


@pytest.fixture
def client(served: Served) -> Iterator[httpx.Client]:
    with served.server.client() as client:
        yield client


@pytest.fixture
def logs(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> pytest.LogCaptureFixture:
    """Pounce's records at INFO and up, whatever an earlier in-process CLI run configured
    (its handler turns the ``pounce`` logger's propagation off)."""
    monkeypatch.setattr(logging.getLogger("pounce"), "propagate", True)
    monkeypatch.setattr(logging.getLogger("pounce.access"), "disabled", False)
    for name in ("pounce", "pounce.error", "pounce.access"):
        caplog.set_level(logging.INFO, logger=name)
    return caplog


# -- the matrix: every framework × every protocol ---------------------------------------------


def test_routing_path_and_query_params(served: Served, client: httpx.Client) -> None:
    response = client.get("/items/42", params={"q": "blue cheese"})
    assert response.http_version == HTTP_VERSION[served.protocol]
    assert response.status_code == 200
    assert response.json() == {"item_id": 42, "q": "blue cheese"}


def test_unknown_route_is_a_404(client: httpx.Client) -> None:
    assert client.get("/no/such/route").status_code == 404


def test_json_in_and_out(client: httpx.Client) -> None:
    sent = {"a": [1, 2.5, "three"], "b": None, "c": {"nested": True}, "é": "ü"}
    response = client.post("/echo", json=sent)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"got": sent}


def test_upload_of_several_mib_streamed(client: httpx.Client) -> None:
    # an iterator: chunked on HTTP/1.1, DATA frames under flow control on HTTP/2
    pieces = (bytes([i % 251]) * 65536 for i in range(UPLOAD // 65536))
    response = client.post("/count", content=pieces)
    assert (response.status_code, response.text) == (200, str(UPLOAD))


def test_streaming_response(served: Served, client: httpx.Client) -> None:
    with client.stream("GET", "/stream") as response:
        assert response.status_code == 200
        lines = list(response.iter_lines())
        if served.protocol == "http1":
            assert response.headers["transfer-encoding"] == "chunked"
    assert lines == [f"line {i}" for i in range(5)]


def test_unhandled_exception_is_a_500_and_serving_goes_on(client: httpx.Client) -> None:
    assert client.get("/crash").status_code == 500
    assert client.get("/items/1").status_code == 200


def test_lifespan_state_reaches_requests(served: Served, client: httpx.Client) -> None:
    if not served.site.lifespan:
        pytest.skip(f"{served.site.framework} has no lifespan protocol")
    assert served.site.events == ["startup"]
    assert client.get("/state").json() == {"greeting": "hello from lifespan"}


def test_multipart_upload_of_several_mib(client: httpx.Client) -> None:
    data = bytes(range(256)) * (3 * 1024 * 1024 // 256)
    files = {"file": ("big.bin", data, "application/octet-stream")}
    response = client.post("/upload", files=files)
    assert response.status_code == 200
    assert response.json() == {"name": "big.bin", "size": len(data)}


def test_server_sent_events_arrive_as_they_are_sent(client: httpx.Client) -> None:
    key = uuid.uuid4().hex
    with client.stream("GET", "/events", params={"key": key}) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        data = (line for line in response.iter_lines() if line.startswith("data:"))
        assert next(data) == "data: 0"  # the app sends the next only once it is acknowledged
        assert client.post("/ack", params={"key": key}).status_code == 200
        assert list(data) == ["data: 1"]


def leave_an_http2_stream_early(server: TestServer, path: str) -> bytes:
    """GET `path` over HTTP/2, take the first DATA, then RST_STREAM(CANCEL): what a
    browser does when the user navigates away (httpx never resets a stream it closes)."""
    raw = socket.create_connection((server.host, server.port), timeout=TIMEOUT)
    context = server.ssl_context()
    if context is not None:
        context.set_alpn_protocols(["h2"])
    sock = context.wrap_socket(raw, server_hostname="localhost") if context else raw
    with sock:
        conn = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True))
        conn.initiate_connection()
        sid = conn.get_next_available_stream_id()
        scheme = "https" if context else "http"
        head = [
            (":method", "GET"),
            (":scheme", scheme),
            (":authority", "localhost"),
            (":path", path),
        ]
        conn.send_headers(sid, head, end_stream=True)
        sock.sendall(conn.data_to_send())
        while True:
            data = sock.recv(65536)
            assert data, "the server closed the connection"
            for event in conn.receive_data(data):
                if isinstance(event, h2.events.DataReceived) and event.stream_id == sid:
                    conn.reset_stream(sid, h2.errors.ErrorCodes.CANCEL)
                    sock.sendall(conn.data_to_send())
                    return bytes(event.data or b"")
            sock.sendall(conn.data_to_send())


def chain(error: BaseException | None) -> list[str]:
    found = []
    while error is not None:
        found.append(repr(error))
        error = error.__cause__ or error.__context__
    return found


def test_client_leaving_a_stream_early(
    served: Served, client: httpx.Client, logs: pytest.LogCaptureFixture
) -> None:
    if served.protocol == "http1":
        with client.stream("GET", "/forever") as response:  # closed mid-body: the connection
            first = next(response.iter_bytes())
    else:
        first = leave_an_http2_stream_early(served.server, "/forever")
    assert first.startswith(b"tick")

    def ended() -> bool:  # the access log line comes when the app's call ends
        return any(r.name == "pounce.access" and "/forever" in r.getMessage() for r in logs.records)

    for _ in range(int(TIMEOUT / 0.05)):
        if ended():
            break
        threading.Event().wait(0.05)
    assert ended(), "the app never noticed that the client left"
    assert client.get("/items/1").status_code == 200  # and serving goes on
    errors = [r for r in logs.records if r.name.startswith("pounce") and r.levelno >= 40]
    assert not errors, [(r.getMessage(), r.exc_info and chain(r.exc_info[1])) for r in errors]


def test_background_task_runs_after_the_response(served: Served, client: httpx.Client) -> None:
    if not served.site.background:
        pytest.skip(f"{served.site.framework} has no background tasks")
    served.site.background_done.clear()
    assert client.get("/background").text == "later"
    assert served.site.background_done.wait(TIMEOUT)


MESSAGES = ["hello", "é" * 5000, "{}"]


def test_websocket_echo(served: Served) -> None:
    """ws:// or wss:// over HTTP/1.1 (websockets); over HTTP/2 also RFC 8441 (h2ws)."""
    context = served.server.ssl_context()
    if served.protocol != "h2c":  # the TLS server offers http/1.1 too: websockets asks for it
        url = served.server.ws_url + "/ws"
        with connect(url, ssl=context, open_timeout=TIMEOUT) as ws:
            for message in MESSAGES:
                ws.send(message)
                assert ws.recv(timeout=TIMEOUT) == message
    if served.protocol == "http1":
        return
    if context is not None:
        context.set_alpn_protocols(["h2"])
    with H2WebSocket(served.server.port, tls=context) as h2:  # extended CONNECT
        sid, status, _ = h2.open(b"/ws")
        assert status == 200
        for message in MESSAGES:
            h2.send_text(sid, message)
            assert h2.receive(sid) == TextMessage(data=message)


@pytest.mark.parametrize("framework", list(SITES))
def test_lifespan_runs_around_serving(framework: str, logs: pytest.LogCaptureFixture) -> None:
    site = SITES[framework]()
    with start(site, "http1") as server:
        assert site.events == (["startup"] if site.lifespan else [])
        assert httpx.get(server.url + "/items/1", timeout=TIMEOUT).status_code == 200
    if site.lifespan:
        assert site.events == ["startup", "shutdown"]
    else:  # Django raises on the lifespan scope; `--lifespan auto` serves on, with one line
        assert site.events == []
        assert "ASGI 'lifespan' protocol appears unsupported." in logs.messages
    assert not [r for r in logs.records if r.levelno >= logging.ERROR]


@pytest.mark.parametrize("served", [("django", p) for p in PROTOCOLS], indirect=True)
def test_django_sync_view_runs_off_the_event_loop(client: httpx.Client) -> None:
    assert client.get("/sync").json() == {"sync": True, "on_event_loop": False}


# -- README.md's table ---------------------------------------------------------------------------

BEGIN = "<!-- framework matrix: generated from tests/integration/test_frameworks.py -->"
END = "<!-- end of framework matrix -->"


def matrix_table() -> str:
    """What the matrix above proves, one row per framework."""
    rows = [
        "| framework | HTTP/1.1 | HTTP/2 (h2c and TLS) | WebSocket (HTTP/1.1 and HTTP/2) "
        "| lifespan | background tasks | client leaves a stream |",
        "|---|---|---|---|---|---|---|",
    ]
    for make in SITES.values():
        site = make()
        websocket = f"✓ ({site.websocket})" if site.websocket else "✓"
        lifespan = "✓ startup, state, shutdown" if site.lifespan else "— (none in the framework)"
        background = "✓" if site.background else "— (none in the framework)"
        leaves = "✓ nothing logged"
        cells = ["✓", "✓", websocket, lifespan, background, leaves]
        rows.append(f"| {site.framework} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def test_readme_table_says_what_the_matrix_proves() -> None:
    text = README.read_text()
    found = re.search(re.escape(BEGIN) + r"\n(.*?)\n" + re.escape(END), text, re.S)
    assert found, f"README.md lacks the framework table between {BEGIN!r} and {END!r}"
    assert found[1].strip() == matrix_table(), f"README.md's table should be:\n{matrix_table()}"


# -- FastAPI in particular ---------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(PROTOCOLS))
def fastapi_server(request: pytest.FixtureRequest) -> Iterator[TestServer]:
    with start(fastapi_site(), request.param, lifespan="on") as server:
        yield server


@pytest.fixture
def api(fastapi_server: TestServer) -> Iterator[httpx.Client]:
    with fastapi_server.client() as client:
        yield client


def test_fastapi_path_param_validation(api: httpx.Client) -> None:
    response = api.get("/items/not-a-number")
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["path", "item_id"]


def test_fastapi_json_body(api: httpx.Client) -> None:
    response = api.post("/items", json={"name": "Widget", "price": 2.5, "tags": ["a", "b"]})
    assert response.status_code == 201
    assert response.headers["content-type"] == "application/json"
    assert response.json() == {"name": "Widget", "double": 5.0, "tags": ["a", "b"]}


def test_fastapi_large_json_body(api: httpx.Client) -> None:
    tags = [f"tag-{i}" for i in range(20000)]  # a few hundred KiB, read in many chunks
    response = api.post("/items", json={"name": "Big", "price": 1, "tags": tags})
    assert response.status_code == 201
    assert len(response.json()["tags"]) == 20000


def test_fastapi_invalid_json_body(api: httpx.Client) -> None:
    response = api.post(
        "/items", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422


def test_fastapi_custom_exception_handler(api: httpx.Client) -> None:
    response = api.get("/teapot")
    assert response.status_code == 418
    assert response.json() == {"detail": "teapot: short and stout"}


def test_fastapi_not_found(api: httpx.Client) -> None:
    response = api.get("/no/such/route")
    assert response.status_code == 404
    assert response.json() == {"detail": "Not Found"}


def test_fastapi_method_not_allowed(api: httpx.Client) -> None:
    assert api.delete("/items/1").status_code == 405


def test_fastapi_openapi_schema(api: httpx.Client) -> None:
    schema = api.get("/openapi.json").json()
    assert "/items/{item_id}" in schema["paths"]


@pytest.mark.parametrize("protocol", list(PROTOCOLS))
def test_fastapi_behind_a_root_path(protocol: str) -> None:
    # The proxy strips /api; the app still routes, and builds URLs with the prefix.
    with (
        start(fastapi_site(), protocol, root_path="/api") as ts,
        ts.client() as client,
    ):
        where = client.get("/where").json()
        assert client.get("/items/7").json() == {"item_id": 7, "q": None}
        openapi = client.get("/openapi.json").json()
    assert where == {"url": f"{ts.url}/api/where", "root_path": "/api"}
    assert openapi["servers"] == [{"url": "/api"}]


# -- Starlette in particular -------------------------------------------------------------------


@pytest.fixture(scope="module", params=list(PROTOCOLS))
def starlette_served(request: pytest.FixtureRequest) -> Iterator[tuple[Site, TestServer]]:
    site = starlette_site()
    with start(site, request.param, lifespan="on") as server:
        yield site, server


@pytest.fixture
def web(starlette_served: tuple[Site, TestServer]) -> Iterator[httpx.Client]:
    with starlette_served[1].client() as client:
        yield client


def test_starlette_routing_and_path_params(web: httpx.Client) -> None:
    assert web.get("/").text == "home"
    assert web.get("/users/caf%C3%A9").text == "user café"


def test_starlette_head_request(web: httpx.Client) -> None:
    response = web.head("/")
    assert response.status_code == 200
    assert response.headers["content-length"] == "4"
    assert response.content == b""
    assert web.get("/").text == "home"


def test_starlette_custom_exception_handler(web: httpx.Client) -> None:
    response = web.get("/teapot")
    assert (response.status_code, response.text) == (418, "handled starlette")


def test_starlette_not_found(web: httpx.Client) -> None:
    response = web.get("/missing")
    assert (response.status_code, response.text) == (404, "Not Found")


def test_starlette_mount_sees_root_path(web: httpx.Client) -> None:
    assert web.get("/sub/where").json() == {"path": "/sub/where", "root_path": "/sub"}
