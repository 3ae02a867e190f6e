"""`pounce.protocols.h1_fields`: a response head's field lines, remembered per field
and per head.

The lines must be what joining the pairs gives, the CR/LF/NUL check must hold
on a hit as on a miss, and the memos must stay bounded and hold only what was
checked.
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pounce.errors import LocalProtocolError
from pounce.protocols import h1_fields
from pounce.protocols.h1_fields import FRAMING_FIELDS, field_lines

names = st.sampled_from(
    [b"server", b"date", b"content-type", b"content-length", b"transfer-encoding", b"connection"]
)
values = st.binary(max_size=12)


def joined(headers: list[tuple[bytes, bytes]]) -> bytes:
    return b"".join(name + b": " + value + b"\r\n" for name, value in headers)


def splits(headers: list[tuple[bytes, bytes]]) -> bool:
    return any(set(name + value) & {0x0D, 0x0A, 0x00} for name, value in headers)


@given(st.lists(st.tuples(names, values), max_size=6))
def test_lines_and_refusals_are_those_of_the_joined_fields(
    headers: list[tuple[bytes, bytes]],
) -> None:
    for _ in range(2):  # the second time from the memo
        if splits(headers):
            with pytest.raises(LocalProtocolError) as refused:
                field_lines(headers)
            assert refused.value.status == 500
            continue
        fields, framing = field_lines(headers)
        assert fields == joined(headers)
        assert framing == [pair for pair in headers if pair[0] in FRAMING_FIELDS]


def test_a_refused_field_is_never_remembered() -> None:
    bad = (b"x-evil", b"a\r\nset-cookie: b")
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            field_lines([bad])
    assert bad not in h1_fields._PLAIN_LINES


def test_pairs_of_lists_and_bytes_subclasses_are_written_but_not_remembered() -> None:
    class Name(bytes):
        pass

    listed = [b"x-listed", b"1"]
    subclassed = (Name(b"x-subclassed"), b"2")
    fields, _ = field_lines([listed, subclassed])  # type: ignore[list-item]
    assert fields == b"x-listed: 1\r\nx-subclassed: 2\r\n"
    assert subclassed not in h1_fields._PLAIN_LINES
    assert (tuple(listed), subclassed) not in h1_fields._HEADS
    alike = ((Name(b"x-subclassed"), b"2"),)
    field_lines(list(alike))
    assert alike not in h1_fields._HEADS  # (equal to an exact head, so looked for by key)
    assert not any(type(pair[0]) is Name for head in h1_fields._HEADS for pair in head)


def test_a_head_is_remembered_whole_and_a_refused_one_never() -> None:
    head = [(b"content-type", b"text/x-head"), (b"content-length", b"3")]
    first = field_lines(head)
    assert h1_fields._HEADS[tuple(head)] == first
    assert field_lines(list(head)) is first  # one lookup
    assert first == (b"content-type: text/x-head\r\ncontent-length: 3\r\n", [head[1]])
    bad = [(b"content-type", b"text/x-head"), (b"x-evil", b"a\r\nb")]
    for _ in range(2):
        with pytest.raises(LocalProtocolError):
            field_lines(bad)
    assert tuple(bad) not in h1_fields._HEADS


def test_the_memo_is_bounded_and_starts_afresh_when_full() -> None:
    for i in range(h1_fields.MEMO_FIELDS * 2 + 5):
        field_lines([(b"x-count", b"%d" % i)])
        assert len(h1_fields._PLAIN_LINES) <= h1_fields.MEMO_FIELDS
    long_value = b"v" * h1_fields.MEMO_LINE
    field_lines([(b"x-long", long_value)])
    assert (b"x-long", long_value) not in h1_fields._PLAIN_LINES
    for i in range(h1_fields.MEMO_HEADS * 2 + 5):
        field_lines([(b"x-head", b"%d" % i), (b"x-other", b"1")])
        assert len(h1_fields._HEADS) <= h1_fields.MEMO_HEADS
    huge = [(b"x-huge-%d" % i, b"v" * 200) for i in range(h1_fields.MEMO_HEAD // 200 + 1)]
    field_lines(huge)
    assert tuple(huge) not in h1_fields._HEADS
