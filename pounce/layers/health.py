"""Liveness and readiness endpoints, answered by the server itself.

An `AppLayer` that answers two paths (``GET`` or ``HEAD``; other methods
get 405) and passes everything else inward:

* `live` (``/livez``): 200 ``ok`` whenever the worker's event loop turns
  enough to answer — the check a supervisor (Kubernetes' liveness probe)
  restarts a stuck worker on;
* `ready` (``/readyz``): 200 ``ready``, or 503 with ``Connection: close``
  and the reasons (``not ready: draining``) while this worker should get
  no new work: while it drains in a graceful shutdown, and while an app
  layer reports it cannot take more (the concurrency limit: every place
  taken and its waiting queue full). A load balancer's check (Kubernetes,
  HAProxy, nginx) then takes the instance out before it refuses work.

It learns both from the `Serving` its serve hands it (`AppLayer.wrap_serving`):
`Serving.draining` turns True as the graceful shutdown begins, and the
concurrency limit registers a readiness check there. Neither answer
reaches the app; call `.health()` before `.rate_limit()` and `.limit()`
(the builder refuses the other order) so that probes are neither metered
nor counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from pounce.asgi.exchange import PROBE_EXTENSION
from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.errors import BuildError
from pounce.layer import AppLayer, Serving
from pounce.options import check_fields, option


def _check_path(value: object) -> str:
    if not isinstance(value, str) or not value.startswith("/") or " " in value:
        raise ValueError('must be a path starting with "/"')
    return value


_TEXT = (b"content-type", b"text/plain; charset=utf-8")
_NO_STORE = (b"cache-control", b"no-store")


@dataclass(frozen=True, slots=True, kw_only=True)
class Health(AppLayer):
    """`.health()`: answer the liveness and readiness paths; see the module docstring."""

    builder_call = ".health"
    options_group = "health"

    live: str = option(
        "/livez",
        name="health_live_path",
        help="answers 200 while the worker's event loop turns (with --health)",
        convert=_check_path,
    )
    ready: str = option(
        "/readyz",
        name="health_ready_path",
        help="answers 200, or 503 while the worker drains or its limit's queue is full "
        "(with --health)",
        convert=_check_path,
    )

    def __post_init__(self) -> None:
        check_fields(self, self.builder_call)
        if self.live == self.ready:
            raise BuildError(f".health(): live and ready are both {self.live!r}")

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        return self.wrap_serving(inner, Serving())

    def wrap_serving(self, inner: ASGIApp, serving: Serving) -> ASGIApp:
        live, ready = self.live, self.ready

        async def health(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or scope["path"] not in (live, ready):
                await inner(scope, receive, send)
                return
            scope.setdefault("extensions", {})[PROBE_EXTENSION] = {}  # the access log skips it
            if scope["method"] not in ("GET", "HEAD"):
                await _answer(send, 405, b"method not allowed\n", (b"allow", b"GET, HEAD"))
            elif scope["path"] == live:
                await _answer(send, 200, b"ok\n")
            else:
                reasons = serving.not_ready()
                if reasons:
                    text = f"not ready: {'; '.join(reasons)}\n".encode()
                    await _answer(send, 503, text, (b"connection", b"close"))
                else:
                    await _answer(send, 200, b"ready\n")

        return health

    def describe(self) -> str:
        return f"health: live {self.live}, ready {self.ready}"


async def _answer(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    headers = [_TEXT, _NO_STORE, (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
