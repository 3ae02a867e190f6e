"""HTTP/3 under the supervisor: ``python -m tests.workers.serve_h3 CERT KEY WORKERS``.

Every answer is the serving worker's pid. Process workers, TLS on a free
port, HTTP/3 on the same port (UDP).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from pounce import Server
from pounce.logs import configure_logging


async def app(scope: Any, receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"%d" % os.getpid()})


if __name__ == "__main__":
    cert, key, workers = sys.argv[1], sys.argv[2], int(sys.argv[3])
    configure_logging("info")
    builder = Server.builder().bind("127.0.0.1", 0).tls(cert=cert, key=key).h1().h3()
    server = builder.timeouts(graceful_shutdown=2).asgi(app)
    server.run(workers=workers, worker_class="process")
