"""Recipe: a `StreamLayer` that caps the number of open connections.

A stream layer wraps the connection plane: `wrap(inner)` receives the factory
of the handlers beneath it (further stream layers, then the protocol bridge)
and returns the factory that accepted connections enter through. The layer
object holds only configuration (`max_connections`); the count of open
connections is per server run, so it lives in a `_Gate` made inside `wrap` —
one per worker, never shared, never on the layer.

A connection beyond the cap is accepted by the kernel and then closed at
once, before any byte is read; the inner handler is never even made. (Pounce's
own cap, ``--limit-max-connections``, stops accepting instead, below the
stream layers; this recipe shows the shape of a stream layer.)

Run it with the line echo protocol beneath, at most two clients at a time::

    python recipes/connection_cap.py
    nc 127.0.0.1 9000   # a third nc is closed straight away
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from line_echo import LineEcho  # run as a script, recipes/ is on sys.path

from pounce import BuildError, Conn, ConnectionHandler, ForwardingHandler, Server, StreamLayer
from pounce.conn import HandlerFactory


@dataclass(frozen=True, slots=True)
class ConnectionCap(StreamLayer):
    """Close every connection past `max_connections` open at once (per worker)."""

    max_connections: int

    def __post_init__(self) -> None:
        if not isinstance(self.max_connections, int) or self.max_connections < 1:
            raise BuildError(
                f"ConnectionCap({self.max_connections!r}): must be a positive integer",
                hint="e.g. ConnectionCap(1000)",
            )

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        gate = _Gate(self.max_connections)  # per server run: wrap is called once per worker

        def make() -> ConnectionHandler:
            return _CappedHandler(inner, gate)

        return make

    def describe(self) -> str:
        return f"connection cap ({self.max_connections} connections)"


class _Gate:
    """Counts the open connections of one server run."""

    __slots__ = ("limit", "open")

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.open = 0

    def enter(self) -> bool:
        if self.open >= self.limit:
            return False
        self.open += 1
        return True

    def leave(self) -> None:
        self.open -= 1


class _CappedHandler(ForwardingHandler):
    """Admits its connection through the gate, or closes it.

    `ForwardingHandler` passes every callback inward — shutdown included —
    once `inner` is set; this handler changes only the start and the end.
    """

    __slots__ = ("_gate", "_make_inner")

    def __init__(self, make_inner: HandlerFactory, gate: _Gate) -> None:
        super().__init__()  # inner: made only once admitted
        self._make_inner = make_inner
        self._gate = gate

    def connection_made(self, conn: Conn) -> None:
        self.conn = conn
        if not self._gate.enter():
            conn.close()
            return
        self.inner = self._make_inner()
        self.inner.connection_made(conn)

    def connection_lost(self, exc: Exception | None) -> None:
        if self.inner is not None:
            self._gate.leave()
        super().connection_lost(exc)


def build_server(host: str = "127.0.0.1", port: int = 9000, cap: int = 2) -> Server:
    """Line echo, at most `cap` connections at a time."""
    return (
        Server.builder()
        .bind(host, port)
        .layer(ConnectionCap(cap))  # stream layer: outermost, sees the raw connection
        .protocol(LineEcho())
        .build()
    )


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(levelname)-8s %(name)s: %(message)s")
    server = build_server()
    print(server.describe())
    server.run()


if __name__ == "__main__":
    main()
