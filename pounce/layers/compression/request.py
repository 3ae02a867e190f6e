"""Request bodies with ``Content-Encoding``, inflated under a hard bound (asked for only).

`DecodingReceive` wraps one request's `receive`: each ``http.request``
message is inflated by the coding's `Decoder` a piece (at most
`codecs.PIECE` bytes) at a time and handed on as it comes, so what is held
is one piece, never the body. Past `limit` decompressed bytes it raises
`BodyTooLarge` (the layer answers 413 when no response has started); a
corrupt body raises `BodyCorrupt` (400). A 1 MiB body that would inflate to
1 GiB costs one piece past the limit of work, and nothing more — the same
care as the WebSocket inflater's ``max_size``.
"""

from __future__ import annotations

from collections.abc import Iterator

from pounce.asgi.types import Message, Receive
from pounce.errors import LimitExceededError, RemoteProtocolError
from pounce.layers.compression.codecs import Decoder


class BodyTooLarge(LimitExceededError):
    """The decompressed request body passed the layer's bound."""

    def __init__(self, limit: int) -> None:
        super().__init__(f"the decompressed request body is over {limit} bytes", status=413)


class BodyCorrupt(RemoteProtocolError):
    """The request body does not decode in its Content-Encoding."""


class DecodingReceive:
    """The `receive` of one request whose body is decoded; see the module docstring."""

    __slots__ = ("_decoder", "_ended", "_limit", "_pieces", "_receive", "error", "total")

    def __init__(self, receive: Receive, decoder: Decoder, limit: int) -> None:
        self._receive = receive
        self._decoder = decoder
        self._limit = limit  # bytes of decompressed body
        self._pieces: Iterator[bytes] | None = None
        self._ended = False
        self.total = 0
        self.error: Exception | None = None  # what this receive raised, for the layer

    async def __call__(self) -> Message:
        while True:
            if self._pieces is not None:
                piece = self._next(self._pieces)
                if piece is not None:
                    return {"type": "http.request", "body": piece, "more_body": True}
                self._pieces = None
                if self._ended:
                    return {"type": "http.request", "body": b"", "more_body": False}
            if self._ended:
                return await self._receive()  # after the body: the disconnect
            message = await self._receive()
            if message["type"] != "http.request":
                return message
            self._ended = not message.get("more_body", False)
            self._pieces = self._decoder.feed(message.get("body", b""))

    def _next(self, pieces: Iterator[bytes]) -> bytes | None:
        try:
            piece = next(pieces, None)
        except ValueError as exc:
            self.error = BodyCorrupt(f"request body: {exc}", status=400)
            raise self.error from None
        if piece is not None:
            self.total += len(piece)
            if self.total > self._limit:
                self._pieces = None
                self.error = BodyTooLarge(self._limit)
                raise self.error
        return piece
