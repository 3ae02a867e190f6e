"""``--env-file``: a stdlib dotenv reader, the environment winning over the file, and a clear
error for a line that is not KEY=VALUE."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pounce.envfile import load, read
from pounce.errors import BuildError

ROOT = Path(__file__).resolve().parents[1]


def test_the_lines_a_dotenv_file_holds(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text(
        "# a comment\n\nPLAIN=value\nexport EXPORTED=yes\nSPACED = around \n"
        "INLINE=value # comment\nHASH=a#b\nSINGLE='lit $X \\n # not a comment'\n"
        'DOUBLE="line\\nnext \\"q\\" \\\\"\nEMPTY=\nQUOTED_EMPTY=""\n'
    )
    assert read(env) == {
        "PLAIN": "value",
        "EXPORTED": "yes",
        "SPACED": "around",
        "INLINE": "value",
        "HASH": "a#b",
        "SINGLE": "lit $X \\n # not a comment",
        "DOUBLE": 'line\nnext "q" \\',
        "EMPTY": "",
        "QUOTED_EMPTY": "",
    }


@pytest.mark.parametrize("line", ["NO_EQUALS", "1BAD=x", 'OPEN="unclosed', "A='x' trailing"])
def test_a_bad_line_names_the_file_and_the_line(tmp_path: Path, line: str) -> None:
    env = tmp_path / ".env"
    env.write_text(f"GOOD=1\n{line}\n")
    with pytest.raises(BuildError, match=r"\.env, line 2: not KEY=VALUE"):
        read(env)


def test_the_environment_wins_over_the_file(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("SET=file\nNEW=file\n")
    environ = {"SET": "environment"}
    assert load(env, environ) == ["NEW"]
    assert environ == {"SET": "environment", "NEW": "file"}


def _pounce(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("POUNCE_")}
    return subprocess.run(
        [sys.executable, "-m", "pounce", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        env={**clean, **(env or {})},
    )


def test_the_cli_reads_options_from_it(tmp_path: Path) -> None:
    env = tmp_path / "app.env"
    env.write_text("POUNCE_PORT=9123\nPOUNCE_TIMEOUT_KEEP_ALIVE=7\n")
    done = _pounce("--env-file", str(env), "--print-config", env={"POUNCE_PORT": "9000"})
    assert done.returncode == 0, done.stderr
    assert "port = 9000  # environment POUNCE_PORT" in done.stdout  # the environment wins
    assert "timeout_keep_alive = 7.0  # environment POUNCE_TIMEOUT_KEEP_ALIVE" in done.stdout


def test_a_bad_file_exits_2_before_anything_binds(tmp_path: Path) -> None:
    env = tmp_path / "app.env"
    env.write_text("oops\n")
    done = _pounce("pounce.demo:app", "--port", "0", "--env-file", str(env))
    assert done.returncode == 2
    assert "app.env, line 1: not KEY=VALUE" in done.stderr
    assert "Traceback" not in done.stderr and "Pounce running" not in done.stderr
    missing = _pounce("pounce.demo:app", "--env-file", str(tmp_path / "nope.env"))
    assert missing.returncode == 2 and "cannot read it" in missing.stderr


def test_pounce_run_takes_uvicorns_env_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pounce
    from pounce.server import Server

    env = tmp_path / ".env"
    env.write_text("APP_SETTING_FROM_FILE=from-file\n")
    monkeypatch.setattr(os, "environ", {**os.environ})  # what the file sets goes away after
    served: list[Server] = []
    monkeypatch.setattr(Server, "run", lambda self, **kw: served.append(self))
    monkeypatch.setattr("pounce.logs.configure_logging", lambda *a, **k: None)

    async def app(scope: object, receive: object, send: object) -> None: ...

    pounce.run(app, port=0, env_file=str(env))
    assert served and os.environ["APP_SETTING_FROM_FILE"] == "from-file"
