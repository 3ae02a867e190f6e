"""A benchmark app wrapped to count the garbage collector's work per request (`threads.py --gc`).

``GC_WRAP_APP`` names the app to serve (an import string such as
``framework_apps:fastapi_app``). Every collection is counted by generation,
with the CPU time it took (``time.thread_time``: the collector runs on the
thread that allocated, so a busy machine does not inflate it). SIGUSR1 prints
the counts since the last SIGUSR1 to stderr as one ``GC_WRAP`` line and starts
again, so a driver signals once before a measured run and once after it.

The counts show what the req/s table cannot: a server whose per-request objects
pile up between two turns of the loop (64 connections' requests read in one
turn, their apps run in the next) trips a generation-0 collection every few
dozen requests, each one walking all of those live objects.
"""

from __future__ import annotations

import gc
import importlib
import os
import signal
import sys
import time
from typing import Any

_module, _, _name = os.environ.get("GC_WRAP_APP", "apps:app").partition(":")
_inner = getattr(importlib.import_module(_module), _name)

_counts = [0, 0, 0]  # collections per generation
_cpu_ns = [0, 0, 0]
_requests = 0
_started = 0


def _on_gc(phase: str, info: dict[str, Any]) -> None:
    global _started
    if phase == "start":
        _started = time.thread_time_ns()
        return
    generation = info["generation"]
    _counts[generation] += 1
    _cpu_ns[generation] += time.thread_time_ns() - _started


def _report(signum: int, frame: object) -> None:
    global _requests
    fields = " ".join(f"gen{g}={_counts[g]}/{_cpu_ns[g] // 1000}us" for g in range(len(_counts)))
    print(f"GC_WRAP pid={os.getpid()} requests={_requests} {fields}", file=sys.stderr, flush=True)
    _requests = 0
    for g in range(len(_counts)):
        _counts[g] = _cpu_ns[g] = 0


gc.callbacks.append(_on_gc)
signal.signal(signal.SIGUSR1, _report)


async def app(scope: Any, receive: Any, send: Any) -> None:
    global _requests
    if scope["type"] == "http":
        _requests += 1
    await _inner(scope, receive, send)
