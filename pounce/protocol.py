"""Protocol factories and the bridge that picks one per connection.

Protocols are a set, not a stack: `.h1()`, `.h2()`, `.websocket()` and
`.protocol(factory)` register `ProtocolFactory` objects, and the
`ProtocolBridge` — the innermost handler of the connection plane — picks one
per connection: by ALPN when TLS negotiated one, else by sniffing the first
bytes (an HTTP/2 preface, a custom protocol's greeting), falling back to the
factory marked `fallback` (HTTP/1.1).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence

from pounce.layer import Conn, ConnectionHandler, HandlerFactory
from pounce.service import ServiceContext

MAX_SNIFF_BYTES = 64  # bytes buffered while no protocol has claimed a connection


class ProtocolFactory(ABC):
    """Makes the handler for one connection of a protocol; immutable, shared."""

    name: str = "protocol"
    alpn_ids: tuple[str, ...] = ()
    fallback: bool = False
    """Picked when no other protocol claims the connection (HTTP/1.1)."""

    def sniff(self, data: bytes) -> bool | None:
        """Does a connection that starts with `data` speak this protocol?

        Return None while `data` is too short to tell. The default claims
        nothing: a protocol that is the only one registered is chosen without
        sniffing, and one that shares a port must say how to recognise it.
        """
        return False

    @abstractmethod
    def handler(self, service: ServiceContext) -> ConnectionHandler:
        """A new handler for one connection."""

    def describe(self) -> str:
        return self.name


class ProtocolBridge:
    """The innermost `ConnectionHandler`: hands the connection to one protocol."""

    __slots__ = ("_buffer", "_chosen", "_conn", "_factories", "_rejected", "_service")

    def __init__(self, factories: Sequence[ProtocolFactory], service: ServiceContext) -> None:
        self._factories = factories
        self._service = service
        self._conn: Conn | None = None
        self._chosen: ConnectionHandler | None = None
        self._buffer = b""
        self._rejected = False

    def connection_made(self, conn: Conn) -> None:
        self._conn = conn
        factories = self._factories
        alpn = conn.info.alpn
        if alpn is not None:
            for factory in factories:
                if alpn in factory.alpn_ids:
                    self._choose(factory)
                    return
        if len(factories) == 1:
            self._choose(factories[0])

    def data_received(self, data: bytes) -> None:
        if self._chosen is not None:
            self._chosen.data_received(data)
            return
        if self._rejected:
            return
        self._buffer += data
        factory = self._sniff()
        if factory is not None:
            buffered, self._buffer = self._buffer, b""
            self._choose(factory)
            self.data_received(buffered)

    def _sniff(self) -> ProtocolFactory | None:
        undecided = False
        for factory in self._factories:
            if factory.fallback:
                continue
            verdict = factory.sniff(self._buffer)
            if verdict:
                return factory
            undecided = undecided or verdict is None
        if undecided and len(self._buffer) < MAX_SNIFF_BYTES:
            return None
        for factory in self._factories:
            if factory.fallback:
                return factory
        self._rejected = True
        if self._conn is not None:
            self._conn.close()
        return None

    def _choose(self, factory: ProtocolFactory) -> None:
        assert self._conn is not None
        self._chosen = factory.handler(self._service)
        self._chosen.connection_made(self._conn)

    def eof_received(self) -> None:
        if self._chosen is not None:
            self._chosen.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._chosen is not None:
            self._chosen.connection_lost(exc)

    def begin_shutdown(self) -> None:
        if self._chosen is not None:
            self._chosen.begin_shutdown()
        elif self._conn is not None:
            self._conn.close()  # no request has even started: nothing to finish


def bridge_factory(factories: Sequence[ProtocolFactory], service: ServiceContext) -> HandlerFactory:
    """The handler factory at the bottom of the stream layers."""
    chosen = tuple(factories)

    def make() -> ConnectionHandler:
        return ProtocolBridge(chosen, service)

    return make
