"""The pytest plugin (entry point ``pytest11``): real Pounce servers as fixtures.

Installing Pounce registers it; it adds two fixtures and nothing else (no
hooks, no autouse fixtures, no options), so a suite that does not ask for
them is untouched::

    def test_home(pounce_server):
        server = pounce_server(app, http2=True)  # a running `TestServer`
        with server.client() as client:
            assert client.get("/").status_code == 200

`pounce_server` is a factory for the test: each call starts a `TestServer`
(`pounce.testing.server`: an ASGI app with the ``pounce.run()`` options as
keywords, ``tls=True``, or a built `Server`), and every one it started stops
when the test ends. `pounce_session_server` is the same for the whole session:
start an app once, share it between tests. Pounce itself is imported only
when a test asks for a fixture, so the plugin costs other suites nothing.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol

import pytest

if TYPE_CHECKING:
    from pounce.asgi.types import ASGIApp
    from pounce.server import Server
    from pounce.testing.server import TestServer


class ServerFactory(Protocol):
    """``pounce_server(app, **options) -> TestServer``, started."""

    def __call__(self, app: Server | ASGIApp, /, **options: Any) -> TestServer: ...


@contextlib.contextmanager
def _servers() -> Iterator[ServerFactory]:
    from pounce.testing.server import TestServer

    with contextlib.ExitStack() as started:

        def start(app: Server | ASGIApp, /, **options: Any) -> TestServer:
            return started.enter_context(TestServer(app, **options))

        yield start


@pytest.fixture
def pounce_server() -> Iterator[ServerFactory]:
    """Start servers for this test: ``pounce_server(app, **options)`` → a running
    `TestServer` (``url``, ``ws_url``, ``client()``); each stops after the test."""
    with _servers() as start:
        yield start


@pytest.fixture(scope="session")
def pounce_session_server() -> Iterator[ServerFactory]:
    """`pounce_server` for the session: servers stop when the test session ends."""
    with _servers() as start:
        yield start
