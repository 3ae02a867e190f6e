"""One response through the compression layer: a `send` that decides, then encodes or passes.

The decision needs the response's fields and, when it has no
``Content-Length``, its first body message (one message with no more to
come is a body of known length). So `CompressingSend` holds
``http.response.start`` until the next message — nothing is held longer,
and a streamed response's first chunk goes out with its head. Then:

* a HEAD: the fields a GET would get (``Content-Encoding``, ``Vary``, a
  weak ``ETag``, no ``Content-Length``), the empty body passing as it is;
* skipped (`rules.skip_reason`, a body below the minimum, a client that
  accepts no offered coding): the messages pass unchanged — with
  ``Vary: Accept-Encoding`` added when only the client's choice kept the
  body unencoded, so a cache does not hand this copy to a client that
  would have got a compressed one;
* one message: encoded whole, ``Content-Length`` recomputed — or sent as
  it is when encoding did not make it smaller;
* streamed: each chunk encoded and flushed (`Encoder.flush`), so it decodes
  on arrival; ``Content-Length`` dropped; the last message ends the stream.

A file body (``http.response.pathsend``, ``http.response.zerocopysend``,
pounce/asgi/files.py) that is to be encoded is read off the event loop in
chunks and streamed like any other; one the rules skip (already encoded — a
precompressed sibling —, an image, a range, below the minimum size) passes
untouched, so the server can still copy it with ``sendfile``.
"""

from __future__ import annotations

from pounce.asgi import files
from pounce.asgi.types import Message, Send
from pounce.layers.compression.codecs import Codec, Encoder
from pounce.layers.compression.rules import Headers, encoded_headers, skip_reason, vary_headers


class CompressingSend:
    """The `send` of one response; state lives here, per request (STYLE #4)."""

    __slots__ = (
        "_codec",
        "_encoder",
        "_event_stream",
        "_head",
        "_level",
        "_min",
        "_send",
        "_start",
    )

    def __init__(
        self,
        send: Send,
        codec: Codec | None,
        *,
        level: int,
        minimum_size: int,
        event_stream: bool,
        head: bool = False,
    ) -> None:
        """`head`: the request is a HEAD; its response gets the fields a GET's would."""
        self._send = send
        self._head = head
        self._codec = codec  # None: the client accepts none of the offered codings
        self._level = level
        self._min = minimum_size
        self._event_stream = event_stream
        self._start: Message | None = None  # held until the next message
        self._encoder: Encoder | None = None

    async def __call__(self, message: Message) -> None:
        if self._encoder is not None:
            await self._encoded(self._encoder, message)
        elif self._start is not None:
            start, self._start = self._start, None
            await self._decide(start, message)
        elif message["type"] == "http.response.start":
            await self._begin(message)
        else:
            await self._send(message)

    async def _begin(self, start: Message) -> None:
        headers: Headers = list(start.get("headers", ()))
        reason = skip_reason(
            start["status"], headers, minimum_size=self._min, event_stream=self._event_stream
        )
        if reason is not None:
            await self._send(start)
        elif self._codec is None:
            await self._send({**start, "headers": vary_headers(headers)})
        elif self._head:
            # RFC 9110 §9.3.2: the fields a GET would get. Its encoded length is
            # known only by encoding, so there is no Content-Length (as nginx).
            await self._send({**start, "headers": encoded_headers(headers, self._codec.name, None)})
        else:
            self._start = start

    async def _decide(self, start: Message, message: Message) -> None:
        assert self._codec is not None
        headers: Headers = list(start.get("headers", ()))
        encoder = self._codec.encoder(self._level)
        if message["type"] in files.FILE_MESSAGES:
            self._encoder = encoder
            await self._send({**start, "headers": encoded_headers(headers, self._codec.name, None)})
            await self._encoded(encoder, message)
            return
        if message["type"] != "http.response.body":
            await self._send(start)
            await self._send(message)
            return
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            self._encoder = encoder
            await self._send({**start, "headers": encoded_headers(headers, self._codec.name, None)})
            await self._encoded(encoder, message)
            return
        await self._single(start, headers, body, encoder)

    async def _single(self, start: Message, headers: Headers, body: bytes, enc: Encoder) -> None:
        """A body of one message: encoded whole, or sent as it is if that is not smaller."""
        if len(body) < self._min:
            await self._send(start)
            await self._send({"type": "http.response.body", "body": body})
            return
        encoded = enc.finish(body)
        if len(encoded) >= len(body):
            encoded, headers = body, vary_headers(headers)
        else:
            headers = encoded_headers(
                headers, self._codec.name if self._codec else "", len(encoded)
            )
        await self._send({**start, "headers": headers})
        await self._send({"type": "http.response.body", "body": encoded})

    async def _encoded(self, encoder: Encoder, message: Message) -> None:
        if message["type"] in files.FILE_MESSAGES:
            await self._encoded_file(encoder, message)
            return
        if message["type"] != "http.response.body":
            await self._send(message)  # trailers
            return
        body: bytes = message.get("body", b"")
        if message.get("more_body", False):
            if body:  # an empty chunk flushes nothing new
                await self._send({**message, "body": encoder.flush(body)})
            return
        self._encoder = None
        await self._send({**message, "body": encoder.finish(body)})

    async def _encoded_file(self, encoder: Encoder, message: Message) -> None:
        """A file body read in chunks, each encoded and flushed as a streamed chunk is."""
        body = await files.open_body(message)
        try:
            async for chunk in files.read_chunks(body.fd, body.offset, body.count):
                await self._send(
                    {"type": "http.response.body", "body": encoder.flush(chunk), "more_body": True}
                )
        finally:
            body.close()
        if not body.more:
            self._encoder = None
            await self._send({"type": "http.response.body", "body": encoder.finish(b"")})
