"""`DeclaredLengths` alone: response body pieces against a declared content-length.

The HTTP/2 core's use of it, on the wire in memory, is in test_h2_core.py.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pounce.errors import LocalProtocolError
from pounce.protocols.framing import TOO_LITTLE, TOO_MUCH, DeclaredLengths, declared_length


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ([], None),
        ([(b"content-type", b"text/plain")], None),
        ([(b"content-length", b"0")], 0),
        ([(b"x", b"1"), (b"content-length", b"12")], 12),
        ([(b"content-length", b"7"), (b"content-length", b"7")], 7),
        ([(b"content-length", b"9" * 20)], int(b"9" * 20)),
    ],
)
def test_declared_length(headers: list[tuple[bytes, bytes]], expected: int | None) -> None:
    assert declared_length(headers) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (b"", "bad"),
        (b"-1", "bad"),
        (b"1.0", "bad"),
        (b"3, 3", "bad"),  # a list: h2 peers refuse it
        (b"\xd9\xa3", "bad"),  # a non-ASCII digit
        (b"9" * 21, "bad"),
    ],
)
def test_bad_declared_length(value: bytes, message: str) -> None:
    with pytest.raises(LocalProtocolError, match=message):
        declared_length([(b"content-length", value)])


def test_conflicting_declared_lengths() -> None:
    with pytest.raises(LocalProtocolError, match="conflicting"):
        declared_length([(b"content-length", b"3"), (b"content-length", b"4")])


def test_head_request_and_no_content_statuses_are_not_counted() -> None:
    lengths = DeclaredLengths()
    lengths.head_request(1)
    for sid, status in ((1, 200), (3, 204), (5, 304)):
        lengths.response(sid, status, [(b"content-length", b"10")])
        lengths.data(sid, 0, True)
    # The HEAD mark went with the response: a later one on that id is counted.
    lengths.response(1, 200, [(b"content-length", b"10")])
    with pytest.raises(LocalProtocolError, match=TOO_LITTLE):
        lengths.data(1, 0, True)


def test_trailers_end_the_body() -> None:
    lengths = DeclaredLengths()
    lengths.response(1, 200, [(b"content-length", b"2")])
    lengths.data(1, 1, False)
    with pytest.raises(LocalProtocolError, match=TOO_LITTLE):
        lengths.trailers(1)
    lengths.data(1, 1, False)
    lengths.trailers(1)
    lengths.data(1, 5, True)  # no longer counted


def test_forget_drops_the_count() -> None:
    lengths = DeclaredLengths()
    lengths.head_request(3)
    lengths.response(1, 200, [(b"content-length", b"2")])
    lengths.forget(1)
    lengths.forget(3)
    lengths.data(1, 5, True)
    lengths.response(3, 200, [(b"content-length", b"2")])
    with pytest.raises(LocalProtocolError, match=TOO_MUCH):
        lengths.data(3, 5, True)


@settings(max_examples=500, deadline=None)
@given(st.integers(0, 50), st.lists(st.integers(0, 20), max_size=6), st.booleans())
def test_accepted_bytes_never_exceed_the_declared_length(
    declared: int, pieces: list[int], trailers: bool
) -> None:
    """Whatever the pieces: what is accepted fits, and the end is accepted only when exact."""
    lengths = DeclaredLengths()
    lengths.response(1, 200, [(b"content-length", b"%d" % declared)])
    accepted = 0
    refused = False
    for i, size in enumerate(pieces):
        end = i == len(pieces) - 1 and not trailers
        try:
            lengths.data(1, size, end)
        except LocalProtocolError as exc:
            total = accepted + size
            expected = TOO_MUCH if total > declared else TOO_LITTLE
            assert exc.message == expected and exc.status == 500
            refused = True
            break
        accepted += size
        assert accepted <= declared
    if refused or not pieces:
        return
    if trailers:
        try:
            lengths.trailers(1)
        except LocalProtocolError:
            assert accepted < declared
        else:
            assert accepted == declared
    else:
        assert accepted == declared
