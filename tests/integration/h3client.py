"""An HTTP/3 test client on aioquic's own client API (`aioquic.asyncio.connect`).

Each request is a stream whose response head, body, trailers, reset code and
end are recorded; GOAWAY frames on the server's control stream are recorded
too (aioquic's client reads and drops them). Every wait is bounded by the
caller's ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from aioquic.asyncio import connect
from aioquic.asyncio.protocol import QuicConnectionProtocol
from aioquic.buffer import Buffer, BufferReadError
from aioquic.h3.connection import H3_ALPN, FrameType, H3Connection
from aioquic.h3.events import DataReceived, HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.events import (
    ConnectionTerminated,
    QuicEvent,
    StreamDataReceived,
    StreamReset,
)

Headers = list[tuple[bytes, bytes]]


@dataclass
class Reply:
    """What came back on one stream."""

    stream_id: int
    heads: list[Headers] = field(default_factory=list)  # 1xx heads, then the final one
    body: bytes = b""
    trailers: Headers | None = None
    reset: int | None = None  # the server's RESET_STREAM / STOP_SENDING code
    done: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def status(self) -> int:
        return int(dict(self.heads[-1])[b":status"])

    @property
    def headers(self) -> dict[bytes, bytes]:
        return dict(self.heads[-1])


SERVER_CONTROL_STREAM = 3  # the server's first unidirectional stream (aioquic opens it first)


def goaway_ids(control: bytes) -> list[int]:
    """The GOAWAY ids in the bytes of a control stream so far (aioquic skips them)."""
    buf, found = Buffer(data=control), []
    try:
        buf.pull_uint_var()  # the stream type
        while not buf.eof():
            frame_type, size = buf.pull_uint_var(), buf.pull_uint_var()
            payload = buf.pull_bytes(size)
            if frame_type == FrameType.GOAWAY:
                found.append(Buffer(data=payload).pull_uint_var())
    except BufferReadError:
        pass  # an incomplete frame: the rest comes later
    return found


class H3Client(QuicConnectionProtocol):
    """One QUIC connection speaking HTTP/3; `request` and `open` send requests on it."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.goaways: list[int] = []
        self._control = b""
        self.h3 = H3Connection(self._quic)
        self.replies: dict[int, Reply] = {}
        self.terminated: ConnectionTerminated | None = None
        self.closed_event = asyncio.Event()

    def quic_event_received(self, event: QuicEvent) -> None:
        if isinstance(event, StreamDataReceived) and event.stream_id == SERVER_CONTROL_STREAM:
            self._control += event.data
            self.goaways[:] = goaway_ids(self._control)
        if isinstance(event, ConnectionTerminated):
            self.terminated = event
            self.closed_event.set()
            for reply in self.replies.values():
                reply.done.set()
        if isinstance(event, StreamReset) and event.stream_id in self.replies:
            reply = self.replies[event.stream_id]
            reply.reset = event.error_code
            reply.done.set()
        for h3_event in self.h3.handle_event(event):
            reply = self.replies.get(getattr(h3_event, "stream_id", -1))
            if reply is None:
                continue
            if isinstance(h3_event, HeadersReceived):
                status = dict(h3_event.headers).get(b":status")
                if status is None:
                    reply.trailers = h3_event.headers
                else:
                    reply.heads.append(h3_event.headers)
            elif isinstance(h3_event, DataReceived):
                reply.body += h3_event.data
            if getattr(h3_event, "stream_ended", False):
                reply.done.set()

    def open(
        self,
        method: str = "GET",
        path: str = "/",
        headers: Headers = (),  # type: ignore[assignment]
        *,
        end: bool = True,
        authority: bytes = b"localhost",
        raw: Headers | None = None,
        unchecked: bool = False,
    ) -> Reply:
        """Send a request head (`raw`: exactly these fields) and return its `Reply`.

        `unchecked`: past aioquic's own checks, a malformed block on the wire.
        """
        sid = self._quic.get_next_available_stream_id()
        fields = raw or [
            (b":method", method.encode()),
            (b":scheme", b"https"),
            (b":authority", authority),
            (b":path", path.encode()),
            *headers,
        ]
        self.replies[sid] = reply = Reply(sid)
        if unchecked:
            frame = self.h3._encode_headers(sid, fields)
            from aioquic.h3.connection import encode_frame

            self._quic.send_stream_data(sid, encode_frame(FrameType.HEADERS, frame), end)
        else:
            self.h3.send_headers(sid, fields, end_stream=end)
        self.transmit()
        return reply

    def send_body(self, sid: int, data: bytes, *, end: bool = False) -> None:
        self.h3.send_data(sid, data, end_stream=end)
        self.transmit()

    def send_trailers(self, sid: int, trailers: Headers) -> None:
        self.h3.send_headers(sid, trailers, end_stream=True)
        self.transmit()

    def reset(self, sid: int, code: int = 0x10C) -> None:
        """RESET_STREAM (H3_REQUEST_CANCELLED by default) and STOP_SENDING."""
        self._quic.reset_stream(sid, code)
        self._quic.stop_stream(sid, code)
        self.transmit()

    async def request(
        self, method: str = "GET", path: str = "/", headers: Headers = (), body: bytes = b""
    ) -> Reply:  # type: ignore[assignment]
        reply = self.open(method, path, headers, end=not body)
        if body:
            self.send_body(reply.stream_id, body, end=True)
        await reply.done.wait()
        return reply


def client_configuration(ca: str, **options: Any) -> QuicConfiguration:
    config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN, **options)
    config.load_verify_locations(ca)
    config.verify_mode = ssl.CERT_REQUIRED
    config.server_name = "localhost"
    return config


@asynccontextmanager
async def h3_connect(host: str, port: int, ca: str, **options: Any) -> AsyncIterator[H3Client]:
    """An HTTP/3 connection to ``host:port`` trusting `ca`."""
    config = client_configuration(ca, **options)
    async with connect(host, port, configuration=config, create_protocol=H3Client) as client:
        assert isinstance(client, H3Client)
        yield client
