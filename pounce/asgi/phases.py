"""The server's phases of one request, shared by app layers through the scope.

A small seam so a layer can report where a request's time went without
another layer reaching into it: a layer that measures (`.server_timing()`)
puts an empty dict under ``scope["extensions"]["pounce.phases"]`` before it
calls inward; a layer that spends time on the request's behalf (the
concurrency limit's waiting queue) writes into it what it spent, in seconds,
with `note`. No dict there (nobody measures), nothing is written and nothing
is paid. An ASGI extension is a dict by the spec, so an app may read it
too: ``{"queue": 0.0123}``.

The queue wait is also a lifecycle-event figure, so the limit reports it once,
with `note_queue_wait`, which writes both places; the exchange reads it back
with `queue_wait`.
"""

from __future__ import annotations

from typing import Any

from pounce.asgi.types import Scope

EXTENSION = "pounce.phases"
QUEUE = "queue"  # seconds waited for a place in the concurrency limit's queue
QUEUE_WAIT_EXTENSION = "pounce.queue_wait"  # {"seconds": float}: what the events report


def start(scope: Scope) -> dict[object, object]:
    """Ask the layers inside to report their phases for this request; the dict they fill."""
    phases: dict[object, object] = {}
    extensions = scope.get("extensions")
    if extensions is None:
        scope["extensions"] = extensions = {}
    extensions[EXTENSION] = phases
    return phases


def note(scope: Scope, phase: str, seconds: float) -> None:
    """Report `seconds` spent in `phase`, if an outer layer asked (`start`)."""
    extensions = scope.get("extensions")
    phases = extensions.get(EXTENSION) if extensions else None
    if phases is not None:
        phases[phase] = phases.get(phase, 0.0) + seconds


def note_queue_wait(scope: Scope, seconds: float) -> None:
    """The one report of a wait in the concurrency limit's queue: to an outer
    `.server_timing()` if it asked (`start`), and to the lifecycle events
    (`RequestCompleted.queue_wait`, read back by `queue_wait`)."""
    note(scope, QUEUE, seconds)
    scope.setdefault("extensions", {})[QUEUE_WAIT_EXTENSION] = {"seconds": seconds}


def queue_wait(extensions: dict[str, Any]) -> float:
    """Seconds the request waited in the limit's queue (0 when it did not)."""
    waited = extensions.get(QUEUE_WAIT_EXTENSION)
    return float(waited["seconds"]) if waited else 0.0
