"""`connection_info`: a new connection's `ConnectionInfo`, the same value at a fifth of the cost."""

from __future__ import annotations

import dataclasses

import pytest

from pounce.conn import ConnectionInfo, connection_info

CASES = [
    (("127.0.0.1", 50000), ("127.0.0.1", 8000), "http"),
    (("::1", 1), ("::1", 443), "https"),
    (None, ("/run/pounce.sock", None), "http"),
    (None, None, "http"),
]


@pytest.mark.parametrize(("client", "server", "scheme"), CASES)
def test_equal_to_the_constructor(
    client: tuple[str, int] | None, server: tuple[str, int | None] | None, scheme: str
) -> None:
    made = connection_info(client, server, scheme)
    expected = ConnectionInfo(client=client, server=server, scheme=scheme)
    assert type(made) is ConnectionInfo
    assert made == expected and hash(made) == hash(expected) and repr(made) == repr(expected)
    assert made.with_changes(alpn="h2") == expected.with_changes(alpn="h2")


def test_frozen_like_any_other() -> None:
    made = connection_info(("127.0.0.1", 1), ("127.0.0.1", 2), "http")
    with pytest.raises(dataclasses.FrozenInstanceError):
        made.client = None  # type: ignore[misc]


def test_sets_every_field() -> None:
    """A field added to `ConnectionInfo` must be set by `connection_info` too."""
    made = connection_info(("a", 1), ("b", 2), "https")
    given = {"client": ("a", 1), "server": ("b", 2), "scheme": "https"}
    for field in dataclasses.fields(ConnectionInfo):
        assert getattr(made, field.name) == given.get(field.name, field.default), field.name
