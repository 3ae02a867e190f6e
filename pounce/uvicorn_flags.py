"""Uvicorn's command line, mapped once: each ``uvicorn --help`` flag and what Pounce does.

A Uvicorn flag is either Pounce's flag of the same spelling (`SAME`; its
values are Pounce's own option's, and the option definitions document them) or
refused (`REFUSED`): the message names the Pounce equivalent, or says why the
flag does not apply. Some values of shared flags are refused the same way
(`REFUSED_VALUES`: ``--http httptools``). ``pounce`` answers a refused flag or
value with its message and exit status 2, before anything else is read.

docs/migrating-from-uvicorn.md holds the table made from this mapping
(``python -m pounce.settings --write``), and tests/test_uvicorn_flags.py parses
the installed Uvicorn's ``--help``, so a flag a new Uvicorn adds fails the test
until it is mapped here. The same holds for ``uvicorn.run()``'s keywords against
``pounce.run()`` (`RUN_REFUSED`): one Pounce does not take is refused with a
`BuildError` carrying the message, unless it is given as Uvicorn's own
default (``interface="auto"``, ``log_config=None``), which changes nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pounce.errors import BuildError

SAME: tuple[str, ...] = (
    "--env-file",
    "--host",
    "--port",
    "--uds",
    "--fd",
    "--reload",
    "--reload-dir",
    "--reload-include",
    "--reload-exclude",
    "--reload-delay",
    "--workers",
    "--loop",
    "--http",
    "--http2",
    "--ws",
    "--ws-max-size",
    "--ws-max-queue",
    "--ws-ping-interval",
    "--ws-ping-timeout",
    "--ws-per-message-deflate",
    "--lifespan",
    "--log-level",
    "--access-log",
    "--no-access-log",
    "--proxy-headers",
    "--no-proxy-headers",
    "--server-header",
    "--no-server-header",
    "--date-header",
    "--no-date-header",
    "--forwarded-allow-ips",
    "--root-path",
    "--limit-concurrency",
    "--backlog",
    "--limit-max-requests",
    "--limit-max-requests-jitter",
    "--timeout-keep-alive",
    "--timeout-graceful-shutdown",
    "--timeout-worker-healthcheck",
    "--ssl-keyfile",
    "--ssl-certfile",
    "--ssl-keyfile-password",
    "--ssl-version",
    "--ssl-cert-reqs",
    "--ssl-ca-certs",
    "--ssl-ciphers",
    "--header",
    "--version",
    "--app-dir",
    "--h11-max-incomplete-event-size",
    "--factory",
    "--help",
    "--log-config",
    "--use-colors",
    "--no-use-colors",
)
"""Uvicorn flags that are Pounce flags of the same spelling and meaning."""

REFUSED: dict[str, str] = {
    "--interface": "Pounce serves ASGI 3 apps, what auto and asgi3 select: drop the flag; "
    "wrap an ASGI 2 app with asgiref.compatibility.guarantee_single_callable, "
    "a WSGI app with a2wsgi.WSGIMiddleware",
    "--reset-contextvars": "not needed, drop it: Pounce already runs each request in its own "
    "asyncio task, whose context never holds what the lifespan or an earlier request set",
}
"""Uvicorn flags Pounce refuses, with what to do instead."""

_HTTP = "Pounce parses HTTP/1.1 itself: --http auto or fast (its own parser), or --http h11"

REFUSED_VALUES: dict[tuple[str, str], str] = {
    ("--http", "httptools"): _HTTP + "; httptools is not used",
    ("--http", "zttp"): _HTTP + "; HTTP/2 is --http2 (pounce[h2]), with any --http",
    ("--loop", "zuvloop"): "not supported: --loop uvloop (pounce[uvloop]) or --loop asyncio",
    ("--ws", "websockets"): "Pounce's WebSocket is wsproto: --ws wsproto or auto (pounce[ws]); "
    "any client library, websockets included, talks to it",
    ("--ws", "websockets-sansio"): "Pounce's WebSocket is wsproto: --ws wsproto or auto "
    "(pounce[ws]); any client library, websockets included, talks to it",
}
"""Values of shared flags that Pounce refuses, with what to do instead."""


def refusal(argv: Sequence[str]) -> str | None:
    """The message for the first refused Uvicorn flag or value in `argv`, or None."""
    for i, arg in enumerate(argv):
        flag, eq, value = arg.partition("=")
        if flag in REFUSED:
            return f"{flag}: {REFUSED[flag]}"
        if not eq and i + 1 < len(argv):
            value = argv[i + 1]
        message = REFUSED_VALUES.get((flag, value))
        if message is not None:
            return f"{flag} {value}: {message}"
    return None


def table() -> str:
    """docs/migrating-from-uvicorn.md: every Uvicorn flag and its Pounce answer."""
    rows = ["| Uvicorn | Pounce |", "|---|---|"]
    rows += [f"| `{flag}` | `{flag}`, the same |" for flag in SAME]
    rows += [f"| `{flag}` | refused: {why} |" for flag, why in REFUSED.items()]
    rows += [f"| `{f} {v}` | refused: {why} |" for (f, v), why in REFUSED_VALUES.items()]
    return "\n".join(rows)


RUN_REFUSED: dict[str, tuple[tuple[object, ...], str]] = {
    "interface": (("auto", "asgi3"), REFUSED["--interface"]),
    "reset_contextvars": ((False,), REFUSED["--reset-contextvars"]),
    "ssl_context_factory": (
        (None,),
        "give ssl_certfile, ssl_keyfile, ssl_ca_certs … "
        "(docs/tls.md), or build the stack with Server.builder().tls(...)",
    ),
}
"""``uvicorn.run()`` keywords that ``pounce.run()`` does not take: (Uvicorn's values
that change nothing, what to do instead)."""


def run_keywords(options: Mapping[str, Any]) -> dict[str, Any]:
    """`options` less Uvicorn-only keywords given at Uvicorn's default; any other
    value of one is a `BuildError` saying what to do instead."""
    kept: dict[str, Any] = {}
    for name, value in options.items():
        refused = RUN_REFUSED.get(name)
        if refused is None:
            kept[name] = value
        elif not any(value is v or (value == v and type(value) is type(v)) for v in refused[0]):
            raise BuildError(f"pounce.run({name}={value!r}): {refused[1]}")
    return kept
