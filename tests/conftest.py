"""Shared test configuration: async tests run on a fresh asyncio loop each."""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable
from typing import Any

import pytest

import pounce.testing.pytest_plugin


def pytest_configure(config: pytest.Config) -> None:
    """The plugin as its entry point registers it, for a checkout not (re)installed yet."""
    if not config.pluginmanager.has_plugin("pounce"):
        config.pluginmanager.register(pounce.testing.pytest_plugin, "pounce")


@pytest.hookimpl(tryfirst=True)
def pytest_pyfunc_call(pyfuncitem: pytest.Function) -> bool | None:
    """Run ``async def`` tests with asyncio.run, bounded by a timeout."""
    func: Callable[..., Any] = pyfuncitem.obj
    if not inspect.iscoroutinefunction(func):
        return None
    names = pyfuncitem._fixtureinfo.argnames
    kwargs = {name: pyfuncitem.funcargs[name] for name in names}
    asyncio.run(asyncio.wait_for(func(**kwargs), timeout=30))
    return True
