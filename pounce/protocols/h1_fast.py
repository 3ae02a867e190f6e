"""A fast HTTP/1.1 server core in pure Python, exactly as strict as `H11Core`.

Same interface and events as the h11 core; differential tests feed both the
same bytes and require the same accept/reject decision and the same events.
The speed comes from doing per request what h11 does per line or per header
in C instead: one regex search finds the end of the head, one ``fullmatch``
validates the whole header block with h11's own grammar, one ``findall``
extracts every (name, value) pair, and the response head is a single
``b"".join``. Where a request needs h11's rarer paths (obs-fold, a bare LF),
the line-by-line path below handles it with h11's rules.

Grammar (h11 ``_abnf.py``, RFC 9110/9112) reproduced exactly:

* request line ``method SP target SP HTTP/d.d`` with ``target`` = 1*VCHAR;
* header ``token ":" OWS field-value OWS``, field-value chars ``[^\\x00\\s]``
  with inner ``[ \\t]`` runs; obs-fold lines are joined with one space;
* lines end in CRLF or a bare LF, the head in an empty line;
* chunk header ``1*20HEXDIG [";" ext] OWS CRLF``, chunk data followed by
  exactly CRLF (h11 CVE-2025-43859).

Invariants: at most one request is in flight (the next is parsed only after
the response to this one ends); a response that ends before the request body
was fully read closes the connection.
"""

from __future__ import annotations

import re

from pounce.errors import LocalProtocolError, RemoteProtocolError
from pounce.protocols.events import (
    CloseConnection,
    ConnectionLost,
    DataReceived,
    Headers,
    InboundEvent,
    OutboundEvent,
    RejectRequest,
    RequestReceived,
    ResetStream,
    SendData,
    SendInformational,
    SendResponse,
    SendTrailers,
    StreamEnded,
)
from pounce.protocols.h1 import REASONS, H1Limits, error_response_bytes

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
_FIELD_VALUE = rb"(?:[^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?"
_HEADER_LINE = rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*"

_REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
_HEADER_LINE_RE = re.compile(_HEADER_LINE)
# The whole header block of a CRLF-only head without obs-fold, in one match.
_HEADER_BLOCK_RE = re.compile(rb"(?:" + _HEADER_LINE + rb"\r\n)*")
_HEADER_FINDALL_RE = re.compile(_HEADER_LINE + rb"\r\n")
_BLANK_LINE_RE = re.compile(rb"\n\r?\n")
_OBS_FOLD_RE = re.compile(rb"\n[ \t]")
_CHUNK_HEADER_RE = re.compile(rb"([0-9A-Fa-f]{1,20})(?:;.*)?[ \t]*\r\n")
_CONTENT_LENGTH_RE = re.compile(rb"[0-9]{1,20}")

# Receive states.
_IDLE = 0  # waiting for a request head
_BODY_LENGTH = 1  # reading a Content-Length body
_BODY_CHUNKED = 2  # reading a chunk header or chunk data
_CHUNK_CRLF = 3  # expecting the CRLF after chunk data
_TRAILER = 4  # reading trailer fields after the last chunk
_DONE = 5  # request complete; waiting for the response to finish
_CLOSED = 6  # the peer sent EOF
_ERROR = 7  # the peer broke the protocol

# Response body framing.
_FRAMING_LENGTH = 0
_FRAMING_CHUNKED = 1
_FRAMING_EOF = 2  # HTTP/1.0 client, no length: the body ends when we close

_NO_BODY_STATUSES = frozenset((204, 304))
_SPECIAL = frozenset(
    (b"content-length", b"transfer-encoding", b"host", b"connection", b"expect")
)


def _comma_values(headers: Headers, name: bytes) -> list[bytes]:
    """h11's ``get_comma_header``: lower-cased, comma-split, stripped, non-empty."""
    out: list[bytes] = []
    for key, value in headers:
        if key == name:
            for part in value.lower().split(b","):
                part = part.strip()
                if part:
                    out.append(part)
    return out


def _split_lines(head: bytes) -> list[bytes]:
    """h11's line split of a head that ends in an empty line: LF, optional CR before it."""
    lines = head.split(b"\n")
    lines = [line[:-1] if line.endswith(b"\r") else line for line in lines]
    del lines[-2:]
    return lines


def _decode_header_lines(lines: list[bytes]) -> Headers:
    """Line-by-line header parsing with obs-fold unfolding, as h11 does it."""
    unfolded: list[bytes] = []
    for line in lines:
        if line[:1] in (b" ", b"\t"):
            if not unfolded:
                raise RemoteProtocolError("continuation line at start of headers")
            unfolded[-1] += b" " + line.lstrip(b" \t")
        else:
            unfolded.append(line)
    headers: Headers = []
    for line in unfolded:
        match = _HEADER_LINE_RE.fullmatch(line)
        if match is None:
            raise RemoteProtocolError(f"illegal header line: {line!r}")
        headers.append((match[1], match[2]))
    return headers


def _parse_header_block(block: bytes) -> Headers:
    """Headers of a head; `block` is everything after the request line, blank line included."""
    if block == b"\r\n":
        return []
    if block.endswith(b"\r\n\r\n"):
        end = len(block) - 2
        if _HEADER_BLOCK_RE.fullmatch(block, 0, end) is not None:
            return _HEADER_FINDALL_RE.findall(block, 0, end)
    if block[:1] in (b" ", b"\t") or _OBS_FOLD_RE.search(block) is not None:
        # RFC 9112 §5.2 lets a server refuse obs-fold; a proxy in front may
        # unfold it differently, so a 400 is the answer that cannot be misread.
        raise RemoteProtocolError("obsolete line folding in request head")
    return _decode_header_lines(_split_lines(block))


class FastH1Core:
    """A `ProtocolCore` for HTTP/1.0 and 1.1; see the module docstring."""

    __slots__ = (
        "_body_remaining",
        "_buffer",
        "_chunk_remaining",
        "_client_version",
        "_closing",
        "_expects_continue",
        "_framing",
        "_keep_alive",
        "_limits",
        "_method",
        "_out",
        "_paused",
        "_response_done",
        "_response_remaining",
        "_response_started",
        "_state",
        "_stream_id",
    )

    def __init__(self, limits: H1Limits | None = None) -> None:
        self._limits = limits or H1Limits()
        self._buffer = b""
        self._state = _IDLE
        self._stream_id = 0
        self._out: list[bytes] = []
        self._closing = False
        self._paused = False
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        self._method = b""
        self._client_version = b"1.1"
        self._keep_alive = True
        self._expects_continue = False
        self._body_remaining = 0
        self._chunk_remaining = 0
        self._response_started = False
        self._response_done = False
        self._response_remaining = 0
        self._framing = _FRAMING_LENGTH

    # -- inbound --------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[InboundEvent]:
        if self._state == _ERROR:
            raise RemoteProtocolError("cannot receive data after a protocol error")
        if data:
            if self._state == _CLOSED:
                raise RemoteProtocolError("received data after the end of the stream")
            self._buffer = self._buffer + data if self._buffer else data
        try:
            return self._parse()
        except RemoteProtocolError:
            self._state = _ERROR
            raise

    def receive_eof(self) -> list[InboundEvent]:
        # A request cut off by EOF is not worth an answer: nobody would read it.
        self._state = _CLOSED
        self._closing = True
        return [ConnectionLost(stream_id=self._stream_id)]

    def _parse(self) -> list[InboundEvent]:
        events: list[InboundEvent] = []
        while True:
            state = self._state
            if state == _IDLE:
                if not self._buffer or not self._parse_head(events):
                    break
            elif state == _BODY_LENGTH:
                if not self._read_length_body(events):
                    break
            elif state == _BODY_CHUNKED or state == _CHUNK_CRLF:
                if not self._read_chunked_body(events):
                    break
            elif state == _TRAILER:
                if not self._read_trailer(events):
                    break
            else:
                break
        self._paused = self._state == _DONE and bool(self._buffer)
        if not self._paused and len(self._buffer) > self._limits.max_incomplete_event_size:
            self._raise_too_long()
        return events

    def _raise_too_long(self) -> None:
        raise RemoteProtocolError("Receive buffer too long", status=431)

    def _parse_head(self, events: list[InboundEvent]) -> bool:
        buffer = self._buffer
        match = _BLANK_LINE_RE.search(buffer)
        head_size = len(buffer) if match is None else match.end()
        self._check_head(buffer, head_size)
        if buffer[:1] == b"\n" or buffer[:2] == b"\r\n":
            raise RemoteProtocolError("no request line received")
        if match is None:
            if _OBS_FOLD_RE.search(buffer) is not None:
                raise RemoteProtocolError("obsolete line folding in request head")
            if buffer[0] < 0x21:
                raise RemoteProtocolError("illegal request line")
            return False
        self._buffer = buffer[head_size:]
        line_end = buffer.find(b"\n", 0, head_size)
        request_line = buffer[:line_end]
        if request_line.endswith(b"\r"):
            request_line = request_line[:-1]
        line = _REQUEST_LINE_RE.fullmatch(request_line)
        block = buffer[line_end + 1 : head_size]
        headers = _parse_header_block(block) if line_end + 1 < head_size else []
        if line is None:
            raise RemoteProtocolError(f"illegal request line: {request_line!r}")
        events.append(self._request(line[1], line[2], line[3], headers))
        return True

    def _check_head(self, buffer: bytes, head_size: int) -> None:
        """Size limits on the (possibly incomplete) head: line → 414, whole head → 431."""
        limits = self._limits
        line_end = buffer.find(b"\n", 0, head_size)
        if line_end == -1:
            line_size = head_size
        else:
            line_size = line_end - (buffer[line_end - 1 : line_end] == b"\r")
        if line_size > limits.max_request_line:
            raise RemoteProtocolError("request line too long", status=414)
        if head_size > limits.max_incomplete_event_size:
            raise RemoteProtocolError("request head too large", status=431)

    def _request(
        self, method: bytes, target: bytes, version: bytes, headers: Headers
    ) -> RequestReceived:
        headers = [(name.lower(), value) for name, value in headers]
        length: bytes | None = None
        chunked = False
        host_count = 0
        normalized: Headers = []
        for pair in headers:
            name = pair[0]
            if name not in _SPECIAL:
                normalized.append(pair)
                continue
            value = pair[1]
            if name == b"content-length":
                lengths = {part.strip() for part in value.split(b",")}
                if len(lengths) != 1:
                    raise RemoteProtocolError("conflicting Content-Length headers")
                value = lengths.pop()
                if _CONTENT_LENGTH_RE.fullmatch(value) is None:
                    raise RemoteProtocolError("bad Content-Length")
                if length is None:
                    length = value
                elif length != value:
                    raise RemoteProtocolError("conflicting Content-Length headers")
                else:
                    continue  # an identical duplicate is dropped, as h11 does
            elif name == b"transfer-encoding":
                if chunked:
                    raise RemoteProtocolError("multiple Transfer-Encoding headers", status=501)
                value = value.lower()
                if value != b"chunked":
                    raise RemoteProtocolError(
                        "Only Transfer-Encoding: chunked is supported", status=501
                    )
                chunked = True
            elif name == b"host":
                host_count += 1
            normalized.append((name, value))
        if version == b"1.1" and host_count == 0:
            raise RemoteProtocolError("Missing mandatory Host: header")
        if host_count > 1:
            raise RemoteProtocolError("Found multiple Host: headers")
        self._stream_id += 1
        if version[:2] != b"1.":
            # RFC 9110 §15.6.6: this core only speaks HTTP/1.x.
            raise RemoteProtocolError(f"unsupported HTTP version {version!r}", status=505)
        if chunked and length is not None:
            # RFC 9112 §6.1: a request smuggling vector; h11 would go by
            # Transfer-Encoding and keep the connection open. Refuse it.
            raise RemoteProtocolError("both Content-Length and Transfer-Encoding")
        self._method = method
        self._client_version = version
        keep_alive = version >= b"1.1"
        if keep_alive and b"close" in _comma_values(normalized, b"connection"):
            keep_alive = False
        self._keep_alive = keep_alive
        expects = version >= b"1.1" and b"100-continue" in _comma_values(normalized, b"expect")
        self._expects_continue = expects
        if chunked:
            self._state = _BODY_CHUNKED
            self._chunk_remaining = 0
        else:
            self._body_remaining = int(length) if length is not None else 0
            self._state = _BODY_LENGTH
        return RequestReceived(
            stream_id=self._stream_id,
            method=method,
            target=target,
            headers=normalized,
            http_version="1.0" if version == b"1.0" else "1.1",
            expects_continue=expects,
            has_body=chunked or (length is not None and length != b"0"),
        )

    def _read_length_body(self, events: list[InboundEvent]) -> bool:
        remaining = self._body_remaining
        if remaining:
            buffer = self._buffer
            if not buffer:
                return False
            if len(buffer) <= remaining:
                data, self._buffer = buffer, b""
            else:
                data, self._buffer = buffer[:remaining], buffer[remaining:]
            self._body_remaining = remaining - len(data)
            self._expects_continue = False
            events.append(DataReceived(stream_id=self._stream_id, data=data))
            if self._body_remaining:
                return False
        self._finish_request(events)
        return True

    def _read_chunked_body(self, events: list[InboundEvent]) -> bool:
        if self._state == _CHUNK_CRLF:
            buffer = self._buffer
            take = buffer[:2]
            if take != b"\r\n"[: len(take)]:
                raise RemoteProtocolError(f"malformed chunk footer: {take!r} (expected b'\\r\\n')")
            if len(take) < 2:
                # Keep the partial CR; h11 checks byte by byte as they come.
                return False
            self._buffer = buffer[2:]
            self._state = _BODY_CHUNKED
        if self._chunk_remaining == 0:
            end = self._buffer.find(b"\r\n")
            if end == -1:
                return False
            header = self._buffer[: end + 2]
            match = _CHUNK_HEADER_RE.fullmatch(header)
            if match is None:
                raise RemoteProtocolError(f"illegal chunk header: {header!r}")
            self._buffer = self._buffer[end + 2 :]
            size = int(match[1], 16)
            self._expects_continue = False
            if size == 0:
                self._state = _TRAILER
                return True
            self._chunk_remaining = size
        buffer = self._buffer
        if not buffer:
            return False
        remaining = self._chunk_remaining
        if len(buffer) <= remaining:
            data, self._buffer = buffer, b""
        else:
            data, self._buffer = buffer[:remaining], buffer[remaining:]
        self._chunk_remaining = remaining - len(data)
        events.append(DataReceived(stream_id=self._stream_id, data=data))
        if self._chunk_remaining == 0:
            self._state = _CHUNK_CRLF
        return True

    def _read_trailer(self, events: list[InboundEvent]) -> bool:
        buffer = self._buffer
        if buffer[:1] == b"\n":
            self._buffer = buffer[1:]
        elif buffer[:2] == b"\r\n":
            self._buffer = buffer[2:]
        else:
            match = _BLANK_LINE_RE.search(buffer)
            if match is None:
                return False
            self._buffer = buffer[match.end() :]
            _decode_header_lines(_split_lines(buffer[: match.end()]))
        self._finish_request(events)
        return True

    def _finish_request(self, events: list[InboundEvent]) -> None:
        events.append(StreamEnded(stream_id=self._stream_id))
        self._state = _DONE
        self._expects_continue = False
        if self._response_done:
            self._next_cycle()

    def _next_cycle(self) -> None:
        if self._keep_alive and not self._closing:
            self._reset_cycle()
            self._state = _IDLE
        else:
            self._closing = True

    # -- outbound -------------------------------------------------------------

    def send(self, event: OutboundEvent) -> None:
        if isinstance(event, SendData):
            self._send_data(event.data, event.end_stream)
        elif isinstance(event, SendResponse):
            self._send_head(event.status, event.headers)
        elif isinstance(event, SendInformational):
            if (
                not self._response_started
                and self._client_version >= b"1.1"
                and self._state not in (_IDLE, _ERROR)
            ):
                self._out.append(_status_line(event.status) + _header_lines(event.headers) + b"\r\n")
        elif isinstance(event, SendTrailers):
            self._send_trailers(event.headers)
        elif isinstance(event, RejectRequest):
            self._out.append(error_response_bytes(event.status, event.headers))
            self._closing = True
        elif isinstance(event, ResetStream | CloseConnection):
            self._closing = True

    def _send_head(self, status: int, headers: Headers) -> None:
        if self._response_started or self._state in (_IDLE, _ERROR):
            self._closing = True
            raise LocalProtocolError("cannot send a response now", status=500)
        if not 200 <= status <= 999:
            raise LocalProtocolError(f"invalid final response status {status}", status=500)
        self._response_started = True
        method = self._method
        no_body = (
            status in _NO_BODY_STATUSES
            or method == b"HEAD"
            or (method == b"CONNECT" and 200 <= status < 300)
        )
        length: int | None = None
        chunked = False
        connection_close = False
        kept: Headers = []
        for pair in headers:
            name = pair[0]
            if name == b"content-length":
                if _CONTENT_LENGTH_RE.fullmatch(pair[1]) is None:
                    self._closing = True
                    raise LocalProtocolError(f"bad Content-Length {pair[1]!r}", status=500)
                length = int(pair[1])
            elif name == b"transfer-encoding":
                chunked = True
            elif name == b"connection" and b"close" in pair[1].lower():
                connection_close = True
            kept.append(pair)
        if chunked or length is None:
            kept = [p for p in kept if p[0] not in (b"content-length", b"transfer-encoding")]
            if self._client_version < b"1.1":
                framing = _FRAMING_EOF
                if method != b"HEAD":
                    connection_close = True
            else:
                framing = _FRAMING_CHUNKED
                kept.append((b"transfer-encoding", b"chunked"))
        else:
            framing = _FRAMING_LENGTH
            self._response_remaining = length
        if no_body:
            framing = _FRAMING_LENGTH
            self._response_remaining = 0
        if connection_close or not self._keep_alive:
            self._keep_alive = False
            if not connection_close:
                kept = [p for p in kept if p[0] != b"connection"]
                kept.append((b"connection", b"close"))
        self._framing = framing
        self._out.append(_status_line(status) + _header_lines(kept) + b"\r\n")

    def _send_data(self, data: bytes, end: bool) -> None:
        if not self._response_started or self._response_done:
            self._closing = True
            raise LocalProtocolError("cannot send body data now", status=500)
        framing = self._framing
        if data:
            if framing == _FRAMING_CHUNKED:
                self._out.append(b"%x\r\n%b\r\n" % (len(data), data))
            elif framing == _FRAMING_LENGTH:
                if len(data) > self._response_remaining:
                    self._closing = True
                    raise LocalProtocolError("Too much data for declared Content-Length", status=500)
                self._response_remaining -= len(data)
                self._out.append(data)
            else:
                self._out.append(data)
        if end:
            self._end_response(None)

    def _send_trailers(self, headers: Headers) -> None:
        if self._framing != _FRAMING_CHUNKED and headers:
            self._closing = True
            raise LocalProtocolError("trailers need a chunked response", status=500)
        self._end_response(headers)

    def _end_response(self, trailers: Headers | None) -> None:
        framing = self._framing
        if framing == _FRAMING_CHUNKED:
            self._out.append(b"0\r\n" + _header_lines(trailers or []) + b"\r\n")
        elif framing == _FRAMING_LENGTH and self._response_remaining:
            self._closing = True
            raise LocalProtocolError("Too little data for declared Content-Length", status=500)
        elif framing == _FRAMING_EOF:
            self._closing = True
        self._response_done = True
        if self._state == _DONE:
            self._next_cycle()
        else:
            # The request body was not read to its end: where would the next request start?
            self._closing = True

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data

    # -- state ----------------------------------------------------------------

    @property
    def must_close(self) -> bool:
        return self._closing or self._state == _ERROR

    @property
    def read_paused(self) -> bool:
        return self._paused

    @property
    def idle(self) -> bool:
        return self._state == _IDLE and not self._buffer and not self._response_started


def _status_line(status: int) -> bytes:
    return b"HTTP/1.1 %d %s\r\n" % (status, REASONS.get(status, b""))


def _header_lines(headers: Headers) -> bytes:
    if not headers:
        return b""
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers])
