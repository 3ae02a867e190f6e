"""Conformance checks every `ProtocolFactory` must pass, over in-memory connections.

``check_protocol(factory)`` makes handlers with a `ServiceContext` around a
small app (HTTP: 200 ``ok``; WebSocket: accept, then wait for the close) and
drives them through `MemoryConn`:

``describe``    one non-empty line;
``frozen``      hashable and immutable: one factory serves every connection and worker;
``declaration`` the class attributes the bridge reads are well formed: `name`,
                `alpn_ids`, lower-case `upgrade_tokens`, an `upgrade_only` or
                `tunnels` protocol has tokens, `with_tunnels` returns a factory;
``sniff``       for every prefix of some well-known first bytes (and of
                `greeting`), the answer is None until it is a bool, then stays
                that bool; the same bytes give the same answer; a protocol that
                sniffs claims its own `greeting`;
``handlers``    `handler()` (and `upgrade()`, for a protocol with tokens) makes a
                new handler per connection;
``shutdown``    ``begin_shutdown`` closes an idle connection promptly, and a
                connection accepted while the server stops is closed without
                one; a handler reached by an Upgrade closes or starts a closing
                handshake (writes);
``lost``        ``connection_lost`` at any point — right away, mid-greeting,
                after the greeting, after a shutdown, with an exception — is
                taken quietly, nothing is written after it, and every task the
                handler started ends.

An `upgrade_only` protocol (WebSocket) is checked through `upgrade()` only;
`upgrade_headers` are added to the kit's Upgrade request (a
``Sec-WebSocket-Key``) so that `accepts_upgrade` says yes.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from typing import Any

from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.conn import ConnectionHandler
from pounce.drivers.bridge import MAX_SNIFF_BYTES, ProtocolFactory
from pounce.drivers.service import HTTPOptions, ServiceContext
from pounce.protocols.events import Headers, RequestReceived, UpgradeRequested
from pounce.testing._kit import (
    KitLoop,
    check_describe,
    check_frozen,
    fail,
    others_finish,
    turns,
    wait_until,
)
from pounce.testing.memory import MemoryConn, kit_info

PROTOCOL_CHECKS = (
    "describe",
    "frozen",
    "declaration",
    "sniff",
    "handlers",
    "shutdown",
    "lost",
)

CALLBACKS = (
    "connection_made",
    "data_received",
    "eof_received",
    "connection_lost",
    "begin_shutdown",
)

# First bytes of well-known protocols: a sniff must answer each one consistently.
SNIFF_SAMPLES = {
    "an HTTP/1.1 request": b"GET / HTTP/1.1\r\nhost: example.com\r\naccept: */*\r\n\r\n",
    "the HTTP/2 preface": b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00",
    "a TLS ClientHello": bytes.fromhex("16030100c4010000c00303") + bytes(range(32)) * 2,
    "a PROXY v1 header": b"PROXY TCP4 192.0.2.1 192.0.2.2 56324 443\r\n",
    "binary noise": bytes(range(255, 175, -1)),
}


async def kit_app(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind the checked handlers: HTTP 200 ``ok``; WebSocket accepted."""
    if scope["type"] == "http":
        while (await receive()).get("more_body", False):
            pass
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})
    elif scope["type"] == "websocket" and (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


def upgrade_request(
    token: bytes, headers: Iterable[tuple[bytes, bytes]] = (), *, target: bytes = b"/"
) -> UpgradeRequested:
    """An HTTP/1.1 ``GET`` of `target` asking to switch to `token`, with `headers` added."""
    request = RequestReceived(
        stream_id=1,
        method=b"GET",
        target=target,
        headers=[
            (b"host", b"kit.test"),
            (b"connection", b"upgrade"),
            (b"upgrade", token),
            *headers,
        ],
        http_version="1.1",
        has_body=False,
    )
    return UpgradeRequested(stream_id=1, request=request, protocol=token)


@dataclass(frozen=True, slots=True)
class _Setup:
    subject: str
    factory: ProtocolFactory
    greeting: bytes
    upgrade_headers: Headers
    app: ASGIApp
    upgrades: tuple[UpgradeRequested, ...] = field(default=())

    def service(self) -> ServiceContext:
        return ServiceContext(self.app, HTTPOptions())

    def makers(self) -> dict[str, Callable[[ServiceContext], ConnectionHandler]]:
        """How handlers of this protocol are made: a new connection, each Upgrade."""
        makers: dict[str, Callable[[ServiceContext], ConnectionHandler]] = {}
        if not self.factory.upgrade_only:
            makers["a new connection"] = self.factory.handler
        for upgrade in self.upgrades:
            token = upgrade.protocol.decode("latin-1")
            makers[f"an Upgrade to {token}"] = functools.partial(_upgrade, self.factory, upgrade)
        return makers


def _upgrade(
    factory: ProtocolFactory, upgrade: UpgradeRequested, service: ServiceContext
) -> ConnectionHandler:
    return factory.upgrade(service, upgrade)


def check_protocol(
    factory: ProtocolFactory,
    *,
    greeting: bytes = b"",
    upgrade_headers: Iterable[tuple[bytes, bytes]] = (),
    upgrade_target: bytes = b"/",
    app: ASGIApp = kit_app,
    checks: Iterable[str] = PROTOCOL_CHECKS,
) -> None:
    """Run the `checks` (default: all of `PROTOCOL_CHECKS`); AssertionError on failure.

    `greeting`: what a client of this protocol sends first (the HTTP/2
    preface, a request). `upgrade_headers`, `upgrade_target`: the headers
    added to the kit's Upgrade request, and its target, so that
    `accepts_upgrade` takes it. `app`: the ASGI app the handlers serve.
    """
    if not isinstance(factory, ProtocolFactory):
        fail(repr(factory), "is not a pounce.ProtocolFactory")
    subject = f"{type(factory).__name__} ({_describe(factory)})"
    extra = list(upgrade_headers)
    upgrades = []
    for token in factory.upgrade_tokens:
        upgrade = upgrade_request(token, extra, target=upgrade_target)
        if factory.accepts_upgrade(upgrade, kit_info()):
            upgrades.append(upgrade)
        elif extra or factory.upgrade_only:
            fail(
                subject,
                f"accepts_upgrade refused the kit's Upgrade to {token!r} (target "
                f"{upgrade_target!r}, headers {extra}); pass upgrade_headers= and "
                "upgrade_target= that it accepts",
            )
    setup = _Setup(subject, factory, greeting, extra, app, tuple(upgrades))
    for name in checks:
        if name not in _CHECKS:
            raise ValueError(f"unknown check {name!r}; known: {', '.join(PROTOCOL_CHECKS)}")
        _CHECKS[name](setup)


def _describe(factory: ProtocolFactory) -> str:
    try:
        return factory.describe()
    except Exception as exc:  # reported by the describe check
        return f"describe() raised {exc!r}"


def _run(setup: _Setup, what: str, part: Coroutine[Any, Any, None]) -> None:
    with KitLoop(setup.subject) as kit:
        kit.run(part, what)


# -- what the factory declares ------------------------------------------------------


def _check_describe(setup: _Setup) -> None:
    check_describe(setup.subject, [setup.factory])


def _check_frozen(setup: _Setup) -> None:
    check_frozen(setup.subject, setup.factory)


def _check_declaration(setup: _Setup) -> None:
    f, subject = setup.factory, setup.subject
    if not isinstance(f.name, str) or not f.name or "\n" in f.name:
        fail(subject, f"name must be a non-empty one-line str, got {f.name!r}")
    if not isinstance(f.alpn_ids, tuple) or not all(isinstance(i, str) for i in f.alpn_ids):
        fail(subject, f"alpn_ids must be a tuple of str, got {f.alpn_ids!r}")
    tokens = f.upgrade_tokens
    if not isinstance(tokens, tuple) or not all(
        isinstance(t, bytes) and t and t == t.lower() and t == t.strip() and b"," not in t
        for t in tokens
    ):
        fail(subject, f"upgrade_tokens must be a tuple of lower-case bytes tokens, got {tokens!r}")
    for flag in ("fallback", "upgrade_only", "tunnels"):
        if not isinstance(getattr(f, flag), bool):
            fail(subject, f"{flag} must be a bool, got {getattr(f, flag)!r}")
    if (f.upgrade_only or f.tunnels) and not tokens:
        fail(subject, "an upgrade_only or tunnels protocol needs upgrade_tokens")
    if f.upgrade_only and f.fallback:
        fail(subject, "an upgrade_only protocol cannot be the fallback")
    if not isinstance(f.with_tunnels(()), ProtocolFactory):
        fail(subject, "with_tunnels(()) must return a ProtocolFactory")


def _check_sniff(setup: _Setup) -> None:
    samples = dict(SNIFF_SAMPLES)
    if setup.greeting:
        samples["its greeting"] = setup.greeting
    for name, sample in samples.items():
        _sniff_consistently(setup, name, sample[:MAX_SNIFF_BYTES])
    f = setup.factory
    sniffs = type(f).sniff is not ProtocolFactory.sniff
    if setup.greeting and sniffs and not f.fallback:
        wanted = setup.greeting[:MAX_SNIFF_BYTES]
        if f.sniff(wanted) is not True:
            fail(setup.subject, f"sniff() does not claim its own greeting {wanted!r}")


def _sniff_consistently(setup: _Setup, name: str, sample: bytes) -> None:
    decided: bool | None = None
    for size in range(1, len(sample) + 1):
        prefix = sample[:size]
        try:
            verdict, again = setup.factory.sniff(prefix), setup.factory.sniff(prefix)
        except Exception as exc:
            fail(setup.subject, f"sniff({prefix!r}) raised {exc!r}")
        if verdict is not None and not isinstance(verdict, bool):
            fail(setup.subject, f"sniff({prefix!r}) must return True, False or None")
        if verdict != again:
            fail(setup.subject, f"sniff({prefix!r}) answered {verdict!r}, then {again!r}")
        if decided is not None and verdict != decided:
            fail(
                setup.subject,
                f"sniff() changed its mind on {name}: {decided!r} for a prefix, "
                f"{verdict!r} for {prefix!r} (None means: too short to tell)",
            )
        if verdict is not None:
            decided = verdict


# -- handlers ------------------------------------------------------------------------


def _check_handlers(setup: _Setup) -> None:
    async def part() -> None:
        service = setup.service()
        for how, make in setup.makers().items():
            first, second = make(service), make(service)
            if first is second:
                fail(setup.subject, f"{how}: the same handler for two connections")
            for handler in (first, second):
                for method in CALLBACKS:
                    if not callable(getattr(handler, method, None)):
                        fail(setup.subject, f"{how}: the handler has no {method}()")

    _run(setup, "making handlers", part())


def _check_shutdown(setup: _Setup) -> None:
    for how, make in setup.makers().items():
        _run(setup, f"shutdown of {how}", _shutdown_idle(setup, how, make))
    if not setup.factory.upgrade_only:
        _run(setup, "a connection accepted while stopping", _accepted_while_stopping(setup))


async def _shutdown_idle(
    setup: _Setup, how: str, make: Callable[[ServiceContext], ConnectionHandler]
) -> None:
    conn = MemoryConn(make(setup.service())).open()
    await turns(10)
    if conn.ended:
        return  # it closed by itself (a refused handshake): nothing to shut down
    written = len(conn.written)
    conn.shutdown()
    if how == "a new connection":
        await wait_until(
            lambda: conn.closed or conn.aborted,
            setup.subject,
            "begin_shutdown did not close an idle connection: the server would wait out "
            "its whole graceful timeout",
        )
    else:
        await wait_until(
            lambda: conn.ended or len(conn.written) > written,
            setup.subject,
            f"{how}: begin_shutdown neither closed an idle connection nor began closing it",
        )
    conn.lose()
    await others_finish(setup.subject, f"{how}: a task kept running after shutdown and loss")


async def _accepted_while_stopping(setup: _Setup) -> None:
    service = setup.service()
    service.begin_shutdown()
    conn = MemoryConn(setup.factory.handler(service)).open()
    await wait_until(
        lambda: conn.closed or conn.aborted,
        setup.subject,
        "a connection accepted while the server stops was not closed "
        "(check service.shutting_down in connection_made)",
    )


# -- lost ----------------------------------------------------------------------------


def _check_lost(setup: _Setup) -> None:
    greeting = setup.greeting
    points: dict[str, Callable[[MemoryConn], None]] = {
        "right after connection_made": lambda conn: None,
        "after a shutdown": lambda conn: conn.shutdown(),
    }
    if len(greeting) > 1:
        points["in the middle of the greeting"] = lambda conn: conn.feed(greeting[:-1])
    if greeting:
        points["after the greeting"] = lambda conn: conn.feed(greeting)
    for how, make in setup.makers().items():
        for where, before in points.items():
            for exc in (None, ConnectionResetError("reset by the conformance kit")):
                what = f"{how}: connection_lost({exc!r}) {where}"
                _run(setup, what, _lost(setup, what, make, before, exc))


async def _lost(
    setup: _Setup,
    what: str,
    make: Callable[[ServiceContext], ConnectionHandler],
    before: Callable[[MemoryConn], None],
    exc: Exception | None,
) -> None:
    conn = MemoryConn(make(setup.service())).open()
    before(conn)
    await turns(10)
    conn.lose(exc)
    await others_finish(setup.subject, f"{what}: a task of the handler kept running")
    if conn.written_after_lost:
        fail(setup.subject, f"{what}: wrote {bytes(conn.written_after_lost)!r} after it")


_CHECKS: dict[str, Callable[[_Setup], None]] = {
    "describe": _check_describe,
    "frozen": _check_frozen,
    "declaration": _check_declaration,
    "sniff": _check_sniff,
    "handlers": _check_handlers,
    "shutdown": _check_shutdown,
    "lost": _check_lost,
}
