"""Protocol factories and the bridge that picks one per connection.

Protocols are a set, not a stack: `.h1()`, `.h2()`, `.websocket()` and
`.protocol(factory)` register `ProtocolFactory` objects, and the
`ProtocolBridge` — the innermost handler of the connection plane — picks one
per connection: by ALPN when TLS negotiated one, else by sniffing the first
bytes (an HTTP/2 preface, a custom protocol's greeting), falling back to the
factory marked `fallback` (HTTP/1.1). Until one is picked the bridge owns the
connection's clock: a connection that sends nothing, or only the start of a
preface (``P``), is closed after the request-head timeout, whatever
protocols are registered; once picked, the protocol's handler keeps time.

A protocol can also take a connection over mid-way: a handler that is
`Upgradable` (the HTTP driver) asks the bridge, its `ProtocolSwitch`, whether
a factory is registered for the token of an `UpgradeRequested`; if so the
bridge hands the connection to that factory's `upgrade()` handler, and every
later callback goes there. No registered token, no switch: the request is
served as plain HTTP.

A multiplexed protocol (HTTP/2) can also carry another protocol on one of its
streams (RFC 8441 extended CONNECT): a factory that sets `tunnels` is run by
the same `upgrade()` call, on a `StreamConn` instead of the socket. At build
time every factory learns, through `with_tunnels`, which tokens can be
tunnelled, so HTTP/2 advertises ``SETTINGS_ENABLE_CONNECT_PROTOCOL`` only
when something can use it.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Protocol

from pounce.conn import Conn, ConnectionHandler, ConnectionInfo, HandlerFactory, peer_name
from pounce.drivers.service import ServiceContext
from pounce.net.sweep import Sweep
from pounce.protocols.events import UpgradeRequested

MAX_SNIFF_BYTES = 64  # bytes buffered while no protocol has claimed a connection

error_log = logging.getLogger("pounce.error")

# Seconds a connection still waiting for its (first) request head is given once a
# graceful shutdown begins; the graceful timeout bounds it too.
SHUTDOWN_HEAD_GRACE = 1.0


class ProtocolFactory(ABC):
    """Makes the handler for one connection of a protocol; immutable, shared."""

    name: str = "protocol"
    alpn_ids: tuple[str, ...] = ()
    fallback: bool = False
    """Picked when no other protocol claims the connection (HTTP/1.1)."""
    upgrade_tokens: tuple[bytes, ...] = ()
    """HTTP/1.1 ``Upgrade`` tokens (lower-case) this protocol takes a connection over for."""
    upgrade_only: bool = False
    """Reached only by an HTTP/1.1 Upgrade (WebSocket): `handler` is never called."""
    tunnels: bool = False
    """`upgrade()` can also run on one HTTP/2 stream (RFC 8441 ``:protocol`` = a token)."""
    needs_app: bool = False
    """Serves the ASGI app (HTTP/1.1, HTTP/2, WebSocket): ``.build()`` without ``.asgi(app)``
    is then a `BuildError`. A protocol that answers by itself (a line echo) leaves it False."""

    sniff_first_bytes: bytes | None = None
    """Each byte a connection of this protocol can start with (HTTP/2's preface: ``b"P"``),
    or None: any. When every sniffing protocol names its own, a connection whose first
    byte none of them names goes to the fallback without asking their `sniff`."""

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

    def accepts_upgrade(self, upgrade: UpgradeRequested, info: ConnectionInfo) -> bool:
        """May this protocol take over after `upgrade` on a connection with `info`?

        Called before the switch, while the request can still be served as
        plain HTTP (the answer when this says no). The default says yes.
        """
        return True

    def upgrade(self, service: ServiceContext, upgrade: UpgradeRequested) -> ConnectionHandler:
        """The handler that takes a connection over after `upgrade` (one of `upgrade_tokens`).

        Its ``connection_made`` comes next; `upgrade.trailing_data` are the
        first bytes of the new protocol, already received, and are its to read.
        """
        raise NotImplementedError(f"{self.name} has no upgrade_tokens")

    def with_tunnels(self, tokens: tuple[bytes, ...]) -> ProtocolFactory:
        """This factory, told which `upgrade_tokens` can run on a stream of its connections.

        Called once at build time with the tokens of every registered factory
        that `tunnels`; a multiplexed protocol returns a copy that offers
        them (HTTP/2: extended CONNECT). The default has no streams to offer.
        """
        return self

    def describe(self) -> str:
        return self.name


class ProtocolSwitch(Protocol):
    """What an `Upgradable` handler asks to switch its connection to another protocol."""

    def accepts(self, upgrade: UpgradeRequested) -> bool:
        """Will a protocol registered for a token of ``upgrade.protocol`` take it over?"""
        ...

    def switch(self, upgrade: UpgradeRequested) -> None:
        """Hand the connection to that protocol's handler; the caller must step aside."""
        ...

    def tunnel(self, upgrade: UpgradeRequested) -> ConnectionHandler | None:
        """The handler for a tunnel on one stream (RFC 8441), or None: nobody runs it there.

        ``upgrade.protocol`` is a single token (the ``:protocol`` pseudo-header);
        the caller gives the handler a `StreamConn`.
        """
        ...


class Upgradable:
    """A handler whose protocol can propose a switch (the HTTP/1.1 driver).

    The bridge lends it its `ProtocolSwitch` when any protocol is registered
    for an Upgrade token; without one, `protocol_switch` stays None.
    """

    protocol_switch: ProtocolSwitch | None = None


class StartsWithBytes:
    """A handler that the bridge may start with the bytes that chose its protocol.

    `start_with` is ``connection_made`` and ``data_received`` in one call, so
    the HTTP/1.1 driver can tell a first request head that came whole with the
    connection's first bytes (most do) from one still to come, and start a
    clock only for the second. (A plain class, not an ABC: ``isinstance`` on an
    ABC runs Python code, once per connection here.)
    """

    def start_with(self, conn: Conn, data: bytes) -> None:
        """As ``connection_made(conn)`` followed by ``data_received(data)``."""
        raise NotImplementedError


class ProtocolBridge:
    """The innermost `ConnectionHandler`: hands the connection to one protocol."""

    __slots__ = (
        "_buffer",
        "_chosen",
        "_conn",
        "_factories",
        "_fallback",
        "_rejected",
        "_service",
        "_undecided",
        "_upgrades",
    )

    def __init__(
        self,
        factories: Sequence[ProtocolFactory],
        service: ServiceContext,
        upgrades: Mapping[bytes, ProtocolFactory] | None = None,
        undecided: UndecidedConnections | None = None,
        fallback: Fallback | None = None,
    ) -> None:
        if upgrades is None:  # a bridge made outside `bridge_factory` (tests)
            upgrades = upgrade_map(factories)
            factories = direct_factories(factories)
        if fallback is None:
            fallback = Fallback.of(factories)
        self._factories = factories  # those a connection can start with
        self._fallback = fallback
        self._service = service
        self._upgrades = upgrades
        if undecided is None:  # a bridge made outside `bridge_factory` (tests)
            undecided = UndecidedConnections(service.options.request_head_timeout)
        self._undecided = undecided
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
            return
        # Nothing chosen until bytes come: a silent connection must not stay forever.
        self._undecided.add(self)

    def timed_out(self) -> None:
        """No protocol chosen within the request-head timeout: close."""
        if self._chosen is None and self._conn is not None and not self._conn.is_closing():
            who = peer_name(self._conn.info.client)
            error_log.info("Closing %s: no protocol chosen in time", who)
            self._rejected = True
            self._conn.close()

    def data_received(self, data: bytes) -> None:
        if self._chosen is not None:
            self._chosen.data_received(data)
            return
        if self._rejected:
            return
        if self._buffer:
            data = self._buffer + data
        else:
            fallback = self._fallback
            if fallback.factory is not None and data and data[0] not in fallback.unless:
                # A first byte no sniffing protocol can start with (b"G" of a GET
                # where only HTTP/2 sniffs): the fallback's, without asking them.
                # (The byte as an int: ``bytes in bytes`` first tries its needle as an
                # int, and the error it makes and clears costs ten times the search.)
                self._choose(fallback.factory, data)
                return
        self._buffer = data
        factory = self._sniff()
        if factory is not None:
            self._buffer = b""
            self._choose(factory, data)

    def _sniff(self) -> ProtocolFactory | None:
        buffer = self._buffer
        undecided = False
        fallback = None
        for factory in self._factories:
            if factory.fallback:
                if fallback is None:
                    fallback = factory
                continue
            verdict = factory.sniff(buffer)
            if verdict:
                return factory
            if verdict is None:
                undecided = True
        if undecided and len(buffer) < MAX_SNIFF_BYTES:
            return None
        if fallback is not None:
            return fallback
        self._rejected = True
        if self._conn is not None:
            self._conn.close()
        return None

    def _choose(self, factory: ProtocolFactory, first: bytes = b"") -> None:
        """Hand the connection to a new handler of `factory`, and it the `first` bytes
        that chose it (none when ALPN or the only protocol registered chose)."""
        conn = self._conn
        assert conn is not None
        if first:
            self._undecided.discard(self)
        handler = factory.handler(self._service)
        if self._upgrades and isinstance(handler, Upgradable):
            handler.protocol_switch = self
        self._chosen = handler
        if self._service.events is not None:
            _note_protocol(conn, factory.name)
        if first and isinstance(handler, StartsWithBytes):
            handler.start_with(conn, first)
            return
        handler.connection_made(conn)
        if first and self._chosen is not None:
            self._chosen.data_received(first)

    # -- ProtocolSwitch ----------------------------------------------------------------

    def accepts(self, upgrade: UpgradeRequested) -> bool:
        return self._upgrade_factory(upgrade) is not None

    def switch(self, upgrade: UpgradeRequested) -> None:
        factory = self._upgrade_factory(upgrade)
        assert factory is not None and self._conn is not None
        handler = factory.upgrade(self._service, upgrade)
        self._chosen = handler
        if self._service.events is not None:
            _note_protocol(self._conn, factory.name)
        handler.connection_made(self._conn)

    def tunnel(self, upgrade: UpgradeRequested) -> ConnectionHandler | None:
        assert self._conn is not None
        factory = self._upgrades.get(upgrade.protocol.strip().lower())
        if factory is None or not factory.tunnels:
            return None
        if not factory.accepts_upgrade(upgrade, self._conn.info):
            return None
        return factory.upgrade(self._service, upgrade)

    def _upgrade_factory(self, upgrade: UpgradeRequested) -> ProtocolFactory | None:
        """The first registered token, in the client's order, whose protocol accepts."""
        assert self._conn is not None
        for token in upgrade.protocol.split(b","):
            factory = self._upgrades.get(token.strip())
            if factory is not None and factory.accepts_upgrade(upgrade, self._conn.info):
                return factory
        return None

    def eof_received(self) -> bool | None:
        if self._chosen is not None:
            return self._chosen.eof_received()
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        if self._chosen is not None:
            self._chosen.connection_lost(exc)
        else:
            self._undecided.discard(self)

    def begin_shutdown(self) -> None:
        if self._chosen is not None:
            self._chosen.begin_shutdown()
        elif self._conn is not None:
            # Accepted before the listener closed, no byte yet: its first request
            # may be on the way (the chosen driver will answer it, with close).
            asyncio.get_running_loop().call_later(SHUTDOWN_HEAD_GRACE, self._abort_undecided)

    def _abort_undecided(self) -> None:
        if self._chosen is None and self._conn is not None and not self._conn.is_closing():
            self._conn.abort()  # no request has even started: nothing to finish or flush


def _note_protocol(conn: Conn, name: str) -> None:
    """Tell an observed connection (`ObservedTransportAdapter`) which protocol it serves."""
    note = getattr(conn, "note_protocol", None)
    if note is not None:
        note(name)


def bridge_factory(factories: Sequence[ProtocolFactory], service: ServiceContext) -> HandlerFactory:
    """The handler factory at the bottom of the stream layers (one per serve)."""
    upgrades = upgrade_map(factories)
    direct = direct_factories(factories)
    undecided = UndecidedConnections(service.options.request_head_timeout)
    fallback = Fallback.of(direct)
    # (A partial, not a closure: one Python frame fewer per connection.)
    return functools.partial(ProtocolBridge, direct, service, upgrades, undecided, fallback)


@dataclass(frozen=True, slots=True)
class Fallback:
    """When the bridge may pick the fallback protocol by a connection's first byte alone."""

    factory: ProtocolFactory | None
    """The fallback, when every other protocol names the bytes it can start with; else None."""
    unless: bytes = b""
    """The first bytes some other protocol can start with: those are sniffed."""

    @classmethod
    def of(cls, factories: Sequence[ProtocolFactory]) -> Fallback:
        fallback = next((f for f in factories if f.fallback), None)
        others = [f for f in factories if f is not fallback]
        if fallback is None or any(f.sniff_first_bytes is None for f in others):
            return cls(None)
        claimed = b"".join(sorted({bytes([b]) for f in others for b in f.sniff_first_bytes or b""}))
        return cls(fallback, claimed)


class UndecidedConnections(Sweep["ProtocolBridge"]):
    """The connections of one serve that no protocol has claimed yet, and their clock.

    One sweep timer for all of them instead of a timer handle per connection
    (a new connection then costs a dict entry, not a heap push and a cancel):
    a silent connection lives between 1 and 1.25 times `timeout`
    (`pounce/net/sweep.py`). Per serve, so per event loop.
    """

    __slots__ = ()

    def __init__(self, timeout: float) -> None:
        super().__init__(timeout, ProtocolBridge.timed_out)


def offer_tunnels(factories: Sequence[ProtocolFactory]) -> tuple[ProtocolFactory, ...]:
    """Every factory, told which tokens can be tunnelled on a stream (`with_tunnels`)."""
    tokens = tuple(
        token.lower()
        for factory in factories
        if factory.tunnels
        for token in factory.upgrade_tokens
    )
    return tuple(factory.with_tunnels(tokens) for factory in factories)


def direct_factories(factories: Sequence[ProtocolFactory]) -> tuple[ProtocolFactory, ...]:
    """The factories a connection can start with: all but those reached only by an
    Upgrade (WebSocket), so ``.h1().websocket()`` picks HTTP/1.1 at once."""
    return tuple(f for f in factories if not f.upgrade_only)


def upgrade_map(factories: Sequence[ProtocolFactory]) -> dict[bytes, ProtocolFactory]:
    """Upgrade token → the factory registered for it (the first one wins)."""
    upgrades: dict[bytes, ProtocolFactory] = {}
    for factory in factories:
        for token in factory.upgrade_tokens:
            upgrades.setdefault(token.lower(), factory)
    return upgrades
