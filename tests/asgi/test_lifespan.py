"""ASGI lifespan: `Lifespan` driven directly, then through a real server.

Modes follow Uvicorn: ``auto`` treats an app that raises before sending any
lifespan message as not speaking lifespan, ``on`` treats it as a failure,
``off`` never calls the app with a lifespan scope. A ``.failed`` message is a
failure in both ``auto`` and ``on``.
"""

from __future__ import annotations

import logging
from typing import Any

import httpx
import pytest

from pounce import Server
from pounce.asgi.lifespan import Lifespan, LifespanMode
from pounce.asgi.types import Message, Receive, Scope, Send
from pounce.errors import LifespanError
from pounce.testing import TestServer

TIMEOUT = 5.0  # seconds for every network wait


class LifespanApp:
    """A raw ASGI app whose lifespan behaviour is configurable; records what it sees."""

    def __init__(
        self,
        *,
        startup: str = "complete",
        shutdown: str = "complete",
        message: str | None = None,
        state: dict[str, Any] | None = None,
    ) -> None:
        self.startup = startup  # complete | failed | raise | raise_after_failed | wrong
        self.shutdown = shutdown  # complete | failed | raise
        self.message = message
        self.state = state or {}
        self.seen: list[str] = []
        self.lifespan_scope: Scope | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(scope, receive, send)
        else:
            await self._http(scope, receive, send)

    async def _lifespan(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.lifespan_scope = scope
        message = await receive()
        self.seen.append(message["type"])
        await self._answer("startup", self.startup, send, scope)
        message = await receive()
        self.seen.append(message["type"])
        await self._answer("shutdown", self.shutdown, send, scope)

    async def _answer(self, phase: str, how: str, send: Send, scope: Scope) -> None:
        if how == "raise":
            raise RuntimeError(f"{phase} exploded")
        if how == "wrong":
            await send({"type": "lifespan.shutdown.complete"})
            return
        if how.startswith("failed") or how == "raise_after_failed":
            failed: Message = {"type": f"lifespan.{phase}.failed"}
            if self.message is not None:
                failed["message"] = self.message
            await send(failed)
            if how == "raise_after_failed":  # what Starlette's router does
                raise RuntimeError(f"{phase} exploded after reporting")
            return
        if phase == "startup":
            scope["state"].update(self.state)
        await send({"type": f"lifespan.{phase}.complete"})

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = scope.get("state")
        body = repr(sorted(state.items()) if state is not None else None).encode()
        if scope["path"] == "/mutate" and state is not None:
            state["counter"] = 99
            state["request_only"] = True
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": body})


async def http_only(scope: Scope, receive: Receive, send: Send) -> None:
    """An app that does not speak lifespan (as many small apps do)."""
    assert scope["type"] == "http", "lifespan not supported"
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def serving(app: Any, mode: LifespanMode) -> TestServer:
    server = Server.builder().bind("127.0.0.1", 0).h1().lifespan(mode).asgi(app)
    return TestServer(server, timeout=TIMEOUT)


# -- Lifespan, driven directly ---------------------------------------------------------------


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_and_shutdown_complete(mode: LifespanMode) -> None:
    app = LifespanApp(state={"db": "pool"})
    lifespan = Lifespan(app, mode)
    await lifespan.startup()
    assert lifespan.supported
    assert lifespan.state == {"db": "pool"}
    await lifespan.shutdown()
    assert app.seen == ["lifespan.startup", "lifespan.shutdown"]
    scope = app.lifespan_scope
    assert scope is not None
    assert scope["type"] == "lifespan"
    assert scope["asgi"]["version"] == "3.0"
    assert scope["state"] is lifespan.state


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_failed_carries_the_message(mode: LifespanMode) -> None:
    lifespan = Lifespan(LifespanApp(startup="failed", message="no database"), mode)
    with pytest.raises(LifespanError, match="startup failed: no database"):
        await lifespan.startup()


async def test_startup_failed_without_message() -> None:
    lifespan = Lifespan(LifespanApp(startup="failed"), "on")
    with pytest.raises(LifespanError, match="no message given"):
        await lifespan.startup()


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_startup_failed_then_raise_is_reported_once(
    mode: LifespanMode, caplog: pytest.LogCaptureFixture
) -> None:
    lifespan = Lifespan(LifespanApp(startup="raise_after_failed", message="bad config"), mode)
    with (
        caplog.at_level(logging.INFO, logger="pounce.error"),
        pytest.raises(LifespanError, match="bad config"),
    ):
        await lifespan.startup()
    # The failure is the LifespanError; no second report as a traceback.
    assert [r for r in caplog.records if r.name == "pounce.error" and r.exc_info] == []


async def test_shutdown_failed_carries_the_message() -> None:
    lifespan = Lifespan(LifespanApp(shutdown="failed", message="flush failed"), "on")
    await lifespan.startup()
    with pytest.raises(LifespanError, match="shutdown failed: flush failed"):
        await lifespan.shutdown()


async def test_auto_treats_an_exception_as_unsupported(caplog: pytest.LogCaptureFixture) -> None:
    lifespan = Lifespan(LifespanApp(startup="raise"), "auto")
    with caplog.at_level(logging.INFO, logger="pounce.error"):
        await lifespan.startup()
    assert not lifespan.supported
    records = [r for r in caplog.records if r.name == "pounce.error"]
    assert [r.levelno for r in records] == [logging.INFO]
    assert "unsupported" in records[0].getMessage()
    await lifespan.shutdown()  # nothing to shut down, and no error


async def test_auto_treats_an_http_only_app_as_unsupported() -> None:
    lifespan = Lifespan(http_only, "auto")
    await lifespan.startup()
    assert not lifespan.supported
    await lifespan.shutdown()


async def test_on_treats_an_exception_as_failure(caplog: pytest.LogCaptureFixture) -> None:
    lifespan = Lifespan(LifespanApp(startup="raise"), "on")
    with (
        caplog.at_level(logging.ERROR, logger="pounce.error"),
        pytest.raises(LifespanError, match="startup exploded") as raised,
    ):
        await lifespan.startup()
    assert isinstance(raised.value.__cause__, RuntimeError)
    (record,) = [r for r in caplog.records if r.name == "pounce.error"]
    assert record.exc_info is not None


async def test_exception_during_shutdown_is_a_failure_in_auto_mode_too() -> None:
    # Messages were exchanged, so the app does speak lifespan: this is a real failure.
    lifespan = Lifespan(LifespanApp(shutdown="raise"), "auto")
    await lifespan.startup()
    with pytest.raises(LifespanError, match="shutdown exploded"):
        await lifespan.shutdown()


async def test_unexpected_message_is_a_failure() -> None:
    lifespan = Lifespan(LifespanApp(startup="wrong"), "auto")
    with pytest.raises(LifespanError, match=r"unexpected message 'lifespan\.shutdown\.complete'"):
        await lifespan.startup()


@pytest.mark.parametrize("mode", ["auto", "on"])
async def test_app_that_returns_at_once_is_tolerated(mode: LifespanMode) -> None:
    async def returns(scope: Scope, receive: Receive, send: Send) -> None:
        return

    lifespan = Lifespan(returns, mode)
    await lifespan.startup()
    await lifespan.shutdown()


async def test_off_never_calls_the_app() -> None:
    app = LifespanApp()
    lifespan = Lifespan(app, "off")
    await lifespan.startup()
    await lifespan.shutdown()
    assert not lifespan.supported
    assert app.lifespan_scope is None
    assert app.seen == []


# -- through a real server -------------------------------------------------------------------


def test_server_runs_startup_and_shutdown_around_serving() -> None:
    app = LifespanApp()
    with serving(app, "on") as ts:
        assert app.seen == ["lifespan.startup"]
        assert httpx.get(ts.url + "/", timeout=TIMEOUT).status_code == 200
    assert app.seen == ["lifespan.startup", "lifespan.shutdown"]


@pytest.mark.parametrize("mode", ["auto", "on"])
def test_failed_startup_stops_the_server(mode: LifespanMode) -> None:
    ts = serving(LifespanApp(startup="failed", message="cannot reach db"), mode)
    with pytest.raises(LifespanError, match="cannot reach db"):
        ts.start()


def test_raising_startup_stops_the_server_in_on_mode() -> None:
    ts = serving(LifespanApp(startup="raise"), "on")
    with pytest.raises(LifespanError, match="startup exploded"):
        ts.start()


def test_raising_lifespan_in_auto_mode_keeps_serving() -> None:
    with serving(LifespanApp(startup="raise"), "auto") as ts:
        response = httpx.get(ts.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200


def test_http_only_app_is_served_in_auto_mode() -> None:
    with serving(http_only, "auto") as ts:
        response = httpx.get(ts.url + "/", timeout=TIMEOUT)
    assert response.text == "ok"


def test_off_mode_never_sends_lifespan() -> None:
    app = LifespanApp(startup="raise")
    with serving(app, "off") as ts:
        response = httpx.get(ts.url + "/", timeout=TIMEOUT)
    assert response.status_code == 200
    assert app.lifespan_scope is None
    assert app.seen == []


def test_startup_state_is_in_every_request_scope_and_copied() -> None:
    app = LifespanApp(state={"counter": 1, "db": "pool"})
    with serving(app, "on") as ts, httpx.Client(base_url=ts.url, timeout=TIMEOUT) as client:
        expected = repr([("counter", 1), ("db", "pool")])
        assert client.get("/").text == expected
        assert client.get("/mutate").text == expected
        # What one request did to its scope["state"] does not reach the next.
        assert client.get("/").text == expected
