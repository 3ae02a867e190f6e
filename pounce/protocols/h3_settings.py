"""`H3Settings`: the HTTP/3 core's QUIC and HTTP settings, importable without aioquic.

The builder's `.h3()` options (`pounce.drivers.http3_options`) take their
defaults from here, so the CLI and the docs can state them when aioquic is
not installed. Each value says where it comes from.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True, kw_only=True)
class H3Settings:
    """What we advertise in QUIC transport parameters, and the abuse budgets.

    The windows are credited as the app reads the body (as HTTP/2's), not as
    bytes arrive, so they bound what one connection can make us buffer:
    `connection_window` bytes, and `stream_window` per stream.

    0-RTT (TLS early data) is never accepted: a request in 0-RTT can be
    replayed by anyone who recorded it (RFC 9001 §9.2, RFC 8470), and an ASGI
    app cannot tell. No session tickets are issued, so no client can try.
    """

    max_concurrent_streams: int = 100  # request streams; as HTTP/2 (h2's, nginx's default)
    stream_window: int = 256 * KiB  # bytes of unread body per stream (nginx: 64 KiB buffer)
    connection_window: int = 1 * MiB  # bytes of unread body per connection; as HTTP/2
    idle_timeout: float = 30.0  # seconds; QUIC max_idle_timeout (Hypercorn 5, nginx 60)
    max_datagram_size: int = 1350  # bytes of UDP payload we send; Chrome's and quiche's
    max_header_list_size: int = 64 * KiB  # bytes, decoded; as HTTP/2 (Hypercorn's 65 536)
    max_resets: int = 200  # streams reset beyond half the completed ones; as HTTP/2
    connection_id_length: int = 8  # bytes; aioquic's default, how datagrams find a connection
