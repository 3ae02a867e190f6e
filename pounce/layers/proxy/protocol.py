"""PROXY protocol layer: the real client address from a load balancer's header.

The outermost stream layer. A connection from a peer outside the trusted set
is closed unserved; so is one whose header is malformed or does not arrive
within the header timeout. The header is read with exact reads
(`SetupConn.read_exactly`), so nothing after it is consumed: TLS can start on
the same connection (HAProxy's ``send-proxy-v2`` in front of TLS passthrough).
Then the inner handler sees `ConnectionInfo` with the client and server the
header names (a ``LOCAL`` health check keeps the proxy's own), `ProxyInfo`
with the v2 TLVs, and ``scheme`` ``https`` when the proxy says the client
spoke TLS to it (``PP2_TYPE_SSL``).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass

from pounce.conn import Conn, ConnectionHandler, HandlerFactory, ProxyInfo, SetupConn, peer_name
from pounce.errors import RemoteProtocolError
from pounce.layer import ForwardingHandler, StreamLayer
from pounce.layers.proxy.trust import DEFAULT_TRUSTED, TrustedProxies
from pounce.protocols.proxy_header import ProxyHeader, ProxyHeaderParser

error_log = logging.getLogger("pounce.error")

DEFAULT_HEADER_TIMEOUT = 5.0  # seconds; HAProxy sends the header at once, on connect


@dataclass(frozen=True, slots=True, init=False)
class ProxyProtocolLayer(StreamLayer):
    """Read a PROXY v1 or v2 header first on every connection."""

    trusted: TrustedProxies
    header_timeout: float  # seconds for the whole header

    def __init__(
        self,
        trusted: Iterable[str] = DEFAULT_TRUSTED,
        *,
        header_timeout: float = DEFAULT_HEADER_TIMEOUT,
    ) -> None:
        object.__setattr__(self, "trusted", TrustedProxies(trusted, call=".proxy_protocol"))
        object.__setattr__(self, "header_timeout", header_timeout)

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        trusted = self.trusted
        timeout = self.header_timeout

        def make() -> ConnectionHandler:
            return ProxyProtocolHandler(inner(), trusted, timeout)

        return make

    def describe(self) -> str:
        return (
            f"proxy protocol v1/v2 (trusted {self.trusted.describe()}; "
            f"header {self.header_timeout:g} s)"
        )


class ProxyProtocolHandler(ForwardingHandler):
    """One connection: the header, then everything else to the inner handler.

    `inner` stays None until the header is read (`ForwardingHandler`: until
    then nothing passes, and shutdown aborts the connection).
    """

    __slots__ = ("_pending", "_setup", "_timeout", "_trusted")

    def __init__(self, inner: ConnectionHandler, trusted: TrustedProxies, timeout: float) -> None:
        super().__init__()
        self._pending = inner
        self._trusted = trusted
        self._timeout = timeout
        self._setup: asyncio.Task[None] | None = None

    def connection_made(self, conn: Conn) -> None:
        self.conn = conn
        if not isinstance(conn, SetupConn):
            error_log.error("PROXY protocol layer: no exact reads here; is it the outermost?")
            conn.abort()
            return
        if not self._trusted.trusts_peer(conn.info.client):
            _refuse(conn, "the peer is not a trusted proxy")
            return
        # The first exact read starts now, in connection_made: uvloop begins
        # reading right after it returns, whatever pause_reading() said.
        parser = ProxyHeaderParser()
        first = conn.read_exactly(parser.next_read())
        self._setup = asyncio.get_running_loop().create_task(self._read_header(conn, parser, first))

    async def _read_header(
        self, conn: SetupConn, parser: ProxyHeaderParser, first: Awaitable[bytes]
    ) -> None:
        try:
            async with asyncio.timeout(self._timeout):
                parser.feed(await first)
                while (size := parser.next_read()) > 0:
                    parser.feed(await conn.read_exactly(size))
        except RemoteProtocolError as exc:
            _refuse(conn, exc.message)
            return
        except TimeoutError:
            _refuse(conn, f"no complete PROXY header within {self._timeout:g} s")
            return
        except OSError:
            return  # the peer went away
        header = parser.header
        assert header is not None
        conn.end_exact_reads()
        conn.update_info(**_changes(header, conn))
        self.inner = self._pending
        conn.resume_reading()
        self.inner.connection_made(conn)


def _changes(header: ProxyHeader, conn: Conn) -> dict[str, object]:
    proxy = ProxyInfo(
        version=header.version,
        local=header.local,
        alpn=header.alpn,
        authority=header.authority,
        ssl=header.ssl,
    )
    changes: dict[str, object] = {"proxy": proxy}
    if not header.local:
        changes["client"] = header.client
        changes["server"] = header.server
    if header.ssl:
        changes["scheme"] = "https"
    return changes


def _refuse(conn: Conn, reason: str) -> None:
    client = conn.info.client
    who = peer_name(client, "unix peer")
    error_log.info("PROXY protocol: closing connection from %s: %s", who, reason)
    conn.abort()
