"""Listening sockets: TCP (IPv4/IPv6), Unix domain sockets and inherited fds.

Sockets are opened here, once, before any connection is served, so that a
port in use or a bad path is a clear `TransportError` at start-up, and so a
future supervisor can open them once and share them with its workers.
"""

from __future__ import annotations

import contextlib
import ipaddress
import os
import socket
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from pounce.errors import TransportError
from pounce.options import option, whole

DEFAULT_BACKLOG = 2048  # connections; Uvicorn's and Hypercorn's default


def octal_mode(text: str) -> int:
    """A file mode in octal, ``660`` or ``0o660``."""
    return int(text.strip().removeprefix("0o"), 8)


@dataclass(frozen=True, slots=True, kw_only=True)
class ListenOptions:
    """Where the standard preset listens; `.bind()`, `.bind_unix()` and `.bind_fd()` check
    their arguments with these definitions."""

    options_group = "listen"

    host: str = option(
        "127.0.0.1", help="address to bind; an IPv6 literal binds IPv6 only (0.0.0.0: all IPv4)"
    )
    port: int = option(8000, help="TCP port; 0 picks a free one", check=whole(0, 65535))
    uds: str | None = option(None, help="bind this Unix domain socket path instead of TCP")
    uds_mode: int | None = option(
        None,
        help="octal file mode of the --uds socket file, e.g. 660",
        shown="umask",
        parse=octal_mode,
        check=whole(0, 0o777, text="an octal file mode like 660"),
        show=lambda mode: f"0o{mode:o}",
    )
    fd: int | None = option(
        None,
        help="serve on this inherited listening socket instead",
        check=whole(0, text="a non-negative integer"),
    )
    backlog: int = option(
        DEFAULT_BACKLOG,
        unit="connections",
        help="pending connections per listener (Uvicorn's and Hypercorn's default)",
        check=whole(1, text="a positive integer"),
        call=".backlog(n)",
    )
    max_connections: int | None = option(
        None,
        name="limit_max_connections",
        unit="connections",
        help="at most this many open connections per worker; at the cap the worker stops "
        "accepting and the rest wait in the listen backlog (--backlog) until one closes",
        shown="no cap",
        check=whole(1, text="a positive integer"),
        call=".max_connections(n)",
        group="limits",
    )


@dataclass(frozen=True, slots=True)
class TCPBind:
    host: str
    port: int

    def describe(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"tcp {host}:{self.port}"


@dataclass(frozen=True, slots=True)
class UnixBind:
    path: str
    mode: int | None = None
    """File mode for the socket file (e.g. ``0o660``); ``None`` keeps the umask's."""

    def describe(self) -> str:
        return f"unix {self.path}"


@dataclass(frozen=True, slots=True)
class FdBind:
    fd: int

    def describe(self) -> str:
        return f"fd {self.fd}"


Bind = TCPBind | UnixBind | FdBind


def open_socket(
    bind: Bind, backlog: int = DEFAULT_BACKLOG, *, reuse_port: bool = False, listen: bool = True
) -> socket.socket:
    """Open, bind and listen; raise `TransportError` with what to do on failure.

    `reuse_port` (TCP only): set SO_REUSEPORT, so each worker can listen on a
    socket of its own on the same port. `listen=False` only binds: a socket
    that holds the port (and learns it, for port 0) but is handed no connections.
    """
    if isinstance(bind, TCPBind):
        sock = _open_tcp(bind, reuse_port)
    elif isinstance(bind, UnixBind):
        sock = _open_unix(bind)
    else:
        sock = _open_fd(bind)
    if not listen:
        return sock
    try:
        sock.listen(backlog)
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot listen on {bind.describe()}: {exc.strerror}") from exc
    sock.setblocking(False)
    return sock


def _open_tcp(bind: TCPBind, reuse_port: bool = False) -> socket.socket:
    family = socket.AF_INET6 if ":" in bind.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    if family == socket.AF_INET6:
        # An explicit IPv6 bind means IPv6 only; bind 0.0.0.0 as well for both.
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
    try:
        sock.bind((bind.host, bind.port))
    except OSError as exc:
        sock.close()
        hint = "is another server running? pick another --port" if exc.errno == 98 else None
        raise TransportError(
            f"cannot bind {bind.describe()}: {exc.strerror or exc}", hint=hint
        ) from exc
    return sock


def _open_unix(bind: UnixBind) -> socket.socket:
    _remove_stale_socket(bind.path)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        sock.bind(bind.path)
        if bind.mode is not None:
            os.chmod(bind.path, bind.mode)
    except OSError as exc:
        sock.close()
        raise TransportError(f"cannot bind {bind.describe()}: {exc.strerror or exc}") from exc
    return sock


def _remove_stale_socket(path: str) -> None:
    """Remove a socket file left by a dead server; refuse to touch a live one or a file."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if not stat.S_ISSOCK(mode):
        raise TransportError(
            f"cannot bind unix {path}: the path exists and is not a socket",
            hint="remove it or choose another --uds path",
        )
    probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        probe.connect(path)
    except OSError:
        os.unlink(path)  # nobody listens: stale
        return
    finally:
        probe.close()
    raise TransportError(
        f"cannot bind unix {path}: another server is listening on it",
        hint="stop it or choose another --uds path",
    )


def _open_fd(bind: FdBind) -> socket.socket:
    try:
        sock = socket.socket(fileno=bind.fd)
    except OSError as exc:
        raise TransportError(
            f"cannot use inherited fd {bind.fd}: {exc.strerror or exc}",
            hint="pass the number of a listening socket the parent process left open",
        ) from exc
    if sock.type != socket.SOCK_STREAM:
        raise TransportError(f"inherited fd {bind.fd} is not a stream socket")
    return sock


SD_LISTEN_FDS_START = 3  # sd_listen_fds(3): passed sockets start at fd 3


def systemd_fds(
    environ: Mapping[str, str] | None = None, pid: int | None = None
) -> tuple[int, ...]:
    """The listening sockets systemd passed (socket activation), as inherited fds.

    sd_listen_fds(3): ``LISTEN_FDS`` sockets from fd 3 on, meant for the process
    named by ``LISTEN_PID`` — any other process (a child that inherited the
    environment) gets none. The environment is left as it is.
    """
    env = os.environ if environ is None else environ
    try:
        count = int(env.get("LISTEN_FDS", "0"))
        target = int(env.get("LISTEN_PID", "0"))
    except ValueError:
        return ()
    if count < 1 or target != (os.getpid() if pid is None else pid):
        return ()
    return tuple(range(SD_LISTEN_FDS_START, SD_LISTEN_FDS_START + count))


def cleanup(bind: Bind) -> None:
    """Remove what a bind left on disk (the Unix socket file)."""
    if isinstance(bind, UnixBind):
        with contextlib.suppress(OSError):
            os.unlink(bind.path)


def display_address(sock: socket.socket) -> str:
    """How the startup line names a listening socket."""
    name = sock.getsockname()
    if sock.family == socket.AF_UNIX:
        return f"unix:{name}"
    if sock.family == socket.AF_INET6:
        return f"http://[{name[0]}]:{name[1]}"
    return f"http://{name[0]}:{name[1]}"


# Linux's IP_TRANSPARENT and IPV6_TRANSPARENT (not all in the socket module): a listener
# with either takes connections to addresses that are not its own (TPROXY).
_TRANSPARENT = {socket.AF_INET: (socket.IPPROTO_IP, 19), socket.AF_INET6: (socket.IPPROTO_IPV6, 75)}


def listener_address(sock: socket.socket) -> tuple[str, int] | None:
    """The local address of every connection `sock` accepts, where that is one address: a
    TCP listener bound to one IP, on Linux. A connection on it then need not ask the kernel
    for its own (``getsockname``: a system call and an address object per connection).

    None for a wildcard bind (``0.0.0.0``, ``::``: connections to any of the host's
    addresses), a transparent listener (TPROXY hands it other hosts' connections), a Unix
    socket, and elsewhere than Linux (whose transparency this can ask about).
    """
    option = _TRANSPARENT.get(sock.family)
    if option is None or not sys.platform.startswith("linux"):
        return None
    try:
        if sock.getsockopt(*option):
            return None
        host, port = sock.getsockname()[:2]
    except OSError:
        return None
    if ipaddress.ip_address(host.partition("%")[0]).is_unspecified:
        return None
    return (host, port)
