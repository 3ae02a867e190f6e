"""The WebSocket core's per-message fast paths give what the general ones give.

`WebSocketCore.send_message` frames a message itself when no extension is
negotiated; the bytes must be exactly wsproto's. `receive_data` takes a
whole one-frame message without `_map`; fragments, interleaved pings and the
size limit (`MessageSizeLimit`, reset at each message's first frame) must
still hold.
"""

from __future__ import annotations

import pytest
from wsproto import ConnectionType
from wsproto.connection import Connection
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage
from wsproto.frame_protocol import CloseReason

from pounce.errors import LocalProtocolError
from pounce.protocols.ws import (
    MESSAGE_TOO_BIG,
    AcceptWebSocket,
    CloseWebSocket,
    Handshake,
    MessageReceived,
    SendMessage,
    WebSocketCore,
    WebSocketFailed,
    WSSettings,
)

KEY = b"dGhlIHNhbXBsZSBub25jZQ=="


def accepted(*offers: str, max_size: int = 1 << 20) -> tuple[WebSocketCore, Connection]:
    handshake = Handshake(key=KEY, subprotocols=(), extension_offers=offers)
    core = WebSocketCore(handshake, WSSettings(max_size=max_size))
    core.send(AcceptWebSocket())
    core.data_to_send()
    return core, Connection(ConnectionType.CLIENT)


def wsproto_frame(data: bytes | str) -> bytes:
    server = Connection(ConnectionType.SERVER)
    event: Message[bytes] | Message[str] = (
        TextMessage(data=data) if isinstance(data, str) else BytesMessage(data=data)
    )
    return server.send(event)


@pytest.mark.parametrize("size", [0, 1, 125, 126, 127, 65535, 65536, 70000])
def test_send_message_frames_as_wsproto_does(size: int) -> None:
    core, client = accepted()
    for data in (bytes(range(256)) * (size // 256) + b"z" * (size % 256), "é" * (size // 2)):
        frame = core.send_message(data)
        assert frame == wsproto_frame(data)
        assert type(frame) is bytes
        client.receive_data(frame)
        (event,) = client.events()
        assert event.data == data


def test_send_message_accepts_bytearray_and_keeps_queued_bytes_first() -> None:
    core, _client = accepted()
    client_ping = Connection(ConnectionType.CLIENT).send(Ping(payload=b"p"))
    assert core.receive_data(client_ping) == []  # the pong is queued, not yet taken
    out = core.send_message(bytearray(b"ba"))
    assert out.startswith(b"\x8a\x01p") and out.endswith(wsproto_frame(b"ba"))
    assert core.data_to_send() == b""


def test_send_message_with_deflate_still_compresses() -> None:
    core, _ = accepted("permessage-deflate")
    frame = core.send_message(b"a" * 1000)
    assert frame[0] & 0x40  # RSV1: compressed
    assert len(frame) < 100


def test_send_message_outside_open_is_refused() -> None:
    handshake = Handshake(key=KEY, subprotocols=(), extension_offers=())
    core = WebSocketCore(handshake)
    with pytest.raises(LocalProtocolError):
        core.send_message(b"before the accept")
    core.send(AcceptWebSocket())
    core.send(CloseWebSocket())
    with pytest.raises(LocalProtocolError):
        core.send_message(b"after our close")
    with pytest.raises(LocalProtocolError):
        core.send(SendMessage(data=b"after our close"))


def test_whole_fragmented_and_interleaved_messages() -> None:
    core, client = accepted()
    data = client.send(BytesMessage(data=b"one"))
    data += client.send(TextMessage(data="tw", message_finished=False))
    data += client.send(Ping(payload=b"x"))
    data += client.send(TextMessage(data="o", message_finished=True))
    data += client.send(TextMessage(data="three"))
    assert core.receive_data(data) == [
        MessageReceived(data=b"one"),
        MessageReceived(data="two"),
        MessageReceived(data="three"),
    ]
    assert core.data_to_send().startswith(b"\x8a\x01x")  # the pong


def test_message_size_limit_counts_fragments_and_resets_per_message() -> None:
    core, client = accepted(max_size=10)
    fits = client.send(BytesMessage(data=b"12345", message_finished=False))
    fits += client.send(Ping(payload=b"p"))
    fits += client.send(BytesMessage(data=b"67890"))
    fits += client.send(BytesMessage(data=b"0123456789"))  # a new message: counted afresh
    assert core.receive_data(fits) == [
        MessageReceived(data=b"1234567890"),
        MessageReceived(data=b"0123456789"),
    ]
    over = client.send(BytesMessage(data=b"123456", message_finished=False))
    over += client.send(BytesMessage(data=b"78901"))
    (failed,) = core.receive_data(over)
    assert isinstance(failed, WebSocketFailed) and failed.code == MESSAGE_TOO_BIG
    client.receive_data(core.data_to_send())
    assert next(e for e in client.events() if isinstance(e, CloseConnection)).code == (
        CloseReason.MESSAGE_TOO_BIG
    )
