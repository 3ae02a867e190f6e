"""`TestServer`: a real Pounce server on its own thread and event loop.

Tests talk to it over real sockets with real clients. Every wait has a
timeout, so a server that fails to start or stop fails the test instead of
hanging it. Given a built `Server` it serves that; given a plain ASGI app it
builds the standard stack (`pounce.presets.standard`) on 127.0.0.1, port 0,
with the ``pounce.run()`` options given as keywords — and, with ``tls=True``,
a throwaway certificate (`pounce.testing.certs`, needs trustme).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import ssl
import tempfile
import threading
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from pounce.asgi.types import ASGIApp
from pounce.errors import BuildError
from pounce.net.loops import loop_factory
from pounce.server import Server
from pounce.testing.certs import TestCertificates

if TYPE_CHECKING:
    import httpx


class TestServer:
    """``with TestServer(app) as ts: httpx.get(ts.url + "/")``.

    `app`: a built `Server`, served as it is, or an ASGI app, served by the
    standard stack with `options` (the ``pounce.run()`` keywords: ``http2=True``,
    ``limit_concurrency=10`` …; host 127.0.0.1 and port 0 unless given). `tls`:
    serve HTTPS with a certificate from a throwaway CA (needs trustme), which
    `client()` and `ssl_context()` trust.
    """

    __test__ = False  # not a pytest test class

    def __init__(
        self,
        app: Server | ASGIApp,
        *,
        timeout: float = 10.0,
        loop: Literal["asyncio", "uvloop"] = "asyncio",
        tls: bool = False,
        **options: Any,
    ) -> None:
        """`loop`: the event loop to serve on (``uvloop`` needs ``pounce[uvloop]``)."""
        self.certificates: TestCertificates | None = None
        self._tempdir: str | None = None
        if isinstance(app, Server):
            if options or tls:
                raise BuildError(
                    "TestServer(server, ...): options and tls= are for a plain ASGI app",
                    hint="give them to the builder that made the Server",
                )
            self.server = app
        else:
            self.server = self._standard(app, tls, options)
        self.http2 = bool(options.get("http2"))
        self._timeout = timeout
        self._loop_factory = loop_factory(loop)
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._ready = threading.Event()
        self.addresses: list[Any] = []
        self.error: BaseException | None = None

    def _standard(self, app: ASGIApp, tls: bool, options: dict[str, Any]) -> Server:
        from pounce.presets import StandardOptions, standard

        values = {"host": "127.0.0.1", "port": 0, **options}
        if tls:
            self._tempdir = tempfile.mkdtemp(prefix="pounce-test-")
            self.certificates = TestCertificates(Path(self._tempdir))
            values["ssl_certfile"] = str(self.certificates.cert_file)
            values["ssl_keyfile"] = str(self.certificates.key_file)
        return standard(StandardOptions(values)).asgi(app)

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

    @property
    def ws_url(self) -> str:
        """``ws://host:port``, or ``wss://`` with TLS."""
        return "ws" + self.url.removeprefix("http")

    def ssl_context(self) -> ssl.SSLContext | None:
        """A client context that trusts the ``tls=True`` certificate; None without one."""
        return self.certificates.client_context() if self.certificates is not None else None

    def client(self, **kwargs: Any) -> httpx.Client:
        """An `httpx.Client` for this server: `url` as base URL, the test CA trusted,
        HTTP/2 when the server was asked for it (prior knowledge on cleartext)."""
        import httpx

        return httpx.Client(**self._client_options(kwargs))

    def async_client(self, **kwargs: Any) -> httpx.AsyncClient:
        """`client()`, for async tests."""
        import httpx

        return httpx.AsyncClient(**self._client_options(kwargs))

    def _client_options(self, kwargs: dict[str, Any]) -> dict[str, Any]:
        options: dict[str, Any] = {"base_url": self.url, "timeout": self._timeout}
        context = self.ssl_context()
        if context is not None:
            options["verify"] = context
        if kwargs.get("http2", self.http2):
            options["http2"] = True
            options["http1"] = self.certificates is not None  # cleartext: prior knowledge
        return {**options, **kwargs}

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
        if self._tempdir is not None:
            shutil.rmtree(self._tempdir, ignore_errors=True)
            self._tempdir = None

    def __enter__(self) -> TestServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
