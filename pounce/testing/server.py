"""`TestServer`: a real Pounce server on its own thread and event loop.

Tests talk to it over real sockets with real clients. Every wait has a
timeout, so a server that fails to start or stop fails the test instead of
hanging it.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from types import TracebackType
from typing import Any, Literal

from pounce.net.loops import loop_factory
from pounce.server import Server


class TestServer:
    """``with TestServer(server) as ts: httpx.get(ts.url + "/")``."""

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        server: Server,
        *,
        timeout: float = 10.0,
        loop: Literal["asyncio", "uvloop"] = "asyncio",
    ) -> None:
        """`loop`: the event loop to serve on (``uvloop`` needs ``pounce[uvloop]``)."""
        self.server = server
        self._timeout = timeout
        self._loop_factory = loop_factory(loop)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.addresses: list[Any] = []
        self.error: BaseException | None = None

    @property
    def host(self) -> str:
        return str(self.addresses[0][0])

    @property
    def port(self) -> int:
        return int(self.addresses[0][1])

    @property
    def url(self) -> str:
        """``http://host:port``, or ``https://`` for a server with ``.tls()``."""
        host = self.host
        scheme = "https" if self.server.uses_tls else "http"
        return (
            f"{scheme}://[{host}]:{self.port}" if ":" in host else f"{scheme}://{host}:{self.port}"
        )

    def start(self) -> TestServer:
        self._thread = threading.Thread(target=self._main, name="pounce-test-server", daemon=True)
        self._thread.start()
        if not self._ready.wait(self._timeout):
            raise TimeoutError("test server did not start in time")
        if self.error is not None:
            raise self.error
        return self

    def _main(self) -> None:
        try:
            with asyncio.Runner(loop_factory=self._loop_factory) as runner:
                runner.run(self._serve())
        except BaseException as exc:
            self.error = exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        await self.server.serve(stop=self._stop, ready=self._on_ready)

    def _on_ready(self, addresses: list[Any]) -> None:
        self.addresses = addresses
        self._ready.set()

    def request_stop(self) -> None:
        """Begin the graceful shutdown and return at once (`stop` waits for its end)."""
        if self._loop is not None and self._stop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._stop.set)

    def stop(self) -> None:
        """Trigger graceful shutdown and wait for the server to finish."""
        self.request_stop()
        if self._thread is not None:
            self._thread.join(self._timeout + self.server.spec.graceful_timeout)
            if self._thread.is_alive():
                raise TimeoutError("test server did not stop in time")

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
