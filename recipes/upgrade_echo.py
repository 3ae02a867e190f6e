"""Recipe: a protocol that takes a connection over from HTTP/1.1 with ``Upgrade:``.

HTTP/1.1 can hand its connection to another protocol (RFC 9110 §7.8): the
client sends ``Upgrade: echo`` and ``Connection: upgrade``; if a protocol is
registered for the token and accepts this request, the server answers ``101
Switching Protocols`` and from then on the bytes are that protocol's. Here
the protocol is a byte echo, reachable only at ``/echo``; everywhere else the
request is served as plain HTTP by the app.

Three pieces of a `ProtocolFactory` make it work:

* `upgrade_tokens` registers the token (lower-case bytes) with the protocol
  bridge; `upgrade_only` says a new connection is never this protocol's, so
  `handler()` is never called (it still needs HTTP/1.1: ``.h1()``);
* `accepts_upgrade(upgrade, info)` is asked *before* the switch, while the
  request can still be answered as HTTP: here, only ``GET /echo`` switches;
* `upgrade(service, upgrade)` makes the handler that owns the connection
  from then on. Nothing has been written yet: the handler sends the ``101``
  itself, then reads ``upgrade.trailing_data`` — bytes the client sent right
  behind its request head, already read — before anything else.

Run it and talk to it::

    python recipes/upgrade_echo.py
    printf 'GET /echo HTTP/1.1\\r\\nHost: x\\r\\nUpgrade: echo\\r\\n'\\
'Connection: upgrade\\r\\n\\r\\nhi' | nc 127.0.0.1 8000
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pounce import BuildError, Conn, ConnectionHandler, ProtocolFactory, Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.conn import ConnectionInfo
from pounce.drivers.service import ServiceContext
from pounce.protocols.events import UpgradeRequested

TOKEN = b"echo"


@dataclass(frozen=True, slots=True)
class UpgradeEcho(ProtocolFactory):
    """Echo every byte back, on connections upgraded from HTTP/1.1 at `path`."""

    path: bytes = b"/echo"
    name = "echo"
    upgrade_tokens = (TOKEN,)
    upgrade_only = True

    def __post_init__(self) -> None:
        if not isinstance(self.path, bytes) or not self.path.startswith(b"/"):
            raise BuildError(
                f"UpgradeEcho(path={self.path!r}): must be bytes starting with /",
                hint='e.g. UpgradeEcho(path=b"/echo")',
            )

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        raise NotImplementedError("reached only by Upgrade: echo; serve .h1() too")

    def accepts_upgrade(self, upgrade: UpgradeRequested, info: ConnectionInfo) -> bool:
        """Only ``GET <path>`` switches; any other request is answered as plain HTTP."""
        request = upgrade.request
        return request.method == b"GET" and request.target == self.path

    def upgrade(self, service: ServiceContext, upgrade: UpgradeRequested) -> ConnectionHandler:
        return EchoHandler(upgrade, service)

    def describe(self) -> str:
        return f"echo (Upgrade: echo at {self.path.decode('ascii', 'replace')})"


class EchoHandler:
    """One upgraded connection: the 101, then every byte back; all its state is here."""

    def __init__(self, upgrade: UpgradeRequested, service: ServiceContext) -> None:
        self._upgrade = upgrade
        self._service = service
        self._conn: Conn | None = None
        self._drainer: asyncio.Task[None] | None = None

    def connection_made(self, conn: Conn) -> None:
        self._conn = conn
        head = [b"HTTP/1.1 101 Switching Protocols", b"upgrade: echo", b"connection: upgrade"]
        head += [name + b": " + value for name, value in self._service.response_headers([])]
        conn.write(b"\r\n".join(head) + b"\r\n\r\n")
        if self._service.shutting_down:
            conn.close()  # switched just as the server began to stop
            return
        if self._upgrade.trailing_data:
            self.data_received(self._upgrade.trailing_data)  # first: they came first

    def data_received(self, data: bytes) -> None:
        conn = self._conn
        if conn is None or conn.is_closing():
            return
        conn.write(data)
        # A client that sends but never reads must not fill our memory.
        if self._drainer is None:
            conn.pause_reading()
            self._drainer = asyncio.get_running_loop().create_task(self._drain(conn))

    async def _drain(self, conn: Conn) -> None:
        try:
            await conn.drain()
        finally:
            self._drainer = None
        conn.resume_reading()

    def eof_received(self) -> bool | None:
        return None  # the client is done: close once our echo is flushed

    def connection_lost(self, exc: Exception | None) -> None:
        if self._drainer is not None:
            self._drainer.cancel()

    def begin_shutdown(self) -> None:
        if self._conn is not None:
            self._conn.close()  # an echo has nothing in flight to finish


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """Everything that is not upgraded: a hint where the echo lives."""
    if scope["type"] != "http":
        return
    body = b"send GET /echo with Upgrade: echo and Connection: upgrade\n"
    headers = [(b"content-type", b"text/plain")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def build_server(host: str = "127.0.0.1", port: int = 8000) -> Server:
    """HTTP/1.1, which can switch to ``echo`` at ``/echo``."""
    return Server.builder().bind(host, port).h1().protocol(UpgradeEcho()).asgi(app)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")
    server = build_server()
    print(server.describe())
    server.run()


if __name__ == "__main__":
    main()
