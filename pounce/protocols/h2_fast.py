"""The frames every response sends, written around h2's per-frame machinery.

h2's ``send_headers`` and ``send_data`` build a frame object per frame, a
flags set, a list, a generator to serialize it, and re-check what the caller
knows, and append every frame to one growing ``bytearray``; for a 1 MiB
download that is 64 such frames, and for a hello response those calls and
the HPACK coding of both header blocks were over a third of the H2 core's
instructions. This module keeps h2 the owner of every state:

* `send_data` / `send_headers` feed h2's own connection and stream state
  machines the inputs h2 would (so a send on a closed or reset stream fails
  there, with h2's exception, as before), move the same flow-control windows,
  and queue the same bytes, in order with the frames h2 queues itself
  (WINDOW_UPDATE, SETTINGS ACK, RST_STREAM), as pieces joined once per write
  (`FastConnection`). Whatever they do not cover — an unknown stream, data
  over the window, an informational response — goes to h2's method itself,
  which raises what it raised before.
* `CachingEncoder` / `CachingDecoder` remember header blocks made only of
  indexed fields (RFC 7541 §6.1: one byte each below index 127). Such a block
  neither reads nor changes anything but the table's entries, so its coding is
  the same until the table changes, and the table changes only by a block
  that is not all indexed (a literal with indexing, a size update) or a new
  table size: each of those empties the cache. Repeated requests (h2load,
  browsers, API clients) and repeated responses are such blocks.
* `receive_frame` is h2's frame dispatch without the ``repr`` of every frame
  that its trace line built for a logger that drops it.

All of it only where `FITS` (h2 4, hpack 4: what it was written and tested
against); `H2Core(reference=True)` runs h2's own paths.
tests/protocols/test_h2_fast.py runs generated frame sequences and response
events through an `H2Core` on these paths and one on h2's own, and asserts
the same bytes out, the same events in and the same errors; and the caches
against plain hpack coders on generated header lists.
"""

from __future__ import annotations

import struct
from typing import Any

import h2
import h2.config
import h2.connection
import h2.errors
import h2.exceptions
import h2.stream
import h2.utilities
import hpack
import hyperframe.frame

_HEADER = struct.Struct("!HBBBL")  # RFC 9113 §4.1: length (24 bits), type, flags, stream id
_DATA, _HEADERS, _CONTINUATION = 0x0, 0x1, 0x9
_END_STREAM, _END_HEADERS = 0x1, 0x4
_SEND_HEADERS = h2.connection.ConnectionInputs.SEND_HEADERS
_SEND_DATA = h2.connection.ConnectionInputs.SEND_DATA
_STREAM_SEND_HEADERS = h2.stream.StreamInputs.SEND_HEADERS
_STREAM_SEND_DATA = h2.stream.StreamInputs.SEND_DATA
_STREAM_SEND_END = h2.stream.StreamInputs.SEND_END_STREAM
_CACHED_BLOCKS = 64  # distinct blocks remembered per coder; a connection rarely has more


# These paths write h2 4's internal state (hpack 4's tables) where h2 4 keeps it, and are
# differentially tested on it; another major version gets h2's own paths.
FITS = h2.__version__.split(".")[0] == "4" and hpack.__version__.split(".")[0] == "4"


class FastConnection(h2.connection.H2Connection):
    """h2's connection with the two changes the fast paths need.

    * Output as a list of pieces, joined once by `data_to_send`: h2 appends
      every frame to one ``bytearray``, and growing it frame by frame to a
      megabyte cost milliseconds of reallocation and copying (measured: 2-3 ms
      per MiB against 0.05-0.08 ms for one join). h2's own frames still go to
      its buffer; `queue` moves what is there into the list first, so the
      order on the wire is the order of the calls.
    * Frames received through `receive_frame`.
    """

    def __init__(self, config: h2.config.H2Configuration | None = None) -> None:
        super().__init__(config=config)
        self._pieces: list[bytes | memoryview] = []

    def queue(self, pieces: list[bytes | memoryview]) -> None:
        """Queue frames made here, after everything h2 queued so far."""
        if self._data_to_send:
            self._pieces.append(bytes(self._data_to_send))
            self._data_to_send = bytearray()
        self._pieces += pieces

    def data_to_send(self, amount: int | None = None) -> bytes:
        pieces = self._pieces
        if pieces:
            if self._data_to_send:
                pieces.append(bytes(self._data_to_send))
            data = b"".join(pieces)
            pieces.clear()
            if amount is None:
                self._data_to_send = bytearray()
                return data
            self._data_to_send = bytearray(data)
        return super().data_to_send(amount)

    def _receive_frame(self, frame: Any) -> list[Any]:
        return receive_frame(self, frame)


def receive_frame(conn: h2.connection.H2Connection, frame: Any) -> list[Any]:
    """h2 4's ``H2Connection._receive_frame`` (python-hyper/h2, MIT), less its trace line,
    whose ``repr(frame)`` was built on every frame received for a logger that drops it:
    the same dispatch, and the same answers to frames on closed streams."""
    try:
        frames, events = conn._frame_dispatch_table[frame.__class__](frame)
    except h2.exceptions.StreamClosedError as exc:
        if not conn._stream_is_closed_by_reset(exc.stream_id):
            raise  # a connection error
        reset = hyperframe.frame.RstStreamFrame(exc.stream_id)
        reset.error_code = exc.error_code
        conn._prepare_for_sending([reset])
        return exc._events
    except h2.exceptions.StreamIDTooLowError as exc:
        if conn._stream_is_closed_by_reset(exc.stream_id):  # a stream error
            reset = hyperframe.frame.RstStreamFrame(exc.stream_id)
            reset.error_code = h2.errors.ErrorCodes.STREAM_CLOSED
            conn._prepare_for_sending([reset])
            return []
        if conn._stream_is_closed_by_end(exc.stream_id):
            raise h2.exceptions.StreamClosedError(exc.stream_id) from exc
        raise  # closed implicitly: PROTOCOL_ERROR
    conn._prepare_for_sending(frames)
    return events  # type: ignore[no-any-return]


def _frame_header(length: int, kind: int, flags: int, stream_id: int) -> bytes:
    return _HEADER.pack(length >> 8, length & 0xFF, kind, flags, stream_id & 0x7FFF_FFFF)


def send_data(
    conn: FastConnection, stream_id: int, data: bytes | memoryview, end_stream: bool
) -> None:
    """What `send_data_by_h2` does — `data` in DATA frames of the peer's frame size — without
    a frame object per frame. The state machines see SEND_DATA once per call rather
    than once per frame: on a stream that may send it changes nothing (RFC 9113 §5.1),
    and on one that may not, h2 refuses the first frame before any is queued, as here."""
    size = len(data)
    stream = conn.streams.get(stream_id)
    if stream is None or (
        size > min(conn.outbound_flow_control_window, stream.outbound_flow_control_window)
    ):
        send_data_by_h2(conn, stream_id, data, end_stream)  # h2 answers, or raises
        return
    conn.state_machine.process_input(_SEND_DATA)
    machine = stream.state_machine
    machine.process_input(_STREAM_SEND_DATA)
    if end_stream:
        machine.process_input(_STREAM_SEND_END)
    stream.outbound_flow_control_window -= size
    frame = conn.max_outbound_frame_size
    start = 0
    pieces: list[bytes | memoryview] = []
    if size > frame:
        data = memoryview(data)
        while size - start > frame:
            pieces += (_frame_header(frame, _DATA, 0, stream_id), data[start : start + frame])
            start += frame
    last = _frame_header(size - start, _DATA, _END_STREAM if end_stream else 0, stream_id)
    pieces += (last, data[start:] if start else data)
    conn.queue(pieces)
    conn.outbound_flow_control_window -= size


def send_data_by_h2(
    conn: h2.connection.H2Connection, stream_id: int, data: bytes | memoryview, end_stream: bool
) -> None:
    """`data` as DATA frames of the peer's frame size, each through h2's ``send_data``;
    the last one ends the stream if asked (the reference path)."""
    size = conn.max_outbound_frame_size
    start = 0
    while len(data) - start > size:
        conn.send_data(stream_id, data[start : start + size])
        start += size
    conn.send_data(stream_id, data[start:], end_stream=end_stream)


def send_headers(
    conn: FastConnection,
    stream_id: int,
    headers: list[tuple[bytes, bytes]],
    end_stream: bool = False,
) -> None:
    """``conn.send_headers(...)`` for a final response or trailers on a stream the peer opened."""
    stream = conn.streams.get(stream_id)
    if stream is None or h2.utilities.is_informational_response(headers):
        conn.send_headers(stream_id, headers, end_stream=end_stream)
        return
    conn.state_machine.process_input(_SEND_HEADERS)
    machine = stream.state_machine
    machine.process_input(_STREAM_SEND_HEADERS)  # the response, or the trailers after it
    block = conn.encoder.encode(headers)
    if end_stream:
        machine.process_input(_STREAM_SEND_END)
    if machine.trailers_sent and not end_stream:
        raise h2.exceptions.ProtocolError("Trailers must have END_STREAM set.")
    stream.request_method = h2.utilities.extract_method_header(headers)  # as h2 does
    size = stream.max_outbound_frame_size or 0  # what h2 splits the block by
    conn.queue([_header_frames(block, stream_id, end_stream, size)])


def _header_frames(block: bytes, stream_id: int, end_stream: bool, max_size: int) -> bytes:
    """HEADERS, then CONTINUATION frames when the block exceeds the peer's frame size."""
    first = _END_STREAM if end_stream else 0
    if len(block) <= max_size:
        return _frame_header(len(block), _HEADERS, first | _END_HEADERS, stream_id) + block
    pieces = [block[i : i + max_size] for i in range(0, len(block), max_size)]
    out = [_frame_header(len(pieces[0]), _HEADERS, first, stream_id), pieces[0]]
    for n, piece in enumerate(pieces[1:], 2):
        flags = _END_HEADERS if n == len(pieces) else 0
        out += (_frame_header(len(piece), _CONTINUATION, flags, stream_id), piece)
    return b"".join(out)


def _all_indexed(block: bytes) -> bool:
    """Only indexed fields of index 1-126, one byte each (RFC 7541 §6.1)?"""
    return bool(block) and min(block) > 0x80 and max(block) < 0xFF


class CachingEncoder(hpack.Encoder):
    """An hpack `Encoder` that reuses its earlier all-indexed blocks (see the module's text)."""

    def __init__(self) -> None:
        super().__init__()
        self._blocks: dict[tuple[tuple[bytes, bytes], ...], bytes] = {}
        self._maxsize = self.header_table.maxsize

    def encode(self, headers: Any, huffman: bool = True) -> bytes:
        key = _key(headers) if huffman else None
        table = self.header_table
        if table.maxsize != self._maxsize or table.resized:
            self._blocks.clear()
            self._maxsize = table.maxsize
        elif key is not None:
            try:
                block = self._blocks.get(key)
            except TypeError:  # a field holds a list: not a key
                key = block = None
            if block is not None:
                return block
        block = super().encode(headers, huffman)
        if not _all_indexed(block):
            self._blocks.clear()  # the table may have changed
        elif key is not None:
            if len(self._blocks) >= _CACHED_BLOCKS:
                self._blocks.clear()
            self._blocks[key] = block
        return block


def _key(headers: Any) -> tuple[Any, ...] | None:
    """The block's fields as a key, when each is a plain tuple; else None (a
    `hpack.NeverIndexedHeaderTuple` compares equal to a plain tuple, but is coded apart)."""
    if type(headers) is not list or not set(map(type, headers)) <= _PLAIN:
        return None
    return tuple(headers)


_PLAIN = {tuple}


class CachingDecoder(hpack.Decoder):
    """An hpack `Decoder` that reuses the fields of its earlier all-indexed blocks."""

    def __init__(self, template: hpack.Decoder) -> None:
        """A fresh decoder with the limits `template` has (h2 made and configured it)."""
        super().__init__(template.max_header_list_size)
        self.max_allowed_table_size = template.max_allowed_table_size
        self.header_table_size = template.header_table_size
        self._blocks: dict[tuple[bytes, bool], list[Any]] = {}
        self._limits = self._current_limits()

    def _current_limits(self) -> tuple[int, int, int]:
        return (self.header_table.maxsize, self.max_allowed_table_size, self.max_header_list_size)

    def decode(self, data: bytes, raw: bool = False) -> Any:
        limits = self._current_limits()
        if limits != self._limits:
            self._blocks.clear()
            self._limits = limits
        indexed = _all_indexed(data)
        if indexed:
            known = self._blocks.get((data, raw))
            if known is not None:
                return list(known)
        headers = list(super().decode(data, raw))
        if not indexed:
            self._blocks.clear()  # the table may have changed
        else:
            if len(self._blocks) >= _CACHED_BLOCKS:
                self._blocks.clear()
            self._blocks[(bytes(data), raw)] = list(headers)
        return headers
