"""Containment of request paths, as pure functions (the socket tests are in test_static.py)."""

from __future__ import annotations

import pytest

from pounce.layers.static.paths import Refused, Wanted, under_prefix, wanted


@pytest.mark.parametrize(
    ("raw", "prefix", "rest"),
    [
        (b"/assets/app.js", b"/assets", b"app.js"),
        (b"/assets", b"/assets", b""),
        (b"/assets/", b"/assets", b""),
        (b"/assetsx/app.js", b"/assets", None),
        (b"/app.js", b"/", b"app.js"),
        (b"/", b"/", b""),
    ],
)
def test_under_prefix(raw: bytes, prefix: bytes, rest: bytes | None) -> None:
    assert under_prefix(raw, prefix) == rest


def test_segments_are_decoded_one_by_one() -> None:
    assert wanted(b"css/a%20b.css", hidden=False) == Wanted(("css", "a b.css"), False)
    assert wanted(b"docs/", hidden=False) == Wanted(("docs",), True)
    assert wanted(b"", hidden=False) == Wanted((), True)


@pytest.mark.parametrize(
    "rest",
    [
        b"../etc/passwd",
        b"a/../../etc/passwd",
        b"%2e%2e/etc/passwd",
        b"%2E%2E/etc/passwd",
        b".%2e/x",
        b"..%2fetc%2fpasswd",
        b"a%2f..%2f..%2fx",
        b"a%5c..%5cx",
        b"a\\..\\x",
        b"x%00.html",
        b"C:/Windows/win.ini",
        b"c%3a%5cboot.ini",
        b"a//b",
        b"./x",
        b"%ff",
    ],
)
def test_escapes_are_refused(rest: bytes) -> None:
    assert isinstance(wanted(rest, hidden=True), Refused)


def test_hidden_segments_are_a_miss_unless_asked() -> None:
    assert wanted(b".env", hidden=False) is None
    assert wanted(b".git/config", hidden=False) is None
    assert wanted(b".env", hidden=True) == Wanted((".env",), False)
