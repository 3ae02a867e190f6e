"""Every example in README.md and docs/ runs, or says why it cannot.

A fenced block tagged ``python``, ``bash``, ``console`` or ``sh`` is checked:

* Python is executed, in a scratch directory holding ``cert.pem``, ``key.pem``
  and the other files the examples name, with ``app`` defined as a small ASGI
  app and the recipes importable. Nothing is served: ``Server.run()`` and
  ``pounce.run()`` build the whole stack (every builder check runs) and print
  its ``describe()`` instead, and an app named as ``"myapp:app"`` resolves to
  the small app.
* A ``pounce …`` or ``python -m pounce …`` command line is parsed by the real
  CLI parser and built into the standard stack the same way; ``python3 dev.py
  TASK`` must name a task; ``pip install pounce[EXTRA]`` an extra of
  pyproject.toml; ``pounce bench …`` is parsed by its own parser, not run.
* A block that cannot run (a fragment of a larger file, a command against a
  running server) is preceded by ``<!-- illustration: why -->``; a block that
  shows part of a file is preceded by ``<!-- excerpt: path -->`` and every
  line of it must appear in that file.

So a renamed flag, a wrong default in an example or a builder call that no
longer exists fails here, not in a reader's terminal.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import sys
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import trustme

import pounce
import pounce.cli
from pounce import Server
from pounce.asgi.types import Receive, Scope, Send

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CHECKED = {"python", "bash", "console", "sh"}
FENCE = re.compile(r"^```(\w*)\s*$")
MARKER = re.compile(r"^<!--\s*(illustration|excerpt):\s*(.+?)\s*-->$")
DEV_TASKS = {"demo", "test", "lint", "bench"}
SYNOPSIS = re.compile(r"^\[?[A-Z][A-Z_]*\]?$|^\[\w+\]$")


@dataclass(frozen=True)
class Example:
    path: Path
    line: int  # of the opening fence, 1-based
    lang: str
    code: str
    marker: tuple[str, str] | None
    output: str | None  # a plain block right after a Python one: what it prints

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}:{self.line}"


def examples() -> Iterator[Example]:
    for path in DOCS:
        lines = path.read_text().splitlines()
        i = 0
        while i < len(lines):
            match = FENCE.match(lines[i])
            if not match:
                i += 1
                continue
            end = next(j for j in range(i + 1, len(lines)) if lines[j].startswith("```"))
            lang = match[1]
            before = next((lines[k].strip() for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            marker = MARKER.match(before)
            if lang in CHECKED:
                code = "\n".join(lines[i + 1 : end])
                found = (marker[1], marker[2]) if marker else None
                yield Example(path, i + 1, lang, code, found, _output_after(lines, end))
            i = end + 1


def _output_after(lines: list[str], end: int) -> str | None:
    """The text of a language-less block that follows line `end` with only blank lines between."""
    k = end + 1
    while k < len(lines) and not lines[k].strip():
        k += 1
    if k >= len(lines) or lines[k].strip() != "```":
        return None
    close = next(j for j in range(k + 1, len(lines)) if lines[j].startswith("```"))
    return "\n".join(lines[k + 1 : close])


def _normalized(text: str) -> str:
    """Printed stack text, less what depends on where it runs (the app's module, the loop)."""
    text = re.sub(r"(?m)^(app +)\S+:app ", r"\1APP ", text)
    return re.sub(r"(?m)^loop +\w+$", "loop     LOOP", text.strip())


ALL = list(examples())


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    """The `app` every example may name."""
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok"})


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory with the files examples name: certificates, keys, static directories."""
    directory = tmp_path_factory.mktemp("docs")
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.cert_chain_pems[0].write_to_path(str(directory / "cert.pem"))
    cert.private_key_pem.write_to_path(str(directory / "key.pem"))
    ca.cert_pem.write_to_path(str(directory / "clients-ca.pem"))
    for static in ("public", "site"):  # the directories docs/static.md serves
        (directory / static).mkdir()
    return directory


@contextlib.contextmanager
def nothing_served(monkeypatch: pytest.MonkeyPatch, scratch: Path) -> Iterator[list[str]]:
    """Build instead of serve; "module:app" names resolve to `app`."""
    built: list[str] = []

    def build_only(self: Server, *args: Any, **kwargs: Any) -> None:
        built.append(self.describe())

    def supervised(server: Server) -> int:
        build_only(server)
        return 0  # the supervisor's exit status

    def load(target: str, **kwargs: Any) -> Any:
        return app

    monkeypatch.setattr(Server, "run", build_only)
    for supervise in ("supervise", "supervise_fresh", "supervise_reload"):  # workers: built
        monkeypatch.setattr(f"pounce.workers.{supervise}", lambda server, *a: supervised(server))
    monkeypatch.setattr("pounce.cli.configure_logging", lambda *a, **k: None)
    for name in [n for n in os.environ if n.startswith("POUNCE_")]:
        monkeypatch.delenv(name)
    monkeypatch.setattr(os, "environ", os.environ.copy())  # what examples set goes away
    monkeypatch.setattr("pounce.importer.import_app", load)
    monkeypatch.setattr("pounce.cli.import_app", load)
    monkeypatch.chdir(scratch)
    # Not syspath_prepend: it touches pkg_resources, which another test's
    # package (kosoku) shims without the function it calls.
    monkeypatch.setattr(sys, "path", [str(ROOT / "recipes"), *sys.path])
    yield built


PRELUDE = """
import asyncio, socket
from dataclasses import dataclass
import pytest
from pounce import *
from pounce.testing import *
from add_header import AddHeader
from connection_cap import ConnectionCap
from line_echo import LineEcho
from upgrade_echo import UpgradeEcho
"""


def run_python(example: Example) -> None:
    namespace: dict[str, Any] = {"app": app, "__name__": "docs_example"}
    exec(PRELUDE, namespace)  # the names every example may use
    code = compile(example.code, str(example), "exec")
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(code, namespace)
    for name, value in list(namespace.items()):  # an example that shows a test runs it
        if name.startswith("test_") and callable(value) and not value.__code__.co_argcount:
            value()
    if example.output is not None and "describe()" in example.code:
        assert _normalized(printed.getvalue()) == _normalized(example.output), (
            f"{example}: the output shown is not what the example prints:\n{printed.getvalue()}"
        )


def check_command(argv: list[str], example: Example) -> None:
    """One command line of a shell example."""
    if any(SYNOPSIS.match(arg) for arg in argv):
        return  # a synopsis (`pounce APP [flags]`), not a command
    if argv[:3] == ["python", "-m", "pounce"] or argv[:3] == ["python3", "-m", "pounce"]:
        argv = ["pounce", *argv[3:]]
    while argv and re.fullmatch(r"[A-Z][A-Z0-9_]*=.*", argv[0]):
        name, _, value = argv.pop(0).partition("=")
        os.environ[name] = value  # restored by the monkeypatch in nothing_served
    if argv[:2] == ["pounce", "bench"]:
        # A benchmark takes minutes: its own parser checks the flags, paths and headers.
        import pounce.bench.cli as bench

        bench.scenarios_from(bench.build_parser().parse_args(argv[2:]))
    elif argv[0] == "pounce":
        # The real CLI: parse, merge file, environment and flags, build the stack;
        # Server.run() only describes it here (nothing_served).
        with contextlib.redirect_stdout(io.StringIO()):
            code = pounce.cli.main(argv[1:])
        assert code == 0, f"{example}: {shlex.join(argv)} exits {code}"
    elif argv[:2] in (["python3", "dev.py"], ["python", "dev.py"]):
        assert len(argv) == 2 or argv[2].startswith("-") or argv[2] in DEV_TASKS, argv
        assert argv[2] in DEV_TASKS, f"{example}: no dev.py task {argv[2]!r}"
    elif argv[:2] == ["pip", "install"]:
        extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
            "optional-dependencies"
        ]
        for spec in argv[2:]:
            if spec.startswith("-"):
                continue
            for extra in re.findall(r"\[([^\]]+)\]", spec):
                for name in extra.split(","):
                    assert name.strip() in extras, f"{example}: no extra {name!r}"
    else:
        raise AssertionError(f"{example}: no check for {argv[0]!r}; mark it as an illustration")


def commands(code: str, lang: str) -> Iterator[list[str]]:
    """The command lines of a shell block: comments dropped, continuations joined;
    in a console block only the ``$`` lines (the rest is their output)."""
    text = re.sub(r"\\\n", " ", code)
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("$ "):
            line = line[2:]
        elif lang == "console" or raw.startswith(" ") or not line or line.startswith("#"):
            continue  # output of a console example, or nothing
        argv = shlex.split(line, comments=True)
        if argv:
            yield argv


def check_excerpt(example: Example, source: str) -> None:
    text = (ROOT / source).read_text()
    for line in example.code.splitlines():
        code = line.split("  #")[0].rstrip()
        if code.strip() and code.strip() != "...":
            assert code.strip() in text, f"{example}: {code.strip()!r} is not in {source}"


@pytest.mark.parametrize("example", ALL, ids=str)
def test_example(example: Example, scratch: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if example.marker is not None:
        kind, detail = example.marker
        if kind == "excerpt":
            check_excerpt(example, detail)
            return
        assert len(detail) > 10, f"{example}: say why it is an illustration"
        pytest.skip(f"illustration: {detail}")
    with nothing_served(monkeypatch, scratch):
        if example.lang == "python":
            run_python(example)
        else:
            for argv in commands(example.code, example.lang):
                check_command(argv, example)


def test_every_doc_has_been_looked_at() -> None:
    """The checker finds examples everywhere it should (a broken fence regex finds none)."""
    assert len(ALL) > 30
    assert {e.path.name for e in ALL} >= {"README.md", "builder.md", "tls.md", "recipes.md"}
