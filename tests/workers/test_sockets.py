"""`Listeners`: one shared socket per bind, or (reuse_port) one per worker."""

from __future__ import annotations

import socket

from pounce.net.binds import TCPBind, UnixBind
from pounce.workers.sockets import Listeners


def _listening(sock: socket.socket) -> bool:
    return bool(sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN))


def test_shared_every_worker_gets_the_same_sockets(tmp_path: object) -> None:
    path = f"{tmp_path}/s.sock"
    listeners = Listeners([TCPBind("127.0.0.1", 0), UnixBind(path)], 16, reuse_port=False)
    try:
        served, own = listeners.for_worker()
        assert served == listeners.sockets and own == []
        assert all(_listening(sock) for sock in served)
        assert listeners.addresses()[1] == f"unix:{path}"
    finally:
        listeners.close()


def test_reuse_port_a_socket_per_worker_on_a_port_held_by_one_that_does_not_listen(
    tmp_path: object,
) -> None:
    path = f"{tmp_path}/s.sock"
    listeners = Listeners([TCPBind("127.0.0.1", 0), UnixBind(path)], 16, reuse_port=True)
    try:
        holder = listeners.sockets[0]
        assert not _listening(holder)  # it must never be handed a connection
        port = holder.getsockname()[1]
        first, own_first = listeners.for_worker()
        second, own_second = listeners.for_worker()
        assert len(own_first) == len(own_second) == 1
        assert first[0] is not second[0]
        assert first[0].getsockname()[1] == second[0].getsockname()[1] == port
        assert all(_listening(sock) for sock in (first[0], second[0]))
        assert first[1] is second[1] is listeners.sockets[1]  # a Unix bind stays shared
        for sock in own_first + own_second:
            sock.close()
    finally:
        listeners.close()
