"""`pounce.protocols.events`' fast constructors build exactly what the dataclasses build."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from pounce.protocols.events import (
    RequestReceived,
    SendData,
    SendResponse,
    StreamEnded,
    request_received,
    send_data,
    send_response,
    stream_ended,
)

HEADERS = [(b"host", b"x")]

CASES: list[tuple[Any, Any]] = [
    (
        request_received(3, b"GET", b"/p?q", HEADERS, False),
        RequestReceived(
            stream_id=3,
            method=b"GET",
            target=b"/p?q",
            headers=HEADERS,
            http_version="1.1",
            has_body=False,
        ),
    ),
    (
        request_received(1, b"POST", b"/", [], True),
        RequestReceived(stream_id=1, method=b"POST", target=b"/", headers=[], http_version="1.1"),
    ),
    (stream_ended(7), StreamEnded(stream_id=7)),
    (send_response(2, 204, HEADERS), SendResponse(stream_id=2, status=204, headers=HEADERS)),
    (send_data(2, b"abc", True), SendData(stream_id=2, data=b"abc", end_stream=True)),
    (send_data(2, b"", False), SendData(stream_id=2, data=b"")),
]


@pytest.mark.parametrize(("fast", "built"), CASES, ids=lambda e: type(e).__name__)
def test_every_field_is_set_as_the_constructor_sets_it(fast: Any, built: Any) -> None:
    assert type(fast) is type(built)
    for field in dataclasses.fields(built):  # a field the maker forgets raises here
        assert getattr(fast, field.name) == getattr(built, field.name), field.name
    assert fast == built
