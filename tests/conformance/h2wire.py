"""A raw HTTP/2 client for conformance tests: frames crafted with hyperframe, HPACK by hpack.

Unlike h2's `H2Connection` it sends whatever it is told, broken frames included,
and reads back parsed frames. Every socket read has a timeout.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from collections.abc import Iterator

import hpack
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    RstStreamFrame,
    SettingsFrame,
    WindowUpdateFrame,
)

from pounce.protocols.h2 import PREFACE

TIMEOUT = 5.0  # seconds: every read

NO_ERROR = 0x0
PROTOCOL_ERROR = 0x1
INTERNAL_ERROR = 0x2
FLOW_CONTROL_ERROR = 0x3
STREAM_CLOSED = 0x5
FRAME_SIZE_ERROR = 0x6
REFUSED_STREAM = 0x7
CANCEL = 0x8
COMPRESSION_ERROR = 0x9
ENHANCE_YOUR_CALM = 0xB

Headers = list[tuple[bytes, bytes]]


def request_headers(path: bytes = b"/", method: bytes = b"GET") -> Headers:
    return [(b":method", method), (b":scheme", b"http"), (b":authority", b"t"), (b":path", path)]


def raw_frame(kind: int, flags: int, stream_id: int, payload: bytes) -> bytes:
    """A frame exactly as given: lengths and fields hyperframe would refuse to build."""
    return (
        struct.pack(">I", len(payload))[1:] + struct.pack(">BBI", kind, flags, stream_id) + payload
    )


class ConnectionClosed(Exception):
    pass


class Wire:
    """One client connection speaking raw frames."""

    def __init__(self, port: int, *, rcvbuf: int | None = None) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf is not None:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(("127.0.0.1", port))
        self.encoder = hpack.Encoder()
        self.decoder = hpack.Decoder()  # one per connection: the dynamic table is shared
        self.received: dict[int, Headers] = {}  # the last header block per stream
        self.buffer = b""
        self.next_stream = 1

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    def __enter__(self) -> Wire:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- sending ---------------------------------------------------------------

    def send(self, *frames: Frame | bytes) -> None:
        data = b"".join(f if isinstance(f, bytes) else f.serialize() for f in frames)
        self.sock.sendall(data)

    def handshake(self, settings: dict[int, int] | None = None) -> SettingsFrame:
        """Preface and SETTINGS both ways; returns the server's SETTINGS."""
        self.send(PREFACE, SettingsFrame(0, settings=settings or {}))
        server_settings = self.expect(SettingsFrame)
        self.send(SettingsFrame(0, flags=["ACK"]))
        return server_settings

    def block(self, headers: Headers) -> bytes:
        return self.encoder.encode(headers)

    def headers(
        self, headers: Headers | None = None, *, end_stream: bool = True, stream_id: int = 0
    ) -> int:
        sid = stream_id or self.new_stream()
        flags = ["END_HEADERS"] + (["END_STREAM"] if end_stream else [])
        self.send(HeadersFrame(sid, self.block(headers or request_headers()), flags=flags))
        return sid

    def new_stream(self) -> int:
        sid, self.next_stream = self.next_stream, self.next_stream + 2
        return sid

    def data(self, sid: int, data: bytes, *, end_stream: bool = False) -> None:
        self.send(DataFrame(sid, data, flags=["END_STREAM"] if end_stream else []))

    # -- receiving ---------------------------------------------------------------

    def read_frame(self) -> Frame:
        while True:
            if len(self.buffer) >= 9:
                frame, length = Frame.parse_frame_header(memoryview(self.buffer[:9]))
                if len(self.buffer) >= 9 + length:
                    frame.parse_body(memoryview(self.buffer[9 : 9 + length]))
                    self.buffer = self.buffer[9 + length :]
                    if isinstance(frame, HeadersFrame | ContinuationFrame):
                        # Decode every block as it comes: the dynamic table is shared.
                        decoded = self.decoder.decode(frame.data, raw=True)
                        self.received[frame.stream_id] = [(bytes(n), bytes(v)) for n, v in decoded]
                    return frame
            try:
                chunk = self.sock.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if not chunk:
                raise ConnectionClosed
            self.buffer += chunk

    def frames(self) -> Iterator[Frame]:
        while True:
            try:
                yield self.read_frame()
            except ConnectionClosed:
                return

    def expect(self, kind: type[Frame], *, stream_id: int | None = None) -> Frame:
        """The next frame of `kind` (on `stream_id`), skipping others; fails on close."""
        for frame in self.frames():
            if isinstance(frame, kind) and (stream_id is None or frame.stream_id == stream_id):
                if (
                    isinstance(frame, SettingsFrame)
                    and "ACK" in frame.flags
                    and kind is SettingsFrame
                ):
                    continue
                return frame
        raise AssertionError(f"connection closed before a {kind.__name__}")

    def expect_error(self, code: int, *, stream_id: int | None = None) -> Frame:
        """A RST_STREAM on `stream_id` or a GOAWAY, carrying `code`."""
        for frame in self.frames():
            if isinstance(frame, GoAwayFrame) or (
                isinstance(frame, RstStreamFrame)
                and stream_id is not None
                and frame.stream_id == stream_id
            ):
                assert frame.error_code == code, f"{frame!r}: expected error {code:#x}"
                return frame
        raise AssertionError(f"connection closed without RST_STREAM/GOAWAY {code:#x}")

    def expect_goaway(self, code: int) -> GoAwayFrame:
        frame = self.expect_error(code)
        assert isinstance(frame, GoAwayFrame), f"{frame!r}: expected a connection error"
        return frame

    def response(self, sid: int) -> tuple[Headers, bytes]:
        """Headers and body of stream `sid`, to END_STREAM; fails on reset or close."""
        headers: Headers = list(self.received.get(sid, []))  # a head read before
        body = b""
        for frame in self.frames():
            if isinstance(frame, HeadersFrame | ContinuationFrame):
                if frame.stream_id == sid:
                    headers += self.received[sid]
            elif isinstance(frame, DataFrame) and frame.stream_id == sid:
                body += frame.data
                if frame.data:
                    self.send(WindowUpdateFrame(0, window_increment=len(frame.data)))
                    self.send(WindowUpdateFrame(sid, window_increment=len(frame.data)))
            elif isinstance(frame, RstStreamFrame | GoAwayFrame) and frame.stream_id in (0, sid):
                assert isinstance(frame, GoAwayFrame) and not frame.error_code, (
                    f"stream {sid} ended by {frame!r}"
                )
            if "END_STREAM" in frame.flags and frame.stream_id == sid:
                return headers, body
        raise AssertionError(f"connection closed before stream {sid} ended")

    def ping(self, payload: bytes = b"pingpong") -> None:
        self.send(PingFrame(0, opaque_data=payload))

    def expect_alive(self) -> None:
        """The connection still works: a PING is answered."""
        self.ping(b"aliveyes")
        for frame in self.frames():
            if isinstance(frame, PingFrame) and "ACK" in frame.flags:
                assert frame.opaque_data == b"aliveyes"
                return
            assert not isinstance(frame, GoAwayFrame) or not frame.error_code, repr(frame)
        raise AssertionError("connection closed; expected it alive")
