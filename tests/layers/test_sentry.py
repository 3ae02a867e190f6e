"""`.sentry()` over real sockets, with the SDK's transport interface capturing envelopes.

`Captured` is a `sentry_sdk.transport.Transport` that keeps every envelope
the client hands it instead of sending it: no network. The SDK calls it
from ``capture_event`` itself, so by the time a request has been answered
its report, if any, is already here.
"""

from __future__ import annotations

import json
import socket
import threading
from typing import Any

import pytest

pytest.importorskip("sentry_sdk")

import sentry_sdk
from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from pounce import BuildError, Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.presets import FRONT_END, StandardOptions, standard
from pounce.settings import from_environ
from pounce.testing import TestServer
from tests.layers.helpers import TIMEOUT

DSN = "https://public@o0.ingest.sentry.io/1"
SECRETS = {
    "cookie": "session=cookie-secret",
    "authorization": "Bearer auth-secret",
    "x-auth-token": "token-secret",
}


class Captured(Transport):
    """Keeps envelopes; records that the worker's client closed it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.envelopes: list[Envelope] = []
        self.killed = threading.Event()

    def capture_envelope(self, envelope: Envelope) -> None:
        self.envelopes.append(envelope)

    def flush(self, timeout: float, callback: Any = None) -> None:
        pass

    def kill(self) -> None:
        self.killed.set()

    def events(self) -> list[dict[str, Any]]:
        return [e.get_event() for e in self.envelopes if e.get_event() is not None]  # type: ignore[misc]


class App:
    """/boom raises; /ok answers; /wait-for-leave raises once the client has left."""

    def __init__(self) -> None:
        self.finished = threading.Event()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        try:
            if scope["path"] == "/boom":
                raise ValueError(f"broken {scope['path']} {scope['query_string'][:3].decode()}")
            if scope["path"] == "/wait-for-leave":
                while (await receive())["type"] != "http.disconnect":
                    pass
                raise RuntimeError("the client went away")  # what a framework raises then
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"ok"})
        finally:
            self.finished.set()


@pytest.fixture
def transport() -> Captured:
    return Captured()


def serve(app: Any, transport: Captured, **options: Any) -> TestServer:
    built = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .h2()
        .sentry(dsn=DSN, environment="test", client_options={"transport": transport}, **options)
        .asgi(app)
    )
    return TestServer(built)


@pytest.mark.parametrize("http2", [False, True])
def test_an_app_exception_is_reported_once_with_the_request(
    transport: Captured, http2: bool
) -> None:
    with serve(App(), transport) as ts, ts.client(http2=http2) as client:
        response = client.get("/boom?api_key=query-secret&x=1", headers=SECRETS)
        assert response.status_code == 500
        assert response.text == "Internal Server Error\n"  # the server's answer, unchanged
        assert client.get("/ok").status_code == 200
    [event] = transport.events()
    [error] = event["exception"]["values"]
    assert error["type"] == "ValueError"
    assert error["mechanism"] == {"type": "pounce", "handled": False}
    assert error["stacktrace"]["frames"][-1]["context_line"].strip().startswith("raise ValueError")
    request = event["request"]
    assert request["method"] == "GET"
    assert request["url"] == f"http://127.0.0.1:{ts.port}/boom"
    assert request["query_string"] == "api_key=[masked]&x=1"
    for name in SECRETS:  # masked by Pounce; the SDK's own scrubber also knows some
        assert request["headers"][name] in ("[masked]", "[Filtered]")
    assert request["headers"]["x-auth-token"] == "[masked]"
    assert event["transaction"] == "/boom"
    assert event["environment"] == "test"
    dumped = json.dumps(event, default=str)
    assert not any(value in dumped for value in [*SECRETS.values(), "query-secret"])


def test_each_exception_is_one_event(transport: Captured) -> None:
    with serve(App(), transport) as ts, ts.client() as client:
        for n in range(3):
            assert client.get(f"/boom?n={n}").status_code == 500
    messages = [e["exception"]["values"][0]["value"] for e in transport.events()]
    assert messages == ["broken /boom n=0", "broken /boom n=1", "broken /boom n=2"]


def test_a_client_that_left_is_not_an_error(transport: Captured) -> None:
    app = App()
    with serve(app, transport) as ts:
        with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"GET /wait-for-leave HTTP/1.1\r\nhost: test\r\n\r\n")
        assert app.finished.wait(TIMEOUT)
        assert transport.events() == []
        with ts.client() as client:  # the same server still reports real failures
            assert client.get("/boom").status_code == 500
    assert len(transport.events()) == 1


def test_starlette_client_disconnect_is_not_reported(transport: Captured) -> None:
    finished = threading.Event()
    raised: list[BaseException] = []

    async def upload(request: Request) -> PlainTextResponse:
        try:
            body = await request.body()  # raises ClientDisconnect: the client left mid-body
        except BaseException as exc:
            raised.append(exc)
            raise
        finally:
            finished.set()
        return PlainTextResponse(str(len(body)))

    app = Starlette(routes=[Route("/upload", upload, methods=["POST"])])
    with serve(app, transport) as ts:
        with socket.create_connection(("127.0.0.1", ts.port), timeout=TIMEOUT) as sock:
            sock.sendall(b"POST /upload HTTP/1.1\r\nhost: test\r\ncontent-length: 100\r\n\r\n12345")
        assert finished.wait(TIMEOUT)
    assert [type(exc).__name__ for exc in raised] == ["ClientDisconnect"]
    assert transport.events() == []


def test_each_worker_closes_its_client_and_nothing_global_is_touched(
    transport: Captured,
) -> None:
    with serve(App(), transport) as ts, ts.client() as client:
        client.get("/boom")
    assert transport.killed.wait(TIMEOUT)  # closed with the serve, queue flushed
    assert not sentry_sdk.get_client().is_active()  # no sentry_sdk.init(), no integrations


# -- building ------------------------------------------------------------------------------------


def test_a_bad_dsn_is_refused_at_build() -> None:
    with pytest.raises(BuildError, match=r"\.sentry\(\): bad DSN"):
        Server.builder().sentry(dsn="not a dsn")


def test_no_dsn_is_refused_at_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SENTRY_DSN", raising=False)
    with pytest.raises(BuildError, match="no DSN") as caught:
        Server.builder().sentry()
    assert "SENTRY_DSN" in str(caught.value.hint)
    monkeypatch.setenv("SENTRY_DSN", DSN)
    Server.builder().sentry()


def test_the_standard_stack_turns_it_on_with_a_dsn_from_the_environment() -> None:
    found, warnings = from_environ(FRONT_END, {"SENTRY_DSN": DSN})
    assert found["sentry_dsn"].value == DSN and warnings == []
    app = App()
    assert "sentry: report" not in standard().asgi(app).describe()
    described = standard(StandardOptions(sentry_dsn=DSN, debug=True)).asgi(app).describe()
    assert described.index("sentry: report") < described.index("debug: error pages")


def test_sentry_settings_without_a_dsn_are_a_mistake() -> None:
    with pytest.raises(BuildError, match="need a DSN"):
        standard(StandardOptions(sentry_environment="staging"))


def test_it_reports_what_the_debug_page_showed(transport: Captured) -> None:
    built = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .sentry(dsn=DSN, client_options={"transport": transport})
        .debug()
        .asgi(App())
    )
    with TestServer(built) as ts, ts.client() as client:
        assert "ValueError: broken" in client.get("/boom").text
    assert len(transport.events()) == 1


def test_a_websocket_failure_is_reported_and_a_websocket_that_left_is_not(
    transport: Captured,
) -> None:
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    left = threading.Event()

    async def ws_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "websocket":
            return
        await receive()  # websocket.connect
        await send({"type": "websocket.accept"})
        message = await receive()
        if message["type"] == "websocket.disconnect":
            left.set()
            raise RuntimeError("the client went away")
        raise KeyError(message.get("text"))

    built = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .websocket()
        .sentry(dsn=DSN, client_options={"transport": transport})
        .asgi(ws_app)
    )
    with TestServer(built) as ts:
        with connect(f"{ts.ws_url}/chat", open_timeout=TIMEOUT) as ws:
            pass  # leaves at once
        assert left.wait(TIMEOUT)
        with connect(f"{ts.ws_url}/chat", open_timeout=TIMEOUT) as ws:
            ws.send("boom")
            with pytest.raises(ConnectionClosed):
                ws.recv(timeout=TIMEOUT)
    [event] = transport.events()
    assert event["exception"]["values"][0]["type"] == "KeyError"
    assert event["request"]["method"] == "GET"
    assert event["request"]["url"] == f"ws://127.0.0.1:{ts.port}/chat"
