"""`H2Settings`: the HTTP/2 core's settings, importable without the h2 package.

The builder's `.h2()` options (`pounce.drivers.http2_options`) take their defaults
from here, so the CLI and the docs can state them when h2 is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

KiB = 1024
MiB = 1024 * KiB


@dataclass(frozen=True, slots=True, kw_only=True)
class H2Settings:
    """What we advertise in SETTINGS, and the abuse budgets; each with its precedent.

    `max_resets`: streams a connection may see reset (by the client, or by us
    because of its frames) beyond half the streams it completed; nghttp2 and
    Go bound the same thing. `max_control_backlog`: PING/SETTINGS acks we owe
    while the peer is not reading what we write (Go's ``maxQueuedControlFrames``
    is 10 000). `max_empty_frames`: DATA frames with neither payload nor
    END_STREAM (CVE-2019-9518).
    """

    max_concurrent_streams: int = 100  # streams; h2's, Hypercorn's and nginx's default
    initial_window_size: int = 65_535  # bytes per stream; RFC 9113 §6.9.2 default
    connection_window_size: int = 1 * MiB  # bytes of request body per connection
    max_frame_size: int = 16_384  # bytes; RFC 9113 §4.2 default and minimum
    max_header_list_size: int = 64 * KiB  # bytes, decoded; Hypercorn's 65 536
    max_resets: int = 200  # streams
    max_control_backlog: int = 10_000  # frames
    max_empty_frames: int = 1_000  # frames
    connect_protocols: tuple[bytes, ...] = ()
    """RFC 8441 ``:protocol`` tokens served by extended CONNECT (``websocket``); when any,
    SETTINGS_ENABLE_CONNECT_PROTOCOL is advertised. Set by the builder, not by users."""
