"""The HTTP/3 core, datagrams in and events out, against aioquic's own client role in memory.

No socket and no clock: datagrams move between the two by hand, at a time
the test chooses. Each of the places where the core reaches into aioquic
(windows credited as the app reads, malformed heads as stream errors,
GOAWAY, the reset budget) is proved here, so an aioquic upgrade that moves
them fails these tests.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

pytest.importorskip("aioquic")

import trustme
from aioquic.h3.connection import H3_ALPN, H3Connection
from aioquic.h3.events import DataReceived as H3Data
from aioquic.h3.events import HeadersReceived
from aioquic.quic.configuration import QuicConfiguration
from aioquic.quic.connection import QuicConnection
from aioquic.quic.events import ConnectionTerminated, StreamReset

from pounce.protocols.events import (
    AcknowledgeData,
    CloseConnection,
    DataReceived,
    InboundEvent,
    RequestReceived,
    SendData,
    SendResponse,
    StreamEnded,
)
from pounce.protocols.events import StreamReset as PounceReset
from pounce.protocols.h3 import (
    H3_EXCESSIVE_LOAD,
    H3_MESSAGE_ERROR,
    H3Core,
    load_credentials,
    read_header,
)
from pounce.protocols.h3_settings import H3Settings

CLIENT = ("10.0.0.1", 4433)
SERVER = ("10.0.0.2", 443)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    root = tmp_path_factory.mktemp("h3pki")
    ca = trustme.CA()
    issued = ca.issue_cert("localhost")
    cert, key, ca_file = root / "cert.pem", root / "key.pem", root / "ca.pem"
    issued.cert_chain_pems[0].write_to_path(str(cert))
    issued.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return cert, key, ca_file


class Pair:
    """A client (aioquic) and our core, joined by hand; `now` moves only when told."""

    def __init__(self, files: tuple[Path, Path, Path], **settings: int) -> None:
        cert, key, ca = files
        config = QuicConfiguration(is_client=True, alpn_protocols=H3_ALPN)
        config.load_verify_locations(str(ca))
        config.server_name = "localhost"
        self.now = 0.0
        self.quic = QuicConnection(configuration=config)
        self.quic.connect(SERVER, now=self.now)
        self.client = H3Connection(self.quic)
        first = self.quic.datagrams_to_send(now=self.now)[0][0]
        header = read_header(first, 8)
        assert header is not None and header.is_initial
        credentials = load_credentials(str(cert), str(key), None)
        self.core = H3Core(credentials, H3Settings(**settings), header.destination_cid)
        self.events: list[InboundEvent] = self.core.receive_datagram(first, CLIENT, self.now)
        self.client_events: list[object] = []
        self.exchange()

    def exchange(self, rounds: int = 6) -> None:
        """Move every datagram both ways until both sides are quiet."""
        for _ in range(rounds):
            if not self.flight(0.001):
                return

    def flight(self, step: float) -> bool:
        """`step` seconds on, then one round of datagrams both ways: did any move?"""
        self.now += step
        moved = False
        for data, _addr in self.core.datagrams_to_send(self.now):
            moved = True
            self.quic.receive_datagram(data, SERVER, self.now)
        while (event := self.quic.next_event()) is not None:
            self.client_events.append(event)
            self.client_events.extend(self.client.handle_event(event))
        for data, _addr in self.quic.datagrams_to_send(self.now):
            moved = True
            self.events += self.core.receive_datagram(data, CLIENT, self.now)
        return moved

    def take(self) -> list[InboundEvent]:
        events, self.events = self.events, []
        return events

    def request(self, path: str = "/", *, end: bool = True) -> int:
        sid = self.quic.get_next_available_stream_id()
        self.client.send_headers(
            sid,
            [
                (b":method", b"POST"),
                (b":scheme", b"https"),
                (b":authority", b"localhost"),
                (b":path", path.encode()),
            ],
            end_stream=end,
        )
        self.exchange()
        return sid


def test_handshake_then_a_request_is_a_request_event(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    assert pair.core.cipher_suite is not None and pair.core.cipher_suite[1].startswith("TLS_")
    pair.take()
    sid = pair.request("/hello")
    events = pair.take()
    assert len(events) == 1 and isinstance(events[0], RequestReceived)
    request = events[0]
    assert (request.stream_id, request.target, request.http_version) == (sid, b"/hello", "3")
    assert (request.method, request.scheme, request.has_body) == (b"POST", b"https", False)
    assert (b"host", b"localhost") in request.headers  # :authority, as HTTP/2's core gives it

    pair.core.send(SendResponse(stream_id=sid, status=200, headers=[(b"connection", b"close")]))
    pair.core.send(SendData(stream_id=sid, data=b"hi", end_stream=True))
    pair.exchange()
    heads = [e for e in pair.client_events if isinstance(e, HeadersReceived)]
    data = b"".join(e.data for e in pair.client_events if isinstance(e, H3Data))
    assert heads[-1].headers == [(b":status", b"200")]  # connection-specific: dropped
    assert data == b"hi"


def test_the_window_opens_as_the_app_reads_not_as_bytes_arrive(
    files: tuple[Path, Path, Path],
) -> None:
    window = 16 * 1024
    pair = Pair(files, stream_window=window)
    sid = pair.request(end=False)
    pair.client.send_data(sid, b"a" * (3 * window), end_stream=False)
    pair.exchange()
    received = sum(len(e.data) for e in pair.take() if isinstance(e, DataReceived))
    assert window - 64 <= received <= window  # one window (less frame headers), no more
    stream = pair.quic._streams[sid]
    assert stream.max_stream_data_remote == window

    pair.core.send(AcknowledgeData(stream_id=sid, size=window))  # the app read it all
    pair.exchange()
    assert stream.max_stream_data_remote >= 2 * window
    more = sum(len(e.data) for e in pair.take() if isinstance(e, DataReceived))
    assert more > 0


def test_malformed_head_is_a_stream_error(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    pair.take()
    sid = pair.quic.get_next_available_stream_id()
    from aioquic.h3.connection import FrameType, encode_frame

    block = pair.client._encode_headers(
        sid, [(b":method", b"GET"), (b":path", b"/"), (b":authority", b"x")]
    )  # no :scheme
    pair.quic.send_stream_data(sid, encode_frame(FrameType.HEADERS, block), end_stream=True)
    pair.exchange()
    assert not pair.take()  # never reached the driver
    resets = [e for e in pair.client_events if isinstance(e, StreamReset)]
    assert [(e.stream_id, e.error_code) for e in resets] == [(sid, H3_MESSAGE_ERROR)]
    assert not any(isinstance(e, ConnectionTerminated) for e in pair.client_events)
    assert pair.core.resets == 1


def test_a_peer_reset_is_a_reset_event(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    sid = pair.request(end=False)
    pair.take()
    pair.quic.reset_stream(sid, 0x10C)
    pair.exchange()
    assert [e for e in pair.take() if isinstance(e, PounceReset)] == [
        PounceReset(stream_id=sid, error_code=0x10C)
    ]


def test_reset_budget_closes_with_excessive_load(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files, max_resets=3)
    for _ in range(5):
        sid = pair.request(end=False)
        pair.quic.reset_stream(sid, 0x10C)
        pair.exchange()
    pair.exchange()
    assert pair.core.excessive_load
    close = pair.quic._close_event  # CONNECTION_CLOSE received (the event comes after draining)
    assert close is not None and close.error_code == H3_EXCESSIVE_LOAD


def test_goaway_names_the_first_stream_not_served(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    first = pair.request()
    pair.core.send(CloseConnection())
    assert pair.core.going_away
    pair.exchange()
    later = pair.request()
    events = pair.take()
    assert [e.stream_id for e in events if isinstance(e, RequestReceived)] == [first]
    resets = [e for e in pair.client_events if isinstance(e, StreamReset)]
    assert [e.stream_id for e in resets] == [later]
    assert later == first + 4


def test_settings_defaults_are_documented_values() -> None:
    s = H3Settings()
    assert dataclasses.asdict(s) == {
        "max_concurrent_streams": 100,
        "stream_window": 256 * 1024,
        "connection_window": 1024 * 1024,
        "idle_timeout": 30.0,
        "max_datagram_size": 1350,
        "max_header_list_size": 64 * 1024,
        "max_resets": 200,
        "connection_id_length": 8,
    }


def test_stream_ended_after_body(files: tuple[Path, Path, Path]) -> None:
    pair = Pair(files)
    sid = pair.request(end=False)
    pair.client.send_data(sid, b"body", end_stream=True)
    pair.exchange()
    events = pair.take()
    assert [type(e) for e in events] == [RequestReceived, DataReceived, StreamEnded]


def test_garbage_datagrams_never_raise(files: tuple[Path, Path, Path]) -> None:
    """Whatever arrives on the UDP port: no header, or a header; and a live connection
    fed garbage drops it (aioquic's own checks), never raising into the driver."""
    import random

    rng = random.Random(9114)
    pair = Pair(files)
    for size in (0, 1, 5, 20, 100, 1200, 1500):
        for _ in range(30):
            data = bytes(rng.getrandbits(8) for _ in range(size))
            read_header(data, 8)
            pair.core.receive_datagram(data, CLIENT, pair.now)
    sid = pair.request("/still-there")
    assert any(isinstance(e, RequestReceived) and e.stream_id == sid for e in pair.take())
