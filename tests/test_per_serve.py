"""Both planes are wrapped once per `serve()`: one `Server`, many workers.

A `Server` is an immutable description; each `serve()` (one per worker
thread or process) folds the stream layers and the app layers afresh, so
state a layer makes in ``wrap`` — a counter, an asyncio primitive — belongs
to that serve and its event loop. `serve(sockets=...)` serves listening
sockets a supervisor opened once.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from dataclasses import dataclass

import httpx

from pounce import AppLayer, Server
from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.testing import TestServer

TIMEOUT = 10.0


@dataclass(frozen=True)
class PerServeState(AppLayer):
    """Makes an asyncio.Lock and a counter in `wrap`; answers which loop owns them."""

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        lock = asyncio.Lock()  # bound to the loop of the first serve that uses it
        count = [0]
        wrap_id = id(count)

        async def app(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                return
            async with lock:
                count[0] += 1
                body = f"{wrap_id} {count[0]}".encode()
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": body})

        return app


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("PerServeState answers")


def _server() -> Server:
    return Server.builder().bind("127.0.0.1", 0).h1().layer(PerServeState()).asgi(hello)


def test_each_serve_wraps_the_app_layers_afresh() -> None:
    server = _server()
    answers = []
    for _ in range(2):  # one Server, served twice: two wraps
        with TestServer(server) as ts:
            answers += [httpx.get(ts.url, timeout=TIMEOUT).text for _ in range(2)]
    first, second = ({a.split()[0] for a in answers[:2]}, {a.split()[0] for a in answers[2:]})
    assert len(first) == len(second) == 1 and first != second
    assert [a.split()[1] for a in answers] == ["1", "2", "1", "2"]


def test_two_threads_serve_one_server_at_once() -> None:
    """Each thread's loop gets its own lock: no 'bound to a different event loop'."""
    server = _server()
    with TestServer(server) as one, TestServer(server) as two:
        results: dict[str, list[str]] = {"one": [], "two": []}

        def hit(name: str, url: str) -> None:
            for _ in range(5):
                response = httpx.get(url, timeout=TIMEOUT)
                assert response.status_code == 200, response.text
                results[name].append(response.text)

        threads = [
            threading.Thread(target=hit, args=("one", one.url)),
            threading.Thread(target=hit, args=("two", two.url)),
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(TIMEOUT)
    ids = {name: {text.split()[0] for text in texts} for name, texts in results.items()}
    assert len(ids["one"]) == len(ids["two"]) == 1 and ids["one"] != ids["two"]
    assert [t.split()[1] for t in results["one"]] == ["1", "2", "3", "4", "5"]


def test_serve_on_sockets_opened_once() -> None:
    """A supervisor opens the listening socket; two serves share it; it stays open."""
    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = _server()
    stops: list[tuple[asyncio.AbstractEventLoop, asyncio.Event]] = []
    ready = threading.Barrier(3, timeout=TIMEOUT)

    def worker() -> None:
        async def main() -> None:
            stop = asyncio.Event()
            stops.append((asyncio.get_running_loop(), stop))
            await server.serve(stop=stop, sockets=[listener], ready=lambda _: ready.wait())

        asyncio.run(main())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    try:
        ready.wait()
        for _ in range(6):
            response = httpx.get(
                f"http://127.0.0.1:{port}/", timeout=TIMEOUT, headers={"connection": "close"}
            )
            assert response.status_code == 200
    finally:
        for loop, stop in stops:
            loop.call_soon_threadsafe(stop.set)
        for thread in threads:
            thread.join(TIMEOUT)
    assert listener.fileno() != -1  # still open: the caller's to close
    with socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT):
        pass  # and still listening (the kernel queues the connection)
    listener.close()


async def test_a_websocket_server_picks_http1_without_waiting_for_bytes() -> None:
    """WebSocket is reached only by Upgrade, so `.h1().websocket()` has one protocol to
    pick from: the connection is HTTP/1.1's at once, with no protocol-choice clock."""
    from pounce.drivers.bridge import ProtocolBridge
    from pounce.drivers.http import HTTPDriver
    from pounce.drivers.service import ServiceContext
    from pounce.testing import MemoryConn

    server = Server.builder().bind("127.0.0.1", 0).h1().websocket().asgi(hello)
    bridge = ProtocolBridge(server.spec.protocols, ServiceContext(hello, server.spec.http))
    conn = MemoryConn(bridge).open()
    assert isinstance(bridge._chosen, HTTPDriver)
    assert len(bridge._undecided) == 0
    conn.lose()
