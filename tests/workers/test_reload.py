"""Dev reload (``pounce APP --reload``): an edited module is served by a fresh
worker; a broken edit leaves the old code serving and its error printed once;
``--reload`` with several workers is refused. And what each watcher watches:
watchfiles (``pounce[reload]``, installed in the dev group) and the poller
that serves when it is absent (the end-to-end tests run both: a package
named ``watchfiles`` that fails to import hides the real one)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pounce.workers.watch import Watcher, forget_bytecode
from tests.workers.harness import ROOT, Running, get, launched

BACKENDS = ["watchfiles", "poll"]
SEEN = {
    "watchfiles": r"Watching for changes in .* with watchfiles",
    "poll": r"Watching for changes in .* by polling every 0\.1 s \(pip install pounce\[reload\]",
}

APP = """
VERSION = {version}


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = VERSION.encode()
    headers = [(b"content-length", str(len(body)).encode())]
    await send({{"type": "http.response.start", "status": 200, "headers": headers}})
    await send({{"type": "http.response.body", "body": body}})
"""


def write_app(directory: Path, version: str) -> None:
    path = directory / "devapp.py"
    path.write_text(APP.format(version=version))
    os.utime(path, ns=(time.time_ns(), time.time_ns()))  # (a new mtime even in one tick)


def reloading(directory: Path) -> list[str]:
    return [
        *("-m", "pounce", "devapp:app", "--app-dir", str(directory), "--reload"),
        *("--reload-dir", str(directory), "--reload-delay", "0.1"),
        *("--host", "127.0.0.1", "--port", "0", "--no-access-log"),
    ]


def environment(backend: str, tmp_path: Path) -> dict[str, str]:
    """For "poll": a ``watchfiles`` that fails to import, ahead on the path."""
    if backend == "watchfiles":
        return {}
    hidden = tmp_path / "no-watchfiles" / "watchfiles"
    hidden.mkdir(parents=True)
    (hidden / "__init__.py").write_text('raise ImportError("hidden by the test")\n')
    path = os.pathsep.join(p for p in (str(hidden.parent), os.environ.get("PYTHONPATH")) if p)
    return {"PYTHONPATH": path}


def body(running: Running) -> str:
    status, text = get(running.port)
    assert status == 200
    return text


@pytest.mark.parametrize("backend", BACKENDS)
def test_an_edited_module_is_served_by_a_fresh_worker(tmp_path: Path, backend: str) -> None:
    env = environment(backend, tmp_path)
    tmp_path = tmp_path / "src"
    tmp_path.mkdir()
    write_app(tmp_path, '"one"')
    with launched(reloading(tmp_path), env) as running:
        running.wait_for(SEEN[backend], 5)
        assert body(running) == "one"
        write_app(tmp_path, '"two"')
        running.wait_for(r"Changes detected in .*devapp\.py: reloading", 5)
        running.wait_for(r"\(generation 2\) ready", 10)
        # (the old worker answers until it has drained: a rolling restart)
        running.wait_for(r"\(generation 1\) exited: code 0", 10)
        assert body(running) == "two"


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_syntax_error_leaves_the_old_code_serving_and_is_printed_once(
    tmp_path: Path, backend: str
) -> None:
    env = environment(backend, tmp_path)
    tmp_path = tmp_path / "src"
    tmp_path.mkdir()
    write_app(tmp_path, '"one"')
    with launched(reloading(tmp_path), env) as running:
        running.wait_for(SEEN[backend], 5)
        write_app(tmp_path, '"two" +')  # a syntax error
        running.wait_for(r"The new code did not start: the previous code serves on", 10)
        for _ in range(5):  # over several looks at the files: served, and no retry
            assert body(running) == "one"
            time.sleep(0.1)
        out = running.output()
        assert out.count("cannot load devapp:app") == 1, out
        assert "SyntaxError" in out and "devapp.py, line 2" in out
        write_app(tmp_path, '"three"')  # fixed: the next change is served
        running.wait_for(r"\(generation 1\) exited: code 0", 10)
        assert body(running) == "three"


def test_reload_with_several_workers_is_refused() -> None:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pounce",
            "tests.workers.serve_app:app",
            "--reload",
            "--workers",
            "2",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2, done.stderr
    assert "--reload serves one worker: it cannot be combined with --workers 2" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_poller_watches_includes_not_excludes(tmp_path: Path) -> None:
    for name in TREE:
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    watcher = Watcher([str(tmp_path)], ["*.py"], EXCLUDES, 0.01, backend="poll")
    found = {os.path.relpath(p, tmp_path) for p in watcher.snapshot()}
    assert found == {"a.py", os.path.join("pkg", "e.py")}

    async def first_change() -> list[str]:
        changes = watcher.changes()
        waiting = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.05)
        (tmp_path / "pkg" / "g.py").write_text("")
        return await asyncio.wait_for(waiting, 5)

    assert asyncio.run(first_change()) == [str(tmp_path / "pkg" / "g.py")]


def test_a_changed_module_loses_its_cached_bytecode(tmp_path: Path) -> None:
    import importlib.util
    import py_compile

    source = tmp_path / "m.py"
    source.write_text("X = 1\n")
    cached = Path(py_compile.compile(str(source)))
    assert cached == Path(importlib.util.cache_from_source(str(source))) and cached.exists()
    forget_bytecode([str(source), str(tmp_path / "other.txt")])
    assert not cached.exists()


TREE = ("a.py", "b.txt", "c.pyc", ".hidden/d.py", "pkg/e.py", "pkg/~f.py")
EXCLUDES = [".*", ".py[cod]", ".sw.*", "~*"]


def test_watchfiles_reports_what_the_poller_would(tmp_path: Path) -> None:
    """The same filter over system notifications: excluded files and anything
    under an excluded directory are not reported; a batch is sorted paths."""
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "pkg").mkdir()
    watcher = Watcher([str(tmp_path)], ["*.py"], EXCLUDES, 0.05, backend="watchfiles")
    assert {n for n in TREE if watcher.accepts(str(tmp_path / n))} == {"a.py", "pkg/e.py"}
    assert not watcher.accepts(str(tmp_path.parent / "elsewhere.py"))

    async def first_change() -> list[str]:
        changes = watcher.changes()
        waiting = asyncio.ensure_future(anext(changes))
        await asyncio.sleep(0.3)  # (the notifier is set up in the generator's first step)
        for name in TREE:
            (tmp_path / name).write_text("x")
        try:
            return await asyncio.wait_for(waiting, 5)
        finally:
            watcher.stop()
            with contextlib.suppress(StopAsyncIteration):
                await asyncio.wait_for(anext(changes), 5)  # stop ends it, promptly

    assert asyncio.run(first_change()) == [str(tmp_path / "a.py"), str(tmp_path / "pkg" / "e.py")]


def test_watchfiles_asked_for_without_it_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import pounce.workers.watch as watch

    monkeypatch.setattr(watch, "watchfiles", None)
    assert watch.default_backend() == "poll"
    with pytest.raises(ImportError, match=r"pip install pounce\[reload\]"):
        Watcher([str(tmp_path)], ["*.py"], EXCLUDES, 0.1, backend="watchfiles")
    assert Watcher([str(tmp_path)], ["*.py"], EXCLUDES, 0.1).backend == "poll"


# -- pounce.run(reload=True) ----------------------------------------------------------------------

SCRIPT = """
import pounce

if __name__ == "__main__":
    pounce.run(
        "devapp:app",
        app_dir={src!r},
        reload=True,
        reload_dirs=[{src!r}],
        reload_delay=0.1,
        host="127.0.0.1",
        port=0,
        access_log=False,
    )
"""


def test_pounce_run_reload_serves_an_edited_module(tmp_path: Path) -> None:
    """As ``uvicorn.run("app:app", reload=True)``: the script's own process supervises."""
    src = tmp_path / "src"
    src.mkdir()
    write_app(src, '"one"')
    script = tmp_path / "serve.py"
    script.write_text(SCRIPT.format(src=str(src)))
    with launched([str(script)]) as running:
        running.wait_for(r"Watching for changes in .*src", 5)
        assert body(running) == "one"
        write_app(src, '"two"')
        running.wait_for(r"\(generation 2\) ready", 10)
        running.wait_for(r"\(generation 1\) exited: code 0", 10)
        assert body(running) == "two"


async def an_app(scope: object, receive: object, send: object) -> None:
    raise AssertionError("never served")


@pytest.mark.parametrize(
    ("app", "keywords", "message"),
    [
        (an_app, {}, r"pounce.run\(reload=True\) needs the app as an import string"),
        ("devapp:app", {"workers": 2}, r"serves one worker: .* workers=2"),
        ("devapp:app", {"reload_delay": -1}, r"pounce.run\(reload_delay=-1\): must be"),
        ("devapp:app", {"reload_dirs": 3}, r"pounce.run\(reload_dirs=3\): must be"),
    ],
)
def test_pounce_run_reload_refuses_what_it_cannot_do(
    app: object, keywords: dict[str, object], message: str
) -> None:
    import pounce

    with pytest.raises(pounce.BuildError, match=message):
        pounce.run(app, reload=True, port=0, **keywords)  # type: ignore[arg-type]


def test_uvicorn_run_reload_defaults_change_nothing() -> None:
    from pounce.workers.reload import ReloadOptions, reload_options

    given = {"reload": False, "reload_dirs": None, "reload_includes": None}
    given |= {"reload_excludes": None, "reload_delay": 0.25}
    assert reload_options("pounce.run", given) == ReloadOptions()


def test_reload_options_without_reload_warn() -> None:
    import logging

    import pounce

    seen: list[str] = []
    handler = logging.Handler()
    handler.emit = lambda record: seen.append(record.getMessage())  # type: ignore[method-assign]
    logger = logging.getLogger("pounce.error")
    logger.addHandler(handler)
    try:
        with pytest.raises(pounce.PounceError, match="could not import module"):
            pounce.run("no_such_module_here:app", reload_dirs=["src"], port=0)
    finally:
        logger.removeHandler(handler)
    assert "pounce.run(): reload_dirs= given without reload=True: nothing is watched" in seen
