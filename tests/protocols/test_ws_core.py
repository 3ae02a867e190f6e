"""The WebSocket core in memory, against wsproto's CLIENT role, and the upgrade seam.

Bytes in, events out: no sockets, no clock. Frames no client library would
send (unmasked, reserved bits, fragmented control frames, zip bombs) are
built by hand.
"""

from __future__ import annotations

import base64
import hashlib
import struct
import tracemalloc
import zlib
from collections.abc import Callable

import pytest
from wsproto.connection import Connection, ConnectionType
from wsproto.events import BytesMessage, CloseConnection, Ping, Pong, TextMessage
from wsproto.extensions import PerMessageDeflate

from pounce.errors import LocalProtocolError, RemoteProtocolError
from pounce.protocols.base import ProtocolCore
from pounce.protocols.events import (
    RejectRequest,
    RequestReceived,
    SendData,
    SendResponse,
    UpgradeRequested,
)
from pounce.protocols.h1 import H1Limits, H11Core
from pounce.protocols.h1_fast import FastH1Core
from pounce.protocols.ws import (
    AcceptWebSocket,
    CloseReceived,
    CloseWebSocket,
    MessageReceived,
    PongReceived,
    SendMessage,
    SendPing,
    WebSocketCore,
    WebSocketFailed,
    WSSettings,
    WSState,
    check_handshake,
    negotiate_deflate,
    refusal_bytes,
)

KEY = base64.b64encode(b"0123456789abcdef")
MiB = 1024 * 1024
GiB = 1024 * MiB


def request(*extra: tuple[bytes, bytes], method: bytes = b"GET") -> RequestReceived:
    headers = [
        (b"host", b"t"),
        (b"upgrade", b"websocket"),
        (b"connection", b"Upgrade"),
        (b"sec-websocket-key", KEY),
        (b"sec-websocket-version", b"13"),
        *extra,
    ]
    return RequestReceived(
        stream_id=1,
        method=method,
        target=b"/",
        headers=headers,
        http_version="1.1",
        has_body=False,
    )


def opened(
    *extra: tuple[bytes, bytes], settings: WSSettings | None = None, deflate: bool = False
) -> tuple[WebSocketCore, Connection]:
    """An accepted core and a frame-level wsproto client beside it."""
    core = WebSocketCore(check_handshake(request(*extra)), settings)
    core.send(AcceptWebSocket())
    head = core.data_to_send()
    assert head.startswith(b"HTTP/1.1 101 Switching Protocols\r\n")
    extensions = []
    if deflate:
        assert b"sec-websocket-extensions: permessage-deflate" in head
        client_deflate = PerMessageDeflate()
        offer = head.split(b"sec-websocket-extensions: ")[1].split(b"\r\n")[0].decode()
        client_deflate.finalize(offer)
        extensions.append(client_deflate)
    return core, Connection(ConnectionType.CLIENT, extensions=extensions)


def to_client(core: WebSocketCore, client: Connection) -> list[object]:
    client.receive_data(core.data_to_send())
    return list(client.events())


def frame(
    opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0, mask: bool = True
) -> bytes:
    """One frame as a client writes it (RFC 6455 §5.2), length encoded as needed."""
    first = (0x80 if fin else 0) | rsv << 4 | opcode
    size = len(payload)
    if size < 126:
        head = bytes([first, (0x80 if mask else 0) | size])
    elif size < 65536:
        head = bytes([first, (0x80 if mask else 0) | 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, (0x80 if mask else 0) | 127]) + struct.pack("!Q", size)
    if not mask:
        return head + payload
    key = b"\x00\x00\x00\x00"  # a zero mask keeps big payloads cheap to build
    return head + key + payload


# -- the upgrade seam in both HTTP/1.1 cores --------------------------------------------------

CORES: tuple[Callable[[H1Limits], ProtocolCore], ...] = (H11Core, FastH1Core)
UPGRADE_HEAD = (
    b"GET /ws HTTP/1.1\r\nhost: t\r\nupgrade: WebSocket\r\nconnection: keep-alive, Upgrade\r\n"
    b"sec-websocket-key: " + KEY + b"\r\nsec-websocket-version: 13\r\n\r\n"
)


@pytest.mark.parametrize("factory", CORES, ids=["h11", "fast"])
def test_upgrade_is_an_event_with_the_bytes_behind_the_head(
    factory: Callable[[H1Limits], ProtocolCore],
) -> None:
    events = factory(H1Limits()).receive_data(UPGRADE_HEAD + b"\x81\x80frame")
    assert isinstance(events[0], UpgradeRequested)
    assert events[0].protocol == b"websocket"
    assert events[0].trailing_data == b"\x81\x80frame"
    assert events[0].request.target == b"/ws"
    assert len(events) == 1  # no body: complete with its head


@pytest.mark.parametrize("factory", CORES, ids=["h11", "fast"])
@pytest.mark.parametrize(
    "head",
    [
        UPGRADE_HEAD.replace(b"connection: keep-alive, Upgrade\r\n", b""),  # no Connection: upgrade
        UPGRADE_HEAD.replace(b"HTTP/1.1", b"HTTP/1.0"),  # RFC 9110 §7.8: ignored in 1.0
        UPGRADE_HEAD.replace(b"\r\n\r\n", b"\r\ncontent-length: 2\r\n\r\nab"),  # a body
        UPGRADE_HEAD.replace(b"upgrade: WebSocket", b"upgrade: ,"),  # an empty list
    ],
    ids=["no-connection-token", "http-1.0", "with-body", "empty-upgrade"],
)
def test_no_upgrade_event_where_no_switch_is_proposed(
    factory: Callable[[H1Limits], ProtocolCore], head: bytes
) -> None:
    events = factory(H1Limits()).receive_data(head)
    assert isinstance(events[0], RequestReceived)


# -- the handshake ---------------------------------------------------------------------------


def test_handshake_offers_reach_the_app() -> None:
    hs = check_handshake(
        request(
            (b"sec-websocket-protocol", b"chat, superchat"),
            (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"),
        )
    )
    assert hs.subprotocols == ("chat", "superchat")
    assert hs.extension_offers == ("permessage-deflate; client_max_window_bits",)


@pytest.mark.parametrize(
    "change",
    [
        [(b"sec-websocket-key", b"dG9vIHNob3J0")],  # decodes to 9 bytes
        [(b"sec-websocket-key", b"not base64 at all!!!!!!=")],
        [(b"sec-websocket-key", KEY), (b"sec-websocket-key", KEY)],
        [],  # no key at all
    ],
)
def test_bad_key_is_400(change: list[tuple[bytes, bytes]]) -> None:
    base = [h for h in request().headers if h[0] != b"sec-websocket-key"]
    req = RequestReceived(
        stream_id=1, method=b"GET", target=b"/", headers=base + change, http_version="1.1"
    )
    with pytest.raises(RemoteProtocolError) as info:
        check_handshake(req)
    assert info.value.status == 400


@pytest.mark.parametrize("version", [b"8", b"12", b"", b"13, 8"])
def test_bad_version_is_426_with_the_supported_version(version: bytes) -> None:
    base = [h for h in request().headers if h[0] != b"sec-websocket-version"]
    req = RequestReceived(
        stream_id=1,
        method=b"GET",
        target=b"/",
        headers=[*base, (b"sec-websocket-version", version)],
        http_version="1.1",
    )
    with pytest.raises(RemoteProtocolError) as info:
        check_handshake(req)
    assert info.value.status == 426
    answer = refusal_bytes(info.value, [])
    assert answer.startswith(b"HTTP/1.1 426 Upgrade Required\r\n")
    assert b"sec-websocket-version: 13\r\n" in answer


@pytest.mark.parametrize(
    "byte", [b"\r", b"\n", b"\x00", b"\x0b", b"\x0c", b"\x1c", b"\x1d", b"\x1e", b"\x85"]
)
def test_line_break_lookalikes_in_any_header_are_400(byte: bytes) -> None:
    """CVE-2026-44546 (daphne): splitlines() breaks at these; we refuse them."""
    with pytest.raises(RemoteProtocolError) as info:
        check_handshake(request((b"x-a", b"one" + byte + b"two")))
    assert info.value.status == 400


def test_non_get_is_400() -> None:
    with pytest.raises(RemoteProtocolError) as info:
        check_handshake(request(method=b"POST"))
    assert info.value.status == 400


def test_accept_writes_the_rfc_accept_token() -> None:
    core = WebSocketCore(check_handshake(request()))
    core.send(AcceptWebSocket(subprotocol="chat", headers=[(b"x-a", b"1")]))
    head = core.data_to_send()
    # RFC 6455 §4.2.2: base64(SHA-1(key + GUID)).
    guid = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
    token = base64.b64encode(hashlib.sha1(KEY + guid).digest())
    assert b"sec-websocket-accept: " + token + b"\r\n" in head
    assert b"sec-websocket-protocol: chat\r\n" in head
    assert b"x-a: 1\r\n" in head
    assert head.endswith(b"\r\n\r\n")


def test_accept_refuses_header_splitting() -> None:
    core = WebSocketCore(check_handshake(request()))
    with pytest.raises(LocalProtocolError):
        core.send(AcceptWebSocket(headers=[(b"x-a", b"1\r\nx-b: 2")]))


def test_denial_response_then_closed() -> None:
    core = WebSocketCore(check_handshake(request()))
    core.send(SendResponse(stream_id=0, status=401, headers=[(b"connection", b"keep-alive")]))
    core.send(SendData(stream_id=0, data=b"no", end_stream=True))
    out = core.data_to_send()
    assert out.startswith(b"HTTP/1.1 401 Unauthorized\r\n")
    assert b"connection: close\r\n" in out and b"keep-alive" not in out
    assert out.endswith(b"\r\n\r\nno")
    assert core.must_close


def test_reject_before_accept() -> None:
    core = WebSocketCore(check_handshake(request()))
    core.send(RejectRequest(stream_id=0, status=403))
    assert core.data_to_send().startswith(b"HTTP/1.1 403 Forbidden\r\n")
    assert core.must_close


def test_out_of_order_events_are_local_errors() -> None:
    core = WebSocketCore(check_handshake(request()))
    with pytest.raises(LocalProtocolError):
        core.send(SendMessage(data="too early"))
    core.send(AcceptWebSocket())
    with pytest.raises(LocalProtocolError):
        core.send(AcceptWebSocket())


def test_bytes_before_the_accept_wait_and_pause_reading() -> None:
    core = WebSocketCore(check_handshake(request()))
    client = Connection(ConnectionType.CLIENT)
    assert core.receive_data(client.send(TextMessage(data="early"))) == []
    assert core.read_paused
    core.send(AcceptWebSocket())
    assert not core.read_paused
    assert core.receive_data(b"") == [MessageReceived(data="early")]


# -- messages, pings, closing -----------------------------------------------------------------


def test_text_and_binary_messages_both_ways() -> None:
    core, client = opened()
    events = core.receive_data(
        client.send(TextMessage(data="héllo")) + client.send(BytesMessage(data=b"\x00\x01"))
    )
    assert events == [MessageReceived(data="héllo"), MessageReceived(data=b"\x00\x01")]
    core.send(SendMessage(data="back"))
    core.send(SendMessage(data=b"\xff"))
    got = to_client(core, client)
    assert [(type(e), e.data) for e in got] == [(TextMessage, "back"), (BytesMessage, b"\xff")]  # type: ignore[attr-defined]


def test_fragments_make_one_message() -> None:
    core, client = opened()
    data = client.send(TextMessage(data="frag", message_finished=False))
    data += client.send(Ping(payload=b"mid"))  # a control frame between fragments
    data += client.send(TextMessage(data="ment", message_finished=True))
    assert core.receive_data(data) == [MessageReceived(data="fragment")]
    assert to_client(core, client) == [Pong(payload=b"mid")]


def test_pong_is_reported() -> None:
    core, client = opened()
    core.send(SendPing(payload=b"p"))
    (ping,) = to_client(core, client)
    assert isinstance(ping, Ping)
    assert core.receive_data(client.send(ping.response())) == [PongReceived(payload=b"p")]


def test_peer_close_is_echoed_and_closes() -> None:
    core, client = opened()
    events = core.receive_data(client.send(CloseConnection(code=4000, reason="bye")))
    assert events == [CloseReceived(code=4000, reason="bye")]
    assert core.must_close
    (echo,) = to_client(core, client)
    assert isinstance(echo, CloseConnection) and echo.code == 4000
    assert core.receive_data(b"ignored after the close") == []


def test_our_close_waits_for_the_peer() -> None:
    core, client = opened()
    core.send(CloseWebSocket(code=1001, reason="going away"))
    assert core.state is WSState.CLOSING and not core.must_close
    (close,) = to_client(core, client)
    assert isinstance(close, CloseConnection) and close.code == 1001
    core.send(SendPing())  # crossing our close: dropped, not an error
    events = core.receive_data(client.send(close.response()))
    assert events == [CloseReceived(code=1001, reason="going away")]
    assert core.must_close


# -- bad input: 1002, 1007, 1009 ------------------------------------------------------------


@pytest.mark.parametrize(
    "data",
    [
        frame(0x1, b"unmasked", mask=False),  # RFC 6455 §5.1: clients mask every frame
        frame(0x1, b"rsv", rsv=0b100),  # RSV1 without an extension (§5.2)
        frame(0x1, b"rsv", rsv=0b010),
        frame(0x9, b"ping", fin=False),  # fragmented control frame (§5.5)
        frame(0x9, b"x" * 126),  # control frame over 125 bytes (§5.5)
        frame(0x3, b"reserved opcode"),
        frame(0x0, b"continuation with nothing to continue"),
        frame(0x8, b"\x03"),  # close with a one-byte payload
    ],
    ids=[
        "unmasked",
        "rsv1",
        "rsv2",
        "fragmented-ping",
        "big-ping",
        "opcode-3",
        "lone-cont",
        "close-1",
    ],
)
def test_protocol_violations_fail_with_1002(data: bytes) -> None:
    core, client = opened()
    (event,) = core.receive_data(data)
    assert isinstance(event, WebSocketFailed) and event.code == 1002
    assert core.must_close
    (close,) = to_client(core, client)
    assert isinstance(close, CloseConnection) and close.code == 1002


@pytest.mark.parametrize(
    "payloads",
    [[b"\xff\xfe"], [b"ok \xe2\x82", b"\x28"], [b"\xed\xa0\x80"]],  # bad byte, bad split, surrogate
)
def test_invalid_utf8_fails_with_1007(payloads: list[bytes]) -> None:
    core, _ = opened()
    data = b"".join(
        frame(0x1 if i == 0 else 0x0, p, fin=i == len(payloads) - 1) for i, p in enumerate(payloads)
    )
    events = core.receive_data(data)
    assert isinstance(events[-1], WebSocketFailed) and events[-1].code == 1007


def test_message_over_the_limit_is_refused_by_its_header() -> None:
    """CVE-2026-44545 (daphne): a 20 MiB frame is refused before its payload is buffered."""
    core, client = opened(settings=WSSettings(max_size=16 * MiB))
    # 20 MiB announced, 1000 bytes sent.
    head = bytes([0x82, 0x80 | 127]) + struct.pack("!Q", 20 * MiB) + b"\x00\x00\x00\x00"
    (event,) = core.receive_data(head + b"x" * 1000)
    assert isinstance(event, WebSocketFailed) and event.code == 1009
    (close,) = to_client(core, client)
    assert isinstance(close, CloseConnection) and close.code == 1009


def test_fragmented_message_over_the_limit_fails_with_1009() -> None:
    core, _ = opened(settings=WSSettings(max_size=1000))
    data = frame(0x2, b"a" * 600, fin=False) + frame(0x0, b"b" * 401)
    events = core.receive_data(data)
    assert isinstance(events[-1], WebSocketFailed) and events[-1].code == 1009


def test_message_at_the_limit_passes() -> None:
    core, client = opened(settings=WSSettings(max_size=1000))
    data = client.send(BytesMessage(data=b"a" * 600, message_finished=False))
    data += client.send(BytesMessage(data=b"b" * 400))
    assert core.receive_data(data) == [MessageReceived(data=b"a" * 600 + b"b" * 400)]
    # The next message starts from zero again.
    assert core.receive_data(client.send(BytesMessage(data=b"c" * 1000))) == [
        MessageReceived(data=b"c" * 1000)
    ]


# -- permessage-deflate (RFC 7692) -----------------------------------------------------------


def test_deflate_round_trip_with_context_takeover() -> None:
    core, client = opened(
        (b"sec-websocket-extensions", b"permessage-deflate; client_max_window_bits"), deflate=True
    )
    for n in range(3):
        text = f"message {n} " * 100
        assert core.receive_data(client.send(TextMessage(data=text))) == [
            MessageReceived(data=text)
        ]
        core.send(SendMessage(data=text))
        (got,) = to_client(core, client)
        assert isinstance(got, TextMessage) and got.data == text


def test_deflate_no_context_takeover_is_honoured() -> None:
    core, client = opened(
        (
            b"sec-websocket-extensions",
            b"permessage-deflate; client_no_context_takeover; server_no_context_takeover",
        ),
        deflate=True,
    )
    for _ in range(2):
        assert core.receive_data(client.send(TextMessage(data="same" * 50))) == [
            MessageReceived(data="same" * 50)
        ]


@pytest.mark.parametrize(
    "offer",
    [
        "permessage-deflate; unknown_param",
        "permessage-deflate; server_max_window_bits=8",
        "permessage-deflate; client_max_window_bits=abc",
        "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
        "x-webkit-deflate-frame",
    ],
)
def test_unacceptable_deflate_offers_are_declined(offer: str) -> None:
    assert negotiate_deflate((offer,), MiB) is None


def test_the_first_acceptable_offer_wins() -> None:
    result = negotiate_deflate(
        ("permessage-deflate; bogus", "permessage-deflate; server_no_context_takeover"), MiB
    )
    assert result is not None
    assert result[1] == "permessage-deflate; server_no_context_takeover"


def test_deflate_off_declines_every_offer() -> None:
    core = WebSocketCore(
        check_handshake(request((b"sec-websocket-extensions", b"permessage-deflate"))),
        WSSettings(per_message_deflate=False),
    )
    core.send(AcceptWebSocket())
    assert b"sec-websocket-extensions" not in core.data_to_send()


def _deflated(size: int) -> bytes:
    """`size` zero bytes, raw-deflated as permessage-deflate sends them (trailer removed)."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    chunk = bytes(MiB)
    parts = [compressor.compress(chunk) for _ in range(size // MiB)]
    parts.append(compressor.flush(zlib.Z_SYNC_FLUSH)[:-4])
    return b"".join(parts)


def test_zip_bomb_is_refused_with_bounded_memory() -> None:
    """A ~1 MiB frame that inflates to 1 GiB closes 1009; memory stays near the limit.

    wsproto 1.3.2 inflates with no bound (CVE-2018-1000518 class); the core must not.
    """
    bomb = _deflated(GiB)
    assert len(bomb) < 2 * MiB
    core, _ = opened(
        (b"sec-websocket-extensions", b"permessage-deflate"),
        settings=WSSettings(max_size=16 * MiB),
    )
    data = frame(0x2, bomb, rsv=0b100)
    tracemalloc.start()
    try:
        events = core.receive_data(data)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert isinstance(events[-1], WebSocketFailed) and events[-1].code == 1009
    assert peak < 64 * MiB  # the limit (16 MiB) plus buffers, never the 1 GiB


def test_compressed_fragments_over_the_limit_fail_with_1009() -> None:
    data = _deflated(2 * MiB)
    half = len(data) // 2
    core, _ = opened(
        (b"sec-websocket-extensions", b"permessage-deflate"), settings=WSSettings(max_size=MiB)
    )
    stream = frame(0x2, data[:half], fin=False, rsv=0b100) + frame(0x0, data[half:])
    events = core.receive_data(stream)
    assert isinstance(events[-1], WebSocketFailed) and events[-1].code == 1009


def test_compressed_message_at_the_limit_passes() -> None:
    data = _deflated(MiB)
    core, _ = opened(
        (b"sec-websocket-extensions", b"permessage-deflate"), settings=WSSettings(max_size=MiB)
    )
    assert core.receive_data(frame(0x2, data, rsv=0b100)) == [MessageReceived(data=bytes(MiB))]


# -- over HTTP/2 (RFC 8441 §5) ----------------------------------------------------------------


def h2_request(*extra: tuple[bytes, bytes], method: bytes = b"CONNECT") -> RequestReceived:
    headers = [(b"host", b"t"), (b"sec-websocket-version", b"13"), *extra]
    return RequestReceived(
        stream_id=3, method=method, target=b"/ws", headers=headers, http_version="2"
    )


def test_http2_handshake_is_an_extended_connect_without_a_key() -> None:
    handshake = check_handshake(h2_request((b"sec-websocket-protocol", b"chat")))
    assert handshake.http2 and handshake.key == b""
    assert handshake.subprotocols == ("chat",)
    with pytest.raises(RemoteProtocolError) as info:
        check_handshake(h2_request(method=b"GET"))
    assert info.value.status == 400
    headers = [(b"sec-websocket-version", b"8")]
    with pytest.raises(RemoteProtocolError) as info:
        check_handshake(
            RequestReceived(
                stream_id=3, method=b"CONNECT", target=b"/", headers=headers, http_version="2"
            )
        )
    assert info.value.status == 426


def test_http2_accept_is_a_200_head_and_frames_follow_as_bytes() -> None:
    offer = (b"sec-websocket-extensions", b"permessage-deflate")
    core = WebSocketCore(check_handshake(h2_request(offer)))
    core.send(AcceptWebSocket(subprotocol=None, headers=[(b"x-a", b"1")]))
    assert core.data_to_send() == b""  # no 101 in the byte stream
    head = core.take_head()
    assert head is not None
    status, headers, end = head
    assert (status, end) == (200, False)
    assert (b"sec-websocket-extensions", b"permessage-deflate") in headers
    assert (b"x-a", b"1") in headers
    names = {name for name, _ in headers}
    assert not names & {b"upgrade", b"connection", b"sec-websocket-accept"}
    assert core.take_head() is None
    core.send(SendMessage(data="hi"))
    assert core.data_to_send()  # a frame


def test_http2_denial_and_refusal_are_heads() -> None:
    core = WebSocketCore(check_handshake(h2_request()))
    core.send(SendResponse(stream_id=0, status=401, headers=[(b"x-why", b"no")]))
    assert core.take_head() == (401, [(b"x-why", b"no")], False)
    core.send(SendData(stream_id=0, data=b"body", end_stream=True))
    assert core.data_to_send() == b"body"
    assert core.must_close
    core = WebSocketCore(check_handshake(h2_request()))
    core.send(RejectRequest(stream_id=0, status=403))
    assert core.take_head() == (403, [], True)
    assert core.data_to_send() == b""
