"""`pounce.logs`: the text and JSON formatters, config files; `pounce.observe.request_id`."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from pounce import BuildError, Server
from pounce.events import current_request_id
from pounce.logs import JSON_FIELDS, JsonFormatter, TextFormatter, load_config
from pounce.observe.access_log import DEFAULT_FORMAT, check_format
from pounce.observe.request_id import RequestIdOptions, RequestIds


def record(message: str = "hello", level: int = logging.INFO, **extra: object) -> logging.LogRecord:
    made = logging.LogRecord("pounce.error", level, __file__, 1, message, (), None)
    for name, value in extra.items():
        setattr(made, name, value)
    return made


def test_text_lines_keep_todays_layout() -> None:
    assert TextFormatter().format(record()) == "INFO     pounce.error: hello"


def test_text_lines_name_the_request_and_colour_on_request() -> None:
    token = current_request_id.set("r-1")
    try:
        line = TextFormatter(use_colors=True).format(record(level=logging.ERROR))
    finally:
        current_request_id.reset(token)
    assert line == "\x1b[31mERROR   \x1b[0m pounce.error: [r-1] hello"


def test_json_lines_have_stable_fields() -> None:
    try:
        raise ValueError("bad")
    except ValueError as exc:
        failed = record("it broke", logging.ERROR)
        failed.exc_info = (type(exc), exc, exc.__traceback__)
    line = json.loads(JsonFormatter().format(failed))
    assert tuple(line) == JSON_FIELDS
    assert (line["level"], line["logger"], line["message"]) == ("error", "pounce.error", "it broke")
    assert line["request_id"] is None and "ValueError: bad" in line["exception"]
    assert line["time"].endswith("Z")


def test_access_format_is_checked() -> None:
    assert check_format(DEFAULT_FORMAT) == DEFAULT_FORMAT
    with pytest.raises(ValueError, match=r"unknown field \{nope\}; the fields are client"):
        check_format("{nope}")
    with pytest.raises(ValueError, match="not a format string"):
        check_format("{client")
    with pytest.raises(BuildError, match=r"\.access_log\(format="):
        Server.builder().access_log(format="{status} {size}")


def test_load_config_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    with pytest.raises(BuildError, match="no such file"):
        load_config(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text('{"version": 99}')
    with pytest.raises(BuildError, match=r"bad\.json"):
        load_config(bad)


def ids(**options: object) -> RequestIds:
    return RequestIds(RequestIdOptions(**options))  # type: ignore[arg-type]


LOOPBACK = ("127.0.0.1", 40000)


def test_request_id_from_a_trusted_peer_only() -> None:
    given = [(b"x-request-id", b"abc-1")]
    assert ids()(given, LOOPBACK) == "abc-1"
    made = ids()(given, ("203.0.113.7", 40000))  # not a trusted proxy: its id is not taken
    assert made != "abc-1" and len(made) == 32 and int(made, 16) >= 0
    assert ids(trusted=("*",))(given, ("203.0.113.7", 1)) == "abc-1"


@pytest.mark.parametrize("value", [b"", b"a b", b"a\x1bb", b"x" * 201, b"caf\xc3\xa9"])
def test_an_unusable_request_id_is_replaced(value: bytes) -> None:
    made = ids()([(b"x-request-id", value)], LOOPBACK)
    assert made.encode() != value and len(made) == 32


def test_request_id_header_name_and_echo() -> None:
    custom = ids(header="X-Correlation-ID", echo=True)
    assert custom([(b"x-correlation-id", b"c-9")], LOOPBACK) == "c-9"
    assert custom.echo == b"x-correlation-id"
    assert ids().echo is None
    with pytest.raises(BuildError, match="header field name"):
        Server.builder().request_id(header="bad header")
