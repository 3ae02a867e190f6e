"""Dev reload (``pounce APP --reload``): an edited module is served by a fresh
worker; a broken edit leaves the old code serving and its error printed once;
``--reload`` with several workers is refused. And what the poller watches."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from pathlib import Path

from pounce.workers.watch import Watcher, forget_bytecode
from tests.workers.harness import ROOT, Running, get, launched

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


def body(running: Running) -> str:
    status, text = get(running.port)
    assert status == 200
    return text


def test_an_edited_module_is_served_by_a_fresh_worker(tmp_path: Path) -> None:
    write_app(tmp_path, '"one"')
    with launched(reloading(tmp_path)) as running:
        assert body(running) == "one"
        write_app(tmp_path, '"two"')
        running.wait_for(r"Changes detected in .*devapp\.py: reloading", 5)
        running.wait_for(r"\(generation 2\) ready", 10)
        # (the old worker answers until it has drained: a rolling restart)
        running.wait_for(r"\(generation 1\) exited: code 0", 10)
        assert body(running) == "two"


def test_a_syntax_error_leaves_the_old_code_serving_and_is_printed_once(tmp_path: Path) -> None:
    write_app(tmp_path, '"one"')
    with launched(reloading(tmp_path)) as running:
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
    for name in ("a.py", "b.txt", "c.pyc", ".hidden/d.py", "pkg/e.py", "pkg/~f.py"):
        (tmp_path / name).parent.mkdir(exist_ok=True)
        (tmp_path / name).write_text("")
    watcher = Watcher([str(tmp_path)], ["*.py"], [".*", ".py[cod]", ".sw.*", "~*"], 0.01)
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
