"""Pounce with the minimal builder stack, for goal 5 (standard preset vs minimal).

The same app, parser and loop as ``pounce (fast, uvloop)``, but only the
layers a bare HTTP/1.1 server needs: no proxy headers, no HTTP/2 sniffing,
no access log. Run as ``python -m minimal_server apps:app --port N`` from
benchmarks/ (any app import string: the framework scenarios pass theirs).
"""

from __future__ import annotations

import argparse

from pounce import Server
from pounce.importer import import_app


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("app", nargs="?", default="apps:app", help="import string")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--host", default="127.0.0.1")
    args = parser.parse_args()
    server = (
        Server.builder()
        .bind(args.host, args.port)
        .backlog(2048)
        .h1(parser="fast")
        .timeouts(keep_alive=600)
        .loop("uvloop")
        .asgi(import_app(args.app))
    )
    server.run()


if __name__ == "__main__":
    main()
