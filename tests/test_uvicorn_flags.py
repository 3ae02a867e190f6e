"""Every flag of the installed Uvicorn's ``--help`` is mapped (pounce/uvicorn_flags.py).

A new Uvicorn flag fails `test_every_uvicorn_flag_is_mapped` until it is
mapped; a mapped "same" flag must be a Pounce flag; every value Uvicorn lists
for a choice flag is one Pounce takes or one it refuses with a message; a
refused flag or value exits 2 with its message.
"""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from pounce import uvicorn_flags
from pounce.cli import build_parser, main

pytest.importorskip("uvicorn")


def uvicorn_help() -> str:
    env = {"COLUMNS": "200", "PATH": ""}
    proc = subprocess.run(
        [sys.executable, "-m", "uvicorn", "--help"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


HELP = uvicorn_help()
OPTION_LINE = re.compile(r"^  (--[\w-]+)(?: / (--[\w-]+))?(?: \[([\w|-]+)\])?", re.M)


def uvicorn_flags_and_choices() -> dict[str, tuple[str, ...]]:
    found: dict[str, tuple[str, ...]] = {}
    for match in OPTION_LINE.finditer(HELP):
        choices = tuple(match[3].split("|")) if match[3] else ()
        found[match[1]] = choices
        if match[2]:
            found[match[2]] = ()
    return found


UVICORN = uvicorn_flags_and_choices()


def pounce_flags() -> dict[str, tuple[str, ...]]:
    flags: dict[str, tuple[str, ...]] = {}
    for action in build_parser()._actions:
        for flag in action.option_strings:
            flags[flag] = tuple(str(c) for c in action.choices or ())
    return flags


def test_the_help_parser_finds_the_flags() -> None:
    assert len(UVICORN) > 50
    assert UVICORN["--http"] >= ("auto", "h11", "httptools")
    assert "--no-proxy-headers" in UVICORN


def test_every_uvicorn_flag_is_mapped() -> None:
    mapped = set(uvicorn_flags.SAME) | set(uvicorn_flags.REFUSED)
    missing = sorted(set(UVICORN) - mapped)
    assert not missing, f"map these Uvicorn flags in pounce/uvicorn_flags.py: {missing}"


def test_the_same_flags_are_pounce_flags() -> None:
    ours = pounce_flags()
    assert [flag for flag in uvicorn_flags.SAME if flag not in ours] == []
    assert [flag for flag in uvicorn_flags.REFUSED if flag in ours] == []


def test_every_uvicorn_value_is_taken_or_refused() -> None:
    ours = pounce_flags()
    for flag, values in UVICORN.items():
        if flag not in uvicorn_flags.SAME:
            continue
        for value in values:
            taken = value in ours[flag]
            refused = (flag, value) in uvicorn_flags.REFUSED_VALUES
            assert taken != refused, f"{flag} {value}: taken={taken}, refused={refused}"


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["m:app", "--http", "httptools"], "--http httptools: Pounce parses HTTP/1.1 itself"),
        (["m:app", "--ws=websockets"], "--ws websockets: Pounce's WebSocket is wsproto"),
        (["--interface", "wsgi", "m:app"], "--interface: Pounce serves ASGI 3"),
    ],
)
def test_refused_flags_exit_2_with_their_message(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 2
    assert f"pounce: error: {message}" in capsys.readouterr().err


def test_a_shared_flag_with_a_taken_value_is_not_refused() -> None:
    assert uvicorn_flags.refusal(["m:app", "--http", "h11", "--loop", "asyncio"]) is None


# -- uvicorn.run() keywords against pounce.run() ---------------------------------------------


def uvicorn_run_defaults() -> dict[str, object]:
    import inspect

    import uvicorn

    parameters = inspect.signature(uvicorn.run).parameters
    return {name: p.default for name, p in parameters.items() if name != "app"}


def test_every_uvicorn_run_keyword_is_taken_or_refused() -> None:
    from pounce.presets import StandardOptions
    from pounce.workers.reload import RELOAD_KEYWORDS

    taken = {*StandardOptions(), *RELOAD_KEYWORDS, "factory", "app_dir", "log_level", "env_file"}
    taken |= {"log_config", "use_colors"}
    for name in uvicorn_run_defaults():
        refused = name in uvicorn_flags.RUN_REFUSED
        assert (name in taken) != refused, f"uvicorn.run({name}=): map it in RUN_REFUSED"


def test_refused_run_keywords_at_uvicorns_default_change_nothing() -> None:
    defaults = uvicorn_run_defaults()
    given = {name: defaults[name] for name in uvicorn_flags.RUN_REFUSED if name != "log_config"}
    assert uvicorn_flags.run_keywords({**given, "port": 0}) == {"port": 0}


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("interface", "wsgi", "Pounce serves ASGI 3"),
        ("ssl_context_factory", object(), "ssl_certfile"),
    ],
)
def test_refused_run_keywords_say_what_to_do(name: str, value: object, message: str) -> None:
    import pounce
    from pounce import BuildError

    with pytest.raises(BuildError, match=message):
        pounce.run("m:app", **{name: value})
