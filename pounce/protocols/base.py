"""The interface every sans-I/O protocol core offers the driver.

A core owns no socket, no clock and no task: the driver hands it bytes and
gets events back, hands it events and collects bytes to write. That keeps
every protocol testable with bytes in, events out, and lets one driver serve
HTTP/1.1 and HTTP/2 alike.
"""

from __future__ import annotations

from typing import Protocol

from pounce.protocols.events import InboundEvent, OutboundEvent


class ProtocolCore(Protocol):
    """What the driver needs from a protocol core."""

    def receive_data(self, data: bytes) -> list[InboundEvent]:
        """Feed bytes from the peer (possibly empty) and return the events they complete.

        Called with ``b""`` the core returns events it could not give out
        before (a pipelined request behind a finished response).

        Raises:
            pounce.errors.RemoteProtocolError: the bytes break the protocol;
                ``status`` says how to answer.
        """
        ...

    def receive_eof(self) -> list[InboundEvent]:
        """The peer closed its sending side."""
        ...

    def send(self, event: OutboundEvent) -> None:
        """Queue an outbound event.

        Raises:
            pounce.errors.LocalProtocolError: the event is not allowed now.
        """
        ...

    def data_to_send(self) -> bytes:
        """Return (and forget) the bytes queued for the peer."""
        ...

    def peer_finished(self) -> bool:
        """True when the peer has said it sends nothing more and all it sent was read.

        HTTP/1.1: its last request said ``Connection: close`` (or was HTTP/1.0
        without keep-alive) and came whole, with no byte after it. The driver
        then closes without a lingering close: nothing is coming that could
        turn the close into a reset (RFC 9112 §9.6). False when unsure.
        """
        ...

    @property
    def must_close(self) -> bool:
        """True once the connection has to close after the queued bytes are written."""
        ...

    @property
    def read_paused(self) -> bool:
        """True while the core will produce no events until a response completes.

        The driver stops reading from the socket meanwhile, so a client that
        pipelines without end cannot make the server buffer without bound.
        """
        ...

    @property
    def idle(self) -> bool:
        """True between requests: nothing received of the next one, nothing owed."""
        ...
