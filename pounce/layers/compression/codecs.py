"""Content codings: what an encoder and a bounded decoder are, gzip, and where the others live.

An `Encoder` holds one response's compression state (made per request,
never shared): `flush` compresses a chunk and flushes it, so everything sent
so far decodes on its own (a server-sent event or a streamed HTML part
reaches the reader at once); `finish` compresses the last chunk and ends the
stream. A `Decoder` inflates one request body in pieces of at most `PIECE`
bytes, so a caller that counts them can stop a decompression bomb after one
piece past its bound, never holding more.

gzip is the standard library's zlib. brotli (``pounce[br]``) and zstd (the
standard library's ``compression.zstd`` on Python 3.14, else ``pounce[zstd]``)
are each imported in one module of their own (`brotli_codec`,
`zstd_codec`); `codec` imports them on demand and turns a missing package
into `MissingCodec` with the install line.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Protocol

PIECE = 64 * 1024  # bytes: the most a decoder inflates at a time


class Encoder(Protocol):
    def flush(self, data: bytes) -> bytes:
        """`data` compressed and flushed: the output so far decodes without what follows."""

    def finish(self, data: bytes) -> bytes:
        """`data` compressed, and the end of the stream."""


class Decoder(Protocol):
    def feed(self, data: bytes) -> Iterator[bytes]:
        """`data` inflated, in pieces of at most about `PIECE` bytes; ValueError if corrupt."""


@dataclass(frozen=True, slots=True)
class Codec:
    """One content coding (RFC 9110 §8.4.1): its token, levels, encoder and decoder."""

    name: str
    encoder: Callable[[int], Encoder]  # level → a fresh encoder
    decoder: Callable[[], Decoder] | None  # None: request bodies in it are not decoded


class MissingCodec(Exception):
    """A coding whose package is not installed; `hint` is the install line."""

    def __init__(self, name: str, hint: str) -> None:
        super().__init__(f"{name} needs a package that is not installed")
        self.name = name
        self.hint = hint


# -- gzip and deflate: zlib ------------------------------------------------------------------------


class ZlibEncoder:
    """gzip (wbits 31): Z_SYNC_FLUSH after each chunk, so each chunk decodes at once."""

    __slots__ = ("_z",)

    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, 31)

    def flush(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self, data: bytes) -> bytes:
        return self._z.compress(data) + self._z.flush(zlib.Z_FINISH)


class ZlibDecoder:
    """gzip (wbits 47: gzip or zlib header) or deflate (zlib-wrapped, RFC 9110 §8.4.1.2)."""

    __slots__ = ("_z",)

    def __init__(self, wbits: int = 47) -> None:
        self._z = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> Iterator[bytes]:
        z = self._z
        while not z.eof:
            try:
                out = z.decompress(data, PIECE)  # max_length: the bomb stays in its input
            except zlib.error as exc:
                raise ValueError(f"corrupt body: {exc}") from None
            data = z.unconsumed_tail
            if out:
                yield out
            if not data and len(out) < PIECE:
                return


GZIP = Codec("gzip", ZlibEncoder, ZlibDecoder)
DEFLATE_DECODER = Codec("deflate", ZlibEncoder, lambda: ZlibDecoder(15))  # requests only

_MODULES = {  # coding → (its module, the install line when its package is missing)
    "br": ("brotli_codec", "pip install pounce[br]"),
    "zstd": ("zstd_codec", "pip install pounce[zstd] (or use Python 3.14)"),
}


def codec(name: str) -> Codec:
    """The codec named `name` (``br``, ``zstd``, ``gzip``); `MissingCodec` if not installed."""
    if name == "gzip":
        return GZIP
    module, hint = _MODULES[name]
    try:
        found = importlib.import_module(f"{__package__}.{module}")
    except ImportError:
        raise MissingCodec(name, hint) from None
    result: Codec = found.CODEC
    return result


def installed(names: tuple[str, ...]) -> tuple[Codec, ...]:
    """The codecs of `names` that are installed, in that order."""
    found = []
    for name in names:
        try:
            found.append(codec(name))
        except MissingCodec:
            continue
    return tuple(found)
