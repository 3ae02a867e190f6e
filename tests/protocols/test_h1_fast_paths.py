"""The shortcuts of the fast HTTP/1.1 path agree with the general path and with h11.

`FastH1Core` answers the common request (HTTP/1.1, one Host, no body fields)
with one regex match, and `validate_response_headers` remembers pairs it has
validated. Each case here sits on the border of such a shortcut — just inside
or just outside it — and goes through both cores
(`test_h1_differential.run_both`), whole, a byte at a time and in random
splits, so a shortcut that accepts or parses anything differently fails.
"""

from __future__ import annotations

import pytest

from pounce.asgi.headers import _VALID_PAIRS, validate_response_headers
from pounce.errors import ASGIContractError
from pounce.protocols.events import RequestReceived
from pounce.protocols.h1_fast import FastH1Core
from tests.protocols.test_h1_differential import DEFAULT, chunkings, run_both


def get(*fields: bytes, line: bytes = b"GET /p?q=1 HTTP/1.1") -> bytes:
    return b"".join(part + b"\r\n" for part in (line, *fields)) + b"\r\n"


PLAIN_BORDER: list[tuple[str, bytes]] = [
    ("host-only", get(b"Host: example.com")),
    ("host-upper", get(b"HOST: example.com")),
    ("host-mixed", get(b"hOsT:example.com")),
    ("host-ows", get(b"Host: \t example.com \t ")),
    ("host-empty", get(b"Host:")),
    ("host-empty-ows", get(b"Host:  ")),
    ("host-inner-ws", get(b"Host: a \t b")),
    ("fields-around-host", get(b"Accept: */*", b"Host: h", b"User-Agent: x/1", b"X-A:")),
    ("field-after-host", get(b"Host: h", b"X-Empty:", b"X-Obs-Text: \x80\xff")),
    ("field-ctl-chars", get(b"Host: h", b"X-Ctl: \x01\x7f\x1f")),
    ("host-twice", get(b"Host: a", b"Host: a")),
    ("host-twice-apart", get(b"Host: a", b"X: 1", b"host: b")),
    ("no-host", get(b"X: 1")),
    ("hostx-not-host", get(b"Hostx: a", b"Host: h")),
    # Host first and a bare end are tried before the field repeats: their near misses.
    ("host-ipv6-first", get(b"Host: [::1]:80", b"X: 1")),
    ("host-first-bad-value", get(b"Host: a/b")),
    ("host-first-then-close-upper", get(b"HOST: h", b"CONNECTION: CLOSE")),
    ("host-then-blank-then-more", get(b"Host: h") + b"X: 1\r\n\r\n"),
    ("x-host-not-host", get(b"X-Host: a")),
    ("host-space-colon", get(b"Host : h")),
    ("host-nul", get(b"Host: a\x00b")),
    ("host-bare-cr", get(b"Host: a\rb")),
    ("host-vt", get(b"Host: a\x0bb")),
    ("field-ff", get(b"Host: h", b"X: a\x0cb")),
    ("obs-fold-after-host", get(b"Host: h", b" folded")),
    ("bad-name", get(b"Host: h", b"X Y: 1")),
    ("connect", get(b"Host: h", line=b"CONNECT h:443 HTTP/1.1")),
    ("connectx", get(b"Host: h", line=b"CONNECTX / HTTP/1.1")),
    ("http10-host", get(b"Host: h", line=b"GET / HTTP/1.0")),
    ("http12", get(b"Host: h", line=b"GET / HTTP/1.2")),
    ("http20", get(b"Host: h", line=b"GET / HTTP/2.0")),
    ("lf-request-line", b"GET / HTTP/1.1\nHost: h\r\n\r\n"),
    ("lf-fields", b"GET / HTTP/1.1\r\nHost: h\nX: 1\n\n"),
    ("lf-last", b"GET / HTTP/1.1\r\nHost: h\r\n\n"),
    ("leading-crlf", b"\r\n" + get(b"Host: h")),
    ("two-spaces", get(b"Host: h", line=b"GET  / HTTP/1.1")),
    ("target-ctl", get(b"Host: h", line=b"GET /\x7f HTTP/1.1")),
    ("special-after-host", get(b"Host: h", b"Connection: close")),
    # The one close line after Host, taken without the field scan: value, case, OWS.
    ("close-after-host-ows", get(b"Host: h", b"connection:  \tCLOSE \t")),
    ("close-after-host-mixed", get(b"Host: h", b"CoNnEcTiOn:Close")),
    ("close-and-field-after-host", get(b"Host: h", b"Connection: close", b"X: 1")),
    ("field-and-close-after-host", get(b"Host: h", b"X: 1", b"Connection: close")),
    ("close-before-and-after-host", get(b"Connection: close", b"Host: h", b"Connection: close")),
    ("close-before-host", get(b"Connection: close", b"Host: h")),
    (
        "keep-alive-after-host-close-before",
        get(b"Connection: close", b"Host: h", b"Connection: keep-alive"),
    ),
    ("close-x-after-host", get(b"Host: h", b"Connection: closex")),
    ("keep-alive", get(b"Host: h", b"Connection: keep-alive")),
    ("keep-alive-before-host", get(b"Connection: Keep-Alive", b"Host: h")),
    ("keep-alive-twice", get(b"connection:keep-alive", b"Host: h", b"CONNECTION: KEEP-ALIVE ")),
    ("keep-alive-close", get(b"Host: h", b"Connection: keep-alive, close")),
    ("keep-alive-and-close", get(b"Host: h", b"Connection: keep-alive", b"Connection: close")),
    ("keep-alive-x", get(b"Host: h", b"Connection: keep-alive-x")),
    ("keep-alive-upgrade", get(b"Host: h", b"Connection: keep-alive", b"Upgrade: websocket")),
    ("keep-alive-http10", get(b"Host: h", b"Connection: keep-alive", line=b"GET / HTTP/1.0")),
    ("post-no-body", get(b"Host: h", line=b"POST / HTTP/1.1")),
    ("post-length", get(b"Host: h", b"Content-Length: 2", line=b"POST / HTTP/1.1") + b"ab"),
    ("put-no-host", get(b"X: 1", line=b"PUT / HTTP/1.1")),
    ("get-length", get(b"Host: h", b"Content-Length: 1") + b"a"),
    ("special-before-host", get(b"Connection: keep-alive", b"Host: h")),
    ("special-upper", get(b"Host: h", b"CONTENT-LENGTH: 0")),
    ("upgrade", get(b"Host: h", b"Upgrade: websocket", b"Connection: upgrade")),
    ("expect", get(b"Host: h", b"Expect: 100-continue")),
    ("te", get(b"Host: h", b"Transfer-Encoding: chunked") + b"0\r\n\r\n"),
    ("pipelined", get(b"Host: a") + get(b"Host: b", b"X: 1") + get(b"Host: c")),
    (
        "pipelined-then-post",
        get(b"Host: a") + b"POST / HTTP/1.1\r\nHost: b\r\nContent-Length: 3\r\n\r\nabc",
    ),
    ("pipelined-then-bad", get(b"Host: a") + get(b"Host: b", b"Host: c")),
]


@pytest.mark.parametrize("data", [pytest.param(data, id=name) for name, data in PLAIN_BORDER])
@pytest.mark.parametrize("answer_at", ["end", "head"])
def test_plain_head_border(data: bytes, answer_at: str) -> None:
    for pieces in chunkings(data):
        run_both(pieces, answer_at=answer_at)
        run_both(pieces, answer_at=answer_at, eof=False)
        run_both(pieces, answer_at=answer_at, limits=DEFAULT)


def test_plain_head_fields_in_order_with_names_lowered() -> None:
    core = FastH1Core()
    events = core.receive_data(get(b"Accept: */*", b"HOST: h", b"X-B: Two  Words "))
    (request,) = events  # no body: complete with its head, no StreamEnded
    assert isinstance(request, RequestReceived)
    assert request.headers == [(b"accept", b"*/*"), (b"host", b"h"), (b"x-b", b"Two  Words")]
    assert (request.method, request.target, request.has_body) == (b"GET", b"/p?q=1", False)


@pytest.mark.parametrize(
    ("fields", "expected"),
    [
        ((b"Host: h", b"Connection: close"), [(b"host", b"h"), (b"connection", b"close")]),
        ((b"Host: h", b"connection: \tClose  "), [(b"host", b"h"), (b"connection", b"Close")]),
        (
            (b"Host: h", b"Connection: close", b"X-A: 1"),
            [(b"host", b"h"), (b"connection", b"close"), (b"x-a", b"1")],
        ),
    ],
)
def test_close_after_host_fields(fields: tuple[bytes, ...], expected: list[object]) -> None:
    core = FastH1Core()
    (request,) = core.receive_data(get(*fields))
    assert isinstance(request, RequestReceived)
    assert request.headers == expected


def test_a_head_that_trickles_in_is_parsed_once_complete() -> None:
    core = FastH1Core()
    data = get(b"Host: h", b"X: 1")
    for byte in data[:-1]:
        assert core.receive_data(bytes([byte])) == []
    (request,) = core.receive_data(data[-1:])
    assert isinstance(request, RequestReceived)
    assert request.headers == [(b"host", b"h"), (b"x", b"1")]


# -- the memo of validated response header pairs ---------------------------------------


def test_memo_hit_returns_the_same_pairs() -> None:
    headers = [(b"content-type", b"text/x-memo"), (b"content-length", b"7")]
    first = validate_response_headers(headers)
    second = validate_response_headers(
        [(b"content-type", b"text/x-memo"), (b"content-length", b"7")]
    )
    assert first == second == headers
    assert all(type(n) is bytes and type(v) is bytes for n, v in second)


def test_memo_keeps_exact_bytes_only() -> None:
    validate_response_headers([(b"x-memo-ba", bytearray(b"v"))])
    assert (b"x-memo-ba", b"v") not in _VALID_PAIRS


@pytest.mark.parametrize(
    "headers",
    [
        [(b"x-memo", b"ok"), (b"x-memo", b"bad\r\nx: y")],
        [(b"x-memo", b"ok"), ("x-memo", "ok")],
        [(b"x-memo", b"ok"), (b"transfer-encoding", b"gzip")],
        [(b"x-memo", b"ok"), (b"content-length", b"1"), (b"transfer-encoding", b"chunked")],
        [(b"x-memo", b"ok"), [b"x-memo", b"ok", b"extra"]],
    ],
)
def test_memo_never_lets_a_bad_pair_through(headers: list[object]) -> None:
    validate_response_headers([(b"x-memo", b"ok")])  # memoized
    with pytest.raises(ASGIContractError):
        validate_response_headers(headers)


def test_transfer_encoding_is_never_memoized() -> None:
    assert validate_response_headers([(b"transfer-encoding", b"chunked")]) == [
        (b"transfer-encoding", b"chunked")
    ]
    assert not any(name == b"transfer-encoding" for name, _ in _VALID_PAIRS)
