"""`pounce.run()` and the CLI take what Uvicorn users already pass.

``uvicorn.run()`` spells "not set" as None (``log_level=None``,
``headers=None``, ``forwarded_allow_ips=None``); its CLI takes a value after
``--ws-per-message-deflate``. (A bad ``POUNCE_*`` value exits 2 naming the
variable: tests/test_options.py.)
"""

from __future__ import annotations

from typing import Any

import pytest

import pounce
from pounce import BuildError, Server
from pounce.asgi.types import Receive, Scope, Send
from pounce.cli import bool_values, build_parser, settings_from
from pounce.layers.proxy.trust import DEFAULT_TRUSTED
from pounce.presets import StandardOptions


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("nothing is served")


@pytest.fixture
def built(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """`Server.run()` describes the stack instead of serving it."""
    stacks: list[str] = []

    def build_only(self: Server, *args: Any, **kwargs: Any) -> None:
        stacks.append(self.describe())

    monkeypatch.setattr(Server, "run", build_only)
    monkeypatch.setattr("pounce.logs.configure_logging", lambda *a, **k: None)
    return stacks


def test_run_takes_uvicorns_none_defaults(built: list[str]) -> None:
    pounce.run(app, log_level=None, headers=None, forwarded_allow_ips=None, backlog=None)
    pounce.run(app)
    assert built[0] == built[1]


def test_none_is_the_default_unless_the_option_has_a_none_value() -> None:
    options = StandardOptions(headers=None, forwarded_allow_ips=None, ws_ping_interval=None)
    assert options.headers == ()
    assert options.forwarded_allow_ips == DEFAULT_TRUSTED
    assert options.ws_ping_interval is None  # None has a meaning here: no pings


def test_run_still_checks_the_log_level(built: list[str]) -> None:
    with pytest.raises(BuildError, match="log_level"):
        pounce.run(app, log_level="verbose")


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--ws-per-message-deflate", "false", "m:app"], False),
        (["--ws-per-message-deflate", "True", "m:app"], True),
        (["--ws-per-message-deflate=off", "m:app"], False),
        (["--no-ws-per-message-deflate", "m:app"], False),
        (["--ws-per-message-deflate", "m:app"], True),
    ],
)
def test_boolean_flags_take_uvicorns_value_form(argv: list[str], expected: bool) -> None:
    args = build_parser().parse_args(bool_values(argv))
    found, _ = settings_from(args, {})
    assert found["ws_per_message_deflate"].value is expected
    assert found["app"].value == "m:app"  # the word after a bare flag is still APP


def test_only_a_true_or_false_word_is_taken() -> None:
    assert bool_values(["--reload", "true", "true"]) == ["--reload", "true"]
    assert bool_values(["--host", "off"]) == ["--host", "off"]
