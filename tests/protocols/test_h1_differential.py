"""Differential tests: `FastH1Core` must be exactly as strict as `H11Core`.

Every input is fed to both cores, split the same way, and the two must agree
on everything the driver can observe: the events of each call (adjacent body
chunks joined), the status of a `RemoteProtocolError`, `must_close`,
`read_paused` and `idle` after each call, the bytes they write back, and what
`receive_eof` gives. Reaching speed by being lenient is a defect (issue 3).

* The corpus holds the request-smuggling and malformed-input vectors: each is
  fed whole, a byte at a time and in seeded random splits.
* Hypothesis generates valid requests from the RFC 9112 grammar, mutates them
  (flipped bytes, inserted CR/LF/SP/NUL/HTAB, duplicated lines, truncation)
  and splits them at random.
* On the send side, random response shapes go through both cores and
  ``h11.Connection(h11.CLIENT)`` reads what each wrote.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import h11
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pounce.asgi.headers import validate_response_headers
from pounce.errors import ASGIContractError, LocalProtocolError, RemoteProtocolError
from pounce.protocols import h1_request_fields
from pounce.protocols.base import ProtocolCore
from pounce.protocols.events import (
    DataReceived,
    Headers,
    InboundEvent,
    OutboundEvent,
    RejectRequest,
    RequestReceived,
    SendData,
    SendInformational,
    SendResponse,
    SendTrailers,
    StreamEnded,
    UpgradeRequested,
)
from pounce.protocols.h1 import H1Limits, H11Core
from pounce.protocols.h1_fast import FastH1Core

CoreFactory = Callable[[H1Limits], ProtocolCore]
CORES: tuple[CoreFactory, CoreFactory] = (H11Core, FastH1Core)

# Small limits keep byte-at-a-time runs quick and put 414/431 within reach.
SMALL = H1Limits(max_incomplete_event_size=512, max_request_line=128)
DEFAULT = H1Limits()

# Sized so this file runs in well under 30 s on a 2-core machine.
SLOW_OK = [HealthCheck.too_slow]


# -- driving a core ---------------------------------------------------------------------


def merge_data(events: Sequence[InboundEvent]) -> list[InboundEvent]:
    """Join adjacent DataReceived and drop empty ones: how a body is split must not matter."""
    merged: list[InboundEvent] = []
    for event in events:
        last = merged[-1] if merged else None
        if isinstance(event, DataReceived):
            if not event.data:
                continue
            if isinstance(last, DataReceived) and last.stream_id == event.stream_id:
                merged[-1] = DataReceived(stream_id=event.stream_id, data=last.data + event.data)
                continue
        merged.append(event)
    return merged


@dataclass
class Driver:
    """Feeds a core as `HTTPDriver` does and writes down everything it can observe.

    `answer_at` says when a request is answered: ``"end"`` once its body is in
    (the usual case), ``"head"`` as soon as its head arrives (an app that does
    not read the body). After each response `receive_data(b"")` fetches a
    pipelined request, as the driver's ``stream_done`` does.
    """

    core: ProtocolCore
    answer_at: str = "end"
    trace: list[object] = field(default_factory=list)
    method: bytes = b""

    def flags(self) -> None:
        core = self.core
        self.trace.append(("flags", core.must_close, core.read_paused, core.idle))

    def feed(self, pieces: Sequence[bytes], *, eof: bool) -> list[object]:
        """Feed every piece (even past `must_close`: the core must stay consistent)."""
        for piece in pieces:
            answered = self.receive(piece)
            # After a response, look for a pipelined request, as `stream_done` does.
            while answered and not self.core.must_close:
                answered = self.receive(b"")
            if answered is None:
                return self.trace
        if eof:
            self.trace.append(("eof", self.core.receive_eof()))
            self.flags()
        return self.trace

    def receive(self, data: bytes) -> bool | None:
        """Feed `data` and answer what it completes; None once a core said no."""
        try:
            events = self.core.receive_data(data)
        except RemoteProtocolError as exc:
            self.rejected(exc)
            return None
        self.trace.append(("events", merge_data(events)))
        self.flags()
        return self.answer(events)

    def rejected(self, exc: RemoteProtocolError) -> None:
        self.trace.append(("rejected", exc.status))
        self.flags()
        # A broken connection stays broken, and EOF on it is only ConnectionLost.
        with pytest.raises(RemoteProtocolError):
            self.core.receive_data(b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")
        self.send(RejectRequest(stream_id=0, status=exc.status, headers=[(b"x-a", b"1")]))
        self.trace.append(("eof", self.core.receive_eof()))
        self.flags()

    def answer(self, events: list[InboundEvent]) -> bool | None:
        """Answer every request `events` complete; None once the core refused to send."""
        answered = False
        for event in events:
            if isinstance(event, UpgradeRequested):
                event = event.request  # as HTTPDriver does with no protocol registered for it
            if isinstance(event, RequestReceived) and event.expects_continue:
                self.send(SendInformational(stream_id=event.stream_id, status=100))
            if isinstance(event, RequestReceived):
                self.method = event.method
            # At the end: a StreamEnded, or the head of a request without a body.
            if (
                isinstance(event, RequestReceived)
                if self.answer_at == "head"
                else isinstance(event, StreamEnded)
                or (isinstance(event, RequestReceived) and not event.has_body)
            ):
                body = b"" if self.method == b"HEAD" else b"ok"
                head = [(b"content-length", b"2")]
                if not self.send(SendResponse(stream_id=event.stream_id, status=200, headers=head)):
                    return None
                if not self.send(SendData(stream_id=event.stream_id, data=body, end_stream=True)):
                    return None
                answered = True
        return answered

    def send(self, event: OutboundEvent) -> bool:
        try:
            self.core.send(event)
        except LocalProtocolError:
            self.trace.append(("local-error", type(event).__name__))
            self.flags()
            return False
        # Header names differ in case only (h11 title-cases those it adds).
        self.trace.append(("wrote", self.core.data_to_send().lower()))
        return True


def run_both(
    pieces: Sequence[bytes], *, limits: H1Limits = SMALL, eof: bool = True, answer_at: str = "end"
) -> None:
    reference, fast = (
        Driver(factory(limits), answer_at).feed(pieces, eof=eof) for factory in CORES
    )
    assert fast == reference


def splits(data: bytes, cuts: Sequence[int]) -> list[bytes]:
    points = sorted({cut % (len(data) + 1) for cut in cuts})
    pieces, start = [], 0
    for point in [*points, len(data)]:
        pieces.append(data[start:point])
        start = point
    return [piece for piece in pieces if piece] or [b""]


def chunkings(data: bytes) -> list[list[bytes]]:
    """Whole, a byte at a time, and three seeded random splits."""
    rng = random.Random(data)
    out = [[data], [data[i : i + 1] for i in range(len(data))] or [b""]]
    for _ in range(3):
        out.append(splits(data, [rng.randrange(len(data) + 1) for _ in range(rng.randint(1, 6))]))
    return out


# -- the corpus -------------------------------------------------------------------------

GET = b"GET / HTTP/1.1\r\nhost: x\r\n\r\n"


def post(*headers: bytes, body: bytes = b"") -> bytes:
    return (
        b"POST / HTTP/1.1\r\nhost: x\r\n" + b"".join(h + b"\r\n" for h in headers) + b"\r\n" + body
    )


def chunked(body: bytes) -> bytes:
    return post(b"transfer-encoding: chunked", body=body)


CORPUS: list[tuple[str, bytes]] = [
    # Content-Length and Transfer-Encoding together, either order (RFC 9112 §6.1).
    ("cl-te", post(b"content-length: 5", b"transfer-encoding: chunked", body=b"0\r\n\r\n")),
    ("te-cl", post(b"transfer-encoding: chunked", b"content-length: 5", body=b"0\r\n\r\n")),
    ("te-cl-zero", post(b"transfer-encoding: chunked", b"content-length: 0", body=b"0\r\n\r\n")),
    # Content-Length forms.
    ("cl-duplicate", post(b"content-length: 5", b"content-length: 5", body=b"hello")),
    ("cl-conflict", post(b"content-length: 5", b"content-length: 6", body=b"hello!")),
    ("cl-list-same", post(b"content-length: 5, 5", body=b"hello")),
    ("cl-list-spaces", post(b"content-length: 5 ,5 , 5", body=b"hello")),
    ("cl-list-differ", post(b"content-length: 5, 6", body=b"hello!")),
    ("cl-list-empty", post(b"content-length: 5,", body=b"hello")),
    ("cl-empty", post(b"content-length:", body=b"")),
    ("cl-plus", post(b"content-length: +5", body=b"hello")),
    ("cl-minus", post(b"content-length: -5", body=b"hello")),
    ("cl-leading-space", post(b"content-length:  5", body=b"hello")),
    ("cl-trailing-space", post(b"content-length: 5 \t", body=b"hello")),
    ("cl-underscore", post(b"content-length: 5_0", body=b"hello")),
    ("cl-hex", post(b"content-length: 0x5", body=b"hello")),
    ("cl-float", post(b"content-length: 5.0", body=b"hello")),
    ("cl-leading-zeros", post(b"content-length: 005", body=b"hello")),
    ("cl-twenty-digits", post(b"content-length: 00000000000000000005", body=b"hello")),
    ("cl-21-digits", post(b"content-length: 000000000000000000005", body=b"hello")),
    ("cl-unicode-digit", post(b"content-length: \xd9\xa5", body=b"hello")),
    ("cl-zero-then-bytes", post(b"content-length: 0", body=b"GET / HTTP/1.1\r\nhost: y\r\n\r\n")),
    ("cl-short-body", post(b"content-length: 10", body=b"hello")),
    ("cl-body-then-request", post(b"content-length: 5", body=b"hello" + GET)),
    # Transfer-Encoding forms.
    ("te-chunked-upper", post(b"transfer-encoding: Chunked", body=b"5\r\nhello\r\n0\r\n\r\n")),
    ("te-gzip-chunked", post(b"transfer-encoding: gzip, chunked", body=b"0\r\n\r\n")),
    ("te-chunked-chunked", post(b"transfer-encoding: chunked, chunked", body=b"0\r\n\r\n")),
    ("te-gzip", post(b"transfer-encoding: gzip", body=b"0\r\n\r\n")),
    ("te-identity", post(b"transfer-encoding: identity", body=b"")),
    ("te-twice", post(b"transfer-encoding: chunked", b"transfer-encoding: chunked")),
    ("te-twice-gzip", post(b"transfer-encoding: gzip", b"transfer-encoding: chunked")),
    ("te-empty", post(b"transfer-encoding:", body=b"")),
    ("te-http10", b"POST / HTTP/1.0\r\ntransfer-encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"),
    # Chunk sizes.
    ("chunk-ok", chunked(b"5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-hex-upper", chunked(b"A\r\n0123456789\r\n0\r\n\r\n")),
    ("chunk-hex-lower", chunked(b"a\r\n0123456789\r\n0\r\n\r\n")),
    ("chunk-plus", chunked(b"+5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-minus", chunked(b"-5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-underscore", chunked(b"5_0\r\nhello\r\n0\r\n\r\n")),
    ("chunk-0x", chunked(b"0x5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-leading-space", chunked(b" 5\r\nhello\r\n0\r\n\r\n")),
    ("chunk-trailing-space", chunked(b"5 \t\r\nhello\r\n0\r\n\r\n")),
    ("chunk-20-digits", chunked(b"00000000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk-21-digits", chunked(b"000000000000000000005\r\nhello\r\n0\r\n\r\n")),
    ("chunk-huge", chunked(b"ffffffffffffffffffff\r\nhello")),
    ("chunk-empty-size", chunked(b"\r\nhello\r\n0\r\n\r\n")),
    ("chunk-size-g", chunked(b"g\r\n0\r\n\r\n")),
    ("chunk-last-zeros", chunked(b"5\r\nhello\r\n000\r\n\r\n")),
    # Chunk extensions.
    ("chunk-ext", chunked(b"5;name=value\r\nhello\r\n0;x\r\n\r\n")),
    ("chunk-ext-quoted", chunked(b'5;a="b;c"\r\nhello\r\n0\r\n\r\n')),
    ("chunk-ext-space", chunked(b"5 ;a\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-cr", chunked(b"5;a\rb\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-lf", chunked(b"5;a\nb\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-nul", chunked(b"5;a\x00b\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-trailing-ows", chunked(b"5;a \t\r\nhello\r\n0\r\n\r\n")),
    # RFC 9112 §7.1.1: no control byte but HTAB in an extension (h11 takes any but LF).
    ("chunk-ext-cr-equals", chunked(b"5;ext=a\rb\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-nul-end", chunked(b"5;a\x00\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-ctl", chunked(b"5;a\x01\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-del", chunked(b"5;a\x7f\r\nhello\r\n0\r\n\r\n")),
    ("chunk-ext-htab-obs-text", chunked(b'5;a="\t\x80"\r\nhello\r\n0\r\n\r\n')),
    ("chunk-last-ext-cr", chunked(b"5\r\nhello\r\n0;a\rb\r\n\r\n")),
    ("chunk-ext-cr-second", chunked(b"1\r\na\r\n5;a\rb\r\nhello\r\n0\r\n\r\n")),
    # Chunk terminators: h11's CVE-2025-43859.
    ("chunk-end-xx", chunked(b"5\r\nhelloXX0\r\n\r\n")),
    ("chunk-end-lf", chunked(b"5\r\nhello\n0\r\n\r\n")),
    ("chunk-end-cr", chunked(b"5\r\nhello\r0\r\n\r\n")),
    ("chunk-end-missing", chunked(b"5\r\nhello0\r\n\r\n")),
    ("chunk-end-crcr", chunked(b"5\r\nhello\r\r\n0\r\n\r\n")),
    ("chunk-end-smuggle", chunked(b"2\r\nhelloXX0\r\n\r\n" + GET)),
    ("chunk-size-bare-lf", chunked(b"5\nhello\r\n0\r\n\r\n")),
    ("chunk-last-bare-lf", chunked(b"5\r\nhello\r\n0\n\n")),
    ("chunk-last-bare-cr", chunked(b"5\r\nhello\r\n0\r\r\n")),
    ("chunk-truncated", chunked(b"5\r\nhel")),
    # Trailers.
    ("trailer", chunked(b"0\r\nx-t: 1\r\ny-t: 2\r\n\r\n")),
    ("trailer-bare-lf", chunked(b"0\r\nx-t: 1\n\n")),
    ("trailer-bad-name", chunked(b"0\r\nx t: 1\r\n\r\n")),
    ("trailer-nul", chunked(b"0\r\nx-t: a\x00b\r\n\r\n")),
    ("trailer-obs-fold", chunked(b"0\r\nx-t: 1\r\n 2\r\n\r\n")),
    ("trailer-fold-first", chunked(b"0\r\n x-t: 1\r\n\r\n")),
    ("trailer-cl", chunked(b"0\r\ncontent-length: 5\r\n\r\n")),
    ("trailer-bad-cl", chunked(b"0\r\ncontent-length: x\r\n\r\n")),
    ("trailer-cl-conflict", chunked(b"0\r\ncontent-length: 1\r\ncontent-length: 2\r\n\r\n")),
    ("trailer-cl-list", chunked(b"0\r\ncontent-length: 1, 2\r\n\r\n")),
    ("trailer-cl-twice", chunked(b"0\r\nContent-Length: 1\r\ncontent-length: 1\r\n\r\n")),
    ("trailer-empty-bare-lf", chunked(b"5\r\nhello\r\n0\r\n\n")),
    ("trailer-te", chunked(b"0\r\ntransfer-encoding: chunked\r\n\r\n")),
    ("trailer-te-gzip", chunked(b"0\r\ntransfer-encoding: gzip\r\n\r\n")),
    (
        "trailer-te-twice",
        chunked(b"0\r\ntransfer-encoding: chunked\r\ntransfer-encoding: chunked\r\n\r\n"),
    ),
    ("trailer-host", chunked(b"0\r\nhost: a\r\nhost: b\r\n\r\n")),
    ("trailer-then-request", chunked(b"0\r\nx-t: 1\r\n\r\n" + GET)),
    # Line endings.
    ("bare-lf-head", b"GET / HTTP/1.1\nhost: x\n\n"),
    ("bare-lf-mixed", b"GET / HTTP/1.1\r\nhost: x\nx-a: 1\r\n\n"),
    ("bare-lf-end", b"GET / HTTP/1.1\r\nhost: x\r\n\n"),
    ("bare-cr-request-line", b"GET / HTTP/1.1\rhost: x\r\n\r\n"),
    ("bare-cr-in-target", b"GET /a\rb HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("bare-cr-in-value", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r2\r\n\r\n"),
    ("bare-cr-header-end", b"GET / HTTP/1.1\r\nhost: x\rx-a: 1\r\n\r\n"),
    ("cr-cr-lf", b"GET / HTTP/1.1\r\r\nhost: x\r\n\r\n"),
    ("head-ends-cr-cr", b"GET / HTTP/1.1\r\nhost: x\r\n\r\r\n"),
    # obs-fold.
    ("obs-fold", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n 2\r\n\r\n"),
    ("obs-fold-tab", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n\t2\r\n\r\n"),
    ("obs-fold-first-line", b"GET / HTTP/1.1\r\n host: x\r\n\r\n"),
    ("obs-fold-cl", post(b"content-length:", b" 5", body=b"hello")),
    ("obs-fold-bare-lf", b"GET / HTTP/1.1\nhost: x\n x\n\n"),
    ("obs-fold-empty", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\r\n \r\n\r\n"),
    # Header names.
    ("space-before-colon", b"GET / HTTP/1.1\r\nhost : x\r\n\r\n"),
    ("tab-before-colon", b"GET / HTTP/1.1\r\nhost\t: x\r\n\r\n"),
    ("te-space-before-colon", post(b"transfer-encoding : chunked", body=b"0\r\n\r\n")),
    ("name-paren", b"GET / HTTP/1.1\r\nhost: x\r\nx(a): 1\r\n\r\n"),
    ("name-slash", b"GET / HTTP/1.1\r\nhost: x\r\nx/a: 1\r\n\r\n"),
    ("name-at", b"GET / HTTP/1.1\r\nhost: x\r\nx@a: 1\r\n\r\n"),
    ("name-nul", b"GET / HTTP/1.1\r\nhost: x\r\nx\x00a: 1\r\n\r\n"),
    ("name-high-byte", b"GET / HTTP/1.1\r\nhost: x\r\nx\xffa: 1\r\n\r\n"),
    ("name-vt", b"GET / HTTP/1.1\r\nhost: x\r\nx\x0ba: 1\r\n\r\n"),
    ("name-empty", b"GET / HTTP/1.1\r\nhost: x\r\n: 1\r\n\r\n"),
    ("no-colon", b"GET / HTTP/1.1\r\nhost: x\r\nx-a\r\n\r\n"),
    ("name-token-symbols", b"GET / HTTP/1.1\r\nhost: x\r\n!#$%&'*+-.^_`|~: 1\r\n\r\n"),
    # Header values.
    ("value-nul", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\x002\r\n\r\n"),
    ("value-lf", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\n2\r\n\r\n"),
    ("value-vt", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\x0b2\r\n\r\n"),
    ("value-ff", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\x0c2\r\n\r\n"),
    ("value-ctl", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\x012\x7f\r\n\r\n"),
    ("value-obs-text", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: \x80\xff\r\n\r\n"),
    ("value-inner-ws", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1 \t 2\r\n\r\n"),
    ("value-outer-ws", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: \t 1 \t \r\n\r\n"),
    ("value-empty", b"GET / HTTP/1.1\r\nhost: x\r\nx-a:\r\n\r\n"),
    ("value-only-ws", b"GET / HTTP/1.1\r\nhost: x\r\nx-a:  \t \r\n\r\n"),
    ("value-vt-edge", b"GET / HTTP/1.1\r\nhost: x\r\nx-a: 1\x0b\r\n\r\n"),
    # Host.
    ("no-host-11", b"GET / HTTP/1.1\r\n\r\n"),
    ("two-hosts", b"GET / HTTP/1.1\r\nhost: a\r\nhost: b\r\n\r\n"),
    ("two-hosts-same", b"GET / HTTP/1.1\r\nhost: a\r\nHost: a\r\n\r\n"),
    ("host-empty", b"GET / HTTP/1.1\r\nhost:\r\n\r\n"),
    ("host-upper", b"GET / HTTP/1.1\r\nHOST: x\r\n\r\n"),
    ("http10-no-host", b"GET / HTTP/1.0\r\n\r\n"),
    ("http10-two-hosts", b"GET / HTTP/1.0\r\nhost: a\r\nhost: b\r\n\r\n"),
    # RFC 9112 §3.2: Host = uri-host [ ":" port ], else 400.
    ("host-space", b"GET / HTTP/1.1\r\nhost: a b\r\n\r\n"),
    ("host-userinfo", b"GET / HTTP/1.1\r\nhost: user@evil\r\n\r\n"),
    ("host-bad-port", b"GET / HTTP/1.1\r\nhost: a:b\r\n\r\n"),
    ("host-two-ports", b"GET / HTTP/1.1\r\nhost: a:1:2\r\n\r\n"),
    ("host-port", b"GET / HTTP/1.1\r\nhost: localhost:8000\r\n\r\n"),
    ("host-ipv6", b"GET / HTTP/1.1\r\nhost: [::1]:8000\r\n\r\n"),
    ("host-ipv6-bad", b"GET / HTTP/1.1\r\nhost: [::g]\r\n\r\n"),
    ("host-pct", b"GET / HTTP/1.1\r\nhost: caf%C3%A9\r\n\r\n"),
    ("host-pct-bad", b"GET / HTTP/1.1\r\nhost: a%zz\r\n\r\n"),
    ("host-high-byte", b"GET / HTTP/1.1\r\nhost: \xc3\xa9\r\n\r\n"),
    ("host-http10-bad", b"GET / HTTP/1.0\r\nhost: a b\r\n\r\n"),
    ("host-bad-with-body", post(b"content-length: 2", body=b"ab").replace(b"host: x", b"host: @")),
    # Versions and request lines.
    ("http12", b"GET / HTTP/1.2\r\nhost: x\r\n\r\n"),
    ("http12-no-host", b"GET / HTTP/1.2\r\n\r\n"),
    ("http20", b"GET / HTTP/2.0\r\nhost: x\r\n\r\n"),
    ("http20-bad-cl", b"GET / HTTP/2.0\r\ncontent-length: x\r\n\r\n"),
    ("http20-cl-te", b"GET / HTTP/2.0\r\ncontent-length: 1\r\ntransfer-encoding: chunked\r\n\r\n"),
    ("http09", b"GET / HTTP/0.9\r\n\r\n"),
    ("http09-simple", b"GET /\r\n\r\n"),
    ("http-lower", b"GET / http/1.1\r\nhost: x\r\n\r\n"),
    ("http-no-minor", b"GET / HTTP/1\r\nhost: x\r\n\r\n"),
    ("http-two-digit", b"GET / HTTP/10.1\r\nhost: x\r\n\r\n"),
    ("two-spaces", b"GET  / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("trailing-space", b"GET / HTTP/1.1 \r\nhost: x\r\n\r\n"),
    ("tab-separator", b"GET\t/ HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("method-lower", b"get / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("method-odd-token", b"M-!#$%&'*+.^_`|~ / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("method-paren", b"G(T / HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-high-byte", b"GET /\xff HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-star", b"OPTIONS * HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-absolute", b"GET http://a/b?c HTTP/1.1\r\nhost: x\r\n\r\n"),
    # RFC 9112 §3.2.2: the target's authority replaces Host; userinfo or no host is 400.
    ("target-absolute-https-port", b"GET HTTPS://a:8443 HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-absolute-query", b"GET http://a?q HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-absolute-options", b"OPTIONS http://a HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-absolute-http10", b"GET http://a/b HTTP/1.0\r\n\r\n"),
    ("target-absolute-userinfo", b"GET http://u@a/b HTTP/1.1\r\nhost: a\r\n\r\n"),
    ("target-absolute-no-host", b"GET http:///b HTTP/1.1\r\nhost: a\r\n\r\n"),
    ("target-absolute-bad-port", b"GET http://a:b/ HTTP/1.1\r\nhost: a\r\n\r\n"),
    ("target-absolute-bad-host-field", b"GET http://a/ HTTP/1.1\r\nhost: a b\r\n\r\n"),
    ("target-absolute-other-scheme", b"GET ftp://a/b HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("target-relative", b"GET abc HTTP/1.1\r\nhost: x\r\n\r\n"),
    (
        "target-absolute-upgrade",
        b"GET http://a/ws HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n",
    ),
    ("connect-absolute", b"CONNECT http://a/ HTTP/1.1\r\nhost: a\r\n\r\n"),
    ("connect", b"CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n"),
    ("head-pipelined", b"HEAD / HTTP/1.1\r\nhost: x\r\n\r\n" + GET),
    ("connect-then-bytes", b"CONNECT a:443 HTTP/1.1\r\nhost: a:443\r\n\r\n\x16\x03\x01"),
    ("connect-http10-bytes", b"CONNECT a:443 HTTP/1.0\r\n\r\nxyz"),
    ("upgrade", b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: websocket\r\nconnection: upgrade\r\n\r\n"),
    ("upgrade-pipelined", b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: h2c\r\n\r\n" + GET),
    ("upgrade-empty-list", b"GET / HTTP/1.1\r\nhost: x\r\nupgrade: ,\r\n\r\n"),
    ("tls-hello", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
    ("nul-start", b"\x00GET / HTTP/1.1\r\n\r\n"),
    ("space-start", b" GET / HTTP/1.1\r\nhost: x\r\n\r\n"),
    # Leading blank lines (RFC 9112 §2.2 lets a server skip them; h11 does not).
    ("leading-crlf", b"\r\n" + GET),
    ("leading-lf", b"\n" + GET),
    ("only-crlf", b"\r\n"),
    ("crlf-after-body", post(b"content-length: 2", body=b"ab\r\n") + GET),
    # Pipelining.
    ("pipelined-two", GET + GET),
    (
        "pipelined-three-mixed",
        GET + post(b"content-length: 3", body=b"abc") + chunked(b"1\r\na\r\n0\r\n\r\n"),
    ),
    ("pipelined-after-invalid", b"GET / HTTP/1.1\r\nhost : x\r\n\r\n" + GET),
    ("pipelined-after-bad-chunk", chunked(b"5\r\nhelloXX") + GET),
    ("pipelined-after-close", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n" + GET),
    ("pipelined-after-http10", b"GET / HTTP/1.0\r\n\r\n" + GET),
    ("pipelined-after-keep-alive-10", b"GET / HTTP/1.0\r\nconnection: keep-alive\r\n\r\n" + GET),
    ("pipelined-bad-second", GET + b"GET / HTTP/1.1\r\n\r\n"),
    ("pipelined-partial", GET + b"GET / HT"),
    ("pipelined-garbage", GET + b"\x00\x01"),
    # Connection and Expect.
    ("connection-close", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n"),
    (
        "connection-close-list",
        b"GET / HTTP/1.1\r\nhost: x\r\nconnection: keep-alive, CLOSE\r\n\r\n",
    ),
    ("connection-closed", b"GET / HTTP/1.1\r\nhost: x\r\nconnection: closed\r\n\r\n" + GET),
    ("expect-100", post(b"expect: 100-continue", b"content-length: 3", body=b"abc")),
    ("expect-100-upper", post(b"expect: 100-Continue", b"content-length: 3", body=b"abc")),
    (
        "expect-100-chunked",
        post(b"expect: 100-continue", b"transfer-encoding: chunked", body=b"3\r\nabc\r\n0\r\n\r\n"),
    ),
    ("expect-100-no-body", b"GET / HTTP/1.1\r\nhost: x\r\nexpect: 100-continue\r\n\r\n"),
    ("expect-100-http10", b"POST / HTTP/1.0\r\nexpect: 100-continue\r\ncontent-length: 1\r\n\r\na"),
    ("expect-other", post(b"expect: something", b"content-length: 1", body=b"a")),
    # EOF mid-request (each chunking also ends in receive_eof).
    ("eof-mid-head", b"GET / HTTP/1.1\r\nhost: x\r\n"),
    ("eof-mid-request-line", b"GET / HTT"),
    ("eof-mid-body", post(b"content-length: 10", body=b"abc")),
    ("eof-mid-chunk", chunked(b"5\r\nhe")),
    ("eof-mid-trailer", chunked(b"0\r\nx-t: 1\r\n")),
    ("eof-after-cr", b"GET / HTTP/1.1\r\nhost: x\r\n\r"),
    ("empty", b""),
]


@pytest.mark.parametrize("data", [pytest.param(data, id=name) for name, data in CORPUS])
@pytest.mark.parametrize("answer_at", ["end", "head"])
def test_corpus(data: bytes, answer_at: str) -> None:
    for pieces in chunkings(data):
        run_both(pieces, answer_at=answer_at)
        run_both(pieces, answer_at=answer_at, eof=False)


BIG_CORPUS: list[tuple[str, bytes]] = [
    ("head-431", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"x-a: " + b"a" * 17000 + b"\r\n\r\n"),
    (
        "head-at-limit",
        b"GET / HTTP/1.1\r\nhost: x\r\nx-a: " + b"a" * (16 * 1024 - 32) + b"\r\n\r\n",
    ),
    ("many-headers-431", b"GET / HTTP/1.1\r\nhost: x\r\n" + b"x-a: 1\r\n" * 3000 + b"\r\n"),
    ("line-414", b"GET /" + b"a" * 9000 + b" HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("line-at-limit", b"GET /" + b"a" * (8 * 1024 - 14) + b" HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("line-over-limit", b"GET /" + b"a" * (8 * 1024 - 13) + b" HTTP/1.1\r\nhost: x\r\n\r\n"),
    ("line-414-no-end", b"GET /" + b"a" * 9000),
    ("chunk-header-431", chunked(b"5;" + b"e" * 17000 + b"\r\nhello\r\n0\r\n\r\n")),
    ("trailer-431", chunked(b"0\r\nx-t: " + b"t" * 17000 + b"\r\n\r\n")),
    ("body-large", post(b"content-length: 40000", body=b"b" * 40000)),
    ("pipelined-after-big-body", post(b"content-length: 20000", body=b"b" * 20000) + GET),
]


@pytest.mark.parametrize("data", [pytest.param(data, id=name) for name, data in BIG_CORPUS])
def test_big_corpus_with_default_limits(data: bytes) -> None:
    rng = random.Random(data)
    in_kib = [data[i : i + 1024] for i in range(0, len(data), 1024)]
    for pieces in ([data], in_kib, splits(data, [rng.randrange(len(data)) for _ in range(8)])):
        run_both(pieces, limits=DEFAULT)


# A browser's head (Chromium 156's navigation, as `benchmarks/browser_head.py` has it):
# over `_PLAIN_HEAD_MAX` bytes, so `FastH1Core` splits its fields (`h1_head`).
BROWSER = (
    b"GET /hello HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nConnection: keep-alive\r\n"
    b'sec-ch-ua: "Chromium";v="156", "Not)A;Brand";v="99"\r\nsec-ch-ua-mobile: ?0\r\n'
    b'sec-ch-ua-platform: "Linux"\r\nUpgrade-Insecure-Requests: 1\r\n'
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"
    b" HeadlessChrome/156.0.0.0 Safari/537.36\r\n"
    b"Accept: text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,image/webp,"
    b"image/apng,*/*;q=0.8,application/signed-exchange;v=b3;q=0.7\r\n"
    b"Sec-Fetch-Site: none\r\nSec-Fetch-Mode: navigate\r\nSec-Fetch-User: ?1\r\n"
    b"Sec-Fetch-Dest: document\r\nAccept-Encoding: gzip, deflate, br, zstd\r\n"
    b"Accept-Language: en-US,en;q=0.9\r\nCookie: a=1; b=2\r\n\r\n"
)
# What breaks (or does not break) a field line: h11's grammar at each byte of the head.
BROWSER_INSERTS = [b"\x00", b"\x0b", b"\x0c", b"\r", b"\n", b" ", b"\t", b":", b"\x7f", b"\xff"]


@pytest.mark.parametrize("insert", BROWSER_INSERTS)
def test_browser_head_with_a_byte_inserted_anywhere(insert: bytes) -> None:
    """The browser's head as sent, then with `insert` at every position of its head,
    alone and followed by a second request (pipelined): the same answer from both."""
    run_both([BROWSER], limits=DEFAULT)
    for at in range(len(BROWSER) - 1):
        data = BROWSER[:at] + insert + BROWSER[at:]
        run_both([data + GET], limits=DEFAULT)


def test_browser_head_variants() -> None:
    """Field-level changes to the browser's head: whitespace around values, empty values,
    a body, a second Host, Connection: close, HTTP/1.0, a bare-LF head before it."""
    head, _, _ = BROWSER.partition(b"\r\n\r\n")
    variants = [
        head.replace(b"Accept-Language: ", b"Accept-Language:\t ") + b"\r\n\r\n",
        head.replace(b"?1\r\n", b"?1 \r\n") + b"\r\n\r\n",
        head.replace(b"?1\r\n", b"\r\n") + b"\r\n\r\n",
        head.replace(b"?1\r\n", b"  \r\n") + b"\r\n\r\n",
        head + b"\r\nContent-Length: 5\r\n\r\nhello",
        head + b"\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        head + b"\r\nHost: other\r\n\r\n",
        head.replace(b"keep-alive", b"close") + b"\r\n\r\n",
        head.replace(b"HTTP/1.1", b"HTTP/1.0") + b"\r\n\r\n",
        head.replace(b"Host: 127.0.0.1:8000\r\n", b"") + b"\r\n\r\n",
        head + b"\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx",
        head + b"\r\nUpgrade: websocket\r\n\r\n",
        b"GET / HTTP/1.1\nHost: a\n\n" + BROWSER,
        b"GET / HTTP/1.1\r\nHost: a\n\r\n" + BROWSER,
        head.replace(b"GET /hello", b"GET http://a.example/hello") + b"\r\n\r\n",
        head.replace(b"Cookie", b"Cook ie") + b"\r\n\r\n",
        head.replace(b"Cookie: ", b"Cookie : ") + b"\r\n\r\n",
        head.replace(b"\r\nCookie", b"\r\n Cookie") + b"\r\n\r\n",
    ]
    for data in variants:
        for pieces in chunkings(data):
            run_both(pieces, limits=DEFAULT)
        run_both([data], limits=SMALL)


# -- hypothesis: valid requests and their mutations -------------------------------------

TCHARS = b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
tokens = st.lists(st.sampled_from(list(TCHARS)), min_size=1, max_size=8).map(bytes)
vchars = st.lists(st.integers(0x21, 0x7E), min_size=1, max_size=16).map(bytes)
# h11's field-vchar: anything but NUL and whitespace (controls and obs-text included).
FIELD_VCHARS = [b for b in range(1, 256) if bytes([b]) not in b" \t\n\r\x0b\x0c"]
words = st.lists(st.sampled_from(FIELD_VCHARS), min_size=1, max_size=6).map(bytes)
ows = st.sampled_from([b"", b"", b" ", b"\t", b"  \t"])


@st.composite
def field_values(draw: st.DrawFn) -> bytes:
    parts = draw(st.lists(words, max_size=3))
    inner = b"".join(p + draw(st.sampled_from([b" ", b"\t", b" \t "])) for p in parts[:-1])
    return draw(ows) + inner + (parts[-1] if parts else b"") + draw(ows)


def mixed_case(name: bytes) -> st.SearchStrategy[bytes]:
    return st.sampled_from([name, name.upper(), name.title(), name.capitalize()])


SPECIAL_FIELDS: list[tuple[bytes, list[bytes]]] = [
    (b"connection", [b"close", b"keep-alive", b"Close", b"upgrade", b"keep-alive, close", b"x"]),
    (b"expect", [b"100-continue", b"100-CONTINUE", b"nothing"]),
    (b"upgrade", [b"websocket", b"h2c", b","]),
    (b"content-length", [b"0", b"3", b"3, 3"]),
    (b"transfer-encoding", [b"chunked", b"Chunked", b"gzip"]),
    (b"host", [b"example.com", b"", b"a b", b"u@h", b"[::1]:80", b"h:x"]),
]


@st.composite
def header_lines(draw: st.DrawFn) -> list[bytes]:
    lines = []
    # A few fields (wrk's, curl's: `_PLAIN_HEAD_RE`), or a browser's many (a read
    # over `_PLAIN_HEAD_MAX` bytes: its fields are split, `h1_head.field_lines`).
    for _ in range(draw(st.one_of(st.integers(0, 4), st.integers(10, 18)))):
        if draw(st.booleans()):
            name, values = draw(st.sampled_from(SPECIAL_FIELDS))
            value = draw(st.sampled_from(values))
            lines.append(draw(mixed_case(name)) + b":" + draw(ows) + value + draw(ows))
        else:
            lines.append(draw(tokens) + b":" + draw(field_values()))
    return lines


@st.composite
def chunked_bodies(draw: st.DrawFn) -> bytes:
    out = b""
    for data in draw(st.lists(st.binary(min_size=1, max_size=20), max_size=3)):
        size = b"%x" % len(data)
        size = draw(st.sampled_from([size, size.upper(), b"0" + size]))
        ext = draw(st.sampled_from([b"", b"", b";a=b", b";a", b' ;q="x"', b";a\rb", b";\x00"]))
        out += size + ext + draw(ows) + b"\r\n" + data + b"\r\n"
    out += draw(st.sampled_from([b"0", b"000"])) + b"\r\n"
    trailers = draw(
        st.lists(st.builds(lambda n, v: n + b":" + v, tokens, field_values()), max_size=2)
    )
    return out + b"".join(t + b"\r\n" for t in trailers) + b"\r\n"


@st.composite
def requests(draw: st.DrawFn) -> bytes:
    method = draw(st.one_of(st.sampled_from([b"GET", b"POST", b"HEAD", b"CONNECT"]), tokens))
    target = draw(st.one_of(st.just(b"/"), vchars, st.just(b"http://a.example/p?q")))
    version = draw(st.sampled_from([b"1.1", b"1.1", b"1.1", b"1.0"]))
    eol = draw(st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n"]))
    lines = draw(header_lines())
    if version == b"1.1" and draw(st.integers(0, 9)):
        lines.insert(draw(st.integers(0, len(lines))), b"Host: example.com")
    framing = draw(st.sampled_from(["none", "length", "chunked"]))
    body = b""
    if framing == "length":
        body = draw(st.binary(max_size=30))
        lines.append(b"Content-Length: %d" % len(body))
    elif framing == "chunked":
        lines.append(b"Transfer-Encoding: chunked")
        body = draw(chunked_bodies())
    head = method + b" " + target + b" HTTP/" + version + eol
    return head + b"".join(line + eol for line in lines) + eol + body


INSERTS = [
    *(b"\r", b"\n", b" ", b"\x00", b"\t", b"\r\n", b"\r\n ", b"\n\n"),
    *(b"\x0b", b"\x0c", b":", b" \r\n", b"\t\r\n", b"\r\nX:", b"\r\n:"),
]


@st.composite
def mutated(draw: st.DrawFn, data: bytes) -> bytes:
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(data)))
        kind = draw(st.sampled_from(["flip", "insert", "delete", "dup-line", "truncate"]))
        if kind == "flip" and at < len(data):
            data = data[:at] + bytes([draw(st.integers(0, 255))]) + data[at + 1 :]
        elif kind == "insert":
            data = data[:at] + draw(st.sampled_from(INSERTS)) + data[at:]
        elif kind == "delete":
            data = data[:at] + data[at + 1 :]
        elif kind == "dup-line":
            lines = data.split(b"\n")
            index = draw(st.integers(0, len(lines) - 1))
            lines.insert(index, lines[index])
            data = b"\n".join(lines)
        elif kind == "truncate":
            data = data[:at]
    return data


pipelines = st.lists(requests(), min_size=1, max_size=3).map(b"".join)
cut_lists = st.lists(st.integers(0, 1000), max_size=10)
answer_times = st.sampled_from(["end", "end", "head"])
limit_sets = st.sampled_from([SMALL, DEFAULT])


@settings(max_examples=500, deadline=None, suppress_health_check=SLOW_OK)
@given(data=pipelines, cuts=cut_lists, eof=st.booleans(), answer_at=answer_times, limits=limit_sets)
def test_valid_requests(
    data: bytes, cuts: list[int], eof: bool, answer_at: str, limits: H1Limits
) -> None:
    run_both(splits(data, cuts), limits=limits, eof=eof, answer_at=answer_at)


@settings(max_examples=600, deadline=None, suppress_health_check=SLOW_OK)
@given(
    data=pipelines.flatmap(mutated),
    cuts=cut_lists,
    eof=st.booleans(),
    answer_at=answer_times,
    limits=limit_sets,
)
def test_mutated_requests(
    data: bytes, cuts: list[int], eof: bool, answer_at: str, limits: H1Limits
) -> None:
    run_both(splits(data, cuts), limits=limits, eof=eof, answer_at=answer_at)


@settings(max_examples=300, deadline=None, suppress_health_check=SLOW_OK)
@given(data=st.one_of(pipelines, pipelines.flatmap(mutated)), cuts=cut_lists)
def test_remembered_field_blocks_answer_as_h11(data: bytes, cuts: list[int]) -> None:
    """A head's field block read before (`h1_request_fields`) answers as it did the first
    time, which is h11's answer: whole and split, the memo cold, then warm."""
    h1_request_fields._BLOCKS.clear()
    run_both([data], limits=DEFAULT)
    run_both([data], limits=DEFAULT)
    run_both(splits(data, cuts), limits=DEFAULT)


# -- hypothesis: the send side ----------------------------------------------------------


@dataclass(frozen=True)
class Exchange:
    """One request (as both cores receive it) and the app's answer to it."""

    method: bytes
    version: bytes
    request_fields: list[bytes]
    request_body: int
    events: list[OutboundEvent]

    def request(self) -> bytes:
        lines = [self.method + b" / HTTP/" + self.version, b"host: example.com"]
        lines += self.request_fields
        if self.request_body:
            lines.append(b"content-length: %d" % self.request_body)
        return b"\r\n".join(lines) + b"\r\n\r\n" + b"q" * self.request_body


REQUEST_FIELDS = [b"connection: close", b"expect: 100-continue", b"upgrade: websocket"]
# Fields an app may hand over, and fields that would split the response (both refuse).
APP_FIELDS: list[tuple[bytes, bytes]] = [
    (b"content-type", b"text/plain"),
    (b"x-empty", b""),
    (b"x-inner", b"a \t b"),
    (b"x-ctl", b"\x01\x7f\x80\xff"),
    (b"x-colon", b"a: b"),
    (b"connection", b"keep-alive"),
    (b"connection", b"close, upgrade"),
    (b"connection", b"closed"),
    (b"connection", b"Close"),
    (b"transfer-encoding", b"Chunked"),
    (b"transfer-encoding", b"gzip"),
    (b"content-length", b"x"),
    (b"x-crlf", b"a\r\nx-injected: 1"),
    (b"x-lf", b"a\nb"),
    (b"x-cr", b"a\rb"),
    (b"x-nul", b"a\x00b"),
    (b"x\r\ny", b"v"),
    (b"x\x00", b"v"),
]
# Fields h11 refuses that FastH1Core leaves to the ASGI seam (they cannot split a
# response; `pounce.asgi.headers` refuses or normalizes every one before a core sees it).
ODD_FIELDS: list[tuple[bytes, bytes]] = [
    (b"X-Upper", b"v"),
    (b"Content-Length", b"0"),
    (b"x-lead", b" a"),
    (b"x-trail", b"a\t"),
    (b"x-vt", b"a\x0bb"),
    (b"x-ff", b"a\x0cb"),
    (b"bad name", b"v"),
    (b"a: b", b"c"),
    (b"a:", b"c"),
    (b"", b"v"),
]
LENGTHS = ["none", "exact", "exact", "more", "less", "list", "twice", "conflict", "chunked", "both"]


def framing_fields(kind: str, size: int) -> Headers:
    """The framing fields an app states for a body of `size` bytes."""
    n = b"%d" % size
    return {
        "none": [],
        "exact": [(b"content-length", n)],
        "more": [(b"content-length", b"%d" % (size + 1))],
        "less": [(b"content-length", b"%d" % max(size - 1, 0))],
        "list": [(b"content-length", n + b", " + n)],
        "twice": [(b"content-length", n), (b"content-length", n)],
        "conflict": [(b"content-length", n), (b"content-length", n + b"0")],
        "chunked": [(b"transfer-encoding", b"chunked")],
        "both": [(b"transfer-encoding", b"chunked"), (b"content-length", n)],
    }[kind]


# Events sent where they do not belong (before the head, after the end …).
MISPLACED: list[OutboundEvent] = [
    SendData(stream_id=1, data=b"x"),
    SendData(stream_id=1, data=b""),
    SendData(stream_id=1, data=b"", end_stream=True),
    SendResponse(stream_id=1, status=200, headers=[]),
    SendTrailers(stream_id=1, headers=[]),
    SendInformational(stream_id=1, status=103),
]


@st.composite
def exchanges(draw: st.DrawFn) -> Exchange:
    method = draw(st.sampled_from([b"GET", b"GET", b"POST", b"HEAD", b"CONNECT"]))
    status = draw(
        st.one_of(st.sampled_from([200, 204, 304, 999, 199, 1000]), st.integers(200, 599))
    )
    chunks = draw(st.lists(st.binary(max_size=20), max_size=4))
    headers = draw(st.lists(st.sampled_from(APP_FIELDS), max_size=2))
    headers += framing_fields(draw(st.sampled_from(LENGTHS)), sum(map(len, chunks)))
    headers = draw(st.permutations(headers))
    events: list[OutboundEvent] = [
        SendInformational(
            stream_id=1,
            status=code,
            headers=draw(st.lists(st.sampled_from(APP_FIELDS), max_size=1)),
        )
        for code in draw(st.lists(st.sampled_from([100, 101, 102, 103, 200, 99]), max_size=2))
    ]
    events.append(SendResponse(stream_id=1, status=status, headers=headers))
    events.extend(SendData(stream_id=1, data=chunk) for chunk in chunks)
    if draw(st.booleans()):
        trailers = draw(st.lists(st.sampled_from([(b"x-t", b"1"), *APP_FIELDS]), max_size=2))
        events.append(SendTrailers(stream_id=1, headers=trailers))
    else:
        events.append(SendData(stream_id=1, data=draw(st.binary(max_size=5)), end_stream=True))
    fields = draw(st.lists(st.sampled_from(REQUEST_FIELDS), unique=True))
    if method == b"CONNECT":
        # A response after a switch to a CONNECT tunnel crashes h11 (an
        # AttributeError out of H11Core): test_a_response_after_a_switch_is_a_local_error.
        fields = [f for f in fields if not f.startswith(b"upgrade")]
    elif draw(st.integers(0, 4)) == 0:
        extra = draw(st.sampled_from(MISPLACED))
        # A head after the end would answer no request: see
        # test_a_response_without_a_request_is_a_local_error.
        last = len(events) - isinstance(extra, SendResponse)
        events.insert(draw(st.integers(0, last)), extra)
    return Exchange(
        method=method,
        version=draw(st.sampled_from([b"1.1", b"1.1", b"1.0"])),
        request_fields=fields,
        request_body=draw(st.sampled_from([0, 0, 3])),
        events=events,
    )


def respond(core: ProtocolCore, exchange: Exchange) -> tuple[list[object], bytes]:
    """Feed the request, send the answer; what happened and every byte written."""
    seen: list[object] = [merge_data(core.receive_data(exchange.request()))]
    written = b""
    for event in exchange.events:
        try:
            core.send(event)
        except LocalProtocolError:
            seen.append(("local-error", event))
            break
        written += core.data_to_send()
    seen.append(("must_close", core.must_close))
    return seen, written


def read_back(exchange: Exchange, written: bytes, *, eof: bool) -> list[object]:
    """What h11's client makes of the bytes: the semantics, not the spelling."""
    client = h11.Connection(h11.CLIENT)
    headers = [(b"host", b"example.com")]
    headers += [tuple(field.split(b": ")) for field in exchange.request_fields]  # type: ignore[misc]
    if exchange.version == b"1.0":
        headers.append((b"connection", b"close"))
    client.send(h11.Request(method=exchange.method, target=b"/", headers=headers))
    client.receive_data(written)
    if eof:
        client.receive_data(b"")
    out: list[object] = []
    body = b""
    while True:
        try:
            event = client.next_event()
        except h11.RemoteProtocolError as exc:
            out.append(("client-error", str(exc)))
            break
        if event is h11.NEED_DATA or event is h11.PAUSED:
            break
        if isinstance(event, h11.Data):
            body += event.data
            continue
        if isinstance(event, h11.InformationalResponse | h11.Response):
            out.append((type(event).__name__, event.status_code, semantic(event.headers)))
        elif isinstance(event, h11.EndOfMessage):
            out.append(("end", body, semantic(event.headers)))
        else:
            out.append(type(event).__name__)
            break
    return [*out, ("unread", body)]


def semantic(headers: Sequence[tuple[bytes, bytes]]) -> tuple[object, ...]:
    """What a head means: Connection as the set of its tokens, framing fields
    regardless of their place (h11 rewrites both), the rest in order."""
    tokens_seen = frozenset(
        token.strip().lower()
        for name, value in headers
        if name == b"connection"
        for token in value.split(b",")
        if token.strip()
    )
    framing = sorted(pair for pair in headers if pair[0] in FRAMING)
    rest = [pair for pair in headers if pair[0] not in FRAMING and pair[0] != b"connection"]
    return tokens_seen, framing, rest


FRAMING = (b"content-length", b"transfer-encoding")


@settings(max_examples=800, deadline=None, suppress_health_check=SLOW_OK)
@given(exchange=exchanges())
def test_responses(exchange: Exchange) -> None:
    check_exchange(exchange)


def check_exchange(exchange: Exchange) -> None:
    (ref_seen, ref_written), (fast_seen, fast_written) = (
        respond(factory(DEFAULT), exchange) for factory in CORES
    )
    assert fast_seen == ref_seen
    closes = bool(ref_seen[-1] == ("must_close", True))
    assert read_back(exchange, fast_written, eof=closes) == read_back(
        exchange, ref_written, eof=closes
    )


@pytest.mark.parametrize("factory", CORES)
@pytest.mark.parametrize("sent", [b"abc", b"abcdef"])
def test_body_not_matching_content_length_is_a_local_error(
    factory: CoreFactory, sent: bytes
) -> None:
    core = factory(DEFAULT)
    core.receive_data(GET)
    core.send(SendResponse(stream_id=1, status=200, headers=[(b"content-length", b"4")]))
    with pytest.raises(LocalProtocolError):
        core.send(SendData(stream_id=1, data=sent, end_stream=True))
    assert core.must_close


@pytest.mark.parametrize(
    "factory",
    [
        H11Core,
        FastH1Core,
    ],
)
@pytest.mark.parametrize(
    "switch",
    [
        SendInformational(stream_id=1, status=101),
        SendResponse(stream_id=1, status=200, headers=[]),
    ],
    ids=["101", "2xx"],
)
def test_a_response_after_a_switch_is_a_local_error(
    factory: CoreFactory, switch: OutboundEvent
) -> None:
    core = factory(DEFAULT)
    core.receive_data(b"CONNECT a:443 HTTP/1.1\r\nhost: a\r\nupgrade: x\r\n\r\n")
    core.send(switch)
    with pytest.raises(LocalProtocolError):
        core.send(SendResponse(stream_id=1, status=200, headers=[]))


@pytest.mark.parametrize("factory", [H11Core, FastH1Core])
def test_a_response_without_a_request_is_a_local_error(factory: CoreFactory) -> None:
    core = factory(DEFAULT)
    core.receive_data(GET)
    core.send(SendResponse(stream_id=1, status=204, headers=[]))
    core.send(SendData(stream_id=1, data=b"", end_stream=True))
    assert core.idle
    with pytest.raises(LocalProtocolError):
        core.send(SendResponse(stream_id=2, status=200, headers=[]))


@pytest.mark.parametrize("field", ODD_FIELDS, ids=repr)
def test_fields_h11_refuses_never_reach_a_core(field: tuple[bytes, bytes]) -> None:
    """What the ASGI seam lets through, both cores treat alike."""
    try:
        headers = validate_response_headers([field])
    except ASGIContractError:
        return
    exchange = Exchange(
        method=b"GET",
        version=b"1.1",
        request_fields=[],
        request_body=0,
        events=[
            SendResponse(stream_id=1, status=200, headers=headers),
            SendData(stream_id=1, data=b"", end_stream=True),
        ],
    )
    check_exchange(exchange)
