"""The static layer's options, defined once (`pounce.options`), and the CLI's mounts."""

from __future__ import annotations

from dataclasses import dataclass

from pounce.options import option, whole

KiB = 1024


def _mount(text: object) -> str:
    """``PREFIX=DIR`` with PREFIX a path starting with ``/`` and DIR not empty."""
    if not isinstance(text, str):
        raise ValueError('must be "PREFIX=DIR", e.g. /assets=./public')
    prefix, equals, directory = text.partition("=")
    if not equals or not prefix.startswith("/") or not directory:
        raise ValueError('must be "PREFIX=DIR", e.g. /assets=./public')
    return text


def _mounts(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [item for item in value.split(",") if item.strip()]
    if not isinstance(value, list | tuple):
        raise ValueError('must be a list of "PREFIX=DIR", e.g. ["/assets=./public"]')
    return tuple(_mount(item.strip() if isinstance(item, str) else item) for item in value)


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticOptions:
    """`.static(prefix, directory, **options)`: how every mount serves its files."""

    builder_call = ".static"
    options_group = "static"

    follow_symlinks: bool = option(
        False,
        name="static_follow_symlinks",
        help="follow symlinks below the root, and then only to files inside it",
    )
    hidden: bool = option(
        False, name="static_hidden", help="serve dot-files (.env, .git/...); off: they are a miss"
    )
    index: str = option(
        "index.html",
        name="static_index",
        help='file served for a directory request ("": none); there are no listings',
    )
    max_age: int | None = option(
        None,
        unit="s",
        name="static_max_age",
        check=whole(0),
        help="Cache-Control: public, max-age=N on every file (none: no Cache-Control)",
    )
    immutable: bool = option(
        False,
        name="static_immutable",
        help="fingerprinted names (app.3f9a1c2e.js) get max-age of a year and immutable",
    )
    precompressed: bool = option(
        True,
        name="static_precompressed",
        help="serve a .br, .zst or .gz sibling when Accept-Encoding allows it",
    )
    max_ranges: int = option(
        16,
        name="static_max_ranges",
        check=whole(1, 100),
        help="more ranges in one request are ignored: the whole file (as nginx max_ranges)",
    )
    chunk_size: int = option(
        64 * KiB,
        unit="bytes",
        name="static_chunk_size",
        check=whole(KiB, 16 * 1024 * KiB),
        shown="64 KiB",
        help="bytes read at a time; a file this size or smaller is read with its lookup, "
        "a larger one goes by sendfile where it can and never sits whole in memory",
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticMounts:
    """The CLI's static mounts: the standard preset makes one `.static()` call for each."""

    options_group = "static"

    static: tuple[str, ...] = option(
        (),
        parse=_mount,
        convert=_mounts,
        repeat=True,
        shown="none",
        help='serve DIR at PREFIX ("/assets=./public") in front of the app; repeatable',
    )
    static_dir: str | None = option(
        None,
        help="serve this directory at / (with no APP: only it, 404 for the rest)",
    )
