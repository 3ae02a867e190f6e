"""What every conformance check shares: fresh event loops, bounded waits, common checks.

Each part of a check runs in a `KitLoop`, a new event loop of its own (one
loop per serve, as in a worker), and every wait is bounded. What the loop
reports through its exception handler — a callback that raised, a task whose
exception nobody retrieved — fails the check, and tasks left running when
the part ends are cancelled.
"""

from __future__ import annotations

import asyncio
import dataclasses
import enum
import gc
from collections.abc import Callable, Coroutine, Iterable
from typing import Any, NoReturn, TypeVar

T = TypeVar("T")

WAIT = 2.0  # seconds for any single thing a check waits for (a close, a callback)
PART = 10.0  # seconds for one whole part of a check, in its own event loop


class Failure(AssertionError):
    """A conformance check failed; the message names the subject and the rule."""


def fail(subject: str, message: str) -> NoReturn:
    raise Failure(f"{subject}: {message}")


class KitLoop:
    """A fresh event loop for one part of a check; see the module docstring."""

    def __init__(self, subject: str) -> None:
        self.subject = subject
        self.loop = asyncio.new_event_loop()
        self.errors: list[str] = []
        self.loop.set_exception_handler(self._report)

    def _report(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        exc = context.get("exception")
        message = str(context.get("message", "error"))
        self.errors.append(f"{message}: {exc!r}" if exc is not None else message)

    def run(self, coro: Coroutine[Any, Any, T], what: str, timeout: float = PART) -> T:
        """Run `coro` to its end, at most `timeout` seconds; `what` names it in a failure."""

        async def bounded() -> T:
            try:
                async with asyncio.timeout(timeout):
                    return await coro
            except TimeoutError:
                fail(self.subject, f"{what}: did not finish within {timeout:g} s")

        try:
            result = self.loop.run_until_complete(bounded())
        except Failure:
            raise
        except Exception as exc:
            fail(self.subject, f"{what}: raised {exc!r}")
        self.check_errors(what)
        return result

    def check_errors(self, what: str) -> None:
        if self.errors:
            errors, self.errors = self.errors, []
            fail(self.subject, f"{what}: the event loop reported {'; '.join(errors)}")

    def close(self) -> None:
        """Cancel what is still running, then close the loop."""
        loop = self.loop
        try:
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            for task in tasks:
                task.cancel()
            if tasks:
                gathered = asyncio.gather(*tasks, return_exceptions=True)
                loop.run_until_complete(asyncio.wait_for(gathered, WAIT))
            loop.run_until_complete(loop.shutdown_asyncgens())
        except (TimeoutError, asyncio.CancelledError):
            pass  # a task that refuses to end: the loop closes anyway
        finally:
            loop.close()
        gc.collect()  # "exception never retrieved" is reported when a task is collected

    def __enter__(self) -> KitLoop:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


async def turns(count: int = 5) -> None:
    """Let the loop run `count` turns: callbacks scheduled with call_soon, short tasks."""
    for _ in range(count):
        await asyncio.sleep(0)


async def wait_until(
    predicate: Callable[[], bool], subject: str, what: str, timeout: float = WAIT
) -> None:
    """Wait until `predicate()` holds; fail naming `what` after `timeout` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not predicate():
        if loop.time() >= deadline:
            fail(subject, f"{what} (waited {timeout:g} s)")
        await asyncio.sleep(0 if loop.time() + 0.01 > deadline else 0.001)


async def others_finish(subject: str, what: str, timeout: float = WAIT) -> None:
    """Wait until every task but the current one has ended."""
    me = asyncio.current_task()

    def settled() -> bool:
        return all(t.done() for t in asyncio.all_tasks() if t is not me)

    await wait_until(settled, subject, what, timeout)


# -- checks shared by layers and protocols -----------------------------------------------


def check_describe(subject: str, objects: Iterable[object]) -> None:
    """``describe()`` is one non-empty line, the same for equal configurations."""
    lines = []
    for obj in objects:
        describe = getattr(obj, "describe", None)
        if describe is None:
            fail(subject, "has no describe()")
        line = describe()
        if not isinstance(line, str) or not line.strip():
            fail(subject, f"describe() must return a non-empty str, got {line!r}")
        if "\n" in line or "\r" in line:
            fail(subject, f"describe() must be one line (Server.describe() lists it), got {line!r}")
        lines.append(line)
    if len(set(lines)) > 1:
        fail(subject, f"describe() differs between two equal configurations: {lines!r}")


PROBE = "_pounce_conformance_probe"


def check_frozen(subject: str, obj: object) -> None:
    """Hashable, and assigning an attribute raises: one object serves every worker."""
    try:
        hash(obj)
    except TypeError as exc:
        fail(subject, f"is not hashable ({exc}); make it a @dataclass(frozen=True)")
    names = attribute_names(obj)
    name = names[0] if names else PROBE
    had = hasattr(obj, name)
    value = getattr(obj, name, None)
    try:
        setattr(obj, name, value)
    except (AttributeError, TypeError):
        return
    if not had:
        delattr(obj, name)
    target = f"`layer.{name} = ...`" if had else "new attributes (`layer.x = ...`)"
    fail(
        subject,
        f"accepts {target}: configuration shared by every worker must be immutable; "
        "make it a @dataclass(frozen=True)",
    )


def attribute_names(obj: object) -> list[str]:
    """The data attributes of `obj`: dataclass fields, ``__slots__``, ``vars()``."""
    names: list[str] = []
    if dataclasses.is_dataclass(obj):
        names += [f.name for f in dataclasses.fields(obj)]
    for cls in type(obj).__mro__:
        slots = cls.__dict__.get("__slots__", ())
        names += [slots] if isinstance(slots, str) else list(slots)
    names += list(getattr(obj, "__dict__", {}))
    seen: dict[str, None] = {}
    for name in names:
        if name not in ("__dict__", "__weakref__") and hasattr(obj, name):
            seen.setdefault(name, None)
    return list(seen)


_SCALARS = (type(None), bool, int, float, complex, str, bytes, enum.Enum)


def snapshot(obj: object, depth: int = 4, path: frozenset[int] = frozenset()) -> object:
    """A comparable picture of `obj`'s data, a few levels deep (not callables' insides)."""
    if isinstance(obj, _SCALARS):
        return obj
    if callable(obj) and not dataclasses.is_dataclass(obj):
        return ("callable", type(obj).__qualname__)
    if depth == 0 or id(obj) in path:
        return ("ref", type(obj).__qualname__)
    inner = path | {id(obj)}
    if isinstance(obj, bytearray | memoryview):
        return ("bytes", bytes(obj))
    if isinstance(obj, list | tuple):
        return (type(obj).__name__, tuple(snapshot(x, depth - 1, inner) for x in obj))
    if isinstance(obj, set | frozenset):
        return ("set", tuple(sorted(repr(snapshot(x, depth - 1, inner)) for x in obj)))
    if isinstance(obj, dict):
        items = tuple((repr(k), snapshot(v, depth - 1, inner)) for k, v in obj.items())
        return ("dict", items)
    names = attribute_names(obj)
    return (
        type(obj).__qualname__,
        tuple((n, snapshot(getattr(obj, n), depth - 1, inner)) for n in names),
    )


def check_unchanged(subject: str, before: object, after: object) -> None:
    if before != after:
        fail(
            subject,
            "its attributes changed while it served connections: per-connection and "
            "per-request state belongs in what wrap() returns, never on the layer "
            f"(before {before!r}, after {after!r})",
        )
