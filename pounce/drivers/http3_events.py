"""The connection events of one QUIC connection (HTTP/3).

A QUIC connection never passes the TCP transport adapter that reports the
others (`pounce.net.transport.ObservedTransportAdapter`), so its driver
(`pounce.drivers.http3.HTTP3Connection`) reports it through this one, made
only when a subscriber takes connection events, with the same meaning:

* `ConnectionOpened` at the client's first Initial (the connection exists:
  the server keeps state for it), as TCP's at accept, before the handshake;
* `ConnectionProtocol` ``h3`` when the handshake completes (ALPN ``h3`` is
  then agreed), as TCP's when the bridge picks a protocol after TLS;
* `ConnectionClosed` when the connection ends however it ends: closed after
  its requests (keep-alive timeout, shutdown's GOAWAY), silent past the QUIC
  idle timeout, aborted at the end of the graceful timeout, or a handshake
  that never finished (protocol None, as a TCP connection whose TLS
  handshake failed).

Bytes are UDP payloads, every datagram routed to the connection and every
one it sent: QUIC packets are encrypted, so unlike TCP's counts (taken after
TLS decryption) they include the packet protection and QUIC framing.
"""

from __future__ import annotations

from pounce.events import ConnectionClosed, ConnectionOpened, ConnectionProtocol, EventBus

PROTOCOL = "h3"  # as the other connections' names: ALPN ids (http/1.1, h2)
TLS_VERSION = "TLSv1.3"  # RFC 9001 §4.2: QUIC is TLS 1.3 only


class QuicConnectionEvents:
    """Counts one QUIC connection's bytes and reports its opening, protocol and close."""

    __slots__ = ("_events", "_id", "_opened_at", "bytes_in", "bytes_out", "protocol")

    def __init__(
        self,
        events: EventBus,
        connection_id: int,
        client: tuple[str, int] | None,
        server: tuple[str, int | None] | None,
    ) -> None:
        self._events = events
        self._id = connection_id
        self._opened_at = events.clock()
        self.bytes_in = 0
        self.bytes_out = 0
        self.protocol: str | None = None
        events.emit(
            ConnectionOpened(
                connection_id=connection_id, client=client, server=server, scheme="https"
            )
        )

    def handshaken(self) -> None:
        """The handshake completed: the connection speaks HTTP/3 from now on."""
        self.protocol = PROTOCOL
        if self._events.connection_protocol:
            self._events.emit(
                ConnectionProtocol(connection_id=self._id, protocol=PROTOCOL, previous=None)
            )

    def closed(self, client: tuple[str, int] | None) -> None:
        served = self.protocol is not None
        self._events.emit(
            ConnectionClosed(
                connection_id=self._id,
                client=client,
                protocol=self.protocol,
                tls_version=TLS_VERSION if served else None,
                alpn=PROTOCOL if served else None,
                bytes_in=self.bytes_in,
                bytes_out=self.bytes_out,
                duration=self._events.clock() - self._opened_at,
            )
        )
