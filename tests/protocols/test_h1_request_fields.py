"""`pounce.protocols.h1_request_fields`: what a request head's fields say, remembered by
the bytes of their block. (That a remembered block answers as h11 does is
`test_h1_differential.test_remembered_field_blocks_answer_as_h11`.)"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from pounce.errors import RemoteProtocolError
from pounce.protocols import h1_request_fields
from pounce.protocols.events import RequestReceived
from pounce.protocols.h1_fast import FastH1Core
from pounce.protocols.h1_request_fields import FieldFacts, field_facts

# Over the plain-head limit (256 bytes): its fields are split and remembered.
FIELDS = (
    b"Host: example.com\r\nConnection: keep-alive\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nCookie: a=1; b=2\r\n"
)
HEAD = b"GET /a HTTP/1.1\r\n" + FIELDS + b"\r\n"


@pytest.fixture(autouse=True)
def _empty_memo() -> Iterator[None]:
    h1_request_fields._BLOCKS.clear()
    yield
    h1_request_fields._BLOCKS.clear()


def request_of(data: bytes) -> RequestReceived:
    (event,) = FastH1Core().receive_data(data)
    assert isinstance(event, RequestReceived)
    return event


def test_a_block_read_once_is_remembered_and_read_the_same_the_next_time() -> None:
    first = request_of(HEAD)
    assert h1_request_fields.remembered(FIELDS) is not None
    second = request_of(HEAD.replace(b"/a", b"/b"))
    assert second.headers == first.headers
    assert second.headers[0] == (b"host", b"example.com")  # names lower-cased
    assert (second.target, second.has_body) == (b"/b", False)


def test_each_request_gets_its_own_list_of_fields() -> None:
    """An app may change its scope's headers: the next request's are not those."""
    first = request_of(HEAD)
    first.headers.append((b"x-added", b"1"))
    first.headers[0] = (b"host", b"changed")
    second = request_of(HEAD)
    assert (b"x-added", b"1") not in second.headers
    assert second.headers[0] == (b"host", b"example.com")


def test_the_request_line_is_read_every_time() -> None:
    """The block's facts are the fields'; what they mean with the request line is not
    remembered: HTTP/1.0 closes, HTTP/1.1 keeps the connection, from the same block."""
    core = FastH1Core()
    core.receive_data(HEAD.replace(b"HTTP/1.1", b"HTTP/1.0"))
    assert core._keep_alive is False
    core = FastH1Core()
    core.receive_data(HEAD)
    assert core._keep_alive is True


@pytest.mark.parametrize(
    "field",
    [b"Content-Length: 1x\r\n", b"Content-Length: 1, 2\r\n", b"Transfer-Encoding: gzip\r\n"],
)
def test_a_refused_block_is_not_remembered_and_refused_every_time(field: bytes) -> None:
    head = b"GET / HTTP/1.1\r\n" + FIELDS + field + b"\r\n"
    for _ in range(2):
        with pytest.raises(RemoteProtocolError):
            FastH1Core().receive_data(head)
    assert not h1_request_fields._BLOCKS


@pytest.mark.parametrize("bound", ["MEMO_BLOCK", "MEMO_FIELDS"])
def test_a_block_over_a_bound_is_not_remembered(
    bound: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Over `MEMO_BLOCK` bytes, or `MEMO_FIELDS` fields (tiny fields, many objects)."""
    over = len(FIELDS) - 1 if bound == "MEMO_BLOCK" else 5
    monkeypatch.setattr(h1_request_fields, bound, over)
    request_of(HEAD)  # 6 fields of 251 bytes: one over either bound
    assert h1_request_fields._BLOCKS == {}
    monkeypatch.setattr(h1_request_fields, bound, over + 1)
    request_of(HEAD)  # at both
    assert len(h1_request_fields._BLOCKS) == 1


def test_a_full_memo_is_emptied_before_the_next_block(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(h1_request_fields, "MEMO_BLOCKS", 2)
    for n in range(5):
        request_of(HEAD.replace(b"a=1", b"a=%d" % n))
        assert 1 <= len(h1_request_fields._BLOCKS) <= 2
    assert h1_request_fields.remembered(FIELDS.replace(b"a=1", b"a=4")) is not None


def test_field_facts() -> None:
    facts = field_facts(
        [
            (b"Host", b"h"),
            (b"Content-Length", b"3"),
            (b"content-length", b"3"),
            (b"Connection", b"keep-alive, Close"),
            (b"Expect", b"100-Continue"),
            (b"Upgrade", b"websocket"),
            (b"X-A", b"b"),
        ]
    )
    assert facts == FieldFacts(
        headers=(
            (b"host", b"h"),
            (b"content-length", b"3"),
            (b"connection", b"keep-alive, Close"),
            (b"expect", b"100-Continue"),
            (b"upgrade", b"websocket"),
            (b"x-a", b"b"),
        ),
        length=b"3",
        chunked=False,
        host=b"h",
        host_count=1,
        close=True,
        expects_continue=True,
        upgrade=True,
    )
    assert field_facts([(b"Transfer-Encoding", b"Chunked")]).chunked
    assert not field_facts([(b"Upgrade", b" , ")]).upgrade
