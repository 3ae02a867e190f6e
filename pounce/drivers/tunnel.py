"""One HTTP/2 stream as a connection: the `StreamConn` of an RFC 8441 tunnel.

An extended CONNECT (``:protocol websocket``) asks for a protocol on one
stream. The HTTP/2 driver finds the protocol's handler through the bridge
(`ProtocolSwitch.tunnel`) and gives it a `StreamTunnel`: the same
`ConnectionHandler` that serves a socket then serves a stream, so the
WebSocket code has one driver for both HTTP versions.

Mapping, stream ↔ connection:

* ``write`` → DATA frames, which wait in the core for flow-control window;
  ``drain`` waits for the socket *and* for this stream's window;
* ``send_head`` → the response HEADERS (200 opens the tunnel);
* ``close`` → END_STREAM (the core then resets a request side left open,
  RFC 9113 §8.1); ``abort`` → RST_STREAM CANCEL;
* inbound DATA → ``data_received``, credited to the peer's window as it is
  delivered; ``pause_reading`` holds it back uncredited, so the peer's window
  — not our memory — bounds what waits; the peer's END_STREAM →
  ``eof_received``; RST_STREAM or the connection's end → ``connection_lost``.
"""

from __future__ import annotations

from typing import Protocol

from pounce.conn import GONE, ConnectionHandler, ConnectionInfo
from pounce.protocols.events import (
    AcknowledgeData,
    Headers,
    OutboundEvent,
    RejectRequest,
    ResetStream,
    SendData,
    SendResponse,
)

CANCEL = 0x8  # RFC 9113 §7: the stream is no longer needed


class TunnelOwner(Protocol):
    """What a tunnel needs from the driver of its connection."""

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None: ...

    async def drain(self, stream_id: int = 0) -> None: ...

    def tunnel_closed(self, stream_id: int) -> None:
        """The tunnel is done with its stream: forget it."""
        ...


class StreamTunnel:
    """A `StreamConn` for one stream; see the module docstring."""

    __slots__ = (
        "_ended",
        "_eof_held",
        "_held",
        "_lost",
        "_owner",
        "_paused",
        "handler",
        "info",
        "stream_id",
    )

    def __init__(
        self,
        owner: TunnelOwner,
        stream_id: int,
        info: ConnectionInfo,
        handler: ConnectionHandler,
    ) -> None:
        self._owner = owner
        self.stream_id = stream_id
        self.info = info
        self.handler = handler
        self._held: list[bytes] = []  # received while reading is paused, not yet credited
        self._paused = False
        self._eof_held = False  # the peer's END_STREAM, behind held data
        self._ended = False  # our side is done (END_STREAM or reset sent)
        self._lost = False  # the stream or the connection is gone

    # -- Conn (the handler's side) -----------------------------------------------------

    def send_head(self, status: int, headers: Headers, *, end_stream: bool = False) -> None:
        if self._ended or self._lost:
            return
        if end_stream:
            self._owner.send_event(
                RejectRequest(stream_id=self.stream_id, status=status, headers=headers)
            )
            self._finish()
        else:
            self._owner.send_event(
                SendResponse(stream_id=self.stream_id, status=status, headers=headers)
            )

    def write(self, data: bytes) -> None:
        if data and not self._ended and not self._lost:
            self._owner.send_event(SendData(stream_id=self.stream_id, data=data, end_stream=False))

    def close(self) -> None:
        if not self._ended and not self._lost:
            self._owner.send_event(SendData(stream_id=self.stream_id, data=b"", end_stream=True))
        self._finish()

    def abort(self) -> None:
        if not self._ended and not self._lost:
            self._owner.send_event(ResetStream(stream_id=self.stream_id, error_code=CANCEL))
        self._finish()

    def is_closing(self) -> bool:
        return self._ended or self._lost

    def pause_reading(self) -> None:
        self._paused = True

    def resume_reading(self) -> None:
        if not self._paused:
            return
        self._paused = False
        held, self._held = self._held, []
        for data in held:
            if self._paused or self._lost:
                self._held.append(data)
            else:
                self._deliver(data)
        if self._eof_held and not self._held and not self._paused:
            self._eof_held = False
            self.peer_ended()

    async def drain(self) -> None:
        await self._owner.drain(self.stream_id)

    # -- the driver's side ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        if self._lost:
            return
        if self._paused or self._held:
            self._held.append(data)
        else:
            self._deliver(data)

    def _deliver(self, data: bytes) -> None:
        self._owner.send_event(AcknowledgeData(stream_id=self.stream_id, size=len(data)))
        self.handler.data_received(data)

    def peer_ended(self) -> None:
        if self._held:
            self._eof_held = True
        elif not self._lost:
            self.handler.eof_received()

    def lost(self) -> None:
        """The stream was reset, or the connection ended."""
        if self._lost:
            return
        self._lost = True
        self._held.clear()
        handler, self.handler = self.handler, GONE  # it holds us: no cycle left
        handler.connection_lost(None)
        self._owner.tunnel_closed(self.stream_id)

    def _finish(self) -> None:
        """Our side ended the stream: for the handler, the connection is over."""
        self._ended = True
        self.lost()
