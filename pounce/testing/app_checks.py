"""Conformance checks every `AppLayer` must pass, against a recording inner app.

``check_app_layer(make_layer)`` wraps `EchoApp` — an inner app that records
the scopes it is given, echoes a request body back and answers lifespan and
WebSocket — with a layer from `make_layer`, and calls the wrapped app the
way the server does:

``describe``   one line, the same for two layers `make_layer` makes;
``frozen``     hashable and immutable: one layer object serves every worker;
``lifespan``   a lifespan scope reaches the inner app, and its startup and
               shutdown answers come back;
``http``       a request reaches the inner app with its body intact, and the
               response comes back: its status, the inner app's headers, its
               whole body;
``websocket``  a websocket scope reaches the inner app, and its accept comes back;
``errors``     an exception of the inner app propagates (the server answers 500);
``concurrent`` two requests in flight at once each get their own response
               (per-request state lives inside the wrapped app's call);
``per_wrap``   state made in ``wrap`` is not shared: a wrap in another event
               loop, with requests still in flight in the first, answers like
               a fresh one;
``stateless``  nothing per request is kept on the layer.

A layer that changes bodies or answers some requests itself can run the
checks that apply to it (``checks=...``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.layer import AppLayer
from pounce.testing._kit import (
    KitLoop,
    check_describe,
    check_frozen,
    check_unchanged,
    fail,
    snapshot,
    turns,
    wait_until,
)

APP_LAYER_CHECKS = (
    "describe",
    "frozen",
    "lifespan",
    "http",
    "websocket",
    "errors",
    "concurrent",
    "per_wrap",
    "stateless",
)

ASGI = {"version": "3.0", "spec_version": "2.4"}
INNER_HEADER = (b"x-inner-app", b"1")


def http_scope(
    path: str = "/kit",
    *,
    client: tuple[str, int] | None = ("127.0.0.1", 40000),
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> Scope:
    """A complete HTTP/1.1 ``POST`` scope, as the server builds one, with `headers` added."""
    return {
        "type": "http",
        "asgi": dict(ASGI),
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode("ascii"),
        "query_string": b"",
        "root_path": "",
        "headers": [(b"host", b"kit.test"), (b"content-type", b"text/plain"), *headers],
        "client": client,
        "server": ("127.0.0.1", 8000),
        "state": {},
        "extensions": {},
    }


def websocket_scope(
    client: tuple[str, int] | None = ("127.0.0.1", 40000),
    headers: Iterable[tuple[bytes, bytes]] = (),
) -> Scope:
    scope = http_scope("/ws", client=client, headers=headers)
    del scope["method"]
    scope.update(type="websocket", scheme="ws", subprotocols=[])
    return scope


class KitError(Exception):
    """Raised by `EchoApp` for the ``errors`` check."""


@dataclass(eq=False)
class EchoApp:
    """The inner app: records scopes; ``/fail`` raises `KitError`; ``/hold`` waits for `release`."""

    scopes: list[Scope] = field(default_factory=list)
    release: asyncio.Event | None = None
    held: int = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        self.scopes.append(scope)
        kind = scope["type"]
        if kind == "lifespan":
            await _lifespan(receive, send)
        elif kind == "websocket":
            await _websocket(receive, send)
        else:
            await self._http(scope, receive, send)

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body", False):
                break
        if scope["path"] == "/fail":
            raise KitError("the inner app failed")
        if scope["path"].startswith("/hold"):
            if self.release is None:
                self.release = asyncio.Event()
            self.held += 1
            await self.release.wait()
        headers = [(b"content-type", b"text/plain"), INNER_HEADER]
        await send({"type": "http.response.start", "status": 201, "headers": headers})
        await send({"type": "http.response.body", "body": b"echo:", "more_body": True})
        await send({"type": "http.response.body", "body": body})


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _websocket(receive: Receive, send: Send) -> None:
    if (await receive())["type"] == "websocket.connect":
        await send({"type": "websocket.accept"})
        while (await receive())["type"] != "websocket.disconnect":
            pass


class Peer:
    """The server's side of one call: feeds `messages`, records what the app sends."""

    def __init__(self, messages: Iterable[Message]) -> None:
        self._messages = list(messages)
        self.sent: list[Message] = []
        self.done = asyncio.Event()

    async def receive(self) -> Message:
        if self._messages:
            return self._messages.pop(0)
        await self.done.wait()  # as a server: nothing more until the exchange ends
        return {"type": "http.disconnect"}

    async def send(self, message: Message) -> None:
        self.sent.append(dict(message))
        if message["type"] == "http.response.body" and not message.get("more_body", False):
            self.done.set()

    @property
    def body(self) -> bytes:
        return b"".join(m.get("body", b"") for m in self.sent if m["type"] == "http.response.body")


def request(body: bytes) -> list[Message]:
    """A request body in two ``http.request`` messages."""
    half = len(body) // 2
    return [
        {"type": "http.request", "body": body[:half], "more_body": True},
        {"type": "http.request", "body": body[half:], "more_body": False},
    ]


@dataclass(frozen=True, slots=True)
class _Setup:
    subject: str
    headers: tuple[tuple[bytes, bytes], ...] = ()

    def http(self, path: str = "/kit") -> Scope:
        return http_scope(path, headers=self.headers)

    def websocket(self) -> Scope:
        return websocket_scope(headers=self.headers)


def check_app_layer(
    make_layer: Callable[[], AppLayer],
    *,
    headers: Iterable[tuple[bytes, bytes]] = (),
    checks: Iterable[str] = APP_LAYER_CHECKS,
) -> None:
    """Run the `checks` (default: all of `APP_LAYER_CHECKS`); AssertionError on failure.

    `headers`: request headers added to every http and websocket scope, so
    the layer's own path is taken (``x-forwarded-for`` for a proxy layer).
    """
    layer = make_layer()
    if not isinstance(layer, AppLayer):
        fail(repr(layer), "is not a pounce.AppLayer")
    try:
        described = layer.describe()
    except Exception as exc:  # reported by the describe check
        described = f"describe() raised {exc!r}"
    setup = _Setup(f"{type(layer).__name__} ({described})", tuple(headers))
    for name in checks:
        if name not in _CHECKS:
            raise ValueError(f"unknown check {name!r}; known: {', '.join(APP_LAYER_CHECKS)}")
        _CHECKS[name](make_layer, setup)


def _run(setup: _Setup, what: str, main: Callable[[ASGIApp, EchoApp], Any], layer: AppLayer) -> Any:
    async def part() -> Any:
        inner = EchoApp()
        return await main(layer.wrap(inner), inner)

    with KitLoop(setup.subject) as kit:
        return kit.run(part(), what)


async def _call(app: ASGIApp, scope: Scope, messages: Iterable[Message]) -> Peer:
    peer = Peer(messages)
    await app(scope, peer.receive, peer.send)
    return peer


# -- the checks ----------------------------------------------------------------------


def _check_describe(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    check_describe(setup.subject, [make_layer(), make_layer()])


def _check_frozen(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    check_frozen(setup.subject, make_layer())


def _check_lifespan(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    async def main(app: ASGIApp, inner: EchoApp) -> None:
        scope: Scope = {"type": "lifespan", "asgi": dict(ASGI), "state": {}}
        messages: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        peer = await _call(app, scope, messages)
        if [s["type"] for s in inner.scopes] != ["lifespan"]:
            fail(setup.subject, f"the lifespan scope did not reach the inner app ({inner.scopes})")
        answers = [m["type"] for m in peer.sent]
        expected = ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        if answers != expected:
            fail(setup.subject, f"lifespan: the server got {answers}, not {expected}")

    _run(setup, "lifespan", main, make_layer())


def _check_http(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    async def main(app: ASGIApp, inner: EchoApp) -> None:
        peer = await _call(app, setup.http(), request(b"hello, layer"))
        if [s["type"] for s in inner.scopes] != ["http"]:
            fail(setup.subject, f"the request did not reach the inner app ({inner.scopes})")
        _expect_echo(setup, peer, b"hello, layer")

    _run(setup, "an http request", main, make_layer())


def _expect_echo(setup: _Setup, peer: Peer, body: bytes) -> None:
    starts = [m for m in peer.sent if m["type"] == "http.response.start"]
    if len(starts) != 1 or starts[0].get("status") != 201:
        fail(setup.subject, f"the inner app's response start (201) did not come back: {peer.sent}")
    if INNER_HEADER not in [tuple(h) for h in starts[0].get("headers", ())]:
        fail(setup.subject, f"the inner app's header {INNER_HEADER} was lost: {starts[0]}")
    if peer.body != b"echo:" + body:
        fail(setup.subject, f"the response body {peer.body!r} is not {b'echo:' + body!r}")
    if not peer.done.is_set():
        fail(setup.subject, "the response never ended (a last body message without more_body)")


def _check_websocket(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    async def main(app: ASGIApp, inner: EchoApp) -> None:
        messages: list[Message] = [
            {"type": "websocket.connect"},
            {"type": "websocket.disconnect", "code": 1000},
        ]
        peer = await _call(app, setup.websocket(), messages)
        if [s["type"] for s in inner.scopes] != ["websocket"]:
            fail(setup.subject, f"the websocket scope did not reach the inner app ({inner.scopes})")
        if [m["type"] for m in peer.sent] != ["websocket.accept"]:
            fail(setup.subject, f"the inner app's websocket.accept did not come back: {peer.sent}")

    _run(setup, "a websocket", main, make_layer())


def _check_errors(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    async def main(app: ASGIApp, inner: EchoApp) -> None:
        try:
            await _call(app, setup.http("/fail"), request(b""))
        except KitError:
            return
        fail(setup.subject, "swallowed the inner app's exception: the server must see it (500)")

    _run(setup, "an inner app that raises", main, make_layer())


def _check_concurrent(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    async def main(app: ASGIApp, inner: EchoApp) -> None:
        bodies = [b"first request", b"second request"]
        peers = [Peer(request(body)) for body in bodies]
        tasks = [
            asyncio.ensure_future(app(setup.http(f"/hold/{i}"), p.receive, p.send))
            for i, p in enumerate(peers)
        ]
        await wait_until(lambda: inner.held == 2, setup.subject, "two requests never both arrived")
        assert inner.release is not None
        inner.release.set()
        await asyncio.gather(*tasks)
        for peer, body in zip(peers, bodies, strict=True):
            _expect_echo(setup, peer, body)

    _run(setup, "two requests at once", main, make_layer())


def _scenario(setup: _Setup) -> Callable[[ASGIApp, EchoApp], Any]:
    return lambda app, inner: _serve_all(setup, app, inner)


async def _serve_all(setup: _Setup, app: ASGIApp, inner: EchoApp) -> list[object]:
    """A lifespan, two requests and a websocket; what came back and what the app saw."""
    seen: list[object] = []
    scope: Scope = {"type": "lifespan", "asgi": dict(ASGI), "state": {}}
    peer = await _call(app, scope, [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}])
    seen.append(peer.sent)
    for body in (b"one", b"two"):
        seen.append((await _call(app, setup.http(), request(body))).sent)
    ws: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    seen.append((await _call(app, setup.websocket(), ws)).sent)
    keys = ("type", "path", "scheme", "client", "headers", "root_path")
    seen.append([{k: s.get(k) for k in keys} for s in inner.scopes])
    return seen


async def _hold(setup: _Setup, app: ASGIApp) -> list[asyncio.Future[None]]:
    """Two requests left in flight (their inner app waits for a release that never comes)."""
    held: list[asyncio.Future[None]] = []
    for i in range(2):
        peer = Peer(request(b"held"))
        held.append(asyncio.ensure_future(app(setup.http(f"/hold/{i}"), peer.receive, peer.send)))
    await turns(10)
    return held


def _check_per_wrap(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    layer = make_layer()
    fresh = _run(setup, "a first wrap", _scenario(setup), layer)
    with KitLoop(setup.subject) as busy:
        held = busy.run(_hold(setup, layer.wrap(EchoApp())), "a wrap with requests in flight")
        other = _run(setup, "another wrap", _scenario(setup), layer)
        del held  # in flight until here; the busy loop cancels them as it closes
    if fresh != other:
        fail(
            setup.subject,
            "a wrap answers differently while another wrap (another worker) has requests in "
            "flight: state made in wrap() must not be shared, and nothing may live on the "
            f"layer or in module globals\n  fresh: {fresh!r}\n  other: {other!r}",
        )


def _check_stateless(make_layer: Callable[[], AppLayer], setup: _Setup) -> None:
    layer = make_layer()
    before = snapshot(layer)
    _run(setup, "serving requests", _scenario(setup), layer)
    check_unchanged(setup.subject, before, snapshot(layer))
    with KitLoop(setup.subject) as kit:
        held = kit.run(_hold(setup, layer.wrap(EchoApp())), "requests in flight")
        check_unchanged(setup.subject, before, snapshot(layer))
        del held  # in flight until here; the loop cancels them as it closes


_CHECKS: dict[str, Callable[[Callable[[], AppLayer], _Setup], None]] = {
    "describe": _check_describe,
    "frozen": _check_frozen,
    "lifespan": _check_lifespan,
    "http": _check_http,
    "websocket": _check_websocket,
    "errors": _check_errors,
    "concurrent": _check_concurrent,
    "per_wrap": _check_per_wrap,
    "stateless": _check_stateless,
}
