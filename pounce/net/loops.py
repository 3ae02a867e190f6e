"""Event loop choice: asyncio's own, or uvloop (extra ``pounce[uvloop]``).

uvloop is imported here and nowhere else; a missing install is a `BuildError`
with the install hint, raised when the server is built, not when it runs.
"""

from __future__ import annotations

import asyncio
import importlib.util
from collections.abc import Callable
from typing import Literal

from pounce.errors import BuildError

LoopChoice = Literal["auto", "asyncio", "uvloop"]
LOOP_CHOICES: tuple[LoopChoice, ...] = ("auto", "asyncio", "uvloop")

LoopFactory = Callable[[], asyncio.AbstractEventLoop]


def uvloop_installed() -> bool:
    return importlib.util.find_spec("uvloop") is not None


def resolve_loop(choice: LoopChoice) -> Literal["asyncio", "uvloop"]:
    """``auto`` means uvloop when it is installed, as in Uvicorn."""
    if choice not in LOOP_CHOICES:
        raise BuildError(f".loop({choice!r}): must be one of {', '.join(LOOP_CHOICES)}")
    if choice == "uvloop" and not uvloop_installed():
        raise BuildError(
            ".loop('uvloop'): uvloop is not installed", hint="pip install pounce[uvloop]"
        )
    if choice == "auto":
        return "uvloop" if uvloop_installed() else "asyncio"
    return choice


def loop_factory(resolved: Literal["asyncio", "uvloop"]) -> LoopFactory:
    if resolved == "uvloop":
        import uvloop

        return uvloop.new_event_loop
    return asyncio.new_event_loop
