"""`parse_request` / `valid_trailers` against h2's own validation, on generated header blocks.

The H2 core switches h2's inbound validation off and checks blocks itself,
in one pass. Here both run on the same blocks (after h2's inbound
normalisation, which stays on): they must accept and refuse the same ones,
except where Pounce is stricter on purpose — an ordinary CONNECT (no
tunnels), and a ``:path`` that is not origin-form (``*`` for OPTIONS; RFC
9113 §8.3.1), where h2 refuses only an empty one.

Every single-field change of a valid block is compared exhaustively
(`test_every_single_field_change_is_judged_as_h2_judges_it`, a fraction of
a second); hypothesis adds the combinations. Its example counts are sized
so each test takes a few seconds: the generation is nearly all of the time
(about 4 ms an example, the checks themselves tens of microseconds), and a
test that ran past the suite's 60 s ``timeout`` on a loaded machine was
interrupted by pytest-timeout inside hypothesis's own engine, which then
failed with an internal error instead of a result (reproduced: three runs at
once on a busy machine gave ``FlakyStrategyDefinition``, its record of the
interrupted example half-written; the ``KeyError`` once seen is taken to be
the same, though not reproduced itself: nothing in the code under test or in
h2's checks raises one).
"""

from __future__ import annotations

import h2.exceptions
import h2.utilities
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pounce.protocols.h2_fields import RequestBlocks, parse_request, valid_trailers

Block = list[tuple[bytes, bytes]]

REQUEST_FLAGS = h2.utilities.HeaderValidationFlags(
    is_client=False, is_trailer=False, is_response_header=False, is_push_promise=False
)
TRAILER_FLAGS = h2.utilities.HeaderValidationFlags(
    is_client=False, is_trailer=True, is_response_header=False, is_push_promise=False
)

PSEUDO = [b":method", b":scheme", b":authority", b":path", b":protocol", b":status", b":foo"]
NAMES = [
    b"host", b"te", b"cookie", b"connection", b"upgrade", b"keep-alive", b"x-a", b"accept",
    b"X-Upper", b"a:b", b"", b"a b", b"\xc3\xa9", b"a\x00", b"~!#$%&'*+-.^_`|", b"(x)",
    b"priority", b"expect", b"Host",
]  # fmt: skip
VALUES = [
    b"", b"v", b"t", b"evil", b" v", b"v ", b"\tv", b"a b", b"a\x00b", b"a\rb", b"a\nb",
    b"trailers", b"TRAILERS", b"gzip", b"GET", b"CONNECT", b"/", b"http", b"websocket",
    b"\xff\x80", b"u=1, i", b"*", b"/a?b=c", b"OPTIONS", b"/a\x7f",
]  # fmt: skip


def h2_accepts(block: Block, flags: h2.utilities.HeaderValidationFlags) -> bool:
    try:
        list(h2.utilities.validate_headers(block, flags))
    except h2.exceptions.ProtocolError:
        return False
    return True


def normalised(block: Block) -> Block:
    """What the core is given: h2's inbound normalisation (cookie crumbs joined, last)."""
    return [
        (bytes(n), bytes(v))
        for n, v in h2.utilities.normalize_inbound_headers(block, REQUEST_FLAGS)
    ]


def pounce_accepts(block: Block) -> bool:
    return parse_request(1, block, ended=True)[0] is not None


def path_not_origin_form(block: Block) -> bool:
    paths = [v for n, v in block if n == b":path"]
    methods = [v for n, v in block if n == b":method"]
    if not paths:
        return False
    path = paths[0]
    if path == b"*":
        return methods[:1] != [b"OPTIONS"]
    return path[:1] != b"/" or any(b <= 0x20 or b >= 0x7F for b in path)


def ordinary_connect(block: Block) -> bool:
    names = [n for n, _ in block]
    return (b":method", b"CONNECT") in block and b":protocol" not in names


field = st.tuples(st.sampled_from(NAMES + PSEUDO), st.sampled_from(VALUES))
fine_field = st.tuples(
    st.sampled_from([b"x-a", b"accept", b"cookie", b"priority", b"te"]),
    st.sampled_from([b"", b"v", b"a b", b"trailers", b"u=1, i"]),
)
good_start: Block = [
    (b":method", b"GET"),
    (b":scheme", b"http"),
    (b":authority", b"t"),
    (b":path", b"/"),
]


@st.composite
def request_blocks(draw: st.DrawFn) -> Block:
    """Mostly near-valid blocks (a valid start, then mutations), some fully random."""
    if draw(st.integers(0, 3)):
        block = list(good_start)
        if draw(st.integers(0, 3)) == 0:
            block[0] = (b":method", b"CONNECT")
            if draw(st.booleans()):
                block.insert(draw(st.integers(0, 4)), (b":protocol", b"websocket"))
        block += draw(st.lists(st.one_of(fine_field, fine_field, field), max_size=5))
        for _ in range(draw(st.sampled_from([0, 0, 0, 1, 2]))):
            if block:
                del block[draw(st.integers(0, len(block) - 1))]
        if block and draw(st.integers(0, 3)) == 0:
            i, j = draw(st.integers(0, len(block) - 1)), draw(st.integers(0, len(block) - 1))
            block[i], block[j] = block[j], block[i]
        return block
    return draw(st.lists(field, max_size=8))


def blocks_judged_apart(blocks: list[Block]) -> list[Block]:
    """The blocks (normalised) that Pounce and h2 judge differently, where they should not."""
    wrong = []
    for raw in blocks:
        block = normalised(raw)
        ours = pounce_accepts(block)
        if ordinary_connect(block) or path_not_origin_form(block):
            if ours:  # stricter on purpose: refused however h2 judges it
                wrong.append(block)
        elif ours != h2_accepts(block, REQUEST_FLAGS):
            wrong.append(block)
    return wrong


def test_every_single_field_change_is_judged_as_h2_judges_it() -> None:
    """Each field of the vocabulary added at each place of a valid GET and of a valid
    extended CONNECT; each pseudo-header field left out or given twice."""
    connect = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *good_start[1:]]
    blocks: list[Block] = []
    for start in (good_start, connect):
        for name in NAMES + PSEUDO:
            for value in VALUES:
                for at in range(len(start) + 1):
                    blocks.append([*start[:at], (name, value), *start[at:]])
        for at in range(len(start)):
            blocks.append(start[:at] + start[at + 1 :])
            blocks.append([*start[: at + 1], start[at], *start[at + 1 :]])
    assert len(blocks) > 6000
    assert blocks_judged_apart(blocks) == []


@settings(max_examples=1000, deadline=None)
@given(request_blocks())
def test_request_blocks_are_judged_as_h2_judges_them(block: Block) -> None:
    block = normalised(block)
    theirs = h2_accepts(block, REQUEST_FLAGS)
    ours = pounce_accepts(block)
    if ordinary_connect(block):
        assert not ours  # stricter on purpose: CONNECT tunnels are not served
    elif path_not_origin_form(block):
        assert not ours  # stricter on purpose: h2 refuses only an empty :path
    else:
        assert ours == theirs, block


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(request_blocks(), st.booleans(), st.integers(1, 99)), max_size=12))
def test_remembered_verdicts_are_parse_requests(
    requests: list[tuple[Block, bool, int]],
) -> None:
    """`RequestBlocks` (one per connection) answers what `parse_request` answers, for
    repeated blocks too, and gives every event its own field list."""
    blocks = RequestBlocks()
    seen: list[object] = []
    for block, ended, sid in requests + requests:  # each block again: from the cache
        block = normalised(block)
        remembered = blocks.parse(sid, block, ended=ended)
        assert remembered == parse_request(sid, block, ended=ended)
        if remembered[0] is not None:
            assert all(remembered[0].headers is not other for other in seen)
            seen.append(remembered[0].headers)


@settings(max_examples=600, deadline=None)
@given(st.lists(field, max_size=6))
def test_trailer_blocks_are_judged_as_h2_judges_them(block: Block) -> None:
    assert valid_trailers(block) == h2_accepts(block, TRAILER_FLAGS), block


def test_a_good_request_becomes_the_event() -> None:
    block = [
        (b":method", b"POST"),
        (b":scheme", b"https"),
        (b":authority", b"example.com"),
        (b":path", b"/up?x=1"),
        (b"priority", b"u=1"),
        (b"expect", b"100-continue"),
        (b"cookie", b"a=1; b=2"),
    ]
    request, priority, protocol = parse_request(3, block, ended=False)
    assert request is not None
    assert (request.stream_id, request.method, request.target) == (3, b"POST", b"/up?x=1")
    assert (request.scheme, request.authority, request.http_version) == (
        b"https",
        b"example.com",
        "2",
    )
    assert request.headers[0] == (b"host", b"example.com")  # :authority becomes host
    assert (b"cookie", b"a=1; b=2") in request.headers
    assert request.expects_continue and request.has_body
    assert (priority, protocol) == (b"u=1", None)


@pytest.mark.parametrize(
    "extra",
    [
        [(b"host", b"t"), (b"host", b"t")],  # two hosts (CVE-2026-71554)
        [(b"host", b"other")],  # host ≠ :authority (RFC 9113 §8.3.1)
        [(b"te", b"gzip")],
        [(b"connection", b"close")],
        [(b"x", b" padded")],
    ],
)
def test_malformed_requests_are_refused(extra: Block) -> None:
    assert parse_request(1, [*good_start, *extra], ended=True)[0] is None


@pytest.mark.parametrize(
    "path", [b"abc", b"/a b", b"a/b", b"//\x00", b"/a\tb", b"/\x7f", b"/caf\xc3\xa9", b"*", b""]
)
def test_a_path_that_is_not_origin_form_is_malformed(path: bytes) -> None:
    # RFC 9113 §8.3.1: origin-form, or "*" for OPTIONS.
    block = [*good_start[:3], (b":path", path)]
    assert parse_request(1, block, ended=True)[0] is None


@pytest.mark.parametrize(
    ("method", "path"), [(b"GET", b"/"), (b"GET", b"//a/b?c=%20&d#e"), (b"OPTIONS", b"*")]
)
def test_origin_form_paths_and_an_options_star_are_served(method: bytes, path: bytes) -> None:
    block = [(b":method", method), *good_start[1:3], (b":path", path)]
    request = parse_request(1, block, ended=True)[0]
    assert request is not None and request.target == path


def test_extended_connect_names_its_protocol() -> None:
    block = [(b":method", b"CONNECT"), (b":protocol", b"websocket"), *good_start[1:]]
    request, _, protocol = parse_request(1, block, ended=False)
    assert request is not None and request.method == b"CONNECT"
    assert protocol == b"websocket"
