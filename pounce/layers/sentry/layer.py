"""`.sentry()`: unhandled app exceptions reported to Sentry, once each.

An `AppLayer`: every exception that leaves the app (HTTP or WebSocket) is
reported with the request's method, URL, query string and headers — secret
values masked as on the debug page (`pounce.layers.masking`) — and then
goes on outward unchanged (the server logs it and answers 500 as before).
Not reported: failures because the client left. Once ``receive()`` has
returned ``http.disconnect`` / ``websocket.disconnect``, or ``send()`` has
raised `ClientDisconnectedError`, what the app raises (Starlette's
``ClientDisconnect``, a cancelled stream) is the client's doing, not a bug.

Each serve (worker) makes its own client (`client.Reporter`) in `wrap` and
closes it, flushing what is queued, when the serve ends. The
``sentry_sdk`` import lives in `pounce.layers.sentry.client` alone; without
the package, building the layer is a `BuildError` naming ``pounce[sentry]``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.errors import BuildError, ClientDisconnectedError
from pounce.layer import AppLayer, Serving
from pounce.layers.masking import masked_headers, masked_query
from pounce.options import check_fields, option

_DISCONNECTS = frozenset({"http.disconnect", "websocket.disconnect"})


def _check_client_options(value: object) -> Mapping[str, Any] | None:
    if value is not None and not isinstance(value, Mapping):
        raise ValueError("must be a mapping of sentry_sdk.Client keyword arguments")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class Sentry(AppLayer):
    """`.sentry()`: report unhandled app exceptions to Sentry; see the module docstring."""

    builder_call = ".sentry"
    options_group = "devtools"

    dsn: str | None = option(
        None,
        name="sentry_dsn",
        env=("POUNCE_SENTRY_DSN", "SENTRY_DSN"),
        secret=True,
        help="report unhandled app exceptions to this Sentry DSN (pounce[sentry]); "
        "disconnects are not reported",
        shown="SENTRY_DSN, else off",
    )
    environment: str | None = option(
        None,
        name="sentry_environment",
        help="the environment reports are filed under (the SDK's default: SENTRY_ENVIRONMENT, "
        "else production)",
    )
    release: str | None = option(
        None,
        name="sentry_release",
        help="the release reports are filed under (the SDK's default: SENTRY_RELEASE)",
    )
    client_options: Mapping[str, Any] | None = option(
        None,
        outside=False,
        help="more sentry_sdk.Client keywords (before_send, sample_rate, transport …); "
        "integrations stay off",
        convert=_check_client_options,
    )

    def __post_init__(self) -> None:
        check_fields(self, self.builder_call)
        from pounce.layers.sentry.client import check_dsn  # the extra, at build

        dsn = self.dsn or os.environ.get("SENTRY_DSN")
        if not dsn:
            raise BuildError(".sentry(): no DSN", hint="pass dsn=, --sentry-dsn or set SENTRY_DSN")
        check_dsn(dsn)

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        return self.wrap_serving(inner, Serving())

    def wrap_serving(self, inner: ASGIApp, serving: Serving) -> ASGIApp:
        from pounce.layers.sentry.client import Reporter

        options = {**(self.client_options or {})}
        for key in ("environment", "release"):
            if getattr(self, key) is not None:
                options[key] = getattr(self, key)
        reporter = Reporter(self.dsn, options)  # one client per worker, closed with it
        serving.at_close(reporter.close)

        async def reported(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] not in ("http", "websocket"):
                await inner(scope, receive, send)
                return
            watch = _DisconnectWatch(receive)
            try:
                await inner(scope, watch.receive, send)
            except ClientDisconnectedError:
                raise
            except Exception as exc:
                if not watch.client_left:
                    reporter.report(exc, request_data(scope), scope["path"])
                raise

        return reported

    def describe(self) -> str:
        env = f", environment {self.environment}" if self.environment else ""
        return f"sentry: report unhandled app exceptions{env}"


class _DisconnectWatch:
    """The app's `receive`, noting whether it has told the app the client left."""

    __slots__ = ("_receive", "client_left")

    def __init__(self, receive: Receive) -> None:
        self._receive = receive
        self.client_left = False

    async def receive(self) -> Message:
        message = await self._receive()
        if message.get("type") in _DISCONNECTS:
            self.client_left = True
        return message


def request_data(scope: Scope) -> dict[str, Any]:
    """The event's ``request`` (Sentry's Request interface), secrets masked."""
    headers: dict[str, str] = {}
    for name, value in masked_headers(scope["headers"]):
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    host = headers.get("host") or _server_host(scope)
    scheme = scope.get("scheme") or ("wss" if scope["type"] == "websocket" else "http")
    return {
        "method": scope.get("method", "GET"),
        "url": f"{scheme}://{host}{scope['path']}",
        "query_string": masked_query(scope.get("query_string", b"")),
        "headers": headers,
    }


def _server_host(scope: Scope) -> str:
    server = scope.get("server")
    if not server:
        return "localhost"
    host, port = server
    return f"{host}:{port}" if port is not None else str(host)
