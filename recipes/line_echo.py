"""Recipe: a custom raw protocol — a line echo server, no HTTP involved.

Each newline-terminated line a client sends comes back with its ASCII letters
upper-cased (``hello\\n`` → ``HELLO\\n``; other bytes, ``\\r`` included, pass
through). A partial line waits in a buffer until its newline arrives; at EOF
a final unterminated line is echoed too, then the connection closes. A line
longer than `max_line` bytes (the newline not counted) is answered
``ERR line too long`` and the connection closes, so a client cannot make the
server buffer without bound.

The shape every raw protocol has:

* a `ProtocolFactory` — immutable, shared by every connection and worker —
  whose `handler()` makes one `ConnectionHandler` per connection;
* the handler, which holds all per-connection state and reacts to pushed
  callbacks: `connection_made(conn)`, `data_received(bytes)`,
  `eof_received()`, `connection_lost(exc)`; it answers through `conn.write`.

Run it and talk to it::

    python recipes/line_echo.py
    nc 127.0.0.1 9000          # type lines; they come back upper-cased
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from pounce import BuildError, Conn, ConnectionHandler, ProtocolFactory, Server
from pounce.drivers.service import ServiceContext

KiB = 1024
MAX_LINE = 64 * KiB  # bytes per line, newline excluded; as asyncio's StreamReader default limit


@dataclass(frozen=True, slots=True)
class LineEcho(ProtocolFactory):
    """The ``line-echo`` protocol; claims every connection it is offered."""

    max_line: int = MAX_LINE
    name = "line-echo"

    def __post_init__(self) -> None:
        if not isinstance(self.max_line, int) or self.max_line < 1:
            raise BuildError(f"LineEcho(max_line={self.max_line!r}): must be a positive integer")

    def handler(self, service: ServiceContext) -> ConnectionHandler:
        return LineEchoHandler(self.max_line, service)

    def describe(self) -> str:
        return f"line-echo (max line {self.max_line} B)"


class LineEchoHandler:
    """One connection of `LineEcho`; all per-connection state lives here."""

    def __init__(self, max_line: int, service: ServiceContext) -> None:
        self._max_line = max_line
        self._service = service
        self._conn: Conn | None = None
        self._buffer = bytearray()  # the partial line not yet answered
        self._drainer: asyncio.Task[None] | None = None

    def connection_made(self, conn: Conn) -> None:
        self._conn = conn
        if self._service.shutting_down:
            self.begin_shutdown()  # accepted just as the server began to stop

    def data_received(self, data: bytes) -> None:
        if self._conn is None or self._conn.is_closing():
            return
        searched = len(self._buffer)  # older bytes hold no newline: search only the new ones
        self._buffer += data
        end = self._buffer.rfind(b"\n", searched)
        if end != -1:
            complete = bytes(self._buffer[: end + 1])
            del self._buffer[: end + 1]
            if not self._answer(complete.split(b"\n")[:-1]):
                return
        if len(self._buffer) > self._max_line:
            self._refuse()

    def _answer(self, lines: list[bytes]) -> bool:
        """Echo complete `lines` in one write; False if one was too long."""
        replies: list[bytes] = []
        for line in lines:
            if len(line) > self._max_line:
                self._write(b"".join(replies))
                self._refuse()
                return False
            replies.append(line.upper() + b"\n")
        self._write(b"".join(replies))
        return True

    def _write(self, data: bytes) -> None:
        assert self._conn is not None
        if not data:
            return
        self._conn.write(data)
        # Backpressure: a client that sends but never reads must not fill our
        # memory. Stop reading until the write buffer has drained.
        if self._drainer is None:
            self._conn.pause_reading()
            self._drainer = asyncio.get_running_loop().create_task(self._drain())

    async def _drain(self) -> None:
        assert self._conn is not None
        try:
            await self._conn.drain()
        finally:
            self._drainer = None
        self._conn.resume_reading()

    def _refuse(self) -> None:
        assert self._conn is not None
        self._buffer.clear()
        self._conn.write(b"ERR line too long (max %d bytes)\n" % self._max_line)
        self._conn.close()

    def eof_received(self) -> None:
        if self._buffer and self._conn is not None:
            self._conn.write(bytes(self._buffer).upper())
            self._buffer.clear()
        # Returning lets the transport close once the reply is flushed.

    def connection_lost(self, exc: Exception | None) -> None:
        self._buffer.clear()
        if self._drainer is not None:
            self._drainer.cancel()

    def begin_shutdown(self) -> None:
        """The server is stopping: close, after flushing what was written.

        Without this the server would wait out its whole graceful timeout for
        idle echo clients to leave.
        """
        if self._conn is not None:
            self._conn.close()


def build_server(host: str = "127.0.0.1", port: int = 9000) -> Server:
    """A server that speaks only ``line-echo``: no HTTP, no ASGI app."""
    return Server.builder().bind(host, port).protocol(LineEcho()).build()


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")
    server = build_server()
    print(server.describe())
    server.run()


if __name__ == "__main__":
    main()
