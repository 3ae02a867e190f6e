"""Accept-Encoding negotiation (RFC 9110 §12.5.3) and the skip rules: pure functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pounce.layers.compression.negotiation import choose, parse
from pounce.layers.compression.rules import encoded_headers, skip_reason, vary_headers, weak

OFFERED = ("br", "zstd", "gzip")


@pytest.mark.parametrize(
    ("field", "expected"),
    [
        (None, None),  # no field: no compression
        ("", None),  # an empty field: identity only
        ("gzip", "gzip"),
        ("gzip, br", "br"),  # equal q: the server's order
        ("gzip, zstd", "zstd"),
        ("br;q=0.5, gzip", "gzip"),
        ("br;q=0, gzip;q=0.1", "gzip"),
        ("*", "br"),
        ("*;q=0.5, br;q=0", "zstd"),
        ("x-gzip", "gzip"),
        ("GZIP;Q=1", "gzip"),
        ("gzip;q=0.5, identity", None),  # the client prefers the raw bytes
        ("identity;q=0", None),  # nothing acceptable: sent unencoded anyway
        ("*;q=0", None),
        ("deflate, compress", None),  # none offered
        ("br;q=2, gzip", "gzip"),  # an out-of-range q drops its member
        ("br;q=abc, gzip;q=0.3", "gzip"),
        ("gzip;q=0.8, br;q=0.9", "br"),
    ],
)
def test_choose(field: str | None, expected: str | None) -> None:
    assert choose(field, OFFERED) == expected


def test_server_preference_is_configurable() -> None:
    assert choose("br, gzip", ("gzip", "br")) == "gzip"


def test_parse() -> None:
    assert parse("br;q=1.0, gzip; q=0.5 ,*;q=0, ,;q=1") == {"br": 1.0, "gzip": 0.5, "*": 0.0}


codings = st.sampled_from(["br", "zstd", "gzip", "x-gzip", "identity", "*", "deflate", "Br"])
members = st.tuples(codings, st.one_of(st.none(), st.integers(0, 1000)))


def _field(items: list[tuple[str, int | None]]) -> str:
    return ", ".join(c if q is None else f"{c};q={q / 1000:.3f}" for c, q in items)


@given(st.text())
def test_any_text_parses_and_chooses_an_offered_coding_or_none(text: str) -> None:
    assert choose(text, OFFERED) in (*OFFERED, None)


@given(st.lists(members, max_size=6), st.permutations(OFFERED))
def test_the_chosen_coding_has_the_highest_qvalue_and_wins_ties_by_order(
    items: list[tuple[str, int | None]], offered: list[str]
) -> None:
    accepted = parse(_field(items))
    star = accepted.get("*", 0.0)

    def q(coding: str) -> float:
        return accepted.get(coding, star)

    chosen = choose(_field(items), offered)
    if chosen is None:
        identity = accepted.get("identity", 0.0)
        assert all(q(c) == 0 for c in offered) or identity > max(q(c) for c in offered)
        return
    assert q(chosen) > 0
    assert all(q(c) <= q(chosen) for c in offered)
    assert all(q(c) < q(chosen) for c in offered[: offered.index(chosen)])


@given(st.permutations(OFFERED))
def test_an_excluded_coding_is_never_chosen(offered: list[str]) -> None:
    for coding in offered:
        assert choose(f"*, {coding};q=0", offered) != coding


H = [(b"content-type", b"text/html; charset=utf-8")]


@pytest.mark.parametrize(
    ("status", "headers", "reason"),
    [
        (200, H, None),
        (204, H, "status 204"),
        (304, H, "status 304"),
        (206, H, "status 206"),
        (200, [*H, (b"content-range", b"bytes 0-9/100")], "a range"),
        (200, [*H, (b"content-encoding", b"br")], "already encoded"),
        (200, [*H, (b"content-encoding", b"identity")], None),
        (200, [*H, (b"cache-control", b"public, No-Transform")], "no-transform"),
        (200, [(b"content-type", b"image/png")], "incompressible type"),
        (200, [(b"content-type", b"image/svg+xml")], None),
        (200, [(b"content-type", b"video/mp4")], "incompressible type"),
        (200, [(b"content-type", b"audio/ogg")], "incompressible type"),
        (200, [(b"content-type", b"application/zip")], "incompressible type"),
        (200, [(b"content-type", b"font/woff2")], "incompressible type"),
        (200, [(b"content-type", b"text/event-stream")], "event stream"),
        (200, [*H, (b"content-length", b"499")], "too small"),
        (200, [*H, (b"content-length", b"500")], None),
    ],
)
def test_skip_rules(status: int, headers: list[tuple[bytes, bytes]], reason: str | None) -> None:
    assert skip_reason(status, headers, minimum_size=500, event_stream=False) == reason


def test_event_stream_when_asked() -> None:
    sse = [(b"content-type", b"text/event-stream")]
    assert skip_reason(200, sse, minimum_size=500, event_stream=True) is None


def test_vary_is_merged_once() -> None:
    assert vary_headers([(b"Vary", b"Cookie"), (b"vary", b"Origin")]) == [
        (b"vary", b"Cookie, Origin, Accept-Encoding")
    ]
    same = [(b"vary", b"accept-encoding")]
    assert vary_headers(same) == same
    assert vary_headers([(b"vary", b"*")]) == [(b"vary", b"*")]


def test_encoded_headers() -> None:
    headers = [(b"content-length", b"9000"), (b"etag", b'"v1"'), *H]
    assert encoded_headers(headers, "br", 100) == [
        (b"etag", b'W/"v1"'),
        *H,
        (b"vary", b"Accept-Encoding"),
        (b"content-encoding", b"br"),
        (b"content-length", b"100"),
    ]
    assert weak(b'W/"v1"') == b'W/"v1"'
