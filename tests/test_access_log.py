"""`pounce.observe.access_log`: the line, its escaping and the record it logs, without a server."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pounce.events import ConnectionOpened, Event, EventBus, RequestCompleted
from pounce.observe.access_log import (
    _ESCAPES,
    DEFAULT_FORMAT,
    AccessEntry,
    AccessLog,
    AccessLogOptions,
    escape,
)


def completed(**changes: Any) -> RequestCompleted:
    fields: dict[str, Any] = {
        "method": "GET",
        "path": "/hello?name=cat",
        "http_version": "1.1",
        "scheme": "http",
        "client": ("127.0.0.1", 50312),
        "status": 200,
        "bytes": 13,
        "ttfb": 0.0001,
        "duration": 0.00042,
        "queue_wait": 0.0,
        "complete": True,
        "headers": [(b"host", b"x"), (b"user-agent", b"curl/8")],
        "request_id": None,
        "extensions": {},
    }
    fields.update(changes)
    return RequestCompleted(**fields)


class Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


@pytest.fixture
def records() -> Iterator[list[logging.LogRecord]]:
    logger = logging.getLogger("pounce.access")
    handler = Records()
    level, propagate = logger.level, logger.propagate
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    try:
        yield handler.records
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


def test_the_default_line(records: list[logging.LogRecord]) -> None:
    AccessLog()(completed())
    (record,) = records
    assert record.getMessage() == '127.0.0.1:50312 - "GET /hello?name=cat HTTP/1.1" 200 13 0.4ms'
    assert record.name == "pounce.access"
    assert record.levelno == logging.INFO
    assert record.funcName == "__call__"  # where logging would have found the caller
    assert record.pathname.endswith("access_log.py")
    assert isinstance(record.access, AccessEntry)  # type: ignore[attr-defined]
    assert record.request_id is None  # type: ignore[attr-defined]


def test_a_line_with_a_percent_sign_is_not_formatted_again(
    records: list[logging.LogRecord],
) -> None:
    AccessLog()(completed(path="/100%25%s"))
    assert '"GET /100%25%s HTTP/1.1"' in records[0].getMessage()


def test_a_disabled_logger_builds_no_record(records: list[logging.LogRecord]) -> None:
    logging.getLogger("pounce.access").setLevel(logging.WARNING)
    AccessLog()(completed())
    assert records == []


def test_a_record_factory_and_a_filter_still_apply(records: list[logging.LogRecord]) -> None:
    made = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = made(*args, **kwargs)
        record.tagged = True
        return record

    logger = logging.getLogger("pounce.access")
    only_404 = logging.Filter()
    only_404.filter = lambda record: " 404 " in record.getMessage()  # type: ignore[method-assign]
    logging.setLogRecordFactory(factory)
    logger.addFilter(only_404)
    try:
        AccessLog()(completed())
        AccessLog()(completed(status=404))
    finally:
        logging.setLogRecordFactory(made)
        logger.removeFilter(only_404)
    (record,) = records
    assert " 404 " in record.getMessage()
    assert record.tagged  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    "event",
    [
        completed(),
        completed(client=None, status=0, complete=False, bytes=0),
        completed(status=0, complete=True),  # the server's own 500
        completed(method="HEAD", http_version="2", duration=1.23456),
        completed(path="/\x1b[31mred\\x1b?q=\x85", method="G\x7fT"),
        completed(client=("::1", 0), path="/caf\u00e9 \u2028"),
    ],
)
def test_the_default_line_is_what_its_plan_writes(event: RequestCompleted) -> None:
    """The default format has a line of its own (one expression); a custom format spelled
    like it goes through the per-field plan, and both must write the same."""
    default = AccessLog()._lines[0](event)
    spelled = AccessLog(AccessLogOptions(format=DEFAULT_FORMAT + " "))._lines[0](event)
    assert spelled == default + " "
    assert "\x1b" not in default and "\x7f" not in default and "\x85" not in default


@given(st.text())
def test_escape_is_the_translation(text: str) -> None:
    """The shortcut (printable, no backslash: unchanged) never skips a character to escape."""
    assert escape(text) == text.translate(_ESCAPES)


# -- a disabled access log costs nothing: the bus builds no event for it ---------------------


class Switchable:
    """A subscriber with an ``enabled()`` the test turns, and the events it got."""

    event_kinds = frozenset({RequestCompleted})

    def __init__(self) -> None:
        self.on = True
        self.seen: list[Event] = []

    def enabled(self) -> bool:
        return self.on

    def __call__(self, event: Event) -> None:
        self.seen.append(event)


def test_the_bus_builds_no_request_event_while_the_access_log_is_off(
    records: list[logging.LogRecord],
) -> None:
    logger = logging.getLogger("pounce.access")
    bus = EventBus([AccessLog()])
    logger.setLevel(logging.WARNING)
    bus.refresh()
    assert not bus.requests  # the exchange builds no event, reads no clock
    logger.setLevel(logging.INFO)
    assert not bus.requests  # asked only when refreshed, never per request
    bus.refresh()
    assert bus.requests
    bus.emit(completed())
    assert len(records) == 1


def test_a_subscriber_that_is_off_gets_nothing_and_others_still_do() -> None:
    quiet, always = Switchable(), list[Event]()
    bus = EventBus([quiet, always.append])  # (a plain function: always on)
    quiet.on = False
    bus.refresh()
    assert bus.requests  # the other one takes request events
    bus.emit(completed())
    assert (quiet.seen, len(always)) == ([], 1)
    quiet.on = True
    bus.refresh()
    bus.emit(completed())
    assert (len(quiet.seen), len(always)) == (1, 2)


def test_connection_events_stay_wanted_while_their_subscriber_is_off() -> None:
    """The transport adapter a serve makes is chosen once, at its start."""

    class Connections(Switchable):
        event_kinds = frozenset({ConnectionOpened})

    subscriber = Connections()
    bus = EventBus([subscriber])
    subscriber.on = False
    bus.refresh()
    assert bus.connections and not bus.requests


def test_an_enabled_that_fails_counts_as_on_and_is_reported(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Switchable):
        def enabled(self) -> bool:
            raise RuntimeError("cannot tell")

    subscriber = Broken()
    bus = EventBus([subscriber])
    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        bus.refresh()
    assert bus.requests
    assert "cannot tell" in caplog.text
