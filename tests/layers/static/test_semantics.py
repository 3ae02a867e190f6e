"""Validators, conditional requests, ranges, content types and Accept-Encoding, pure."""

from __future__ import annotations

import pytest

from pounce.layers.static.semantics import (
    Unsatisfiable,
    accepted_coding,
    byte_ranges,
    cache_control,
    content_type,
    etag,
    http_date,
    not_modified,
    precondition_failed,
    range_applies,
)

TAG = etag(1_700_000_000_000_000_000, 1000)
MTIME = 1_700_000_000.0


def test_not_modified() -> None:
    assert not_modified(TAG, None, TAG, MTIME)
    assert not_modified(f'W/{TAG}, "other"', None, TAG, MTIME)
    assert not_modified("*", None, TAG, MTIME)
    assert not not_modified('"other"', http_date(MTIME), TAG, MTIME)  # If-None-Match decides
    assert not_modified(None, http_date(MTIME), TAG, MTIME)
    assert not not_modified(None, http_date(MTIME - 10), TAG, MTIME)
    assert not not_modified(None, "yesterday", TAG, MTIME)
    assert not not_modified(None, None, TAG, MTIME)


def test_precondition_failed() -> None:
    """RFC 9110 §13.1.1 (strong comparison), §13.1.4, and §13.2.2's order between them."""
    assert not precondition_failed(TAG, None, TAG, MTIME)
    assert not precondition_failed(f'"other", {TAG}', None, TAG, MTIME)
    assert not precondition_failed("*", None, TAG, MTIME)
    assert precondition_failed(f"W/{TAG}", None, TAG, MTIME)  # a weak tag never matches
    assert precondition_failed('"other"', None, TAG, MTIME)
    # If-Match decides when present: If-Unmodified-Since is then ignored.
    assert not precondition_failed(TAG, http_date(MTIME - 10), TAG, MTIME)
    assert precondition_failed('"other"', http_date(MTIME + 10), TAG, MTIME)
    assert not precondition_failed(None, http_date(MTIME), TAG, MTIME)
    assert not precondition_failed(None, http_date(MTIME + 10), TAG, MTIME)
    assert precondition_failed(None, http_date(MTIME - 10), TAG, MTIME)
    assert not precondition_failed(None, "yesterday", TAG, MTIME)  # not a date: ignored
    assert not precondition_failed(None, None, TAG, MTIME)


def test_if_range() -> None:
    assert range_applies(None, TAG, MTIME)
    assert range_applies(TAG, TAG, MTIME)
    assert not range_applies(f"W/{TAG}", TAG, MTIME)  # weak never matches (§13.1.5)
    assert range_applies(http_date(MTIME), TAG, MTIME)
    assert not range_applies(http_date(MTIME - 1), TAG, MTIME)


@pytest.mark.parametrize(
    ("header", "ranges"),
    [
        ("bytes=0-9", ((0, 9),)),
        ("bytes=990-", ((990, 999),)),
        ("bytes=-10", ((990, 999),)),
        ("bytes=-5000", ((0, 999),)),
        ("bytes=995-2000", ((995, 999),)),
        ("bytes=0-0, 5-9", ((0, 0), (5, 9))),
        ("bytes=0-9, 5000-6000", ((0, 9),)),  # the unsatisfiable one is dropped
        (None, None),
        ("items=0-9", None),
        ("bytes=9-0", None),
        ("bytes=a-b", None),
        ("bytes=", None),
        ("bytes=-", None),
        (",".join(["bytes=0-0"] + ["1-1"] * 16), None),  # 17 > max_ranges: ignored
    ],
)
def test_byte_ranges(header: str | None, ranges: object) -> None:
    assert byte_ranges(header, 1000, 16) == ranges


@pytest.mark.parametrize("header", ["bytes=1000-", "bytes=5000-6000", "bytes=-0"])
def test_unsatisfiable(header: str) -> None:
    assert byte_ranges(header, 1000, 16) == Unsatisfiable()


def test_content_type() -> None:
    assert content_type("index.html") == "text/html; charset=utf-8"
    assert content_type("app.js") in (
        "text/javascript; charset=utf-8",
        "application/javascript; charset=utf-8",
    )
    assert content_type("logo.png") == "image/png"
    assert content_type("blob.unknownext") == "application/octet-stream"


def test_cache_control() -> None:
    assert cache_control("app.js", None, False) is None
    assert cache_control("app.js", 60, True) == "public, max-age=60"
    hashed = "public, max-age=31536000, immutable"
    assert cache_control("app.3f9a1c2e.js", 60, True) == hashed
    assert cache_control("chunk-5XK2LQ7A.css", None, True) == hashed
    assert cache_control("app.3f9a1c2e.js", 60, False) == "public, max-age=60"
    assert cache_control("jquery-plugin.js", None, True) is None


@pytest.mark.parametrize(
    ("header", "coding"),
    [
        ("gzip, br", "br"),
        ("gzip", "gzip"),
        ("br;q=0.5, gzip;q=0.8", "gzip"),
        ("br;q=0, *", "zstd"),
        ("*;q=0", None),
        ("identity", None),
        ("", None),
        (None, None),
        ("BR", "br"),
        ("br;q=nonsense, gzip", "gzip"),
    ],
)
def test_accepted_coding(header: str | None, coding: str | None) -> None:
    assert accepted_coding(header, ("br", "zstd", "gzip")) == coding
