"""brotli (RFC 7932), from the ``brotli`` package (``pounce[br]``): the one module that imports it.

Request bodies are inflated with ``output_buffer_limit`` (brotli 1.2), a
piece at a time, like zlib's ``max_length``; an older brotli decodes no request bodies.
"""

from __future__ import annotations

from collections.abc import Iterator

import brotli  # type: ignore[import-untyped]  # no type information published

from pounce.layers.compression.codecs import PIECE, Codec


class BrotliEncoder:
    __slots__ = ("_c",)

    def __init__(self, level: int) -> None:
        self._c = brotli.Compressor(quality=level)

    def flush(self, data: bytes) -> bytes:
        return bytes(self._c.process(data) + self._c.flush())

    def finish(self, data: bytes) -> bytes:
        return bytes(self._c.process(data) + self._c.finish())


class BrotliDecoder:
    __slots__ = ("_d",)

    def __init__(self) -> None:
        self._d = brotli.Decompressor()

    def feed(self, data: bytes) -> Iterator[bytes]:
        d = self._d
        try:
            out = d.process(data, output_buffer_limit=PIECE)
            while True:
                if out:
                    yield bytes(out)
                if d.is_finished() or d.can_accept_more_data():
                    return
                out = d.process(b"", output_buffer_limit=PIECE)
        except brotli.error as exc:
            raise ValueError(f"corrupt body: {exc}") from None


# brotli before 1.2 cannot bound a piece's output: its request bodies are then refused (415).
BOUNDED = hasattr(brotli.Decompressor, "can_accept_more_data")
CODEC = Codec("br", BrotliEncoder, BrotliDecoder if BOUNDED else None)
