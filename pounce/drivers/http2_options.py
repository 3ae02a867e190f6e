"""The options of `.h2()`, importable without the h2 package (the CLI and docs state them).

Defaults are the core's own (`H2Settings`); the ranges are RFC 9113's where
it sets one. The names outside are Granian's ``--http2-*``.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

from pounce.options import option, whole
from pounce.protocols.h2_settings import H2Settings

_CORE = H2Settings()
_MAX = 2**31 - 1  # RFC 9113 §6.5.2: settings values are 31-bit


@dataclass(frozen=True, slots=True, kw_only=True)
class HTTP2Options:
    """The user-facing part of `H2Settings`, with the unit and bounds of each."""

    builder_call = ".h2"
    options_group = "HTTP/2"

    max_concurrent_streams: int = option(
        _CORE.max_concurrent_streams,
        unit="streams",
        name="http2_max_concurrent_streams",
        help="SETTINGS_MAX_CONCURRENT_STREAMS: streams a client may open at once "
        "(h2's, Hypercorn's and nginx's default)",
        check=whole(1, _MAX),
    )
    initial_window_size: int = option(
        _CORE.initial_window_size,
        unit="bytes",
        name="http2_initial_window_size",
        help="request body a client may send per stream before the app reads it (RFC 9113)",
        check=whole(1, _MAX),
    )
    connection_window_size: int = option(
        _CORE.connection_window_size,
        unit="bytes",
        name="http2_connection_window_size",
        help="the same for the whole connection",
        check=whole(65_535, _MAX),
    )
    max_frame_size: int = option(
        _CORE.max_frame_size,
        unit="bytes",
        name="http2_max_frame_size",
        help="SETTINGS_MAX_FRAME_SIZE, largest frame accepted (RFC 9113 §6.5.2: 16384 and up)",
        check=whole(16_384, 2**24 - 1),
    )
    max_header_list_size: int = option(
        _CORE.max_header_list_size,
        unit="bytes",
        name="http2_max_header_list_size",
        help="largest decoded header list (Hypercorn's)",
        check=whole(1024, _MAX),
    )
    max_resets: int = option(
        _CORE.max_resets,
        unit="streams",
        name="http2_max_resets",
        help="reset streams (Rapid Reset, MadeYouReset) beyond half the completed ones "
        "before GOAWAY ENHANCE_YOUR_CALM",
        check=whole(1, _MAX),
    )

    def settings(self) -> H2Settings:
        """The core's settings: these values, the core's defaults for the rest."""
        return H2Settings(**{f.name: getattr(self, f.name) for f in fields(self)})
