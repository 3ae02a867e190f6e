"""UDP sends over real sockets: a QUIC flight through GSO (``UDP_SEGMENT``) and without it.

Each path must hand the receiver exactly the datagrams of the flight, in
order; the GSO path must also do it in fewer system calls (a recording
socket counts them), and fall back when the kernel refuses
(`tests/integration/test_http3_bulk.py` runs an HTTP/3 download over each).
"""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from pounce.net import udp
from pounce.net.udp import DatagramEndpoint, gso_supported, segment_runs

TIMEOUT = 10.0  # seconds: the bound on every network wait here
A = ("127.0.0.1", 1)
B = ("127.0.0.1", 2)


def _probe() -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        return gso_supported(sock)


GSO = _probe()
needs_gso = pytest.mark.skipif(not GSO, reason="the kernel has no UDP_SEGMENT (Linux < 4.18)")


def test_runs_are_one_address_one_size_and_a_shorter_last() -> None:
    flight = [(b"x" * 1350, A)] * 3 + [(b"y" * 700, A)] + [(b"z" * 1350, A)] * 2
    flight += [(b"z" * 1350, B), (b"w" * 1400, B), (b"v" * 90, B)]
    assert segment_runs(flight) == [(0, 4), (4, 6), (6, 7), (7, 9)]


def test_runs_stop_at_the_kernels_limits() -> None:
    many = [(b"x" * 100, A)] * (udp.MAX_SEGMENTS + 1)
    assert segment_runs(many) == [(0, udp.MAX_SEGMENTS), (udp.MAX_SEGMENTS, udp.MAX_SEGMENTS + 1)]
    big = [(b"x" * 30_000, A)] * 3  # two of them make 60 000 bytes: under MAX_GSO_BYTES
    assert segment_runs(big) == [(0, 2), (2, 3)]


class RecordingSocket:
    """A socket whose ``sendmsg`` calls are counted (or fail with `fail`)."""

    def __init__(self, sock: socket.socket, fail: OSError | None = None) -> None:
        self.sock = sock
        self.fail = fail
        self.sendmsg_calls = 0

    def sendmsg(self, *args: Any) -> int:
        self.sendmsg_calls += 1
        if self.fail is not None:
            raise self.fail
        return self.sock.sendmsg(*args)


def flight_to(addr: Any) -> list[tuple[bytes, Any]]:
    """Ten full datagrams, a shorter one, a small one: as aioquic hands them over."""
    full = [bytes([n]) * 1350 for n in range(10)]
    return [(data, addr) for data in [*full, b"s" * 512, b"ack"]]


def send_and_receive(
    gso: bool, fail: OSError | None = None, host: str = "127.0.0.1"
) -> tuple[list[bytes], Any, Any]:
    """Send a flight through a `DatagramEndpoint`; what the receiver read, the socket, the
    endpoint."""

    async def scenario() -> tuple[list[bytes], Any, Any]:
        loop = asyncio.get_running_loop()
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as receiver:
            receiver.bind((host, 0))
            receiver.setblocking(False)
            sender = socket.socket(family, socket.SOCK_DGRAM)
            sender.bind((host, 0))
            sender.setblocking(False)
            recording = RecordingSocket(sender, fail)
            endpoint = DatagramEndpoint(lambda: None, recording, gso=gso)  # type: ignore[arg-type]
            transport, _ = await loop.create_datagram_endpoint(lambda: endpoint, sock=sender)
            flight = flight_to(receiver.getsockname())
            try:
                endpoint.send_batch(flight)
                got = []
                async with asyncio.timeout(TIMEOUT):
                    while len(got) < len(flight):
                        got.append(await loop.sock_recv(receiver, 65536))
            finally:
                transport.close()
            assert got == [data for data, _ in flight]  # each datagram, whole, in order
            return got, recording, endpoint

    return asyncio.run(scenario())


def _has_ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


HOSTS = [
    "127.0.0.1",
    pytest.param("::1", marks=pytest.mark.skipif(not _has_ipv6(), reason="no IPv6 loopback")),
]


@needs_gso
@pytest.mark.parametrize("host", HOSTS)
def test_a_flight_with_gso_is_the_same_datagrams_in_fewer_calls(host: str) -> None:
    _, recording, endpoint = send_and_receive(gso=True, host=host)
    assert recording.sendmsg_calls == 1  # ten full ones and the shorter one; the ACK alone
    assert endpoint.gso


@pytest.mark.parametrize("host", HOSTS)
def test_a_flight_without_gso_goes_through_the_transport(host: str) -> None:
    _, recording, _ = send_and_receive(gso=False, host=host)
    assert recording.sendmsg_calls == 0


@pytest.mark.parametrize("code", [errno.EIO, errno.EINVAL])
def test_a_kernel_that_refuses_gso_turns_it_off_and_loses_nothing(code: int) -> None:
    _, recording, endpoint = send_and_receive(gso=True, fail=OSError(code, "refused"))
    assert recording.sendmsg_calls == 1
    assert not endpoint.gso  # the next flight goes one by one


def test_a_full_socket_buffer_leaves_the_flight_to_the_transport() -> None:
    _, _, endpoint = send_and_receive(gso=True, fail=BlockingIOError(errno.EAGAIN, "full"))
    assert endpoint.gso  # a full buffer says nothing about GSO


def test_without_the_socket_there_is_no_gso() -> None:
    assert not DatagramEndpoint(lambda: None).gso  # type: ignore[arg-type]
