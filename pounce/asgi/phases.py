"""The server's phases of one request, shared by app layers through the scope.

A small seam so a layer can report where a request's time went without
another layer reaching into it: a layer that measures (`.server_timing()`)
puts an empty dict under ``scope["extensions"]["pounce.phases"]`` before it
calls inward; a layer that spends time on the request's behalf (the
concurrency limit's waiting queue) writes into it what it spent, in seconds,
with `note`. No dict there (nobody measures), nothing is written and nothing
is paid. An ASGI extension is a dict by the spec, so an app may read it
too: ``{"queue": 0.0123}``.
"""

from __future__ import annotations

from pounce.asgi.types import Scope

EXTENSION = "pounce.phases"
QUEUE = "queue"  # seconds waited for a place in the concurrency limit's queue


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
