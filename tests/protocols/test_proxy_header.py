"""The PROXY protocol parser: v1 and v2 headers in, `ProxyHeader` out, never a byte too many."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pounce.errors import RemoteProtocolError
from pounce.protocols.proxy_header import (
    V2_SIGNATURE,
    ProxyHeader,
    ProxyHeaderParser,
)


def v2(
    command: int = 1,
    family: int = 0x11,
    addresses: bytes = b"",
    tlvs: bytes = b"",
) -> bytes:
    payload = addresses + tlvs
    return (
        V2_SIGNATURE + bytes([0x20 | command, family]) + struct.pack("!H", len(payload)) + payload
    )


def tlv(kind: int, value: bytes) -> bytes:
    return bytes([kind]) + struct.pack("!H", len(value)) + value


IPV4 = bytes([192, 0, 2, 1]) + bytes([198, 51, 100, 7]) + struct.pack("!HH", 51000, 443)


def drive(data: bytes) -> tuple[ProxyHeader, bytes]:
    """Feed `data` as a transport with exact reads would; return the header and the unread rest."""
    parser = ProxyHeaderParser()
    offset = 0
    while (size := parser.next_read()) > 0:
        chunk = data[offset : offset + size]
        if not chunk:
            raise EOFError("ran out of bytes")
        parser.feed(chunk)
        offset += len(chunk)
    assert parser.header is not None
    return parser.header, data[offset:]


def test_v1_tcp4() -> None:
    header, rest = drive(b"PROXY TCP4 192.0.2.1 198.51.100.7 51000 443\r\nGET / HTTP/1.1\r\n")
    assert header == ProxyHeader(
        version=1, local=False, client=("192.0.2.1", 51000), server=("198.51.100.7", 443)
    )
    assert rest == b"GET / HTTP/1.1\r\n"


def test_v1_tcp6_and_unknown() -> None:
    header, _ = drive(b"PROXY TCP6 2001:db8::1 ::1 1 65535\r\n")
    assert header.client == ("2001:db8::1", 1) and header.server == ("::1", 65535)
    header, rest = drive(b"PROXY UNKNOWN\r\n\x16\x03\x01")
    assert header.local and header.client is None and rest == b"\x16\x03\x01"
    header, _ = drive(b"PROXY UNKNOWN ffff:f...f:ffff ffff:f...f:ffff 65535 65535\r\n")
    assert header.local


@pytest.mark.parametrize(
    "line",
    [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 51000\r\n",
        b"PROXY TCP4 2001:db8::1 198.51.100.7 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 051000 443\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 70000 443\r\n",
        b"PROXY TCP5 192.0.2.1 198.51.100.7 1 2\r\n",
        b"PROXY TCP4 192.0.2.1 198.51.100.7 1 2\n",
        b"PROXY TCP4 " + b"1" * 120 + b"\r\n",
        b"PROXY TCP4 192.0.2.\xff 198.51.100.7 1 2\r\n",
    ],
)
def test_v1_malformed(line: bytes) -> None:
    with pytest.raises((RemoteProtocolError, EOFError)):
        drive(line)


def test_v2_ipv4_with_tlvs() -> None:
    tlvs = tlv(0x01, b"h2") + tlv(0x02, b"example.com") + tlv(0x20, b"\x01" + b"\0" * 4)
    tlvs += tlv(0x04, b"\0" * 3)  # NOOP: skipped
    header, rest = drive(v2(addresses=IPV4, tlvs=tlvs) + b"\x16\x03\x01")
    assert header == ProxyHeader(
        version=2,
        local=False,
        client=("192.0.2.1", 51000),
        server=("198.51.100.7", 443),
        alpn="h2",
        authority="example.com",
        ssl=True,
    )
    assert rest == b"\x16\x03\x01"


def test_v2_ipv6_local_and_unspec() -> None:
    addresses = bytes(15) + b"\x01" + bytes(15) + b"\x02" + struct.pack("!HH", 5, 6)
    header, _ = drive(v2(family=0x21, addresses=addresses))
    assert header.client == ("::1", 5) and header.server == ("::2", 6)
    header, rest = drive(v2(command=0, family=0x00) + b"GET")
    assert header.local and header.client is None and rest == b"GET"
    header, _ = drive(v2(command=0, addresses=IPV4))  # LOCAL: addresses are ignored
    assert header.local and header.client is None


@pytest.mark.parametrize(
    "data",
    [
        V2_SIGNATURE[:-1] + b"X" + b"\x21\x11\x00\x0c" + IPV4,  # signature
        v2(addresses=IPV4)[:12] + b"\x31" + v2(addresses=IPV4)[13:],  # version 3
        v2(addresses=IPV4)[:12] + b"\x22" + v2(addresses=IPV4)[13:],  # command 2
        v2(family=0x41, addresses=IPV4),  # family
        v2(addresses=IPV4[:8]),  # too short for TCP4
        v2(addresses=IPV4, tlvs=b"\x01\x00\x09h2"),  # TLV longer than the header
        v2(addresses=IPV4, tlvs=b"\x01\x00"),  # truncated TLV
        V2_SIGNATURE + b"\x21\x11\xff\xff",  # over the size limit
    ],
)
def test_v2_malformed(data: bytes) -> None:
    with pytest.raises((RemoteProtocolError, EOFError)):
        drive(data + b"\0" * 64)


def test_feeding_more_than_asked_is_a_bug() -> None:
    with pytest.raises(ValueError):
        ProxyHeaderParser().feed(b"PROXY UNKNOWN\r\n")


@given(
    a=st.ip_addresses(v=4),
    b=st.ip_addresses(v=4),
    ports=st.tuples(st.integers(0, 65535), st.integers(0, 65535)),
    rest=st.binary(max_size=64),
    version=st.sampled_from([1, 2]),
)
def test_never_reads_past_the_header(
    a: object, b: object, ports: tuple[int, int], rest: bytes, version: int
) -> None:
    if version == 1:
        data = f"PROXY TCP4 {a} {b} {ports[0]} {ports[1]}\r\n".encode()
    else:
        import ipaddress

        addresses = ipaddress.IPv4Address(str(a)).packed + ipaddress.IPv4Address(str(b)).packed
        data = v2(addresses=addresses + struct.pack("!HH", *ports))
    header, unread = drive(data + rest)
    assert unread == rest
    assert header.client == (str(a), ports[0]) and header.server == (str(b), ports[1])
