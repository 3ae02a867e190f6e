"""Host, absolute-form targets and chunk extensions (RFC 9112 §3.2, §3.2.2, §7.1.1).

The rules of `pounce.protocols.h1_syntax`, then both HTTP/1.1 cores fed bytes
that break them (or use them): each must refuse, or translate, the same way.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from pounce.errors import RemoteProtocolError
from pounce.protocols.base import ProtocolCore
from pounce.protocols.events import (
    DataReceived,
    InboundEvent,
    RequestReceived,
    StreamEnded,
    UpgradeRequested,
)
from pounce.protocols.h1 import H11Core
from pounce.protocols.h1_fast import FastH1Core
from pounce.protocols.h1_syntax import ChunkHeaders, origin_form, valid_host

CORES: list[Callable[[], ProtocolCore]] = [H11Core, FastH1Core]
core_ids = ["h11", "fast"]


def request(events: list[InboundEvent]) -> RequestReceived:
    event = events[0]
    if isinstance(event, UpgradeRequested):
        event = event.request
    assert isinstance(event, RequestReceived)
    return event


def refused(core: ProtocolCore, *pieces: bytes) -> RemoteProtocolError:
    with pytest.raises(RemoteProtocolError) as info:
        for piece in pieces:
            core.receive_data(piece)
    return info.value


# -- Host ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        b"",
        b"localhost",
        b"localhost:8000",
        b"example.com.",
        b"192.0.2.1:80",
        b"[::1]",
        b"[2001:db8::7]:4711",
        b"[::ffff:192.0.2.1]",
        b"[v1.fe80::a+en1]",
        b"caf%C3%A9.example",
        b"a_b~c!$&'()*+,;=",
        b"host:",
    ],
)
def test_valid_hosts(value: bytes) -> None:
    assert valid_host(value)


@pytest.mark.parametrize(
    "value",
    [
        b"a b",
        b"user@evil",
        b"user:pw@evil",
        b"a:b",
        b"a:80:80",
        b"a/b",
        b"a?b",
        b"a#b",
        b"%zz",
        b"%4",
        b"[::1",
        b"[::g]",
        b"[1:2:3:4:5:6:7:8:9]",
        b"[::1%25eth0]",
        b"::1",
        b"a\tb",
        b"\xc3\xa9",
        b'"a"',
    ],
)
def test_invalid_hosts(value: bytes) -> None:
    assert not valid_host(value)


@pytest.mark.parametrize("factory", CORES, ids=core_ids)
@pytest.mark.parametrize("host", [b"a b", b"user@evil", b"a:b", b"[::g]"])
@pytest.mark.parametrize("version", [b"1.1", b"1.0"])
def test_a_host_that_is_not_uri_host_and_port_is_400(
    factory: Callable[[], ProtocolCore], host: bytes, version: bytes
) -> None:
    # RFC 9112 §3.2: "A server MUST respond with a 400 (Bad Request) …"
    data = b"GET / HTTP/" + version + b"\r\nhost: " + host + b"\r\n\r\n"
    assert refused(factory(), data).status == 400


@pytest.mark.parametrize("factory", CORES, ids=core_ids)
@pytest.mark.parametrize("host", [b"", b"[::1]:8000", b"caf%C3%A9"])
def test_an_empty_or_uncommon_host_is_served(
    factory: Callable[[], ProtocolCore], host: bytes
) -> None:
    events = factory().receive_data(b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n")
    assert request(events).headers == [(b"host", host)]


# -- absolute-form --------------------------------------------------------------------------


def test_origin_form_of_an_absolute_target() -> None:
    headers = [(b"accept", b"*/*"), (b"host", b"whatever"), (b"x", b"1")]
    target, fields = origin_form(b"GET", b"http://other.example/p?q=1", headers)
    assert target == b"/p?q=1"
    assert fields == [(b"accept", b"*/*"), (b"host", b"other.example"), (b"x", b"1")]


@pytest.mark.parametrize(
    ("method", "target", "expected"),
    [
        (b"GET", b"HTTPS://a.example:8443", b"/"),
        (b"GET", b"http://a.example?x=1", b"/?x=1"),
        (b"OPTIONS", b"http://a.example", b"*"),
        (b"OPTIONS", b"http://a.example?x", b"/?x"),
        (b"GET", b"http://[::1]:80/x", b"/x"),
    ],
)
def test_absolute_targets_without_a_path(method: bytes, target: bytes, expected: bytes) -> None:
    assert origin_form(method, target, [])[0] == expected


def test_an_absolute_target_gives_a_request_without_host_its_host() -> None:
    assert origin_form(b"GET", b"http://a.example/", [(b"x", b"1")])[1] == [
        (b"x", b"1"),
        (b"host", b"a.example"),
    ]


@pytest.mark.parametrize("target", [b"*", b"abc", b"ftp://a/b", b"a.example:80"])
def test_other_targets_are_left_as_they_are(target: bytes) -> None:
    headers = [(b"host", b"h")]
    assert origin_form(b"GET", target, headers) == (target, headers)


@pytest.mark.parametrize(
    "target",
    [
        b"http://user@a.example/",
        b"http://user:pw@a.example/",
        b"http://@a.example/",
        b"http:///p",
        b"http://:80/p",
        b"http://a:b/",
        b"http://[::g]/",
        b"http://a%zz/",
    ],
)
def test_an_absolute_target_with_userinfo_or_a_bad_authority_is_refused(target: bytes) -> None:
    with pytest.raises(RemoteProtocolError) as info:
        origin_form(b"GET", target, [(b"host", b"h")])
    assert info.value.status == 400


@pytest.mark.parametrize("factory", CORES, ids=core_ids)
def test_the_cores_hand_over_an_absolute_target_as_origin_form(
    factory: Callable[[], ProtocolCore],
) -> None:
    data = b"GET http://other.example/p?q=1 HTTP/1.1\r\nHost: whatever\r\nAccept: */*\r\n\r\n"
    got = request(factory().receive_data(data))
    assert got.target == b"/p?q=1"
    assert got.headers == [(b"host", b"other.example"), (b"accept", b"*/*")]


@pytest.mark.parametrize("factory", CORES, ids=core_ids)
def test_an_http_1_0_absolute_target_without_host_gets_one(
    factory: Callable[[], ProtocolCore],
) -> None:
    got = request(factory().receive_data(b"GET http://a.example HTTP/1.0\r\n\r\n"))
    assert (got.target, got.headers) == (b"/", [(b"host", b"a.example")])


@pytest.mark.parametrize("factory", CORES, ids=core_ids)
@pytest.mark.parametrize("target", [b"http://u@evil/", b"http:///p", b"http://a:b/"])
def test_the_cores_refuse_a_bad_absolute_target(
    factory: Callable[[], ProtocolCore], target: bytes
) -> None:
    data = b"GET " + target + b" HTTP/1.1\r\nHost: a\r\n\r\n"
    assert refused(factory(), data).status == 400


# -- chunk extensions -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "rest",
    [
        b"5;ext=a\rb\r\nhello\r\n0\r\n\r\n",
        b"5;a\x00\r\nhello\r\n0\r\n\r\n",
        b"5;a\x01\r\nhello\r\n0\r\n\r\n",
        b"5;a\x7f\r\nhello\r\n0\r\n\r\n",
        b"0;a\rb\r\n\r\n",  # the last chunk's
    ],
)
@pytest.mark.parametrize("factory", CORES, ids=core_ids)
def test_a_control_byte_in_a_chunk_extension_is_400(
    factory: Callable[[], ProtocolCore], rest: bytes
) -> None:
    # RFC 9112 §7.1.1: tokens and quoted-strings; §2.2: a bare CR is invalid.
    head = b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
    body = b"3\r\nabc\r\n" + rest
    assert refused(factory(), head + body).status == 400
    # Split anywhere, it is refused all the same.
    for cut in range(len(head), len(head) + len(body)):
        data = head + body
        assert refused(factory(), data[:cut], data[cut:]).status == 400


@pytest.mark.parametrize("factory", CORES, ids=core_ids)
def test_chunk_extensions_of_tokens_and_quoted_strings_are_read(
    factory: Callable[[], ProtocolCore],
) -> None:
    data = (
        b"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
        b'5;a=b;c="d\te\x80"\t\r\nhello\r\n0;x\r\nx-t: \x01\r\n\r\n'
    )
    events = factory().receive_data(data)
    assert [type(e) for e in events] == [RequestReceived, DataReceived, StreamEnded]
    assert events[1] == DataReceived(stream_id=1, data=b"hello")


def test_chunk_headers_pass_over_chunk_data_and_stop_at_the_last_chunk() -> None:
    chunks = ChunkHeaders()
    # Chunk data may hold anything; a header cut between its CR and LF is joined.
    assert chunks.feed(b"3;a=b\r")
    assert chunks.feed(b"\n\r\x00\n\r\n1")
    assert chunks.feed(b"0\r\n" + b"\x00" * 16 + b"\r\n")
    # After the last chunk come trailers: not chunk headers.
    assert not chunks.feed(b"0\r\nx-t: \x01\r\n\r\n")


def test_chunk_headers_refuse_a_bare_cr() -> None:
    with pytest.raises(RemoteProtocolError):
        ChunkHeaders().feed(b"5;a\rb\r\n")
