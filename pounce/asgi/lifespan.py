"""ASGI lifespan: startup and shutdown, run once per server (worker).

Lifespan is not a layer: it runs beside the request plane, against the same
wrapped app. Modes follow Uvicorn: ``auto`` tolerates apps that do not speak
lifespan (an exception before any lifespan message means "unsupported"),
``on`` treats that as a failure, ``off`` never calls the app. A
``lifespan.*.failed`` message fails in both ``auto`` and ``on``, with the
app's message in the `LifespanError`.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Literal

from pounce.asgi.types import ASGIApp, Message, Scope
from pounce.errors import LifespanError

error_log = logging.getLogger("pounce.error")

LifespanMode = Literal["auto", "on", "off"]
LIFESPAN_MODES: tuple[LifespanMode, ...] = ("auto", "on", "off")


class Lifespan:
    """Drives one app's lifespan protocol; `state` is shared into each request scope."""

    def __init__(self, app: ASGIApp, mode: LifespanMode) -> None:
        self._app = app
        self._mode = mode
        self.state: dict[str, Any] = {}
        self._to_app: asyncio.Queue[Message] = asyncio.Queue()
        self._from_app: asyncio.Queue[Message] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self._unsupported = mode == "off"
        self._messages_sent = False
        self._failure_reported = False
        self._error: BaseException | None = None

    @property
    def supported(self) -> bool:
        return not self._unsupported

    async def startup(self) -> None:
        """Run startup; raise `LifespanError` if the app reports or raises a failure."""
        if self._unsupported:
            return
        scope: Scope = {
            "type": "lifespan",
            "asgi": {"version": "3.0", "spec_version": "2.0"},
            "state": self.state,
        }
        self._task = asyncio.get_running_loop().create_task(self._run(scope))
        await self._exchange("startup")

    async def shutdown(self) -> None:
        if self._unsupported or self._task is None:
            return
        if self._task.done():
            return
        await self._exchange("shutdown")

    async def _exchange(self, phase: str) -> None:
        await self._to_app.put({"type": f"lifespan.{phase}"})
        message = await self._from_app.get()
        kind = message.get("type")
        if kind == f"lifespan.{phase}.complete":
            return
        if kind == f"lifespan.{phase}.failed":
            reason = message.get("message") or "no message given"
            raise LifespanError(f"lifespan {phase} failed: {reason}")
        if kind == "pounce.lifespan.unsupported":
            return
        if kind == "pounce.lifespan.error":
            raise LifespanError(
                f"lifespan {phase} failed: the application raised {self._error!r}"
            ) from self._error
        raise LifespanError(
            f"lifespan {phase} failed: unexpected message {kind!r}",
            hint=f"answer lifespan.{phase} with lifespan.{phase}.complete or .failed",
        )

    async def _run(self, scope: Scope) -> None:
        try:
            await self._app(scope, self._receive, self._send)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                raise
            self._error = exc
            if self._mode == "auto" and not self._messages_sent:
                error_log.info("ASGI 'lifespan' protocol appears unsupported.")
                self._unsupported = True
                await self._from_app.put({"type": "pounce.lifespan.unsupported"})
                return
            if self._failure_reported:
                # Starlette re-raises after sending .failed; the failure is
                # already on its way to the server, so no second report.
                return
            error_log.error("Exception in 'lifespan' protocol", exc_info=exc)
            await self._from_app.put({"type": "pounce.lifespan.error"})
        else:
            # The app returned: it will answer no further phase.
            await self._from_app.put({"type": "pounce.lifespan.unsupported"})

    async def _receive(self) -> Message:
        return await self._to_app.get()

    async def _send(self, message: Message) -> None:
        self._messages_sent = True
        if str(message.get("type", "")).endswith(".failed"):
            self._failure_reported = True
        await self._from_app.put(message)
