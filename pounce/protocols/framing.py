"""Response bodies held to their declared ``content-length``, for the multiplexed cores.

HTTP/1.1 frames a body by its Content-Length, so its cores cannot send a
body of another length. HTTP/2 (and HTTP/3) frame it by the end of the
stream instead, and the field becomes a claim nothing checks: an app that
declares ``content-length: 3`` and sends 7 bytes would put 7 bytes on the
wire, and a proxy that turns the response into HTTP/1.1 and trusts the
field would read the 4 extra bytes as the start of the next response.
RFC 9113 §8.1.1 (RFC 9114 §4.1.2 alike): a response whose content-length
does not equal the sum of its DATA payloads is malformed, unless it has no
content at all (a HEAD response, 204, 304).

`DeclaredLengths` counts, per stream, the body bytes a response still owes
its declared length; a core asks it before each piece of body reaches the
framing layer. Invariants:

* a stream is counted from its response head, if that head declares a
  length, until its body ends, or until the core forgets the stream;
* bytes past the declared length are refused before anything of them is
  queued, so they never reach the wire;
* the end of the body (END_STREAM, or the trailers that carry it) with bytes
  still owed is refused;
* a refusal is the HTTP/1.1 cores' `LocalProtocolError` (``status=500``),
  with their messages; the stream is then the caller's to reset.

Cost: a dict lookup per body piece, one pass over the fields per head
(benchmarks/h2_inproc.py: about 5k instructions of a 700k ``core`` request).
"""

from __future__ import annotations

from pounce.errors import LocalProtocolError
from pounce.protocols.events import Headers

# RFC 9110 §15.3.5, §15.4.5: these responses have no content, whatever their fields say.
NO_CONTENT_STATUSES = frozenset((204, 304))
# Digits in a content-length: as many as h1_request_fields' CONTENT_LENGTH_RE takes (and
# int() refuses a string of more than 4300).
_MAX_DIGITS = 20

TOO_MUCH = "Too much data for declared Content-Length"
TOO_LITTLE = "Too little data for declared Content-Length"


class DeclaredLengths:
    """Body bytes each stream's response still owes its ``content-length``."""

    __slots__ = ("_bodiless", "_remaining")

    def __init__(self) -> None:
        self._remaining: dict[int, int] = {}  # stream → bytes still owed
        self._bodiless: set[int] = set()  # streams answering a HEAD request

    def head_request(self, stream_id: int) -> None:
        """`stream_id` carries a HEAD request: its response has no body (RFC 9110 §9.3.2)."""
        self._bodiless.add(stream_id)

    def response(self, stream_id: int, status: int, headers: Headers) -> None:
        """A final response head is about to be sent: start counting, if it declares a length.

        Raises:
            LocalProtocolError: the head's content-length fields disagree or
                are not a number; nothing is counted.
        """
        bodiless = self._bodiless
        if bodiless and stream_id in bodiless:
            bodiless.discard(stream_id)
            return
        if status in NO_CONTENT_STATUSES:
            return
        length = declared_length(headers)
        if length is not None:
            self._remaining[stream_id] = length

    def data(self, stream_id: int, size: int, end: bool) -> None:
        """`size` body bytes are about to be queued; `end`: they end the body.

        Raises:
            LocalProtocolError: more than the declared length, or (`end`) less.
        """
        remaining = self._remaining.get(stream_id)
        if remaining is None:
            return
        if size > remaining:
            raise LocalProtocolError(TOO_MUCH, status=500)
        if end:
            if size < remaining:
                raise LocalProtocolError(TOO_LITTLE, status=500)
            del self._remaining[stream_id]
        else:
            self._remaining[stream_id] = remaining - size

    def trailers(self, stream_id: int) -> None:
        """Trailers are about to end the body.

        Raises:
            LocalProtocolError: bytes are still owed.
        """
        if self._remaining.get(stream_id):
            raise LocalProtocolError(TOO_LITTLE, status=500)
        self._remaining.pop(stream_id, None)

    def forget(self, stream_id: int) -> None:
        """`stream_id` is done with (ended, reset, refused): drop what is kept of it."""
        if self._remaining:
            self._remaining.pop(stream_id, None)
        if self._bodiless:
            self._bodiless.discard(stream_id)


def declared_length(headers: Headers) -> int | None:
    """The ``content-length`` of response fields (lower-case names), or None.

    The same field repeated with the same value is one value (RFC 9110 §8.6).
    A value must be digits (§8.6's grammar): not a comma list, which the
    HTTP/1.1 cores collapse but an HTTP/2 peer such as h2 refuses, with the
    whole connection.

    Raises:
        LocalProtocolError: values that differ, or one that is not digits.
    """
    declared: bytes | None = None
    for name, value in headers:
        if name == b"content-length":
            if not value.isdigit() or len(value) > _MAX_DIGITS:  # bytes: ASCII digits only
                raise LocalProtocolError(f"bad Content-Length {value!r}", status=500)
            if declared is not None and value != declared:
                raise LocalProtocolError("conflicting Content-Length headers", status=500)
            declared = value
    return None if declared is None else int(declared)
