"""The options of `.h3()`, importable without aioquic (the CLI and docs state them).

Defaults are the core's own (`H3Settings`); the ranges are RFC 9000's where
it sets one. The names outside are ``--http3-*``, like HTTP/2's.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from pounce.options import option, seconds, whole
from pounce.protocols.h3_settings import H3Settings

_CORE = H3Settings()
_VARINT = 2**62 - 1  # RFC 9000 §16: the largest variable-length integer


def host_port(value: object) -> str | None:
    """``HOST:PORT`` (``[v6]:PORT`` for IPv6), or None; ValueError("must be …") otherwise."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("must be HOST:PORT")
    split_bind(value)
    return value


def split_bind(text: str) -> tuple[str, int]:
    """``"127.0.0.1:8443"`` → ``("127.0.0.1", 8443)``; ``"[::1]:0"`` → ``("::1", 0)``."""
    host, sep, port = text.rpartition(":")
    host = host.removeprefix("[").removesuffix("]")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise ValueError("must be HOST:PORT with a port from 0 to 65535")
    return host, int(port)


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTP3Options:
    """Where HTTP/3 listens, whether the TLS listeners advertise it, and `H3Settings`."""

    builder_call = ".h3"
    options_group = "HTTP/3"

    bind: str | None = option(
        None,
        name="http3_bind",
        help="UDP HOST:PORT to serve HTTP/3 on",
        shown="the TLS listener's host and port",
        convert=host_port,
    )
    alt_svc: bool = option(
        True,
        name="http3_alt_svc",
        help='TLS HTTP/1.1 and HTTP/2 responses carry Alt-Svc: h3=":PORT"; ma=86400',
    )
    max_concurrent_streams: int = option(
        _CORE.max_concurrent_streams,
        unit="streams",
        name="http3_max_concurrent_streams",
        help="initial_max_streams_bidi: requests a client may have open at once",
        check=whole(1, 2**16),
    )
    stream_window: int = option(
        _CORE.stream_window,
        unit="bytes",
        name="http3_stream_window",
        help="request body a client may send per stream before the app reads it",
        check=whole(1024, _VARINT),
    )
    connection_window: int = option(
        _CORE.connection_window,
        unit="bytes",
        name="http3_connection_window",
        help="the same for the whole connection",
        check=whole(16 * 1024, _VARINT),
    )
    idle_timeout: float = option(
        _CORE.idle_timeout,
        unit="s",
        name="http3_idle_timeout",
        help="QUIC max_idle_timeout: a connection silent this long is closed",
        check=seconds(),
    )
    max_datagram_size: int = option(
        _CORE.max_datagram_size,
        unit="bytes",
        name="http3_max_datagram_size",
        help="largest UDP payload sent (RFC 9000 §14: 1200 and up)",
        check=whole(1200, 65_527),
    )
    max_header_list_size: int = option(
        _CORE.max_header_list_size,
        unit="bytes",
        name="http3_max_header_list_size",
        help="largest decoded request head; larger ones are answered 431",
        check=whole(1024, 2**31 - 1),
    )
    max_resets: int = option(
        _CORE.max_resets,
        unit="streams",
        name="http3_max_resets",
        help="reset or malformed streams (Rapid Reset) beyond half the completed ones "
        "before the connection closes with H3_EXCESSIVE_LOAD",
        check=whole(1, 2**31 - 1),
    )

    def settings(self) -> H3Settings:
        """The core's settings: these values, the core's defaults for the rest."""
        own = {f.name for f in fields(H3Settings)}
        return H3Settings(**{f.name: getattr(self, f.name) for f in fields(self) if f.name in own})


@dataclass(frozen=True, slots=True)
class HTTP3Service:
    """What `.h3()` and `.tls()` configured: immutable, shared by every serve."""

    options: HTTP3Options = field(default_factory=HTTP3Options)
    cert: str = ""
    key: str | None = None
    password: str | None = None

    def address(self, tls_listener: tuple[str, int] | None) -> tuple[str, int]:
        """Where to listen: `options.bind`, else the TLS listener's host and port."""
        if self.options.bind is not None:
            return split_bind(self.options.bind)
        if tls_listener is None:
            raise ValueError("HTTP/3 needs http3_bind when the TLS listener is not TCP")
        return tls_listener

    def describe(self) -> str:
        o = self.options
        where = o.bind or "the TLS listener's host and port"
        return (
            f"h3 (udp {where}, max streams {o.max_concurrent_streams}, window "
            f"{o.stream_window} B / connection {o.connection_window} B, idle "
            f"{o.idle_timeout:g} s, datagrams {o.max_datagram_size} B, max header list "
            f"{o.max_header_list_size} B, max resets {o.max_resets}, 0-RTT off"
            f"{', Alt-Svc on the TLS listeners' if o.alt_svc else ''})"
        )


def alt_svc(port: int) -> tuple[bytes, bytes]:
    """RFC 7838 §3: the header that tells a TLS client where HTTP/3 is (a day's worth)."""
    return (b"alt-svc", b'h3=":%d"; ma=86400' % port)
