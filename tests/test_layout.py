"""The layout shows the planes, and the imports respect them (docs/architecture.md).

Module-level imports only (a function-body import is a deliberate late
binding, and ``if TYPE_CHECKING`` imports are for the type checker): no
cycles anywhere in ``pounce``, and each folder imports only what its plane
may use.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pounce

ROOT = Path(pounce.__file__).parent


def module_of(path: Path) -> str:
    parts = list(path.relative_to(ROOT.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def load_time_imports(path: Path) -> set[str]:
    """Pounce modules `path` imports when it is loaded."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in tree.body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for sub in ast.walk(node) if not isinstance(node, ast.FunctionDef | ast.ClassDef) else []:
            if isinstance(sub, ast.ImportFrom) and sub.module and sub.module.startswith("pounce"):
                found.add(sub.module)
                found.update(f"{sub.module}.{a.name}" for a in sub.names)
            elif isinstance(sub, ast.Import):
                found.update(a.name for a in sub.names if a.name.startswith("pounce"))
    return found


MODULES = {module_of(p): p for p in ROOT.rglob("*.py")}
GRAPH = {
    name: {m for m in load_time_imports(path) if m in MODULES and m != name}
    for name, path in MODULES.items()
}


def test_no_import_cycles() -> None:
    state: dict[str, int] = {}  # 1: on the path, 2: done
    stack: list[str] = []

    def visit(name: str) -> None:
        state[name] = 1
        stack.append(name)
        for dep in sorted(GRAPH[name]):
            if dep in ("pounce",) or dep.startswith(name + "."):
                continue  # a package importing its own modules is not a cycle
            if state.get(dep) == 1:
                cycle = [*stack[stack.index(dep) :], dep]
                raise AssertionError("import cycle: " + " -> ".join(cycle))
            if dep not in state:
                visit(dep)
        stack.pop()
        state[name] = 2

    for name in sorted(GRAPH):
        if name not in state and name != "pounce":
            visit(name)


# Which folders a folder may import at load time (besides itself, and what every
# plane shares: the error tree, the connection types, the protocol events, the
# ASGI types, the option definitions each layer declares its options with, and
# the lifecycle events).
SHARED = (
    "pounce.errors",
    "pounce.conn",
    "pounce.protocols",
    "pounce.asgi.types",
    "pounce.options",
    "pounce.events",  # the lifecycle events: emitted on every plane
)
MAY_IMPORT = {
    "pounce.options": (),
    "pounce.protocols": (),  # sans-I/O: see tests/protocols/test_architecture.py
    "pounce.asgi": (),
    "pounce.net": (),
    "pounce.layers": ("pounce.layer", "pounce.net", "pounce.asgi"),
    "pounce.drivers": ("pounce.net", "pounce.asgi", "pounce.layer"),
    "pounce.bench": (),  # runs servers as processes: it needs none of their modules
    "pounce.events": (),
    # Subscribers (request ids reuse the proxy trust), and the OpenTelemetry layer.
    "pounce.observe": ("pounce.layers", "pounce.layer", "pounce.asgi"),
    "pounce.testing": (
        "pounce.server",
        "pounce.net",
        "pounce.builder",
        "pounce.layer",
        "pounce.drivers",
    ),
}


def test_each_plane_imports_only_what_it_may() -> None:
    problems = []
    for name, deps in GRAPH.items():
        folder = next((f for f in MAY_IMPORT if name == f or name.startswith(f + ".")), None)
        if folder is None:
            continue
        allowed = (folder, *SHARED, *MAY_IMPORT[folder])
        for dep in deps:
            if not any(dep == a or dep.startswith(a + ".") for a in allowed):
                problems.append(f"{name} imports {dep}")
    assert not problems, "\n".join(sorted(problems))


def test_the_server_never_loads_the_bench_harness() -> None:
    """`pounce bench` is loaded by the CLI only when asked for (a function-body import)."""
    users = sorted(
        name
        for name, deps in GRAPH.items()
        if not name.startswith("pounce.bench")
        and any(dep == "pounce.bench" or dep.startswith("pounce.bench.") for dep in deps)
    )
    assert not users, f"load pounce.bench at import time: {users}"


def test_the_checks_see_the_tree() -> None:
    assert {"pounce.net.transport", "pounce.drivers.bridge", "pounce.conn"} <= set(GRAPH)
    assert "pounce.conn" in GRAPH["pounce.layer"]
