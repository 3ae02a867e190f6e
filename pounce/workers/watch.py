"""`Watcher`: which watched files changed, for dev reload.

This is the one module that would import ``watchfiles`` (``pounce[reload]``);
for now it polls: every `reload_delay` seconds it takes a snapshot (path →
modification time) of the files under the watched directories that match
an include pattern and no exclude pattern, off the event loop (a thread),
and yields the paths that appeared, vanished or changed. Patterns match a
file's name (``*.py``) or its path relative to the watched directory; a
directory whose name matches an exclude pattern (``.*``: .git, .venv) is not
entered. Defaults are Uvicorn's.

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

Snapshot = dict[str, int]


class Watcher:
    def __init__(
        self,
        dirs: Iterable[str],
        includes: Iterable[str],
        excludes: Iterable[str],
        delay: float,
    ) -> None:
        self.dirs = tuple(str(Path(d).resolve()) for d in dirs) or (os.getcwd(),)
        self.includes = tuple(includes)
        self.excludes = tuple(excludes)
        self.delay = delay

    def _matches(self, name: str, relative: str, patterns: tuple[str, ...]) -> bool:
        return any(fnmatch.fnmatch(name, p) or fnmatch.fnmatch(relative, p) for p in patterns)

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
        """Each batch of changed paths, as found (forever)."""
        last = await asyncio.to_thread(self.snapshot)
        while True:
            await asyncio.sleep(self.delay)
            now = await asyncio.to_thread(self.snapshot)
            changed = sorted(p for p in now.keys() | last.keys() if now.get(p) != last.get(p))
            last = now
            if changed:
                forget_bytecode(changed)
                yield changed


def forget_bytecode(paths: Iterable[str]) -> None:
    """Remove the cached bytecode of the ``.py`` files among `paths`."""
    for path in paths:
        if path.endswith(".py"):
            with contextlib.suppress(OSError, ValueError):
                os.remove(importlib.util.cache_from_source(path))
