"""Loading an app named as ``module:attribute`` (the CLI's APP argument)."""

from __future__ import annotations

import importlib
import sys
from typing import cast

from pounce.asgi.types import ASGIApp
from pounce.errors import AppImportError


def import_app(target: str, *, factory: bool = False, app_dir: str | None = None) -> ASGIApp:
    """Import ``module:attr`` (attr may be dotted); call it first when `factory`.

    `app_dir` is put first on ``sys.path``, as Uvicorn's ``--app-dir`` does.
    """
    module_name, sep, attr = target.partition(":")
    if not sep or not module_name or not attr:
        raise AppImportError(
            f'import string "{target}" must be in format "<module>:<attribute>"',
            hint='e.g. "myapp:app" or "pounce.demo:app"',
        )
    if app_dir is not None and app_dir not in sys.path:
        sys.path.insert(0, app_dir)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name == module_name or module_name.startswith(f"{exc.name}."):
            raise AppImportError(
                f'could not import module "{module_name}"',
                hint="check the name and --app-dir (the current directory is searched by default)",
            ) from exc
        raise AppImportError(f'error while importing "{module_name}": {exc}') from exc
    except Exception as exc:
        # The module exists but raised while being imported (a bug in the app).
        raise AppImportError(
            f'error while importing "{module_name}": {type(exc).__name__}: {exc}',
            hint="run with --log-level debug for the traceback",
        ) from exc
    obj: object = module
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as exc:
            raise AppImportError(f'attribute "{attr}" not found in module "{module_name}"') from exc
    if factory:
        if not callable(obj):
            raise AppImportError(f'"{target}" is not callable, so it cannot be a --factory')
        obj = obj()
    if not callable(obj):
        raise AppImportError(f'"{target}" is not an ASGI application (not callable)')
    return cast(ASGIApp, obj)
