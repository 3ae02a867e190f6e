"""The WebSocket flags of the CLI and their POUNCE_ environment equivalents."""

from __future__ import annotations

import pytest

from pounce.cli import build_parser, options_from
from pounce.presets import StandardOptions


def test_defaults_match_the_preset() -> None:
    options = options_from(build_parser().parse_args(["m:app"]))
    defaults = StandardOptions()
    assert options.ws == defaults.ws == "auto"
    assert options.ws_max_size == defaults.ws_max_size == 16 * 1024 * 1024
    assert options.ws_max_queue == defaults.ws_max_queue == 32
    assert options.ws_ping_interval == defaults.ws_ping_interval == 20.0
    assert options.ws_ping_timeout == defaults.ws_ping_timeout == 20.0
    assert options.ws_per_message_deflate is defaults.ws_per_message_deflate is True


def test_flags_reach_the_options() -> None:
    args = build_parser().parse_args(
        [
            "m:app",
            "--ws",
            "wsproto",
            "--ws-max-size",
            "1024",
            "--ws-max-queue",
            "4",
            "--ws-ping-interval",
            "none",
            "--ws-ping-timeout",
            "2.5",
            "--no-ws-per-message-deflate",
        ]
    )
    options = options_from(args)
    assert (options.ws, options.ws_max_size, options.ws_max_queue) == ("wsproto", 1024, 4)
    assert (options.ws_ping_interval, options.ws_ping_timeout) == (None, 2.5)
    assert options.ws_per_message_deflate is False


def test_environment_sets_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POUNCE_WS", "none")
    monkeypatch.setenv("POUNCE_WS_MAX_SIZE", "2048")
    monkeypatch.setenv("POUNCE_WS_PING_INTERVAL", "0")
    monkeypatch.setenv("POUNCE_WS_PER_MESSAGE_DEFLATE", "false")
    options = options_from(build_parser().parse_args(["m:app"]))
    assert (options.ws, options.ws_max_size, options.ws_ping_interval) == ("none", 2048, None)
    assert options.ws_per_message_deflate is False


def test_bad_values_are_usage_errors() -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["m:app", "--ws-ping-timeout", "-1"])
    with pytest.raises(SystemExit):
        build_parser().parse_args(["m:app", "--ws", "websockets"])
