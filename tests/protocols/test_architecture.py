"""The protocol cores stay sans-I/O: no event loop, socket, TLS, clock or thread.

Checked on the source (AST), so an import hidden in a function body or behind
``if TYPE_CHECKING`` counts too. Inside Pounce a core may only use the other
cores' modules and the error tree.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import pounce.protocols

PROTOCOLS_DIR = Path(pounce.protocols.__file__).parent
FORBIDDEN = {"asyncio", "socket", "ssl", "time", "selectors", "threading"}
ALLOWED_POUNCE = ("pounce.protocols", "pounce.errors")
MODULES = sorted(PROTOCOLS_DIR.rglob("*.py"))


def module_name(path: Path, protocols_dir: Path = PROTOCOLS_DIR) -> str:
    relative = path.relative_to(protocols_dir.parent.parent).with_suffix("")
    parts = list(relative.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imported_modules(path: Path, protocols_dir: Path = PROTOCOLS_DIR) -> list[tuple[int, str]]:
    """Every module `path` imports, relative imports resolved, with its line."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = module_name(path, protocols_dir)
    if path.name != "__init__.py":
        package = package.rpartition(".")[0]
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend((node.lineno, alias.name) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            found.append((node.lineno, base))
            # `from pounce import server` imports pounce.server.
            found.extend((node.lineno, f"{base}.{alias.name}") for alias in node.names)
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name | ast.Attribute)
            and (node.func.id if isinstance(node.func, ast.Name) else node.func.attr)
            in ("__import__", "import_module")
        ):
            found.append((node.lineno, "<dynamic import>"))
    return found


def violation(name: str) -> str | None:
    if name == "<dynamic import>":
        return "dynamic imports hide what a core depends on"
    top = name.split(".")[0]
    if top in FORBIDDEN:
        return f"{top} is I/O or a clock; only the driver may use it"
    allowed = name == "pounce" or any(name == a or name.startswith(a + ".") for a in ALLOWED_POUNCE)
    if top == "pounce" and not allowed:
        return "a core may import only pounce.protocols and pounce.errors"
    return None


def test_the_check_sees_the_modules() -> None:
    names = {module_name(path) for path in MODULES}
    assert {"pounce.protocols.h1", "pounce.protocols.events", "pounce.protocols.base"} <= names


@pytest.mark.parametrize("path", MODULES, ids=lambda p: p.name)
def test_protocol_core_imports(path: Path) -> None:
    problems = [
        f"{path.name}:{line}: imports {name}: {reason}"
        for line, name in imported_modules(path)
        if (reason := violation(name)) is not None
    ]
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize(
    ("source", "bad"),
    [
        ("import asyncio", True),
        ("import time as t", True),
        ("from socket import socket", True),
        ("from ssl import SSLContext", True),
        ("import selectors", True),
        ("from threading import Lock", True),
        ("def f():\n    import time", True),
        ("from pounce.drivers.http import HTTPDriver", True),
        ("from pounce import connection", True),
        ("from .. import server", True),
        ("from ..asgi import exchange", True),
        ("import importlib\nimportlib.import_module('socket')", True),
        ("from pounce.errors import RemoteProtocolError", False),
        ("from pounce.protocols.events import DataReceived", False),
        ("from . import events", False),
        ("from .events import DataReceived", False),
        ("import h11\nimport re", False),
    ],
)
def test_the_checker_itself(tmp_path: Path, source: str, bad: bool) -> None:
    package = tmp_path / "pounce" / "protocols"
    package.mkdir(parents=True)
    module = package / "probe.py"
    module.write_text(source, encoding="utf-8")
    names = imported_modules(module, package)
    assert any(violation(name) for _, name in names) is bad
