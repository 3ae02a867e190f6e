"""A server run under a low RLIMIT_NOFILE, for the EMFILE tests (run as a script).

``python emfile_server.py LOOP CAP NOFILE``: serves a one-line app on
127.0.0.1:0 with the `loop`, a connection cap of `cap` (0: none), and at
most `nofile` descriptors; prints ``port N`` once listening.
"""

from __future__ import annotations

import asyncio
import logging
import resource
import sys

from pounce import Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.net.loops import loop_factory


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    if scope["type"] != "http":
        return
    body = b"ok"
    headers = [(b"content-length", b"2")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def main() -> None:
    loop, cap, nofile = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    logging.basicConfig(level=logging.INFO, format="%(name)s %(levelname)s %(message)s")
    builder = Server.builder().bind("127.0.0.1", 0).h1().loop(loop)  # type: ignore[arg-type]
    builder = builder.timeouts(keep_alive=60.0)  # held connections stay open until released
    if cap:
        builder = builder.max_connections(cap)
    server = builder.asgi(app)
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, hard))

    def ready(addresses: list[tuple[str, int]]) -> None:
        print(f"port {addresses[0][1]}", flush=True)

    with asyncio.Runner(loop_factory=loop_factory(server.spec.loop)) as runner:
        runner.run(server.serve(ready=ready))


if __name__ == "__main__":
    main()
