"""Bad options fail at build: a conformance check for a layer's or builder call's options.

A value that cannot work must raise `pounce.BuildError` when the layer is
constructed or the builder method is called — before a port is bound —
never a bare ``ValueError``, and never later while serving.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import TypeVar

from pounce.errors import BuildError
from pounce.testing._kit import fail

V = TypeVar("V")


def check_bad_options(
    build: Callable[[V], object],
    bad_values: Iterable[V],
    *,
    good_values: Iterable[V] = (),
    match: str | None = None,
) -> None:
    """``build(value)`` raises `BuildError` for each of `bad_values`; AssertionError otherwise.

    `good_values` must build without error (so the check is not passing
    because `build` always fails); `match`: a regular expression every
    error message must contain (the name of the option, say).
    """
    subject = getattr(build, "__qualname__", repr(build))
    for value in good_values:
        try:
            build(value)
        except Exception as exc:
            fail(subject, f"raised {exc!r} for the good value {value!r}")
    for value in bad_values:
        try:
            build(value)
        except BuildError as exc:
            if match is not None and not re.search(match, str(exc)):
                fail(subject, f"BuildError for {value!r} does not mention {match!r}: {exc}")
        except Exception as exc:
            fail(
                subject,
                f"raised {type(exc).__name__} ({exc}) for {value!r}; a bad option must raise "
                "pounce.BuildError (with a hint) so it fails at build",
            )
        else:
            fail(subject, f"accepted the bad value {value!r}; expected pounce.BuildError")
