"""The refusal errors carry the answer the backpressure layers give: status and Retry-After."""

from __future__ import annotations

import pytest

from pounce import OverloadedError, PounceError, RateLimitedError


def test_overloaded_is_a_503_with_optional_retry_after() -> None:
    error = OverloadedError("queue full", retry_after=2.5)
    assert isinstance(error, PounceError) and error.code == "overloaded"
    assert error.status == 503
    assert error.retry_after_header() == (b"retry-after", b"3")  # whole seconds, rounded up
    assert OverloadedError("full").retry_after_header() is None


def test_rate_limited_is_a_429() -> None:
    error = RateLimitedError("10 requests per second", retry_after=1)
    assert (error.status, error.code) == (429, "rate_limited")
    assert error.retry_after_header() == (b"retry-after", b"1")
    assert RateLimitedError("x", retry_after=0).retry_after_header() == (b"retry-after", b"0")


@pytest.mark.parametrize("bad", [-1, float("nan")])
def test_retry_after_must_be_a_non_negative_number(bad: float) -> None:
    with pytest.raises(ValueError, match="retry_after"):
        OverloadedError("x", retry_after=bad)
