"""`.compress()`: the compression layer's options and its wrap.

Per request: the coding is negotiated from ``Accept-Encoding``
(`negotiation.choose`, among the installed `algorithms` in the server's
order) and the response goes through a `CompressingSend`, which owns that
response's encoder; a HEAD gets the fields its GET would. With
`decompress_requests`, a request body with a ``Content-Encoding`` the layer
decodes (gzip, deflate, br; zstd on Python 3.14) reaches the app inflated,
under `max_request_size`; another coding gets 415 with ``Accept-Encoding``
(RFC 9110 §15.5.16). Without it, request bodies pass as they came.
"""

from __future__ import annotations

from dataclasses import dataclass

from pounce.asgi.types import ASGIApp, Message, Receive, Scope, Send
from pounce.errors import BuildError, LimitExceededError, ProtocolError
from pounce.layer import AppLayer
from pounce.layers.compression.codecs import DEFLATE_DECODER, Codec, MissingCodec, codec, installed
from pounce.layers.compression.negotiation import choose
from pounce.layers.compression.request import DecodingReceive
from pounce.layers.compression.response import CompressingSend
from pounce.layers.compression.rules import field
from pounce.options import check_fields, option, whole

KNOWN = ("br", "zstd", "gzip")  # the codings offered by default, best first
DEFAULT_MINIMUM_SIZE = 500  # bytes; below it the coding's header costs more than it saves
DEFAULT_MAX_REQUEST_SIZE = 16 * 1024 * 1024  # bytes of inflated request body (WebSocket's max)
LEVELS = {"br": (0, 11), "gzip": (1, 9), "zstd": (1, 22)}


def _check_algorithms(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = value.split(",")
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise ValueError("must be a list of br, zstd, gzip")
    names = tuple(v.strip().lower() for v in value if v.strip())
    if not names or any(n not in KNOWN for n in names) or len(set(names)) < len(names):
        raise ValueError("must be one or more of br, zstd, gzip, each once")
    return names


@dataclass(frozen=True, slots=True, kw_only=True)
class Compression(AppLayer):
    """`.compress()`: responses negotiated into br, zstd or gzip and streamed; see the module."""

    builder_call = ".compress"
    options_group = "compression"

    algorithms: tuple[str, ...] | None = option(
        None,
        name="compression_algorithms",
        help="codings offered, in the server's order among equal q-values; one named here "
        "whose package is missing is an error",
        shown="br, zstd, gzip (those installed)",
        convert=_check_algorithms,
    )
    brotli_level: int = option(
        4,
        name="compression_brotli_level",
        unit="quality",
        help="brotli quality, 0-11",
        check=whole(0, 11),
    )
    gzip_level: int = option(
        6, name="compression_gzip_level", unit="level", help="gzip level, 1-9", check=whole(1, 9)
    )
    zstd_level: int = option(
        3, name="compression_zstd_level", unit="level", help="zstd level, 1-22", check=whole(1, 22)
    )
    minimum_size: int = option(
        DEFAULT_MINIMUM_SIZE,
        name="compression_minimum_size",
        unit="bytes",
        help="bodies of known length below this are sent as they are",
        check=whole(0),
    )
    event_stream: bool = option(
        False,
        name="compression_event_stream",
        help="compress text/event-stream too (each event flushed as it is sent)",
    )
    decompress_requests: bool = option(
        False, help="inflate request bodies sent with Content-Encoding (gzip, deflate, br)"
    )
    max_request_size: int = option(
        DEFAULT_MAX_REQUEST_SIZE,
        name="decompress_max_size",
        unit="bytes",
        help="an inflated request body past this is refused with 413",
        check=whole(1),
    )

    def __post_init__(self) -> None:
        check_fields(self, self.builder_call)
        for name in self.algorithms or ():
            try:
                codec(name)
            except MissingCodec as exc:
                raise BuildError(
                    f"{self.builder_call}(algorithms=...): {name} needs a package that is not "
                    "installed",
                    hint=exc.hint,
                ) from None

    def codecs(self) -> tuple[Codec, ...]:
        """The codings offered, best first: those asked for, or every installed one."""
        return installed(self.algorithms or KNOWN)

    def level(self, name: str) -> int:
        return {"br": self.brotli_level, "gzip": self.gzip_level, "zstd": self.zstd_level}[name]

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        offered = {c.name: c for c in self.codecs()}
        decoders = _decoders() if self.decompress_requests else {}
        layer = self

        async def compressing(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http":
                await inner(scope, receive, send)
                return
            headers = scope["headers"]
            if decoders and field(headers, b"content-encoding") is not None:
                await _decoding(layer, inner, decoders, scope, receive, send)
                return
            await inner(scope, receive, layer.sender(scope, send, offered))

        return compressing

    def sender(self, scope: Scope, send: Send, offered: dict[str, Codec]) -> Send:
        """The `send` one request's response goes through."""
        if not offered:
            return send
        accept = field(scope["headers"], b"accept-encoding")
        name = choose(accept.decode("latin-1") if accept is not None else None, offered)
        chosen = offered[name] if name is not None else None
        level = self.level(name) if name is not None else 0
        return CompressingSend(
            send,
            chosen,
            level=level,
            minimum_size=self.minimum_size,
            event_stream=self.event_stream,
            head=scope.get("method") == "HEAD",
        )

    def describe(self) -> str:
        names = ", ".join(f"{c.name} {self.level(c.name)}" for c in self.codecs()) or "nothing"
        text = f"compress {names} (bodies of {self.minimum_size} B and more)"
        if self.decompress_requests:
            text += f"; inflate request bodies up to {self.max_request_size} B (then 413)"
        return text


def _decoders() -> dict[str, Codec]:
    found = {"gzip": codec("gzip"), "x-gzip": codec("gzip"), "deflate": DEFLATE_DECODER}
    found.update((c.name, c) for c in installed(("br", "zstd")) if c.decoder is not None)
    return found


async def _decoding(
    layer: Compression,
    inner: ASGIApp,
    decoders: dict[str, Codec],
    scope: Scope,
    receive: Receive,
    send: Send,
) -> None:
    """A request whose body has a Content-Encoding: inflated under the bound, or refused."""
    coding = (field(scope["headers"], b"content-encoding") or b"").strip().lower().decode("latin-1")
    found = decoders.get(coding)
    if found is None or found.decoder is None:
        accept = ", ".join(sorted(decoders)).encode()
        await _answer(send, 415, b"unsupported Content-Encoding\n", [(b"accept-encoding", accept)])
        return
    drop = (b"content-encoding", b"content-length")
    headers = [(n, v) for n, v in scope["headers"] if n.lower() not in drop]
    decoding = DecodingReceive(receive, found.decoder(), layer.max_request_size)
    started = _Started(layer.sender(scope, send, {c.name: c for c in layer.codecs()}))
    try:
        await inner({**scope, "headers": headers}, decoding, started)
    except (LimitExceededError, ProtocolError) as exc:
        if exc is not decoding.error or started.started:
            raise
        await _answer(send, exc.status, f"{exc.message}\n".encode(), [(b"connection", b"close")])


class _Started:
    """A `send` that remembers whether the response has begun."""

    __slots__ = ("_send", "started")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.started = False

    async def __call__(self, message: Message) -> None:
        self.started = True
        await self._send(message)


async def _answer(send: Send, status: int, body: bytes, extra: list[tuple[bytes, bytes]]) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", b"%d" % len(body)),
    ]
    await send({"type": "http.response.start", "status": status, "headers": [*headers, *extra]})
    await send({"type": "http.response.body", "body": body})
