"""`Watcher`: which watched files changed, for dev reload.

This is the one module that imports ``watchfiles`` (``pip install
pounce[reload]``): when it is installed, changes come from the operating
system's notifications (inotify, FSEvents, ReadDirectoryChangesW) through
`watchfiles.awatch`, the watcher Uvicorn uses too; when it is not, a poller
takes a snapshot (path → modification time) every `reload_delay` seconds,
off the event loop (a thread), and yields the paths that appeared, vanished
or changed. Both apply the same filter: patterns match a file's name
(``*.py``) or its path relative to the watched directory, and nothing under
a directory whose name matches an exclude pattern (``.*``: .git, .venv) is
reported — the poller does not even enter it. Defaults are Uvicorn's.

A changed ``.py`` file's cached bytecode is removed before the change is
reported: a ``.pyc`` is checked against the source's modification time in
whole seconds and its size, so an edit that keeps the size within the second
of the last import (``1`` → ``2``) would otherwise import the old code.
"""

from __future__ import annotations

import asyncio
import contextlib
import fnmatch
import importlib.util
import os
from collections.abc import AsyncIterator, Iterable
from pathlib import Path
from typing import Any, Literal

try:
    import watchfiles  # type: ignore[import-not-found, unused-ignore]  # pounce[reload]; typed
except ImportError:  # not installed: poll
    watchfiles = None  # type: ignore[assignment, unused-ignore]

Snapshot = dict[str, int]
Backend = Literal["watchfiles", "poll"]


def default_backend() -> Backend:
    """``watchfiles`` when it is installed, else polling."""
    return "poll" if watchfiles is None else "watchfiles"


class Watcher:
    def __init__(
        self,
        dirs: Iterable[str],
        includes: Iterable[str],
        excludes: Iterable[str],
        delay: float,
        backend: Backend | None = None,
    ) -> None:
        """`backend`: None picks `default_backend()`; ``"watchfiles"`` without
        the package installed is an ImportError naming the extra."""
        self.dirs = tuple(str(Path(d).resolve()) for d in dirs) or (os.getcwd(),)
        self.includes = tuple(includes)
        self.excludes = tuple(excludes)
        self.delay = delay
        self.backend: Backend = backend or default_backend()
        if self.backend == "watchfiles" and watchfiles is None:
            raise ImportError("watching with watchfiles needs: pip install pounce[reload]")
        self._stop: asyncio.Event | None = None

    def describe(self) -> str:
        """How and where it watches, for the start-up log line."""
        where = ", ".join(self.dirs)
        if self.backend == "watchfiles":
            return f"{where} with watchfiles"
        return (
            f"{where} by polling every {self.delay:g} s "
            "(pip install pounce[reload] to be notified by the system instead)"
        )

    def _matches(self, name: str, relative: str, patterns: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns)

    def accepts(self, path: str) -> bool:
        """Whether a change of `path` counts: the same rule as the poller's walk."""
        for top in self.dirs:
            relative = os.path.relpath(path, top)
            if relative.startswith(os.pardir + os.sep) or relative == os.pardir:
                continue
            *parents, name = relative.split(os.sep)
            if any(self._matches(d, d, self.excludes) for d in parents):
                return False
            return self._matches(name, relative, self.includes) and not self._matches(
                name, relative, self.excludes
            )
        return False

    def snapshot(self) -> Snapshot:
        found: Snapshot = {}
        for top in self.dirs:
            for root, dirnames, filenames in os.walk(top):
                dirnames[:] = [d for d in dirnames if not self._matches(d, d, self.excludes)]
                for name in filenames:
                    path = os.path.join(root, name)
                    relative = os.path.relpath(path, top)
                    if self._matches(name, relative, self.includes) and not self._matches(
                        name, relative, self.excludes
                    ):
                        try:
                            found[path] = os.stat(path).st_mtime_ns
                        except OSError:  # gone meanwhile
                            continue
        return found

    async def changes(self) -> AsyncIterator[list[str]]:
        """Each batch of changed paths, as found (until `stop`)."""
        batches = self._notified() if self.backend == "watchfiles" else self._polled()
        async for changed in batches:
            forget_bytecode(changed)
            yield changed

    def stop(self) -> None:
        """End `changes` promptly (watchfiles' thread looks at this event every step)."""
        if self._stop is not None:
            self._stop.set()

    async def _notified(self) -> AsyncIterator[list[str]]:
        assert watchfiles is not None
        self._stop = asyncio.Event()
        step = max(1, round(self.delay * 1000))  # ms to wait for more changes of one batch

        def accept(change: Any, path: str) -> bool:
            return self.accepts(path)

        async for found in watchfiles.awatch(
            *self.dirs,
            watch_filter=accept,
            step=step,
            debounce=max(1600, step),
            stop_event=self._stop,
            rust_timeout=1000,
        ):
            yield sorted({path for _, path in found})

    async def _polled(self) -> AsyncIterator[list[str]]:
        last = await asyncio.to_thread(self.snapshot)
        while True:
            await asyncio.sleep(self.delay)
            now = await asyncio.to_thread(self.snapshot)
            changed = sorted(p for p in now.keys() | last.keys() if now.get(p) != last.get(p))
            last = now
            if changed:
                yield changed


def forget_bytecode(paths: Iterable[str]) -> None:
    """Remove the cached bytecode of the ``.py`` files among `paths`."""
    for path in paths:
        if path.endswith(".py"):
            with contextlib.suppress(OSError, ValueError):
                os.remove(importlib.util.cache_from_source(path))
