"""Conformance checks every `StreamLayer` must pass, in memory.

``check_stream_layer(make_layer)`` wraps a `RecordingFactory` with a layer
from `make_layer` and drives `MemorySetupConn` connections through it:

``describe``   one line, the same for two layers `make_layer` makes;
``frozen``     hashable and immutable: one layer object serves every worker;
``forwarding`` once a connection is handed inward (after `preamble`), its
               bytes, EOF and ``connection_lost`` reach its own inner handler,
               unchanged and in order, with two connections interleaved;
``shutdown``   ``begin_shutdown`` reaches the inner handler of a connection
               handed inward (and the layer leaves closing to it); a
               connection not yet handed inward is closed or aborted;
``refusal``    a connection the layer refuses (each of `refused`, and any
               connection never handed inward) is closed, and no callback
               leaks inward — not data, EOF, shutdown, nor its loss;
``lost``       ``connection_lost`` at any point is taken quietly, reaches the
               inner handler exactly once if it has one, and leaves no task
               of the layer running;
``per_wrap``   state made in ``wrap`` is not shared: a wrap in another event
               loop, with connections still open in the first, behaves like a
               fresh one;
``stateless``  nothing per connection is kept on the layer: its attributes
               are the same after serving connections as before.

The layer must admit at least two connections at once. A layer that cannot
hand a connection inward in memory (TLS: the handshake needs a real peer)
passes ``admits=False``, and the checks that need a handed-in connection
check what they can.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass

from pounce.conn import ConnectionInfo
from pounce.layer import StreamLayer
from pounce.testing._kit import (
    KitLoop,
    check_describe,
    check_frozen,
    check_unchanged,
    fail,
    others_finish,
    snapshot,
    turns,
    wait_until,
)
from pounce.testing.memory import MemorySetupConn, RecordingFactory, RecordingHandler, kit_info

STREAM_LAYER_CHECKS = (
    "describe",
    "frozen",
    "forwarding",
    "shutdown",
    "refusal",
    "lost",
    "per_wrap",
    "stateless",
)


@dataclass(frozen=True, slots=True)
class _Setup:
    subject: str
    preamble: bytes
    refused: tuple[bytes, ...]
    info: ConnectionInfo
    admits: bool


def check_stream_layer(
    make_layer: Callable[[], StreamLayer],
    *,
    preamble: bytes = b"",
    refused: Sequence[bytes] = (),
    client: tuple[str, int] | None = ("127.0.0.1", 40000),
    admits: bool = True,
    checks: Iterable[str] = STREAM_LAYER_CHECKS,
) -> None:
    """Run the `checks` (default: all of `STREAM_LAYER_CHECKS`); AssertionError on failure.

    `preamble`: what a client sends before the layer hands its connection
    inward (a PROXY header); `refused`: first bytes the layer must refuse;
    `client`: the peer address of every connection; `admits`: False where
    no connection can be handed inward in memory.
    """
    layer = make_layer()
    if not isinstance(layer, StreamLayer):
        fail(repr(layer), "is not a pounce.StreamLayer")
    setup = _Setup(
        subject=f"{type(layer).__name__} ({_describe(layer)})",
        preamble=preamble,
        refused=tuple(refused),
        info=kit_info(client),
        admits=admits,
    )
    for name in checks:
        if name not in _CHECKS:
            raise ValueError(f"unknown check {name!r}; known: {', '.join(STREAM_LAYER_CHECKS)}")
        _CHECKS[name](make_layer, setup)


def _describe(layer: StreamLayer) -> str:
    try:
        return layer.describe()
    except Exception as exc:  # reported by the describe check
        return f"describe() raised {exc!r}"


def _check_describe(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    check_describe(setup.subject, [make_layer(), make_layer()])


def _check_frozen(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    check_frozen(setup.subject, make_layer())


# -- driving connections --------------------------------------------------------------


class _Wrapped:
    """One wrap of the layer and the connections made through it."""

    def __init__(self, layer: StreamLayer, setup: _Setup) -> None:
        self.setup = setup
        self.inner = RecordingFactory()
        self.outer = layer.wrap(self.inner)
        self.conns: list[MemorySetupConn] = []

    def connect(self) -> MemorySetupConn:
        conn = MemorySetupConn(self.outer(), self.setup.info)
        self.conns.append(conn)
        conn.open()
        return conn

    async def admitted(self) -> tuple[MemorySetupConn, RecordingHandler]:
        """A connection the layer has handed inward, with its inner handler."""
        before = set(map(id, self.inner.receiving()))
        conn = self.connect()
        if self.setup.preamble:
            conn.feed(self.setup.preamble)

        def handed() -> bool:
            return len(self.inner.receiving()) > len(before) or conn.ended

        await wait_until(handed, self.setup.subject, "never handed a connection inward")
        if conn.ended:
            fail(self.setup.subject, f"closed a connection after its preamble {_show(conn)}")
        fresh = [h for h in self.inner.receiving() if id(h) not in before]
        return conn, fresh[0]


def _show(conn: MemorySetupConn) -> str:
    state = "aborted" if conn.aborted else "closed" if conn.closed else "lost" if conn.lost else ""
    return f"({state}; wrote {bytes(conn.written)!r})"


def _run(
    setup: _Setup, what: str, part: Callable[[_Wrapped], Awaitable[None]], layer: StreamLayer
) -> None:
    async def main() -> None:
        await part(_Wrapped(layer, setup))

    with KitLoop(setup.subject) as kit:
        kit.run(main(), what)


# -- forwarding ----------------------------------------------------------------------


def _check_forwarding(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    if setup.admits:
        _run(setup, "forwarding", _forwarding, make_layer())


async def _forwarding(w: _Wrapped) -> None:
    subject = w.setup.subject
    a, inner_a = await w.admitted()
    b, inner_b = await w.admitted()
    if inner_a is inner_b:
        fail(subject, "handed two connections to the same inner handler")
    for chunk in (b"one to a", b"one to b", b"two to a", b"two to b"):
        (a if chunk.endswith(b"a") else b).feed(chunk)
        await turns()
    await _received(subject, a, inner_a, b"one to atwo to a")
    await _received(subject, b, inner_b, b"one to btwo to b")
    a.feed_eof()
    await wait_until(lambda: inner_a.names[-1:] == ["connection_lost"], subject, _story(inner_a))
    expected_a = ["connection_made", "data_received", "eof_received", "connection_lost"]
    if inner_a.names != expected_a:
        fail(subject, f"EOF then close: inner handler saw {inner_a.names}, not {expected_a}")
    error = ConnectionResetError("reset by the conformance kit")
    b.lose(error)
    await turns()
    if inner_b.names != ["connection_made", "data_received", "connection_lost"]:
        fail(subject, f"a lost connection: inner handler saw {inner_b.names}")
    if inner_b.callbacks[-1].exc is not error:
        fail(subject, f"connection_lost({error!r}) reached inward as {inner_b.callbacks[-1]}")


async def _received(
    subject: str, conn: MemorySetupConn, inner: RecordingHandler, expected: bytes
) -> None:
    def enough() -> bool:
        return len(inner.data) >= len(expected)

    await wait_until(enough, subject, f"passed inward only {inner.data!r} of {expected!r}")
    if inner.data != expected:
        fail(subject, f"passed inward {inner.data!r}, not the {expected!r} sent {_show(conn)}")


def _story(inner: RecordingHandler) -> str:
    return f"EOF from the peer did not end in connection_lost inward (it saw {inner.names})"


# -- shutdown ------------------------------------------------------------------------


def _check_shutdown(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    if setup.admits:
        _run(setup, "shutdown of a connection handed inward", _shutdown_inward, make_layer())
    if setup.preamble or not setup.admits:
        _run(setup, "shutdown of a connection not handed inward", _shutdown_early, make_layer())


async def _shutdown_inward(w: _Wrapped) -> None:
    conn, inner = await w.admitted()
    conn.shutdown()
    await turns()
    if "begin_shutdown" not in inner.names:
        fail(
            w.setup.subject,
            "begin_shutdown did not reach the inner handler: the server would wait out its "
            "whole graceful timeout (subclass pounce.ForwardingHandler)",
        )
    if conn.ended:
        fail(w.setup.subject, f"closed a connection handed inward on shutdown {_show(conn)}")
    conn.lose()
    await turns()
    if inner.names[-1:] != ["connection_lost"]:
        fail(w.setup.subject, f"after shutdown and loss the inner handler saw {inner.names}")


async def _shutdown_early(w: _Wrapped) -> None:
    conn = w.connect()
    if w.setup.admits:
        conn.feed(w.setup.preamble[:-1])  # all but its last byte
    await turns()
    if w.inner.receiving():
        return  # nothing is ever pending in this layer
    conn.shutdown()
    await wait_until(
        lambda: conn.closed or conn.aborted,
        w.setup.subject,
        "a connection not handed inward was neither closed nor aborted on shutdown",
    )
    await turns()
    _nothing_leaked(w)


def _nothing_leaked(w: _Wrapped) -> None:
    leaked = [h.names for h in w.inner.handlers if h.callbacks]
    if leaked:
        fail(w.setup.subject, f"a connection never handed inward leaked callbacks: {leaked}")


# -- refusal -------------------------------------------------------------------------


def _check_refusal(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    for first in setup.refused:
        _run(setup, f"refusing {first!r}", functools.partial(_refusal, first=first), make_layer())
    if not setup.admits:
        _run(setup, "a connection never handed inward", _never_inward, make_layer())


async def _refusal(w: _Wrapped, *, first: bytes) -> None:
    conn = w.connect()
    conn.feed(first)
    await wait_until(
        lambda: conn.closed or conn.aborted,
        w.setup.subject,
        f"did not close a connection that began with {first!r}",
    )
    conn.feed(b"more")
    conn.feed_eof()
    conn.shutdown()
    conn.lose()
    await turns()
    _nothing_leaked(w)


async def _never_inward(w: _Wrapped) -> None:
    conn = w.connect()
    steps: list[Callable[[], None]] = [
        functools.partial(conn.feed, b"hello"),
        conn.feed_eof,
        conn.shutdown,
        conn.lose,
    ]
    for step in steps:
        step()
        await turns()
        _nothing_leaked(w)


# -- lost ----------------------------------------------------------------------------


def _check_lost(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    points = {"right after connection_made": b""}
    if len(setup.preamble) > 1:
        points["in the middle of the preamble"] = setup.preamble[:-1]
    for where, first in points.items():
        what = f"connection_lost {where}"
        part = functools.partial(_lost_early, first=first, what=what)
        _run(setup, what, part, make_layer())
    if setup.admits:
        _run(setup, "connection_lost after handing inward", _lost_inward, make_layer())


async def _lost_early(w: _Wrapped, *, first: bytes, what: str) -> None:
    conn = w.connect()
    conn.feed(first)
    await turns()
    conn.lose(ConnectionResetError("reset by the conformance kit"))
    await others_finish(w.setup.subject, f"{what}: a task of the layer kept running")
    for inner in w.inner.handlers:
        if inner.made and inner.names.count("connection_lost") != 1:
            fail(w.setup.subject, f"{what}: the inner handler saw {inner.names}")
        if not inner.made and inner.callbacks:
            fail(w.setup.subject, f"{what}: leaked {inner.names} to a handler never made")


async def _lost_inward(w: _Wrapped) -> None:
    conn, inner = await w.admitted()
    conn.lose(None)
    await others_finish(w.setup.subject, "connection_lost: a task of the layer kept running")
    if inner.names.count("connection_lost") != 1:
        fail(w.setup.subject, f"connection_lost reached the inner handler as {inner.names}")


# -- per_wrap and stateless -----------------------------------------------------------


async def _scenario(w: _Wrapped) -> list[object]:
    """Two connections at once, each through its whole life; what the wire and inside saw."""
    conns = [w.connect(), w.connect()]
    for conn in conns:
        conn.feed(w.setup.preamble)
    await turns(10)
    for conn in conns:
        conn.feed(b"ping\n")
    await turns(10)
    conns[0].feed_eof()
    conns[1].shutdown()
    await turns(10)
    for conn in conns:
        conn.lose()
    await turns(10)
    return [_outcome(conn) for conn in conns] + [
        (h.names, h.data, repr(h.info)) for h in w.inner.handlers
    ]


def _outcome(conn: MemorySetupConn) -> object:
    return (bytes(conn.written), conn.closed, conn.aborted, conn.tls_started)


async def _hold_open(w: _Wrapped) -> None:
    for _ in range(2):
        w.connect().feed(w.setup.preamble)
    await turns(10)


def _check_per_wrap(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    layer = make_layer()
    outcomes: list[list[object]] = []
    with KitLoop(setup.subject) as first:
        outcomes.append(first.run(_scenario(_Wrapped(layer, setup)), "a first wrap"))
    with KitLoop(setup.subject) as busy:
        busy.run(_hold_open(_Wrapped(layer, setup)), "a wrap with connections open")
        with KitLoop(setup.subject) as other:
            outcomes.append(other.run(_scenario(_Wrapped(layer, setup)), "another wrap"))
    if outcomes[0] != outcomes[1]:
        fail(
            setup.subject,
            "a wrap behaves differently while another wrap (another worker) has open "
            "connections: state made in wrap() must not be shared, and nothing may live on "
            f"the layer or in module globals\n  fresh: {outcomes[0]!r}\n  other: {outcomes[1]!r}",
        )


def _check_stateless(make_layer: Callable[[], StreamLayer], setup: _Setup) -> None:
    layer = make_layer()
    before = snapshot(layer)
    with KitLoop(setup.subject) as kit:
        kit.run(_scenario(_Wrapped(layer, setup)), "serving connections")
        kit.run(_hold_open(_Wrapped(layer, setup)), "holding connections open")
        check_unchanged(setup.subject, before, snapshot(layer))


_CHECKS: dict[str, Callable[[Callable[[], StreamLayer], _Setup], None]] = {
    "describe": _check_describe,
    "frozen": _check_frozen,
    "forwarding": _check_forwarding,
    "shutdown": _check_shutdown,
    "refusal": _check_refusal,
    "lost": _check_lost,
    "per_wrap": _check_per_wrap,
    "stateless": _check_stateless,
}
