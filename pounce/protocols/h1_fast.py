"""A fast HTTP/1.1 server core in pure Python, exactly as strict as `H11Core`.

Same interface and events as the h11 core; `tests/protocols/test_h1_differential.py`
feeds both the same bytes and requires the same accept/reject decision (and
status), the same events and flags, and responses that read back the same.
The speed comes from doing per request what h11 does per line or per header in
Python: one regex search finds the end of the head, one ``fullmatch`` validates
the whole header block with h11's own grammar, one ``findall`` extracts every
(name, value) pair, and a response head is written as given unless its framing
needs h11's rewriting. Rarer shapes (bare LF line ends, trailers, odd framing
fields, HTTP/1.0 clients, ``Connection: close``) take slower paths with h11's
rules.

Grammar (h11 ``_abnf.py``, RFC 9110/9112) reproduced exactly:

* request line ``method SP target SP HTTP/d.d`` with ``target`` = 1*VCHAR;
* header ``token ":" OWS field-value OWS``, field-value chars ``[^\\x00\\s]``
  with inner ``[ \\t]`` runs;
* lines end in CRLF or a bare LF, the head in an empty line; obs-fold in the
  head is refused (as `H11Core` does), in trailers unfolded (as h11 does);
* chunk header ``1*20HEXDIG [";" ext] OWS CRLF``, chunk data followed by
  exactly CRLF (h11 CVE-2025-43859); trailer fields obey a head's framing rules.

and, as `H11Core` adds to h11, the rules of `pounce.protocols.h1_syntax`: no
control byte but HTAB in a chunk extension, a Host of ``host[:port]``, an
absolute-form target handed over as origin-form.

Invariants: at most one request is in flight (the next is parsed only after
the response to this one ends); a response that ends before the request body
was fully read closes the connection; after a request that closes the
connection, nothing more is parsed. Outbound fields are taken as `Headers`
documents them (lower-case names), already checked against the field grammar
where the app hands them over (`pounce.asgi.headers`); this core refuses only
what would split a response (CR, LF, NUL), where h11 re-checks everything.
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
    SendDataAside,
    SendInformational,
    SendResponse,
    SendTrailers,
    request_received,
    stream_ended,
)
from pounce.protocols.h1 import REASONS, H1Limits, error_response_bytes, upgrade_event
from pounce.protocols.h1_fields import check_outbound, field_lines
from pounce.protocols.h1_head import field_lines as split_field_lines
from pounce.protocols.h1_request_fields import CONTENT_LENGTH_RE, FieldFacts, field_facts
from pounce.protocols.h1_request_fields import remember as remember_fields
from pounce.protocols.h1_request_fields import remembered as remembered_fields
from pounce.protocols.h1_syntax import CHUNK_HEADER, PLAIN_HOST, check_host, origin_form

_TOKEN = rb"[-!#$%&'*+.^_`|~0-9a-zA-Z]+"
# h11's field-value, ``([^\x00\s]+(?:[ \t]+[^\x00\s]+)*)?``, in a form the regex
# engine runs about a third faster: a field char, then field chars, SP and HTAB
# ending in a field char. (A bytes pattern's \s is exactly SP, HT, LF, VT, FF, CR.)
_FIELD_CHAR = rb"[\x01-\x08\x0e-\x1f\x21-\xff]"  # [^\x00\s]
_FIELD_VALUE = rb"(?:" + _FIELD_CHAR + rb"(?:[\x01-\x09\x0e-\xff]*" + _FIELD_CHAR + rb")?)?"
_HEADER_LINE = rb"(" + _TOKEN + rb"):[ \t]*(" + _FIELD_VALUE + rb")[ \t]*"

_REQUEST_LINE_RE = re.compile(rb"(" + _TOKEN + rb") ([\x21-\x7e]+) HTTP/([0-9]\.[0-9])")
_HEADER_LINE_RE = re.compile(_HEADER_LINE)
# The whole header block of a CRLF-only head without obs-fold, in one match.
_HEADER_BLOCK_RE = re.compile(rb"(?:" + _HEADER_LINE + rb"\r\n)*")
_HEADER_FINDALL_RE = re.compile(_HEADER_LINE + rb"\r\n")
_BLANK_LINE_RE = re.compile(rb"\n\r?\n")
_OBS_FOLD_RE = re.compile(rb"\n[ \t]")
# The common request in one match: an HTTP/1.1 request line (not CONNECT) with
# an origin-form target, CRLF line ends, exactly one Host of a name or IPv4
# address and optional port (`PLAIN_HOST`), and none of the other fields that need care
# (Content-Length, Transfer-Encoding, Expect, Upgrade, a Connection other than
# exactly "keep-alive", which changes nothing in HTTP/1.1, or exactly "close"),
# so no body. Groups: method, target, the fields before Host, "close" if a
# Connection among them said so, Host's value, the fields after, "close" again.
# (A group in a repeat keeps its last match: it is set when any line said close.)
# Whatever it matches, the general path would parse to the same request.
# Possessive repeats: a head that does not match fails at its first field that
# needs care, without backtracking through the fields before it. Methods that
# start with "P" (POST, PUT, PATCH: mostly with a body) fail at their first byte.
# Host first and nothing after it (most clients' order; wrk's whole head) are
# tried before the repeats, which cost more to enter than such a line to match;
# the two field groups are then None instead of empty.
_NOT_SPECIAL = rb"(?!(?i:content-length|transfer-encoding|host|connection|expect|upgrade):)"
_PLAIN_FIELDS = (
    rb"((?:"
    + _NOT_SPECIAL
    + _TOKEN
    + rb":[ \t]*"
    + _FIELD_VALUE
    + rb"[ \t]*\r\n|(?i:connection):[ \t]*(?:(?i:keep-alive)|((?i:close)))[ \t]*\r\n)*+)"
)
_PLAIN_HEAD_RE = re.compile(
    rb"(?!CONNECT |P)("
    + _TOKEN
    + rb") (/[\x21-\x7e]*) HTTP/1\.1\r\n(?:(?=(?i:host):)|"
    + _PLAIN_FIELDS
    + rb")(?i:host):[ \t]*("
    + PLAIN_HOST
    + rb")[ \t]*\r\n(?:\r\n|"
    + _PLAIN_FIELDS
    + rb"\r\n)"
)

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
_FRAMING_SWITCHED = 3  # 101 or 2xx to CONNECT: the bytes are no longer HTTP's

# Protocol switches a request proposes: h11 allows a 101 only after Upgrade,
# and a 2xx to CONNECT turns the connection into a tunnel.
_UPGRADE = 1
_CONNECT = 2

_NO_BODY_STATUSES = frozenset((204, 304))
# A head without fields (its request line alone: an HTTP/1.0 client's).
_NO_FIELDS = FieldFacts((), None, False, None, 0, False, False, False)
# A read this long has its head's fields split (`_split_request`), not matched by
# `_PLAIN_HEAD_RE`, whose repeats cost more per field (curl's and httpx's heads fit).
_PLAIN_HEAD_MAX = 256
# Final status lines, formatted once (immutable after import).
_STATUS_LINES = {status: b"HTTP/1.1 %d %s\r\n" % (status, REASONS[status]) for status in REASONS}
# The final statuses whose response has a body, for `send_whole`.
_WHOLE_STATUS_LINES = {
    status: line
    for status, line in _STATUS_LINES.items()
    if status >= 200 and status not in _NO_BODY_STATUSES
}
# A response to these has no body of its own (HEAD), or makes a tunnel (CONNECT).
_BODILESS_METHODS = frozenset((b"HEAD", b"CONNECT"))


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


def _normalize_fields(headers: Headers, *, remote: bool) -> tuple[Headers, bytes | None, bool]:
    """h11's ``normalize_and_validate`` of framing fields: (fields, content-length, chunked).

    Content-Length lists of one value collapse to it and identical repeats
    are dropped; anything else about Content-Length is a 400, a
    Transfer-Encoding other than one ``chunked`` a 501 (RFC 9112 §6.1).
    `remote` picks the error: the peer's fields, or ours.
    """
    error = RemoteProtocolError if remote else LocalProtocolError
    bad, unsupported = (400, 501) if remote else (500, 500)
    out: Headers = []
    length: bytes | None = None
    chunked = False
    for name, value in headers:
        lname = name.lower()
        if lname == b"content-length":
            lengths = {part.strip() for part in value.split(b",")}
            value = lengths.pop()
            if lengths or (length is not None and length != value):
                raise error("conflicting Content-Length headers", status=bad)
            if CONTENT_LENGTH_RE.fullmatch(value) is None:
                raise error("bad Content-Length", status=bad)
            if length is not None:
                continue  # an identical repeat is dropped
            length = value
        elif lname == b"transfer-encoding":
            value = value.lower()
            if chunked or value != b"chunked":
                raise error("only one Transfer-Encoding: chunked", status=unsupported)
            chunked = True
        out.append((name, value))
    return out, length, chunked


def _checked_lines(headers: Headers) -> bytes:
    """The fields of a 1xx head or of trailers, checked and normalized as h11 does."""
    check_outbound(_header_lines(headers), len(headers))
    return _header_lines(_normalize_fields(headers, remote=False)[0])


class FastH1Core:
    """A `ProtocolCore` for HTTP/1.0 and 1.1; see the module docstring."""

    __slots__ = (
        "_body_remaining",
        "_buffer",
        "_chunk_remaining",
        "_client_version",
        "_expects_continue",
        "_framing",
        "_keep_alive",
        "_limits",
        "_method",
        "_out",
        "_plain_max",
        "_proposals",
        "_response_done",
        "_response_remaining",
        "_response_started",
        "_skip_plain",
        "_state",
        "_stream_id",
        "_we_close",
        "idle",
        "must_close",
        "read_paused",
    )

    def __init__(self, limits: H1Limits | None = None) -> None:
        limits = self._limits = limits or H1Limits()
        # A read this long or shorter is tried against `_PLAIN_HEAD_RE` at once; its
        # head is then within both size limits, unchecked.
        self._plain_max = min(
            _PLAIN_HEAD_MAX, limits.max_request_line, limits.max_incomplete_event_size
        )
        self._buffer = b""
        self._state = _IDLE
        self._stream_id = 0
        self._out: list[bytes] = []
        # The state flags the driver reads after each call, kept up to date
        # (attributes, not properties: read several times a request).
        self.must_close = False  # the peer broke the protocol, or we close after this
        self.read_paused = False
        self.idle = True  # between requests: nothing of the next received, nothing owed
        # The head at the start of the buffer is known not to match
        # `_PLAIN_HEAD_RE` (tried already, or incomplete): not worth another try.
        self._skip_plain = False
        # Our response head took the rare path and said close: maybe our wish, not
        # the peer's (HTTP/1.0 always comes this way: kept alive or not, it lingers).
        self._we_close = False
        # The request's own state: every request head sets it again (`_plain_request`,
        # `_request`), and nothing reads it before one came (`_method` says so).
        self._client_version = b"1.1"
        self._keep_alive = True
        self._expects_continue = False
        self._proposals = 0
        self._body_remaining = 0
        self._chunk_remaining = 0
        self._reset_cycle()

    def _reset_cycle(self) -> None:
        """Between requests: no request head yet, no response begun."""
        self._method = b""  # empty until a request head arrives
        self._response_started = False
        self._response_done = False
        self._response_remaining = 0
        self._framing = _FRAMING_LENGTH

    # -- inbound --------------------------------------------------------------

    def receive_data(self, data: bytes) -> list[InboundEvent]:
        state = self._state
        if state == _IDLE and data and not self._buffer and len(data) <= self._plain_max:
            # A new read with the next request in it: most often a plain
            # request whole (what `_parse` would find first, without its loop).
            plain = _PLAIN_HEAD_RE.match(data)
            if plain is not None:
                events: list[InboundEvent] = []
                self._plain_request(plain, data, events)  # (within the limits: `_plain_max`)
                # Pipelined bytes behind it wait until it is answered.
                self.read_paused = bool(self._buffer)
                self.idle = False
                return events
            self._skip_plain = True  # `_parse` need not try again
        elif state == _IDLE and not self._buffer:
            # A long read (a browser's head): its fields split, without `_parse`'s loop
            # when it ends in the head (a GET's).
            self._skip_plain = True
            end = data.find(b"\r\n\r\n")
            if end > 0:
                events = []
                try:
                    if self._split_request(data, end, events):
                        if self._state == _DONE:
                            self.read_paused = bool(self._buffer)
                            self.idle = False
                        else:
                            events += self._parse()  # the body after the head
                        return events
                except RemoteProtocolError:
                    self._state = _ERROR
                    self.must_close = True
                    self.idle = False
                    raise
        if state == _ERROR:
            raise RemoteProtocolError("cannot receive data after a protocol error")
        if data:
            if state == _CLOSED:
                raise RemoteProtocolError("received data after the end of the stream")
            self._buffer = self._buffer + data if self._buffer else data
        try:
            return self._parse()
        except RemoteProtocolError:
            self._state = _ERROR
            self.must_close = True
            self.idle = False
            raise

    def receive_eof(self) -> list[InboundEvent]:
        # A request cut off by EOF is not worth an answer: nobody would read it.
        if self._state != _ERROR:
            self._state = _CLOSED
        self.must_close = True
        self.idle = False
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
            elif state in (_BODY_CHUNKED, _CHUNK_CRLF):
                if not self._read_chunked_body(events):
                    break
            elif state == _TRAILER:
                if not self._read_trailer(events):
                    break
            else:
                break
        # A finished request with bytes behind it pauses reading until it is
        # answered (RFC 9112 §9.6: after one that closes, for good); only an
        # unpaused buffer is bounded.
        buffer = self._buffer
        state = self._state
        paused = state == _DONE and bool(buffer)
        if not paused and len(buffer) > self._limits.max_incomplete_event_size:
            raise RemoteProtocolError("Receive buffer too long", status=431)
        self.read_paused = paused
        self.idle = state == _IDLE and not buffer and not self._response_started
        return events

    def _parse_head(self, events: list[InboundEvent]) -> bool:
        buffer = self._buffer
        if not self._skip_plain:
            # Tried once per head (a head that trickles in takes the path below).
            plain = _PLAIN_HEAD_RE.match(buffer)
            if plain is not None:
                head_size = plain.end()
                limits = self._limits
                if (
                    head_size > limits.max_request_line
                    or head_size > limits.max_incomplete_event_size
                ):
                    self._check_head(buffer, head_size)
                self._plain_request(plain, buffer, events)
                return True
        end = buffer.find(b"\r\n\r\n")
        if end > 0 and self._split_request(buffer, end, events):
            return True
        match = _BLANK_LINE_RE.search(buffer)
        head_size = len(buffer) if match is None else match.end()
        limits = self._limits
        if head_size > limits.max_request_line or head_size > limits.max_incomplete_event_size:
            self._check_head(buffer, head_size)  # only a head this long can break a limit
        if buffer[:1] == b"\n" or buffer[:2] == b"\r\n":
            raise RemoteProtocolError("no request line received")
        if match is None:
            if _OBS_FOLD_RE.search(buffer) is not None:
                raise RemoteProtocolError("obsolete line folding in request head")
            if buffer[0] < 0x21:
                raise RemoteProtocolError("illegal request line")
            self._skip_plain = True
            return False
        self._skip_plain = False
        self._buffer = buffer[head_size:]
        line_end = buffer.find(b"\n", 0, head_size)
        request_line = buffer[:line_end]
        if request_line.endswith(b"\r"):
            request_line = request_line[:-1]
        line = _REQUEST_LINE_RE.fullmatch(request_line)
        if line is None:
            raise RemoteProtocolError(f"illegal request line: {request_line!r}")
        headers = _parse_header_block(buffer[line_end + 1 : head_size])
        self._request(line[1], line[2], line[3], headers, events)
        return True

    def _split_request(self, buffer: bytes, end: int, events: list[InboundEvent]) -> bool:
        """The head before the first CRLF CRLF at `end`, if it is all CRLF lines of a
        valid request line and field lines (`h1_head.field_lines`); else False, and the general
        path below decides with h11's answer (a bare LF may end an earlier head).

        What the field lines say is remembered by their bytes
        (`pounce.protocols.h1_request_fields`): a block seen before is not split or
        checked again. The size limits are checked first either way, as before."""
        line_end = buffer.find(b"\r\n", 0, end + 2)
        line = _REQUEST_LINE_RE.fullmatch(buffer, 0, line_end)
        if line is None:
            return False
        facts: FieldFacts | None = _NO_FIELDS
        if line_end != end:
            block = buffer[line_end + 2 : end + 2]
            facts = remembered_fields(block)
            if facts is None:
                fields = split_field_lines(buffer, line_end + 2, end + 2)
                if fields is None:
                    return False
                unread = (block, fields)
        head_size = end + 4
        limits = self._limits
        if head_size > limits.max_request_line or head_size > limits.max_incomplete_event_size:
            self._check_head(buffer, head_size)
        self._skip_plain = False
        self._buffer = buffer[head_size:]
        if facts is None:  # (read after the limits, whose errors come first)
            facts = remember_fields(*unread)
        self._head_request(line[1], line[2], line[3], facts, events)
        return True

    def _plain_request(
        self, plain: re.Match[bytes], buffer: bytes, events: list[InboundEvent]
    ) -> None:
        """The common request `_PLAIN_HEAD_RE` matched at the start of `buffer`: HTTP/1.1,
        one Host, no body. The caller checked the head's size limits.

        `_request` would reach the same state and events; this skips its
        per-field checks, which none of these fields needs.
        """
        self._buffer = buffer[plain.end() :]
        method, target, before, close, host, after, close_after = plain.groups()
        headers: Headers
        if before or after:
            findall = _HEADER_FINDALL_RE.findall
            headers = [(name.lower(), value) for name, value in findall(before)] if before else []
            headers.append((b"host", host))
            if after:
                if close_after is not None and after.count(b"\n") == 1:
                    # The one line after Host is the one that said close (wrk's
                    # `Connection: close`, load balancers'): its value is that token.
                    headers.append((b"connection", close_after))
                else:
                    headers += [(name.lower(), value) for name, value in findall(after)]
        else:
            headers = [(b"host", host)]
        self._stream_id = stream_id = self._stream_id + 1
        self._method = method
        self._client_version = b"1.1"
        self._proposals = 0
        self._keep_alive = close is None and close_after is None
        self._expects_continue = False
        self._state = _DONE
        events.append(request_received(stream_id, method, target, headers, False))

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
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        headers: Headers,
        events: list[InboundEvent],
    ) -> None:
        """A request head's fields checked and normalized, and its event."""
        self._head_request(method, target, version, field_facts(headers), events)

    def _head_request(
        self,
        method: bytes,
        target: bytes,
        version: bytes,
        facts: FieldFacts,
        events: list[InboundEvent],
    ) -> None:
        """A request head, its fields read (`FieldFacts`), checked with its request line,
        and its event; a request with no body ends with it (`RequestReceived.has_body`),
        without a turn of `_parse`'s loop."""
        fields, length, chunked, host, host_count, close, expects, upgrade = facts
        normalized = list(fields)  # (the request's own: an app may change its scope's)
        proposals = _CONNECT if method == b"CONNECT" else 0
        if upgrade:
            proposals |= _UPGRADE
        keep_alive = version >= b"1.1" and not close  # h11 keeps no HTTP/1.0 one alive
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
        if host is not None:
            check_host(host)  # RFC 9112 §3.2: host[:port], else 400
        if target[:1] != b"/" and method != b"CONNECT":
            # RFC 9112 §3.2.2: an absolute-form target's authority replaces Host.
            target, normalized = origin_form(method, target, normalized)
        self._method = method
        self._client_version = version
        self._proposals = proposals
        self._keep_alive = keep_alive
        # RFC 9110 §10.1.1: an HTTP/1.0 client's 100-continue is ignored.
        expects = expects and version >= b"1.1"
        self._expects_continue = expects
        remaining = 0
        if chunked:
            self._state = _BODY_CHUNKED
            self._chunk_remaining = 0
        else:
            remaining = self._body_remaining = int(length) if length is not None else 0
            self._state = _BODY_LENGTH
        has_body = chunked or (length is not None and length != b"0")
        if version == b"1.1" and not expects:
            request = request_received(self._stream_id, method, target, normalized, has_body)
        else:
            request = RequestReceived(
                stream_id=self._stream_id,
                method=method,
                target=target,
                headers=normalized,
                http_version="1.0" if version == b"1.0" else "1.1",
                expects_continue=expects,
                has_body=has_body,
            )
        if proposals & _UPGRADE:  # rare: only a request with an Upgrade field pays more
            events.append(upgrade_event(request, self._buffer))
        else:
            events.append(request)
        if not (chunked or remaining):  # read whole with its head
            if has_body:
                self._finish_request(events)  # an empty body (Content-Length: 00), as h11 has
            else:  # complete with its head: no StreamEnded (`RequestReceived.has_body`)
                self._state = _DONE
                self._expects_continue = False

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
                # h11 CVE-2025-43859: chunk data ends in exactly CRLF.
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
            match = CHUNK_HEADER.fullmatch(header)  # RFC 9112 §7.1.1
            if match is None:
                raise RemoteProtocolError(f"illegal chunk header: {header!r}")
            self._buffer = self._buffer[end + 2 :]
            size = int(match[1], 16)
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
        self._expects_continue = False  # h11: the first body byte ends the wait
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
            # h11 holds trailer fields to the rules of a head's (framing included).
            trailers = _decode_header_lines(_split_lines(buffer[: match.end()]))
            _normalize_fields(trailers, remote=True)
        self._finish_request(events)
        return True

    def _finish_request(self, events: list[InboundEvent]) -> None:
        events.append(stream_ended(self._stream_id))
        self._state = _DONE
        self._expects_continue = False
        if self._response_done:
            self._next_cycle()

    def _next_cycle(self) -> None:
        if self._keep_alive and not self.must_close:
            self._reset_cycle()
            self._state = _IDLE
            self.idle = not self._buffer
        else:
            self.must_close = True

    # -- outbound -------------------------------------------------------------

    def send(self, event: OutboundEvent) -> None:
        try:
            if isinstance(event, SendData):
                self._send_data(event.data, event.end_stream)
            elif isinstance(event, SendResponse):
                self._send_head(event.status, event.headers)
            elif isinstance(event, SendInformational):
                self._send_informational(event.status, event.headers)
            elif isinstance(event, SendTrailers):
                self._send_trailers(event.headers)
            elif isinstance(event, RejectRequest):
                self._out.append(error_response_bytes(event.status, event.headers))
                self.must_close = True
            elif isinstance(event, ResetStream | CloseConnection):
                self.must_close = True
            elif isinstance(event, SendDataAside):
                self._count_aside(event.size)
        except LocalProtocolError:
            self.must_close = True  # as h11 goes to ERROR, the connection ends
            if type(event) is SendResponse and not self._response_started:
                raise  # but a head refused before a byte of it went out leaves room for a 500
            # Nothing more may be sent.
            self._response_started = self._response_done = True
            self.idle = False
            raise

    def send_whole(self, status: int, headers: Headers, body: bytes) -> bytes | None:
        """A whole response, its head and all its body: the bytes to write now (what was
        queued before it, then it), as `data_to_send` would give them; None, with
        nothing done, where this path does not apply (the caller then sends the head and
        the body as two events, which reach the same state).

        The common response to a GET: the request read to its end, and either one
        Content-Length field that says ``len(body)`` or no field that frames the body (no
        Content-Length, Transfer-Encoding or Connection), when this adds
        ``content-length: len(body)`` after the others, as the exchange would for a whole
        body (`Exchange._body_message`); on a kept-alive connection, or on an HTTP/1.1 one
        that closes after it (``Connection: close``: the head then says so, and every
        new connection of a load balancer or a health check takes this path too). It is
        what `send` of that head then of the body with ``end_stream`` does for it, in one
        call instead of six: the Python a server runs per request slows the app's own
        Python down (docs/performance.md, "the framework increment"), so the common path
        is short. Raises `LocalProtocolError`, as `send` of the head would, for a head
        that may not be sent; then nothing was queued.
        """
        line = _WHOLE_STATUS_LINES.get(status)  # (None: 1xx, 204, 304, unknown)
        keep_alive = self._keep_alive
        if (
            line is None
            or self._state != _DONE
            or self._response_started
            or self.must_close
            or self._method in _BODILESS_METHODS
            or not (keep_alive or self._client_version >= b"1.1")  # (HTTP/1.0: `_rare_head`)
        ):
            return None
        try:
            fields, framing = field_lines(headers)
        except LocalProtocolError:
            self.must_close = True  # as `send` does for a refused head
            raise
        if not framing:
            end = b"content-length: %d\r\n\r\n" % len(body)
        elif framing == [(b"content-length", b"%d" % len(body))]:
            end = b"\r\n"
        else:
            return None
        if keep_alive:
            # What `_send_head` then `_send_data(body, True)` leave: the next cycle. (Of
            # `_reset_cycle`, only the method: no response had started, so the rest holds.)
            self._method = b""
            self._expects_continue = False
            self._proposals = 0
            self._state = _IDLE
            self.idle = not self._buffer
        else:
            # What they leave when the connection closes after it (`_end_response`): the
            # response done, its Content-Length met, nothing more to read or send.
            self._response_started = self._response_done = True
            self._expects_continue = False
            self._proposals = 0
            self._framing = _FRAMING_LENGTH
            self._response_remaining = 0
            self.must_close = True
            end = end[:-2] + b"connection: close\r\n\r\n"  # (after the fields, as h11)
        whole = line + fields + end + body
        out = self._out
        if out:  # (an early hint, say, waits before it)
            out.append(whole)
            return self.data_to_send()
        return whole

    def _may_respond(self) -> bool:
        """A request head arrived, it is unanswered and the peer broke nothing."""
        return bool(self._method) and not self._response_started and self._state != _ERROR

    def _send_informational(self, status: int, headers: Headers) -> None:
        if not self._may_respond() or self._client_version < b"1.1":
            return  # RFC 9110 §15.2: no 1xx to an HTTP/1.0 client
        if status == 100 and not self._expects_continue:
            return  # RFC 9110 §10.1.1: a 100 is pointless once the body is on its way
        if not 100 <= status < 200:
            raise LocalProtocolError(f"invalid informational status {status}", status=500)
        fields = _checked_lines(headers)
        if status == 101:
            if not self._proposals & _UPGRADE:
                raise LocalProtocolError("101 Switching Protocols without Upgrade", status=500)
            self._response_started = True
            self._framing = _FRAMING_SWITCHED
        self._expects_continue = False
        self._out.append(_status_line(status) + fields + b"\r\n")

    def _send_head(self, status: int, headers: Headers) -> None:
        if self._response_started or not self._method or self._state == _ERROR:
            raise LocalProtocolError("cannot send a response now", status=500)
        if not 200 <= status < 1000:
            raise LocalProtocolError(f"invalid final response status {status}", status=500)
        # Checked for CR, LF and NUL; `framing` holds the fields of `FRAMING_FIELDS`.
        fields, framing = field_lines(headers)
        method = self._method
        # RFC 9110 §6.4.1: these carry no body whatever the fields say.
        tunnel = method == b"CONNECT" and status < 300
        bodiless = tunnel or status in _NO_BODY_STATUSES
        # Written as given (h11 would change nothing but add "connection:
        # close" at the end when the connection closes) when there is at most
        # one plain Content-Length or one "transfer-encoding: chunked", not
        # both, and no Connection field; `_rare_head` takes the rest, and every
        # response to an HTTP/1.0 client (no chunked for it, never kept alive).
        keep_alive = self._keep_alive
        plain = keep_alive or self._client_version >= b"1.1"
        length: bytes | None = None
        chunked = False
        if plain:
            for name, value in framing:
                if (
                    name == b"content-length"
                    and length is None
                    and not chunked
                    and value.isdigit()  # bytes: ASCII digits only
                    and len(value) <= 20
                ):
                    length = value
                elif (
                    name == b"transfer-encoding"
                    and value == b"chunked"
                    and length is None
                    and not chunked
                ):
                    chunked = True
                else:
                    plain = False
                    break
        if plain:
            if length is None and not chunked and not bodiless:
                fields += b"transfer-encoding: chunked\r\n"
                chunked = True
            if not keep_alive:
                fields += b"connection: close\r\n"
        else:
            # May refuse the head (conflicting lengths …): then nothing has started,
            # and the exchange's 500 can still go out.
            fields, length, chunked, close = self._rare_head(headers, bodiless)
            if close:
                self._keep_alive = False
                self._we_close = True
        self._response_started = True
        self._expects_continue = False
        self._out.append((_STATUS_LINES.get(status) or _status_line(status)) + fields + b"\r\n")
        # h11's _body_framing, on the fields as written.
        self._response_remaining = 0
        if tunnel:
            # RFC 9110 §9.3.6: the connection becomes a tunnel, no more HTTP.
            self._framing = _FRAMING_SWITCHED
            return
        self._proposals = 0  # h11: any other final response declines a switch
        if bodiless or method == b"HEAD":
            self._framing = _FRAMING_LENGTH
        elif chunked:
            self._framing = _FRAMING_CHUNKED
        elif length is not None:
            self._framing = _FRAMING_LENGTH
            self._response_remaining = int(length)
        else:
            self._framing = _FRAMING_EOF

    def _rare_head(
        self, headers: Headers, bodiless: bool
    ) -> tuple[bytes, bytes | None, bool, bool]:
        """h11's ``_clean_up_response_headers_for_sending`` for every head off the fast path.

        Returns the fields to write, their Content-Length, whether they are
        chunked and whether they say ``Connection: close``.
        """
        headers, length, chunked = _normalize_fields(headers, remote=False)
        need_close = False
        if not bodiless and (chunked or length is None):
            # Unknown length: chunked for HTTP/1.1, until-close for HTTP/1.0.
            headers = [p for p in headers if p[0] not in (b"content-length", b"transfer-encoding")]
            length = None
            chunked = self._client_version >= b"1.1"
            if chunked:
                headers.append((b"transfer-encoding", b"chunked"))
            else:
                need_close = self._method != b"HEAD"
        tokens = set(_comma_values(headers, b"connection"))
        if not self._keep_alive or need_close:
            tokens.discard(b"keep-alive")
            tokens.add(b"close")
            headers = [p for p in headers if p[0] != b"connection"]
            headers.extend((b"connection", token) for token in sorted(tokens))
        return _header_lines(headers), length, chunked, b"close" in tokens

    def _send_data(self, data: bytes, end: bool) -> None:
        if not data and not end:
            return  # nothing to send, as in h11
        framing = self._framing
        if not self._response_started or self._response_done or framing == _FRAMING_SWITCHED:
            raise LocalProtocolError("cannot send body data now", status=500)
        if data:
            if framing == _FRAMING_CHUNKED:
                self._out.append(b"%x\r\n%b\r\n" % (len(data), data))
            elif framing == _FRAMING_LENGTH:
                if len(data) > self._response_remaining:
                    raise LocalProtocolError("Too much data for declared Content-Length")
                self._response_remaining -= len(data)
                self._out.append(data)
            else:
                self._out.append(data)
        if end:
            if (
                framing == _FRAMING_LENGTH
                and not self._response_remaining
                and self._state == _DONE
                and self._keep_alive
                and not self.must_close
            ):
                # The common end (what `_end_response` does here): ready for the
                # next request.
                self._reset_cycle()
                self._state = _IDLE
                self.idle = not self._buffer
            else:
                self._end_response(b"")

    def _count_aside(self, size: int) -> None:
        """Body bytes the driver writes itself: only a Content-Length response can take them."""
        if not self._response_started or self._response_done or self._method == b"HEAD":
            raise LocalProtocolError("cannot send body data now", status=500)
        if self._framing != _FRAMING_LENGTH or size > self._response_remaining:
            raise LocalProtocolError("body data sent aside needs a Content-Length that covers it")
        self._response_remaining -= size

    def _send_trailers(self, headers: Headers) -> None:
        framing = self._framing
        if not self._response_started or self._response_done or framing == _FRAMING_SWITCHED:
            raise LocalProtocolError("cannot send trailers now", status=500)
        fields = _checked_lines(headers)
        if fields and framing != _FRAMING_CHUNKED:
            if framing == _FRAMING_LENGTH and self._response_remaining:
                raise LocalProtocolError("Too little data for declared Content-Length", status=500)
            raise LocalProtocolError("trailers need a chunked response", status=500)
        self._end_response(fields)

    def _end_response(self, trailer_fields: bytes) -> None:
        framing = self._framing
        if framing == _FRAMING_CHUNKED:
            self._out.append(b"0\r\n" + trailer_fields + b"\r\n")
        elif framing == _FRAMING_LENGTH and self._response_remaining:
            raise LocalProtocolError("Too little data for declared Content-Length", status=500)
        elif framing == _FRAMING_EOF:
            self.must_close = True
        self._response_done = True
        if self._state == _DONE:
            self._next_cycle()
        else:
            # The request body was not read to its end: where would the next request start?
            self.must_close = True

    def peer_finished(self) -> bool:
        """The peer's last request said it was the last (``Connection: close``, or
        HTTP/1.0 without keep-alive) and came whole, with nothing after it: the
        peer sends nothing more, so a close need not linger (RFC 9112 §9.6)."""
        return (
            not self._keep_alive
            and not self._we_close
            and self._state == _DONE
            and not self._buffer
        )

    def data_to_send(self) -> bytes:
        out = self._out
        if not out:
            return b""
        data = out[0] if len(out) == 1 else b"".join(out)
        out.clear()
        return data


def _status_line(status: int) -> bytes:
    line = _STATUS_LINES.get(status)
    if line is None:
        line = b"HTTP/1.1 %d \r\n" % status
    return line


def _header_lines(headers: Headers) -> bytes:
    if not headers:
        return b""
    return b"".join([name + b": " + value + b"\r\n" for name, value in headers])
