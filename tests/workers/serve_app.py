"""A server for the worker tests: ``python -m tests.workers.serve_app '{"workers": 2}'``.

HTTP/1.1 and HTTP/2 (prior knowledge) on one port. The JSON object holds
the keywords of `Server.run()` plus ``graceful`` (the graceful timeout,
seconds) and ``tls`` (``{"cert": PATH, "key": PATH}``: TLS, ALPN h2 or
http/1.1). Set ``POUNCE_TEST_FAIL_FILE`` to a path: while
that file exists, a new worker's lifespan startup fails.

Routes: every answer is ``<pid> <thread id> <TCP_NODELAY of this connection>``.
``/block?s=0.3`` blocks the worker's event loop first (so the next connection
goes to another worker), ``/slow?s=2`` awaits, ``/crash`` kills the worker
(``os._exit(7)`` in a process; in a thread, the worker's serve task is cancelled).
"""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
import threading
import time
from typing import Any

from pounce import Server
from pounce.logs import configure_logging


def nodelay(client: Any, server: Any) -> int:
    """TCP_NODELAY of the socket serving (client, server), read from the kernel.

    The worker's own fds are scanned in /proc/self/fd; the socket whose peer
    and local addresses are this request's is the accepted one.
    """
    for name in os.listdir("/proc/self/fd"):
        try:
            sock = socket.socket(fileno=os.dup(int(name)))
        except OSError:
            continue
        with sock:
            try:
                if sock.type != socket.SOCK_STREAM or sock.family != socket.AF_INET:
                    continue
                if sock.getpeername() == tuple(client) and sock.getsockname() == tuple(server):
                    return sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            except OSError:
                continue
    return -1


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    params = dict(p.split("=") for p in scope["query_string"].decode().split("&") if p)
    path = scope["path"]
    if path == "/block":
        time.sleep(float(params.get("s", "0.3")))
    elif path == "/slow":
        await asyncio.sleep(float(params.get("s", "1")))
    elif path == "/crash":
        if threading.current_thread() is threading.main_thread():
            os._exit(7)
        for task in asyncio.all_tasks():  # a thread worker's serve ends under it
            if task.get_coro().__qualname__ == "_serve":  # type: ignore[union-attr]
                task.cancel()
        return
    flag = nodelay(scope["client"], scope["server"]) if path != "/" else -2
    body = f"{os.getpid()} {threading.get_ident()} {flag}".encode()
    headers = [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def lifespan(receive: Any, send: Any) -> None:
    await receive()
    fail = os.environ.get("POUNCE_TEST_FAIL_FILE")
    if fail and os.path.exists(fail):
        await send({"type": "lifespan.startup.failed", "message": "told to fail"})
        return
    await send({"type": "lifespan.startup.complete"})
    await receive()
    await send({"type": "lifespan.shutdown.complete"})


def main() -> None:
    options = json.loads(sys.argv[1])
    graceful = float(options.pop("graceful", 5))
    tls = options.pop("tls", None)  # {"cert": path, "key": path}
    configure_logging("info", access_log=False)
    builder = Server.builder().bind("127.0.0.1", 0)
    if tls:
        builder = builder.tls(cert=tls["cert"], key=tls["key"])
    server = builder.h1().h2().timeouts(graceful_shutdown=graceful).lifespan("on").asgi(app)
    server.run(**options)


if __name__ == "__main__":
    main()
