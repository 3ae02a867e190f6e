"""The options of `.proxy_protocol()` and `.proxy_headers()` (docs/proxies.md).

The standard preset feeds both `trusted` lists from one outside option,
``forwarded_allow_ips`` (`pounce.presets.StackOptions`).
"""

from __future__ import annotations

from dataclasses import dataclass

from pounce.layers.proxy.protocol import DEFAULT_HEADER_TIMEOUT
from pounce.layers.proxy.trust import DEFAULT_TRUSTED
from pounce.options import option, seconds

_TRUSTED_HELP = "the trusted proxies: IPs, CIDR networks, * (any peer), unix"


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyProtocolOptions:
    """`.proxy_protocol()`: read a HAProxy PROXY v1/v2 header first on every connection."""

    builder_call = ".proxy_protocol"
    options_group = "proxies"

    trusted: tuple[str, ...] = option(DEFAULT_TRUSTED, help=_TRUSTED_HELP, outside=False)
    header_timeout: float = option(
        DEFAULT_HEADER_TIMEOUT,
        unit="s",
        name="proxy_protocol_timeout",
        help="for the whole PROXY header, then the connection is closed",
        check=seconds(),
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class ProxyHeadersOptions:
    """`.proxy_headers()`: client, scheme and host from a trusted proxy's headers."""

    builder_call = ".proxy_headers"
    options_group = "proxies"

    trusted: tuple[str, ...] = option(DEFAULT_TRUSTED, help=_TRUSTED_HELP, outside=False)
