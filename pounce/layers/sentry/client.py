"""The one module that imports ``sentry_sdk`` (the ``pounce[sentry]`` extra).

A `Reporter` owns a `sentry_sdk.Client` of its own — never the process-wide
one that ``sentry_sdk.init()`` installs — made with no integrations: Pounce
is a library inside someone's process and patches nothing there (no logging
hook that would turn ``pounce.error`` lines into second reports, no
excepthook, no framework instrumentation). From the SDK it takes what it is
good at: the event format (frames, source context, in-app detection), the
DSN, ``before_send``, sampling, and the transport with its background
thread, rate limits and retries, so reporting never blocks the event loop.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pounce.errors import BuildError

try:
    import sentry_sdk
    from sentry_sdk.utils import BadDsn, Dsn, event_from_exception
except ImportError as exc:  # pragma: no cover - exercised without the extra
    raise BuildError(
        ".sentry(): Sentry reporting needs the sentry-sdk package",
        hint="pip install pounce[sentry]",
    ) from exc

CLOSE_TIMEOUT = 2.0  # seconds a closing worker waits for its queued reports to leave

# Whatever the caller passes: the server must not instrument the process.
_ISOLATED = {"default_integrations": False, "auto_enabling_integrations": False, "integrations": []}
# Unless the caller asks: frames' local variables hold the ASGI scope, whose headers are
# not masked there (cookies, Authorization), so they are not sent.
_DEFAULTS = {"include_local_variables": False}


def check_dsn(dsn: str) -> None:
    """A `BuildError` for a DSN the SDK cannot parse, at build time, not at the first error."""
    try:
        Dsn(dsn)
    except BadDsn as exc:
        raise BuildError(
            f".sentry(): bad DSN: {exc}",
            hint="copy it from the project's Client Keys (DSN) settings in Sentry",
        ) from None


class Reporter:
    """One worker's Sentry client: `report` an exception with its request, `close` at the end."""

    __slots__ = ("_client",)

    def __init__(self, dsn: str | None, options: Mapping[str, Any]) -> None:
        self._client = sentry_sdk.Client(dsn, **{**_DEFAULTS, **options, **_ISOLATED})

    def report(self, exc: BaseException, request: dict[str, Any], transaction: str) -> None:
        """Queue one error event; the transport sends it from its own thread."""
        client = self._client
        event, hint = event_from_exception(
            exc, client_options=client.options, mechanism={"type": "pounce", "handled": False}
        )
        event["request"] = request
        event["transaction"] = transaction
        client.capture_event(event, hint=hint)

    def close(self) -> None:
        self._client.close(timeout=CLOSE_TIMEOUT)
