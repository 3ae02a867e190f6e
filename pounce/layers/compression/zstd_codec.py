"""zstd (RFC 8878): the standard library's ``compression.zstd`` (Python 3.14), else the
``zstandard`` package (``pounce[zstd]``); the one module that imports either.

Each chunk ends with a flushed block, so it decodes at once. Request bodies
are inflated only with the standard library's decoder, whose ``max_length``
bounds each piece; under ``zstandard`` a zstd request body is refused (415).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from pounce.layers.compression.codecs import PIECE, Codec

zstd: Any
try:
    from compression import zstd  # type: ignore[import-not-found, no-redef]  # Python 3.14
except ImportError:
    import zstandard  # type: ignore[import-not-found, unused-ignore]  # pounce[zstd]; typed

    zstd = None


class StdlibEncoder:
    __slots__ = ("_c",)

    def __init__(self, level: int) -> None:
        self._c = zstd.ZstdCompressor(level=level)

    def flush(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data, zstd.ZstdCompressor.FLUSH_BLOCK))

    def finish(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data, zstd.ZstdCompressor.FLUSH_FRAME))


class StdlibDecoder:
    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d = zstd.ZstdDecompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        try:
            while not d.eof:
                out = d.decompress(data, PIECE)
                data = b""
                if out:
                    yield bytes(out)
                if d.needs_input:
                    return
        except zstd.ZstdError as exc:
            raise ValueError(f"corrupt body: {exc}") from None


class ZstandardEncoder:
    __slots__ = ("_c",)

    def __init__(self, level: int) -> None:
        self._c = zstandard.ZstdCompressor(level=level).compressobj()

    def flush(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data) + self._c.flush(zstandard.COMPRESSOBJ_FLUSH_BLOCK))

    def finish(self, data: bytes) -> bytes:
        return bytes(self._c.compress(data) + self._c.flush())


if zstd is not None:
    CODEC = Codec("zstd", StdlibEncoder, StdlibDecoder)
else:
    CODEC = Codec("zstd", ZstandardEncoder, None)
