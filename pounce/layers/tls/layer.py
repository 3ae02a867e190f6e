"""TLS layer: the event loop's own TLS on every accepted connection.

A `StreamLayer` whose handler asks the transport (`SetupConn.start_tls`, the
seam in `pounce/net/transport.py`) to run ``loop.start_tls()`` as soon as the
connection is made — or right after the PROXY protocol header, on the same
connection. No TLS record is handled here. When the handshake is done the
inner handler sees ``scheme`` ``https``, the negotiated ALPN protocol (the
protocol bridge picks by it) and a `TLSInfo` for the ASGI ``tls`` extension.

A failed handshake — plain HTTP sent to the TLS port, a client certificate
from an unknown CA, none where one is required, a client that stalls past the
handshake timeout — is one line on ``pounce.error`` at debug level and a
closed connection; nothing reaches the inner layers.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass

from pounce.conn import Conn, ConnectionHandler, HandlerFactory, SetupConn, TLSInfo, peer_name
from pounce.layer import ForwardingHandler, StreamLayer
from pounce.layers.tls.config import LoadedContext, ServerTLS, TLSConfig

error_log = logging.getLogger("pounce.error")

# RFC 4514 §3 short names for the attributes Python's getpeercert() spells out.
_RDN_NAMES = {
    "commonName": "CN",
    "countryName": "C",
    "localityName": "L",
    "stateOrProvinceName": "ST",
    "organizationName": "O",
    "organizationalUnitName": "OU",
    "streetAddress": "STREET",
    "domainComponent": "DC",
    "userId": "UID",
}


HANDSHAKE_SHUTDOWN_GRACE = 1.0
"""Seconds a handshake under way at shutdown may take to finish (HTTP/2's GOAWAY grace)."""


@dataclass(frozen=True, slots=True, init=False)
class TLSLayer(StreamLayer):
    """Serve TLS; see `pounce.builder.ServerBuilder.tls` for the options.

    Immutable: the live `ServerTLS` (the loaded context, which a certificate
    reload swaps) is made per serve by `wrap_serving`, and the server keeps it
    with the rest of that serve's state. The files are loaded once here too,
    so a bad certificate is a `BuildError` before anything binds.
    """

    config: TLSConfig
    alpn: tuple[str, ...]  # ALPN ids offered, h2 first; set by the builder

    def __init__(self, config: TLSConfig, alpn: Sequence[str] = ()) -> None:
        object.__setattr__(self, "config", config)
        object.__setattr__(self, "alpn", tuple(alpn))
        ServerTLS(config, self.alpn)  # check the files now

    def for_protocols(self, alpn: Sequence[str]) -> TLSLayer:
        """The same layer offering `alpn`; the builder calls it once the protocols are known."""
        return TLSLayer(self.config, alpn)

    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        return self.wrap_serving(inner)[0]

    def wrap_serving(self, inner: HandlerFactory) -> tuple[HandlerFactory, ServerTLS]:
        """`wrap`, and the live context it serves from, for the server to reload."""
        tls = ServerTLS(self.config, self.alpn)
        timeout = self.config.handshake_timeout

        def make() -> ConnectionHandler:
            return TLSHandler(inner(), tls, timeout)

        return make, tls

    def describe(self) -> str:
        c = self.config
        version = {ssl.TLSVersion.TLSv1_3: "TLS 1.3+"}.get(c.min_version, "TLS 1.2+")
        parts = [
            version,
            f"alpn {','.join(self.alpn) or '-'}",
            f"client certs {c.client_certs}",
            f"handshake {c.handshake_timeout:g} s",
        ]
        return f"tls {c.cert} ({'; '.join(parts)})"


class TLSHandler(ForwardingHandler):
    """One connection: handshake first, then pass everything to the inner handler.

    `inner` stays None until the handshake is done (`ForwardingHandler`: until
    then nothing passes). A shutdown during the handshake gives it
    `HANDSHAKE_SHUTDOWN_GRACE` to finish and then shuts the inner handler down
    at once, so the client gets a protocol's goodbye (HTTP/2 GOAWAY,
    ``Connection: close``) rather than a TLS EOF — a client that connected to
    a worker just as a rolling restart drained it must not see its first
    request fail; a handshake still unfinished then is aborted, so a silent
    client cannot hold the shutdown.
    """

    __slots__ = (
        "_early",
        "_early_eof",
        "_lost",
        "_pending",
        "_setup",
        "_shutting_down",
        "_timeout",
        "_tls",
    )

    def __init__(self, inner: ConnectionHandler, tls: ServerTLS, timeout: float) -> None:
        super().__init__()
        self._pending = inner
        self._tls = tls
        self._timeout = timeout
        self._setup: asyncio.Task[None] | None = None
        self._lost = False
        # asyncio may pass on the first application data (TLS 1.3 clients send
        # their request right after Finished) before the handshake task resumes.
        self._early = b""
        self._early_eof = False
        self._shutting_down = False

    def connection_made(self, conn: Conn) -> None:
        self.conn = conn
        if not isinstance(conn, SetupConn):
            error_log.error("TLS layer: the connection cannot start TLS; is .tls() outermost?")
            conn.abort()
            return
        loaded = self._tls.current  # taken once: a reload does not touch this connection
        handshake = conn.start_tls(loaded.context, handshake_timeout=self._timeout)
        self._setup = asyncio.get_running_loop().create_task(
            self._establish(conn, handshake, loaded)
        )

    async def _establish(
        self, conn: SetupConn, handshake: Awaitable[object], loaded: LoadedContext
    ) -> None:
        try:
            ssl_object = await handshake
        except (OSError, ssl.SSLError, EOFError, TimeoutError) as exc:
            _log_failure(conn, exc, self._timeout)
            return
        if self._lost or not isinstance(ssl_object, ssl.SSLObject):
            return
        info = tls_info(ssl_object, loaded)
        conn.update_info(
            scheme="https",
            alpn=ssl_object.selected_alpn_protocol(),
            tls_version=info.version,
            cipher=info.cipher,
            tls=info,
        )
        inner = self.inner = self._pending
        inner.connection_made(conn)
        early, self._early = self._early, b""
        if early and not self._lost:
            inner.data_received(early)
        if self._early_eof and not self._lost:
            inner.eof_received()
        if self._shutting_down and not self._lost:
            inner.begin_shutdown()

    def begin_shutdown(self) -> None:
        if self.inner is None and self._setup is not None and not self._setup.done():
            self._shutting_down = True  # the handshake may finish; then the inner shuts down
            loop = asyncio.get_running_loop()
            loop.call_later(HANDSHAKE_SHUTDOWN_GRACE, self._abort_unfinished)
            return
        super().begin_shutdown()

    def _abort_unfinished(self) -> None:
        if self.inner is None and self.conn is not None and not self._lost:
            self.conn.abort()

    def data_received(self, data: bytes) -> None:
        if self.inner is not None:
            self.inner.data_received(data)
        else:
            self._early += data

    def eof_received(self) -> bool | None:
        if self.inner is not None:
            self.inner.eof_received()
        else:
            self._early_eof = True
        return None  # TLS has no half-close: the connection ends

    def connection_lost(self, exc: Exception | None) -> None:
        self._lost = True
        super().connection_lost(exc)


def _log_failure(conn: Conn, exc: BaseException, timeout: float) -> None:
    client = conn.info.client
    who = peer_name(client, "-")
    if isinstance(exc, ConnectionAbortedError | TimeoutError):
        reason = f"no handshake within {timeout:g} s"
    elif isinstance(exc, ssl.SSLError):
        reason = exc.reason or str(exc)
    else:
        reason = str(exc) or type(exc).__name__
    error_log.debug("TLS handshake with %s failed: %s", who, reason)


def tls_info(ssl_object: ssl.SSLObject, loaded: LoadedContext) -> TLSInfo:
    """What the ASGI ``tls`` extension reports about one session."""
    cipher = ssl_object.cipher()
    name = cipher[0] if cipher else ""
    return TLSInfo(
        version=ssl_object.version() or "",
        cipher=name,
        cipher_suite=loaded.cipher_ids.get(name),
        server_cert=loaded.server_cert,
        client_cert_chain=_client_chain(ssl_object),
        client_cert_name=_subject_name(ssl_object),
    )


def _client_chain(ssl_object: ssl.SSLObject) -> tuple[str, ...]:
    chain = getattr(ssl_object, "get_verified_chain", None)  # Python 3.13+
    if chain is not None:
        return tuple(ssl.DER_cert_to_PEM_cert(bytes(der)) for der in chain())
    der = ssl_object.getpeercert(binary_form=True)
    return (ssl.DER_cert_to_PEM_cert(der),) if der else ()


def _subject_name(ssl_object: ssl.SSLObject) -> str | None:
    cert = ssl_object.getpeercert()
    if not cert:
        return None
    subject = cert.get("subject", ())
    rdns = []
    for rdn in reversed(subject):  # RFC 4514 §2.1: the last RDN comes first
        attrs = [f"{_RDN_NAMES.get(str(k), str(k))}={_escape(str(v))}" for k, v in rdn]
        rdns.append("+".join(attrs))
    return ",".join(rdns) or None


def _escape(value: str) -> str:
    """RFC 4514 §2.4 escaping of an attribute value."""
    out = "".join(f"\\{c}" if c in ',+"\\<>;=' else c for c in value)
    if out[:1] in ("#", " "):
        out = "\\" + out
    if out.endswith(" "):
        out = out[:-1] + "\\ "
    return out
