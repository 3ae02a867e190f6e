"""An RFC 8441 WebSocket client for tests: h2 for the HTTP/2 stream, wsproto for the frames.

No WebSocket library in our registries speaks WebSocket over HTTP/2, so this
one is built from the two reference libraries, each doing what it does as a
client anywhere: h2 opens the extended CONNECT stream, wsproto's frame layer
(masking, permessage-deflate) runs inside it. Every socket read has a timeout.
"""

from __future__ import annotations

import socket
import ssl
from collections.abc import Iterator
from contextlib import contextmanager

import h2.config
import h2.connection
import h2.events
import h2.settings
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Event, Message, Ping, TextMessage
from wsproto.extensions import PerMessageDeflate

TIMEOUT = 5.0  # seconds: every read

Headers = list[tuple[bytes, bytes]]


class StreamClosed(Exception):
    """The server ended or reset the WebSocket's stream."""


class H2WebSocket:
    """One HTTP/2 connection with WebSocket streams opened by extended CONNECT."""

    def __init__(self, port: int, *, tls: ssl.SSLContext | None = None) -> None:
        raw = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        self.sock: socket.socket = (
            tls.wrap_socket(raw, server_hostname="localhost") if tls is not None else raw
        )
        self.sock.settimeout(TIMEOUT)
        config = h2.config.H2Configuration(client_side=True, header_encoding=None)
        self.h2 = h2.connection.H2Connection(config=config)
        self.h2.initiate_connection()
        self._flush()
        self.events: dict[int, list[h2.events.Event]] = {}
        self.ws: dict[int, Connection] = {}
        self.ended: set[int] = set()
        self.reset: dict[int, int] = {}
        self.goaway: h2.events.ConnectionTerminated | None = None
        self.settings_seen = False
        while not self.settings_seen:
            self._read()

    @property
    def connect_protocol_enabled(self) -> bool:
        codes = h2.settings.SettingCodes
        return bool(self.h2.remote_settings.get(codes.ENABLE_CONNECT_PROTOCOL, 0))

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> H2WebSocket:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- opening -----------------------------------------------------------------------

    def open(
        self,
        path: bytes = b"/ws",
        *,
        headers: Headers | None = None,
        deflate: bool = False,
        version: bytes = b"13",
        protocol: bytes = b"websocket",
    ) -> tuple[int, int, Headers]:
        """Send the extended CONNECT; return (stream id, status, response headers)."""
        sid = self.h2.get_next_available_stream_id()
        block: Headers = [
            (b":method", b"CONNECT"),
            (b":protocol", protocol),
            (b":scheme", b"http"),
            (b":path", path),
            (b":authority", b"localhost"),
            (b"sec-websocket-version", version),
        ]
        if deflate:
            block.append((b"sec-websocket-extensions", b"permessage-deflate"))
        block.extend(headers or [])
        self.events[sid] = []
        self.h2.send_headers(sid, block)
        self._flush()
        response = self._wait(sid, h2.events.ResponseReceived)
        assert isinstance(response, h2.events.ResponseReceived)
        fields: Headers = [(bytes(n), bytes(v)) for n, v in response.headers or []]
        status = int(dict(fields)[b":status"])
        if 200 <= status < 300:
            extensions = []
            offered = dict(fields).get(b"sec-websocket-extensions", b"")
            if deflate and offered.startswith(b"permessage-deflate"):
                extension = PerMessageDeflate()
                extension.finalize(offered.decode())
                extensions.append(extension)
            self.ws[sid] = Connection(ConnectionType.CLIENT, extensions=extensions)
        return sid, status, fields

    # -- messages ----------------------------------------------------------------------

    def send(self, sid: int, event: Event, *, end_stream: bool = False) -> None:
        """Send `event` in frames that fit the windows, reading while they are shut."""
        data = self.ws[sid].send(event)
        while True:
            room = min(self.h2.local_flow_control_window(sid), self.h2.max_outbound_frame_size)
            if room <= 0 and data:
                self._read()  # for WINDOW_UPDATE
                continue
            piece, data = data[:room], data[room:]
            self.h2.send_data(sid, piece, end_stream=end_stream and not data)
            self._flush()
            if not data:
                return

    def send_text(self, sid: int, text: str) -> None:
        self.send(sid, TextMessage(data=text))

    def send_bytes(self, sid: int, data: bytes) -> None:
        self.send(sid, BytesMessage(data=data))

    def receive(self, sid: int) -> Event:
        """The next whole WebSocket event on `sid` (message parts are joined)."""
        ws = self.ws[sid]
        parts: list[bytes | str] = []
        while True:
            for event in ws.events():
                if isinstance(event, Message):
                    parts.append(event.data)
                    if not event.message_finished:
                        continue
                    if isinstance(event, TextMessage):
                        return TextMessage(data="".join(str(p) for p in parts))
                    return BytesMessage(data=b"".join(bytes(p) for p in parts))
                if isinstance(event, Ping):
                    self.send(sid, event.response())
                    continue
                return event
            self._feed(sid)

    def receive_close(self, sid: int) -> CloseConnection:
        while True:
            event = self.receive(sid)
            if isinstance(event, CloseConnection):
                return event

    def body(self, sid: int) -> bytes:
        """The rest of a non-WebSocket response on `sid` (a denial), up to END_STREAM."""
        chunks = []
        while sid not in self.ended:
            data = self._take_data(sid)
            if data is None:
                continue
            chunks.append(data)
        for event in self.events.pop(sid, []):
            if isinstance(event, h2.events.DataReceived):
                chunks.append(event.data or b"")
        return b"".join(chunks)

    def wait_ended(self, sid: int) -> None:
        """Read until the server ends or resets `sid`."""
        while sid not in self.ended and sid not in self.reset:
            self._read()

    # -- plumbing ----------------------------------------------------------------------

    def _feed(self, sid: int) -> None:
        data = self._take_data(sid)
        if data is not None:
            self.ws[sid].receive_data(data)
        elif sid in self.ended or sid in self.reset:
            raise StreamClosed(f"stream {sid} ended (reset: {self.reset.get(sid)})")

    def _take_data(self, sid: int) -> bytes | None:
        queue = self.events[sid]
        while not queue:
            if sid in self.ended or sid in self.reset:
                return None
            self._read()
        event = queue.pop(0)
        if isinstance(event, h2.events.DataReceived):
            return event.data or b""
        return b""

    def _wait(self, sid: int, kind: type) -> h2.events.Event:
        while True:
            queue = self.events[sid]
            for index, event in enumerate(queue):
                if isinstance(event, kind):
                    del queue[index]
                    return event
            if sid in self.reset:
                raise StreamClosed(f"stream {sid} reset with {self.reset[sid]}")
            self._read()

    def _read(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise StreamClosed("the server closed the connection")
        for event in self.h2.receive_data(data):
            if isinstance(event, h2.events.RemoteSettingsChanged):
                self.settings_seen = True
            elif isinstance(event, h2.events.ConnectionTerminated):
                self.goaway = event
            sid = getattr(event, "stream_id", None)
            if not sid:
                continue
            if isinstance(event, h2.events.DataReceived):
                self.h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
            if isinstance(event, h2.events.StreamEnded):
                self.ended.add(sid)
            elif isinstance(event, h2.events.StreamReset):
                self.reset[sid] = int(event.error_code or 0)
            else:
                self.events.setdefault(sid, []).append(event)
        self._flush()

    def _flush(self) -> None:
        data = self.h2.data_to_send()
        if data:
            self.sock.sendall(data)


@contextmanager
def h2_websocket(port: int, *, tls: ssl.SSLContext | None = None) -> Iterator[H2WebSocket]:
    client = H2WebSocket(port, tls=tls)
    try:
        yield client
    finally:
        client.close()
