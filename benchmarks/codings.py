"""Incremental decoders for the codings the compression benchmarks ask for: what a
client holds when bytes arrive, so a coding that keeps bytes back shows it.

gzip by zlib, br by the ``brotli`` package (``pounce[br]``), zstd by the standard
library's ``compression.zstd`` (Python 3.14) or the ``zstandard`` package
(``pounce[zstd]``); ``identity`` passes bytes through.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from typing import Any

CODINGS = ("br", "zstd", "gzip")


def decoder(coding: str) -> Callable[[bytes], bytes]:
    """A function that takes the next bytes on the wire and returns what they decode to."""
    if coding == "identity":
        return bytes
    if coding == "gzip":
        inflater = zlib.decompressobj(wbits=31)
        return inflater.decompress
    if coding == "br":
        import brotli

        state: Any = brotli.Decompressor()
        return lambda data: bytes(state.process(data))
    if coding == "zstd":
        try:
            from compression import zstd  # type: ignore[import-not-found]

            stdlib: Any = zstd.ZstdDecompressor()
            return lambda data: bytes(stdlib.decompress(data))
        except ImportError:
            import zstandard

            package: Any = zstandard.ZstdDecompressor().decompressobj()
            return lambda data: bytes(package.decompress(data))
    raise ValueError(f"unknown coding {coding!r}: one of identity, {', '.join(CODINGS)}")


def decode(coding: str, raw: bytes) -> bytes:
    """A whole body in `coding`, decoded."""
    return decoder(coding)(raw)
