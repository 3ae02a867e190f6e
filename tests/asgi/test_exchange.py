"""`Exchange` without sockets: a recording `StreamOwner` stands in for the driver.

Covers the ASGI 2.4 ``http`` scope, ``receive`` (body merging, 100-continue,
``http.disconnect``), ``send`` (the response transition table, HEAD, framing,
header validation) and the failure policy of `Exchange.run`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pounce.asgi.exchange import TRANSITIONS, Exchange, ResponseState, build_scope
from pounce.asgi.types import Message, Receive, Scope, Send
from pounce.conn import ConnectionInfo
from pounce.drivers.service import DateHeader, HTTPOptions, ServiceContext
from pounce.errors import (
    ASGIContractError,
    ClientDisconnectedError,
    LocalProtocolError,
)
from pounce.protocols.events import (
    Headers,
    OutboundEvent,
    RequestReceived,
    ResetStream,
    SendData,
    SendInformational,
    SendResponse,
    SendTrailers,
)

INFO = ConnectionInfo(client=("127.0.0.1", 50000), server=("127.0.0.1", 8000))

START: Message = {"type": "http.response.start", "status": 200, "headers": []}
BODY: Message = {"type": "http.response.body", "body": b"hello"}
CHUNK: Message = {"type": "http.response.body", "body": b"part", "more_body": True}


class RecordingOwner:
    """A `StreamOwner` that records what the exchange asks of the driver."""

    def __init__(self) -> None:
        self.events: list[OutboundEvent] = []
        self.consumed: list[int] = []
        self.done: list[int] = []
        self.drains = 0

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None:
        self.events.append(event)

    def send_whole(self, status: int, headers: Headers, body: bytes) -> bool:
        return False  # every event recorded apart

    async def drain(self, stream_id: int = 0) -> None:
        self.drains += 1

    def body_consumed(self, stream_id: int, size: int) -> None:
        self.consumed.append(size)

    def stream_done(self, stream_id: int) -> None:
        self.done.append(stream_id)

    def of(self, kind: type[Any]) -> list[Any]:
        return [event for event in self.events if isinstance(event, kind)]

    @property
    def head(self) -> SendResponse:
        (head,) = self.of(SendResponse)
        assert isinstance(head, SendResponse)
        return head

    @property
    def body(self) -> bytes:
        return b"".join(event.data for event in self.of(SendData))


class RefusingOwner(RecordingOwner):
    """A core that refuses every response head, as h11 does once it is in ERROR."""

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None:
        if isinstance(event, SendResponse):
            raise LocalProtocolError("refused", status=500)
        super().send_event(event, flush=flush)


class WholeOwner(RecordingOwner):
    """An owner that takes a whole response in one call (HTTP/1.1's common path)."""

    def __init__(self, *, refuse: bool = False) -> None:
        super().__init__()
        self.wholes: list[tuple[int, Headers, bytes]] = []
        self.refuse = refuse

    def send_whole(self, status: int, headers: Headers, body: bytes) -> bool:
        if self.refuse:  # a head the core will not send: nothing sent
            self.refuse = False
            raise LocalProtocolError("refused", status=500)
        self.wholes.append((status, headers, body))
        return True


def context(
    *, root_path: str = "", state: dict[str, Any] | None = None, defaults: bool = False
) -> ServiceContext:
    options = HTTPOptions(root_path=root_path, server_header=defaults, date_header=defaults)
    return ServiceContext(_unused_app, options, state=state, date=DateHeader(lambda: 0.0))


async def _unused_app(scope: Scope, receive: Receive, send: Send) -> None:
    raise AssertionError("the exchange is driven directly in these tests")


def request(
    target: bytes = b"/",
    *,
    method: bytes = b"GET",
    headers: Headers | None = None,
    http_version: str = "1.1",
    scheme: bytes | None = None,
    expects_continue: bool = False,
    has_body: bool = False,
    stream_id: int = 1,
) -> RequestReceived:
    return RequestReceived(
        stream_id=stream_id,
        method=method,
        target=target,
        headers=[(b"host", b"example.com")] if headers is None else headers,
        http_version=http_version,
        scheme=scheme,
        expects_continue=expects_continue,
        has_body=has_body,
    )


def exchange(
    req: RequestReceived | None = None,
    *,
    owner: RecordingOwner | None = None,
    ctx: ServiceContext | None = None,
    info: ConnectionInfo = INFO,
) -> tuple[Exchange, RecordingOwner]:
    owner = owner or RecordingOwner()
    return Exchange(owner, req or request(), info, ctx or context()), owner


def app_sending(*messages: Message) -> Callable[[Scope, Receive, Send], Awaitable[None]]:
    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        for message in messages:
            await send(message)

    return app


async def receive_soon(ex: Exchange) -> Message:
    return await asyncio.wait_for(ex.receive(), timeout=2)


# -- scope ------------------------------------------------------------------------------

HTTP_SCOPE_KEYS = {
    "type",
    "asgi",
    "http_version",
    "method",
    "scheme",
    "path",
    "raw_path",
    "query_string",
    "root_path",
    "headers",
    "client",
    "server",
    "state",
    "extensions",
}


def test_scope_has_every_key_of_asgi_2_4() -> None:
    headers = [(b"host", b"example.com"), (b"x-custom", b"Value")]
    req = request(b"/a/b?x=1&y=2", method=b"POST", headers=headers)
    scope = build_scope(req, INFO, context(state={}))
    assert set(scope) == HTTP_SCOPE_KEYS
    assert scope["type"] == "http"
    assert scope["asgi"] == {"version": "3.0", "spec_version": "2.4"}
    assert scope["http_version"] == "1.1"
    assert scope["method"] == "POST"
    assert scope["scheme"] == "http"
    assert scope["path"] == "/a/b"
    assert scope["raw_path"] == b"/a/b"
    assert scope["query_string"] == b"x=1&y=2"
    assert scope["root_path"] == ""
    assert list(scope["headers"]) == headers
    assert scope["client"] == ("127.0.0.1", 50000)
    assert scope["server"] == ("127.0.0.1", 8000)
    assert scope["state"] == {}


def test_scope_types_match_the_spec() -> None:
    scope = build_scope(request(b"/?q"), INFO, context(state={}))
    assert isinstance(scope["path"], str)
    assert isinstance(scope["raw_path"], bytes)
    assert isinstance(scope["query_string"], bytes)
    assert isinstance(scope["root_path"], str)
    assert all(isinstance(n, bytes) and isinstance(v, bytes) for n, v in scope["headers"])


@pytest.mark.parametrize("version", ["1.0", "1.1", "2"])
def test_scope_http_version(version: str) -> None:
    assert build_scope(request(http_version=version), INFO, context())["http_version"] == version


@pytest.mark.parametrize(
    ("target", "path", "raw_path", "query"),
    [
        (b"/caf%C3%A9/a%20b", "/café/a b", b"/caf%C3%A9/a%20b", b""),
        (b"/%E2%9C%93?q=%E2%9C%93", "/✓", b"/%E2%9C%93", b"q=%E2%9C%93"),
        (b"/a%2Fb", "/a/b", b"/a%2Fb", b""),  # raw_path keeps what decoding loses
        (b"/x?a=1?b=2", "/x", b"/x", b"a=1?b=2"),  # only the first "?" splits
        (b"/%FF", "/\ufffd", b"/%FF", b""),  # invalid UTF-8 is replaced, not fatal
        (b"/plus+sign", "/plus+sign", b"/plus+sign", b""),  # "+" is not a space in a path
        (b"/?", "/", b"/", b""),
    ],
)
def test_scope_path_is_percent_decoded_utf8(
    target: bytes, path: str, raw_path: bytes, query: bytes
) -> None:
    scope = build_scope(request(target), INFO, context())
    assert (scope["path"], scope["raw_path"], scope["query_string"]) == (path, raw_path, query)


def test_scope_root_path_is_included_in_path_and_raw_path() -> None:
    # ASGI 2.4 and Uvicorn: the app strips root_path from path itself.
    scope = build_scope(request(b"/items/caf%C3%A9?x=1"), INFO, context(root_path="/api"))
    assert scope["root_path"] == "/api"
    assert scope["path"] == "/api/items/café"
    assert scope["raw_path"] == b"/api/items/caf%C3%A9"
    assert scope["query_string"] == b"x=1"


def test_scope_raw_path_percent_encodes_a_non_ascii_root_path() -> None:
    scope = build_scope(request(b"/x"), INFO, context(root_path="/café"))
    assert scope["path"] == "/café/x"
    assert scope["raw_path"] == b"/caf%C3%A9/x"


def test_scope_scheme_from_connection_or_request() -> None:
    tls = INFO.with_changes(scheme="https")
    assert build_scope(request(), tls, context())["scheme"] == "https"
    # HTTP/2 carries :scheme in the request itself, and it wins.
    assert build_scope(request(scheme=b"https"), INFO, context())["scheme"] == "https"


def test_scope_unix_socket_addresses() -> None:
    unix = ConnectionInfo(client=None, server=("/tmp/pounce.sock", None))
    scope = build_scope(request(), unix, context())
    assert scope["client"] is None
    assert scope["server"] == ("/tmp/pounce.sock", None)


def test_scope_has_no_state_without_lifespan_state() -> None:
    assert "state" not in build_scope(request(), INFO, context(state=None))


def test_scope_state_is_a_shallow_copy_per_request() -> None:
    shared: list[str] = []
    lifespan_state: dict[str, Any] = {"db": "pool", "shared": shared}
    ctx = context(state=lifespan_state)
    first = build_scope(request(), INFO, ctx)
    first["state"]["db"] = "replaced"
    first["state"]["request_only"] = True
    second = build_scope(request(), INFO, ctx)
    assert second["state"] == {"db": "pool", "shared": shared}
    assert lifespan_state == {"db": "pool", "shared": shared}
    # Shallow: the objects themselves are shared, as the spec says.
    first["state"]["shared"].append("seen")
    assert second["state"]["shared"] == ["seen"]


def test_scope_asgi_dict_is_not_shared_between_requests() -> None:
    first = build_scope(request(), INFO, context())
    first["asgi"]["spec_version"] = "9.9"
    assert build_scope(request(), INFO, context())["asgi"]["spec_version"] == "2.4"


# -- the response transition table -------------------------------------------------------


def test_transition_table_is_the_documented_contract() -> None:
    assert {
        (ResponseState.STARTING, "http.response.start"): ResponseState.STARTED,
        (ResponseState.STARTED, "http.response.body"): ResponseState.STARTED,
        (ResponseState.STARTING, "http.response.early_hint"): ResponseState.STARTING,
        (ResponseState.TRAILING, "http.response.trailers"): ResponseState.TRAILING,
        (ResponseState.STARTED, "http.response.pathsend"): ResponseState.DONE,
        (ResponseState.STARTED, "http.response.zerocopysend"): ResponseState.STARTED,
    } == TRANSITIONS


async def test_start_twice_is_a_contract_error() -> None:
    ex, owner = exchange()
    await ex.send(START)
    with pytest.raises(ASGIContractError, match=r"http\.response\.start"):
        await ex.send(START)
    assert owner.events == []


async def test_body_before_start_is_a_contract_error() -> None:
    ex, owner = exchange()
    with pytest.raises(ASGIContractError, match="'starting'"):
        await ex.send(BODY)
    assert owner.events == []


@pytest.mark.parametrize("message", [START, BODY, CHUNK])
async def test_anything_after_done_is_a_contract_error(message: Message) -> None:
    ex, owner = exchange()
    await ex.send(START)
    await ex.send(BODY)
    emitted = list(owner.events)
    with pytest.raises(ASGIContractError, match="'done'"):
        await ex.send(message)
    assert owner.events == emitted


@pytest.mark.parametrize(
    "message",
    [{"type": "http.response.trailers"}, {"type": "websocket.send"}, {}, {"type": 7}],
)
async def test_unknown_message_is_a_contract_error(message: Message) -> None:
    ex, _ = exchange()
    with pytest.raises(ASGIContractError):
        await ex.send(message)


MESSAGES: dict[str, Message] = {
    "start": START,
    "body": BODY,
    "chunk": CHUNK,
    "empty_chunk": {"type": "http.response.body", "body": b"", "more_body": True},
    "bogus": {"type": "http.response.bogus"},
}


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(sorted(MESSAGES)), max_size=8))
def test_any_message_sequence_follows_the_table(names: list[str]) -> None:
    """State × input: a message is accepted exactly when the table has an entry,
    and what reaches the wire is always one well-formed response."""

    async def drive() -> None:
        ex, owner = exchange()
        for name in names:
            message = MESSAGES[name]
            before = ex.state
            expected = TRANSITIONS.get((before, str(message.get("type"))))
            if expected is None:
                with pytest.raises(ASGIContractError):
                    await ex.send(message)
                assert ex.state is before
            else:
                await ex.send(message)
                more = message.get("more_body", False) or name == "start"
                assert ex.state is (expected if more else ResponseState.DONE)
        heads = [i for i, e in enumerate(owner.events) if isinstance(e, SendResponse)]
        ends = [i for i, e in enumerate(owner.events) if isinstance(e, SendData) and e.end_stream]
        assert len(heads) <= 1 and len(ends) <= 1
        if owner.events:
            assert heads == [0]
        if ends:
            assert ends == [len(owner.events) - 1]
            assert owner.done == [1]

    asyncio.run(drive())


# -- send: framing, HEAD, headers ------------------------------------------------------------


async def test_head_is_held_until_the_first_body_message() -> None:
    ex, owner = exchange()
    await ex.send(START)
    assert owner.events == []
    assert ex.response_started
    await ex.send(BODY)
    assert [type(e) for e in owner.events] == [SendResponse, SendData]


async def test_single_message_body_gets_content_length() -> None:
    ex, owner = exchange()
    await ex.run(app_sending(START, BODY))
    assert owner.head.status == 200
    assert (b"content-length", b"5") in owner.head.headers
    assert owner.of(SendData) == [SendData(stream_id=1, data=b"hello", end_stream=True)]
    assert owner.done == [1]
    assert ex.state is ResponseState.DONE
    assert ex.status == 200
    assert ex.bytes_sent == 5


async def test_empty_body_gets_content_length_zero() -> None:
    ex, owner = exchange()
    await ex.run(app_sending(START, {"type": "http.response.body"}))
    assert (b"content-length", b"0") in owner.head.headers
    assert owner.of(SendData) == [SendData(stream_id=1, data=b"", end_stream=True)]


@pytest.mark.parametrize(
    "framing",
    [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],
)
async def test_app_framing_is_not_overridden(framing: tuple[bytes, bytes]) -> None:
    ex, owner = exchange()
    start = {**START, "headers": [framing]}
    await ex.run(app_sending(start, BODY))
    names = [name for name, _ in owner.head.headers]
    assert names.count(b"content-length") + names.count(b"transfer-encoding") == 1


async def test_streaming_body_has_no_content_length_and_drains() -> None:
    ex, owner = exchange()
    empty_chunk = {"type": "http.response.body", "body": b"", "more_body": True}
    await ex.run(app_sending(START, CHUNK, empty_chunk, CHUNK, {"type": "http.response.body"}))
    assert not any(name == b"content-length" for name, _ in owner.head.headers)
    assert owner.of(SendData) == [
        SendData(stream_id=1, data=b"part", end_stream=False),
        SendData(stream_id=1, data=b"part", end_stream=False),
        SendData(stream_id=1, data=b"", end_stream=True),
    ]
    assert owner.drains == 3
    assert ex.bytes_sent == 8


async def test_body_may_be_bytearray_or_memoryview() -> None:
    ex, owner = exchange()
    await ex.send(START)
    await ex.send({"type": "http.response.body", "body": bytearray(b"ab"), "more_body": True})
    await ex.send({"type": "http.response.body", "body": memoryview(b"cd")})
    assert owner.body == b"abcd"
    assert all(type(e.data) is bytes for e in owner.of(SendData))


@pytest.mark.parametrize("body", ["text", None, 42])
async def test_body_must_be_bytes(body: object) -> None:
    ex, owner = exchange()
    await ex.send(START)
    with pytest.raises(ASGIContractError, match="must be bytes"):
        await ex.send({"type": "http.response.body", "body": body})
    assert owner.events == []


async def test_head_request_strips_the_body() -> None:
    ex, owner = exchange(request(method=b"HEAD"))
    start = {**START, "headers": [(b"content-length", b"11")]}
    await ex.run(app_sending(start, {"type": "http.response.body", "body": b"hello world"}))
    assert (b"content-length", b"11") in owner.head.headers
    assert owner.body == b""
    assert owner.of(SendData)[-1].end_stream
    assert ex.bytes_sent == 0


async def test_head_request_without_length_gets_none_made_up() -> None:
    ex, owner = exchange(request(method=b"HEAD"))
    await ex.run(app_sending(START, BODY))
    assert not any(name == b"content-length" for name, _ in owner.head.headers)
    assert owner.body == b""


async def test_head_request_streaming_sends_no_data() -> None:
    ex, owner = exchange(request(method=b"HEAD"))
    await ex.run(app_sending(START, CHUNK, CHUNK, {"type": "http.response.body"}))
    assert owner.of(SendData) == [SendData(stream_id=1, data=b"", end_stream=True)]


@pytest.mark.parametrize("status", [204, 304])
async def test_no_content_statuses_get_no_content_length_and_no_body(status: int) -> None:
    # RFC 9110 §8.6: a server MUST NOT send Content-Length in a 204.
    ex, owner = exchange()
    await ex.run(app_sending({**START, "status": status}, BODY))
    assert owner.head.status == status
    assert not any(name == b"content-length" for name, _ in owner.head.headers)
    assert owner.body == b""


async def test_default_headers_come_first_and_app_headers_replace_them() -> None:
    ex, owner = exchange(ctx=context(defaults=True))
    start = {**START, "headers": [(b"Server", b"mine"), (b"X-Custom", b"v")]}
    await ex.run(app_sending(start, BODY))
    assert owner.head.headers == [
        (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
        (b"server", b"mine"),
        (b"x-custom", b"v"),
        (b"content-length", b"5"),
    ]


async def test_keep_alive_refused_adds_connection_close() -> None:
    ex, owner = exchange()
    ex.keep_alive_refused = True
    await ex.run(app_sending(START, BODY))
    assert (b"connection", b"close") in owner.head.headers


# -- receive ---------------------------------------------------------------------------------


async def test_request_without_body_gives_one_empty_message() -> None:
    ex, owner = exchange(request(has_body=False))
    assert await receive_soon(ex) == {"type": "http.request", "body": b"", "more_body": False}
    assert owner.consumed == []


async def test_receive_merges_buffered_chunks() -> None:
    ex, owner = exchange(request(method=b"POST", has_body=True))
    for chunk in (b"ab", b"", b"cd", b"ef"):
        ex.feed_body(chunk)
    assert ex.unread_body == 6
    assert await receive_soon(ex) == {"type": "http.request", "body": b"abcdef", "more_body": True}
    assert owner.consumed == [6]
    assert ex.unread_body == 0
    ex.feed_body(b"g")
    ex.end_body()
    assert await receive_soon(ex) == {"type": "http.request", "body": b"g", "more_body": False}
    assert owner.consumed == [6, 1]


async def test_receive_after_end_of_body_gives_empty_final_message() -> None:
    ex, _ = exchange(request(method=b"POST", has_body=True))
    ex.feed_body(b"abc")
    assert (await receive_soon(ex))["more_body"] is True
    ex.end_body()
    assert await receive_soon(ex) == {"type": "http.request", "body": b"", "more_body": False}


async def test_receive_waits_for_body() -> None:
    ex, _ = exchange(request(method=b"POST", has_body=True))
    pending = asyncio.ensure_future(ex.receive())
    await asyncio.sleep(0)
    assert not pending.done()
    ex.feed_body(b"late")
    ex.end_body()
    message = await asyncio.wait_for(pending, timeout=2)
    assert message == {"type": "http.request", "body": b"late", "more_body": False}


async def test_cancelled_receive_does_not_break_the_next_one() -> None:
    ex, _ = exchange(request(method=b"POST", has_body=True))
    first = asyncio.ensure_future(ex.receive())
    second = asyncio.ensure_future(ex.receive())
    await asyncio.sleep(0)
    first.cancel()
    await asyncio.sleep(0)
    ex.feed_body(b"x")
    ex.end_body()
    assert (await asyncio.wait_for(second, timeout=2))["body"] == b"x"
    assert first.cancelled()


async def test_receive_after_whole_body_waits_for_disconnect() -> None:
    ex, _ = exchange(request(has_body=False))
    await receive_soon(ex)
    pending = asyncio.ensure_future(ex.receive())
    await asyncio.sleep(0)
    assert not pending.done()
    ex.disconnect()
    assert await asyncio.wait_for(pending, timeout=2) == {"type": "http.disconnect"}


async def test_receive_after_response_done_is_disconnect() -> None:
    ex, _ = exchange(request(method=b"POST", has_body=True))
    ex.feed_body(b"unread")
    await ex.send(START)
    await ex.send(BODY)
    assert await receive_soon(ex) == {"type": "http.disconnect"}


async def test_response_done_wakes_a_pending_receive() -> None:
    ex, _ = exchange(request(method=b"POST", has_body=True))
    pending = asyncio.ensure_future(ex.receive())
    await asyncio.sleep(0)
    await ex.send(START)
    await ex.send(BODY)
    assert await asyncio.wait_for(pending, timeout=2) == {"type": "http.disconnect"}


async def test_receive_after_disconnect_is_disconnect_even_with_body_buffered() -> None:
    ex, _ = exchange(request(method=b"POST", has_body=True))
    ex.feed_body(b"abc")
    ex.disconnect()
    assert await receive_soon(ex) == {"type": "http.disconnect"}
    assert await receive_soon(ex) == {"type": "http.disconnect"}


async def test_100_continue_on_first_receive_only() -> None:
    ex, owner = exchange(request(method=b"POST", has_body=True, expects_continue=True))
    assert owner.events == []  # not before the app asks for the body
    ex.feed_body(b"x")
    await receive_soon(ex)
    ex.feed_body(b"y")
    await receive_soon(ex)
    assert owner.of(SendInformational) == [SendInformational(stream_id=1, status=100)]


async def test_no_100_continue_once_the_response_started() -> None:
    ex, owner = exchange(request(method=b"POST", has_body=True, expects_continue=True))
    await ex.send(START)
    ex.end_body()
    await receive_soon(ex)
    assert owner.of(SendInformational) == []


async def test_no_100_continue_after_disconnect() -> None:
    ex, owner = exchange(request(method=b"POST", has_body=True, expects_continue=True))
    ex.disconnect()
    await receive_soon(ex)
    assert owner.events == []


# -- disconnects -------------------------------------------------------------------------------


@pytest.mark.parametrize("message", [START, BODY])
async def test_send_after_disconnect_raises_an_oserror(message: Message) -> None:
    ex, owner = exchange()
    ex.disconnect()
    with pytest.raises(ClientDisconnectedError) as raised:
        await ex.send(message)
    assert isinstance(raised.value, OSError)  # ASGI 2.4: a subclass of OSError
    assert owner.events == []


async def test_disconnect_mid_response_fails_the_state() -> None:
    ex, _ = exchange()
    await ex.send(START)
    await ex.send(CHUNK)
    ex.disconnect()
    assert ex.state is ResponseState.FAILED
    with pytest.raises(ClientDisconnectedError):
        await ex.send(BODY)


async def test_disconnect_after_done_keeps_done() -> None:
    ex, _ = exchange()
    await ex.send(START)
    await ex.send(BODY)
    ex.disconnect()
    assert ex.state is ResponseState.DONE


async def test_app_that_stops_on_client_disconnected_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ex, owner = exchange()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send(CHUNK)
        ex.disconnect()
        await send(CHUNK)

    with caplog.at_level(logging.DEBUG, logger="pounce.error"):
        await ex.run(app)
    assert [r for r in caplog.records if r.name == "pounce.error"] == []
    assert owner.of(ResetStream) == []


async def test_app_returning_after_disconnect_is_quiet(caplog: pytest.LogCaptureFixture) -> None:
    ex, owner = exchange()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        ex.disconnect()
        assert await receive() == {"type": "http.disconnect"}

    with caplog.at_level(logging.DEBUG, logger="pounce.error"):
        await ex.run(app)
    assert owner.events == []
    assert [r for r in caplog.records if r.name == "pounce.error"] == []


# -- failure policy ----------------------------------------------------------------------------


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "pounce.error"]


def assert_internal_error(owner: RecordingOwner, *, head: bool = False) -> None:
    assert [type(e) for e in owner.events] == [SendResponse, SendData]
    assert owner.head.status == 500
    assert (b"connection", b"close") in owner.head.headers
    data = owner.of(SendData)[0]
    assert data.end_stream
    assert data.data == (b"" if head else b"Internal Server Error\n")
    assert owner.done == [1]


async def test_exception_before_start_is_a_500_with_traceback(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ex, owner = exchange()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        await ex.run(app)
    assert_internal_error(owner)
    assert ex.status == 500
    (record,) = error_records(caplog)
    assert record.exc_info is not None and isinstance(record.exc_info[1], ValueError)


async def test_exception_before_start_on_head_is_a_500_without_body() -> None:
    ex, owner = exchange(request(method=b"HEAD"))

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        raise ValueError("boom")

    await ex.run(app)
    assert_internal_error(owner, head=True)


async def test_exception_between_start_and_body_is_still_a_500() -> None:
    # The head was held, so nothing of the app's response reached the wire.
    ex, owner = exchange()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send({**START, "headers": [(b"x-app", b"1")]})
        raise ValueError("boom")

    await ex.run(app)
    assert_internal_error(owner)
    assert (b"x-app", b"1") not in owner.head.headers


async def test_exception_after_body_started_resets_the_stream(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ex, owner = exchange()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send(CHUNK)
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        await ex.run(app)
    assert [type(e) for e in owner.events] == [SendResponse, SendData, ResetStream]
    assert owner.head.status == 200
    assert owner.done == [1]
    assert ex.state is ResponseState.FAILED
    assert len(error_records(caplog)) == 1


async def test_exception_after_done_only_logs(caplog: pytest.LogCaptureFixture) -> None:
    ex, owner = exchange()

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send(BODY)
        raise ValueError("late")

    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        await ex.run(app)
    assert [type(e) for e in owner.events] == [SendResponse, SendData]
    assert owner.done == [1]
    assert len(error_records(caplog)) == 1


async def test_returning_without_a_response_is_a_500(caplog: pytest.LogCaptureFixture) -> None:
    ex, owner = exchange()
    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        await ex.run(app_sending())
    assert_internal_error(owner)
    (record,) = error_records(caplog)
    assert "without completing the response" in record.getMessage()


async def test_returning_after_start_only_is_a_500() -> None:
    ex, owner = exchange()
    await ex.run(app_sending(START))
    assert_internal_error(owner)


async def test_returning_mid_body_resets_the_stream() -> None:
    ex, owner = exchange()
    await ex.run(app_sending(START, CHUNK))
    assert [type(e) for e in owner.events] == [SendResponse, SendData, ResetStream]
    assert owner.done == [1]


async def test_contract_error_is_logged_and_answered_500(caplog: pytest.LogCaptureFixture) -> None:
    ex, owner = exchange()
    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        await ex.run(app_sending(BODY))
    assert_internal_error(owner)
    (record,) = error_records(caplog)
    assert "asgi.contract" in record.getMessage()
    assert "'http.response.body'" in record.getMessage()


async def test_a_whole_response_goes_to_the_owner_in_one_call() -> None:
    ex, owner = exchange(owner=WholeOwner())
    await ex.run(app_sending(START, BODY))
    ((status, headers, body),) = owner.wholes
    assert (status, body) == (200, b"hello")
    # No Content-Length added: the owner frames a head without one (`send_whole`).
    assert all(name != b"content-length" for name, _ in headers)
    assert owner.events == []  # nothing apart
    assert owner.done == [1]
    assert ex.state is ResponseState.DONE
    assert ex.bytes_sent == 5


async def test_a_response_to_head_is_not_offered_as_a_whole() -> None:
    ex, owner = exchange(request(method=b"HEAD"), owner=WholeOwner())
    await ex.run(app_sending(START, BODY))
    assert owner.wholes == []
    (head,) = owner.of(SendResponse)
    assert all(name != b"content-length" for name, _ in head.headers)  # no made-up length
    assert [(e.data, e.end_stream) for e in owner.of(SendData)] == [(b"", True)]


async def test_a_whole_response_whose_head_is_refused_leaves_room_for_the_500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    ex, owner = exchange(owner=WholeOwner(refuse=True))
    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        await ex.run(app_sending(START, BODY))
    assert owner.wholes == []
    assert_internal_error(owner)  # the head was held, so the 500 could still go out
    assert ex.state is ResponseState.DONE


async def test_a_core_that_refuses_the_500_gets_a_reset(caplog: pytest.LogCaptureFixture) -> None:
    ex, owner = exchange(owner=RefusingOwner())

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        await send(START)
        await send(BODY)

    with caplog.at_level(logging.ERROR, logger="pounce.error"):
        await ex.run(app)  # must not raise out of the task
    assert owner.of(ResetStream) == [ResetStream(stream_id=1)]
    assert owner.done == [1]
    assert ex.state is ResponseState.FAILED


@pytest.mark.parametrize("status", [99, 100, 101, 199, 600, "200", None, 200.0, True])
async def test_invalid_status_is_a_500(status: object) -> None:
    ex, owner = exchange()
    seen: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": status, "headers": []})
        except ASGIContractError as exc:
            seen.append(exc)
            raise
        await send(BODY)

    await ex.run(app)
    assert len(seen) == 1 and "status" in str(seen[0])
    assert_internal_error(owner)


INJECTED = b"injected"

BAD_HEADERS: list[object] = [
    [(b"x-split", b"a\r\nset-cookie: injected=1")],
    [(b"x-split", b"a\nset-cookie: injected=1")],
    [(b"x-split", b"a\rinjected")],
    [(b"x-nul", b"a\x00injected")],
    [(b"x-ctl", b"a\x7finjected")],
    [(b"bad name", b"injected")],
    [(b"bad:name", b"injected")],
    [(b"", b"injected")],
    [(b"x-\xff", b"injected")],
    [("x-str", b"injected")],
    [(b"x-str", "injected")],
    [(b"x-one",)],
    [(b"x-three", b"injected", b"3")],
    [b"x-flat: injected"],
    [(b"content-length", b"5, injected")],
    [(b"content-length", b"-1")],
    [(b"transfer-encoding", b"gzip")],  # the client could not find the end of the body
    [(b"transfer-encoding", b"gzip, chunked")],
    [(b"content-length", b"5"), (b"transfer-encoding", b"chunked")],  # RFC 9112 §6.2
    None,
    b"x: injected",
]


@pytest.mark.parametrize("headers", BAD_HEADERS)
async def test_invalid_headers_are_never_emitted(headers: object) -> None:
    ex, owner = exchange()
    seen: list[BaseException] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await send({"type": "http.response.start", "status": 200, "headers": headers})
        except ASGIContractError as exc:
            seen.append(exc)
            raise
        await send(BODY)

    await ex.run(app)
    assert len(seen) == 1
    assert_internal_error(owner)
    assert not any(INJECTED in name + value for name, value in owner.head.headers)


async def test_header_values_are_trimmed_and_names_lower_cased() -> None:
    ex, owner = exchange()
    start = {**START, "headers": [(b"X-Trim", b" \tvalue with  inner space\t ")]}
    await ex.run(app_sending(start, BODY))
    assert (b"x-trim", b"value with  inner space") in owner.head.headers


async def test_obs_text_and_tabs_inside_values_are_allowed() -> None:
    ex, owner = exchange()
    start = {**START, "headers": [(b"x-latin", b"caf\xe9\tok")]}
    await ex.run(app_sending(start, BODY))
    assert (b"x-latin", b"caf\xe9\tok") in owner.head.headers


# -- the service context: default headers --------------------------------------------------


def test_date_header_is_formatted_once_per_second() -> None:
    now = [1.2]
    calls: list[float] = []

    def clock() -> float:
        calls.append(now[0])
        return now[0]

    date = DateHeader(clock)
    first = date.value()
    now[0] = 1.9
    assert date.value() is first
    now[0] = 2.0
    assert date.value() == b"Thu, 01 Jan 1970 00:00:02 GMT"
    assert len(calls) == 3


def test_response_headers_date_follows_the_clock_both_ways() -> None:
    now = [5.5]
    ctx = ServiceContext(_unused_app, HTTPOptions(), date=DateHeader(lambda: now[0]))

    def date() -> bytes:
        return dict(ctx.response_headers([]))[b"date"]

    assert date() == b"Thu, 01 Jan 1970 00:00:05 GMT"
    now[0] = 5.99
    assert date() == b"Thu, 01 Jan 1970 00:00:05 GMT"
    now[0] = 6.0
    assert date() == b"Thu, 01 Jan 1970 00:00:06 GMT"
    now[0] = 3.2  # the wall clock stepped back (NTP): so does the header
    assert date() == b"Thu, 01 Jan 1970 00:00:03 GMT"


def test_response_headers_defaults_and_extras() -> None:
    options = HTTPOptions(extra_headers=((b"x-frame-options", b"DENY"),))
    ctx = ServiceContext(_unused_app, options, date=DateHeader(lambda: 0.0))
    assert ctx.response_headers([(b"x-app", b"1")]) == [
        (b"server", b"pounce"),
        (b"x-frame-options", b"DENY"),
        (b"date", b"Thu, 01 Jan 1970 00:00:00 GMT"),
        (b"x-app", b"1"),
    ]
    replaced = ctx.response_headers([(b"x-frame-options", b"SAMEORIGIN")])
    assert (b"x-frame-options", b"DENY") not in replaced
    assert (b"x-frame-options", b"SAMEORIGIN") in replaced


def test_response_headers_without_defaults_is_a_copy() -> None:
    ctx = context(defaults=False)
    app_headers: Headers = [(b"x-app", b"1")]
    result = ctx.response_headers(app_headers)
    result.append((b"connection", b"close"))
    assert app_headers == [(b"x-app", b"1")]


async def test_concurrent_receives_are_all_woken() -> None:
    ex, _ = exchange(request(method=b"POST", has_body=True))
    first = asyncio.ensure_future(ex.receive())
    second = asyncio.ensure_future(ex.receive())
    await asyncio.sleep(0)
    ex.feed_body(b"x")
    ex.end_body()
    await asyncio.sleep(0)
    ex.disconnect()
    results = await asyncio.wait_for(asyncio.gather(first, second), timeout=2)
    assert sorted(m["type"] for m in results) == ["http.disconnect", "http.request"]


# -- ASGI extensions: trailers, early hints -------------------------------------------------

TRAILERS_START: Message = {**START, "trailers": True}
TRAILERS: Message = {"type": "http.response.trailers", "headers": [(b"x-sum", b"abc")]}


def test_scope_advertises_trailers_and_early_hints() -> None:
    scope = build_scope(request(), INFO, context())
    assert scope["extensions"] == {
        "http.response.trailers": {},
        "http.response.early_hint": {},
        "http.response.pathsend": {},
        "http.response.zerocopysend": {},
    }
    assert build_scope(request(), INFO, context())["extensions"] is not scope["extensions"]


@pytest.mark.parametrize("version", ["1.1", "2"])
async def test_trailers_end_the_response_after_the_body(version: str) -> None:
    ex, owner = exchange(request(http_version=version))
    await ex.send(TRAILERS_START)
    await ex.send(BODY)
    assert ex.state is ResponseState.TRAILING and owner.done == []
    await ex.send(
        {"type": "http.response.trailers", "headers": [(b"x-a", b"1")], "more_trailers": True}
    )
    assert owner.of(SendTrailers) == []
    await ex.send(TRAILERS)
    assert not any(name == b"content-length" for name, _ in owner.head.headers)
    assert owner.of(SendData) == [SendData(stream_id=1, data=b"hello", end_stream=False)]
    assert owner.of(SendTrailers) == [
        SendTrailers(stream_id=1, headers=[(b"x-a", b"1"), (b"x-sum", b"abc")])
    ]
    assert ex.state is ResponseState.DONE and owner.done == [1]


@pytest.mark.parametrize(
    ("req", "start"),
    [
        (request(http_version="1.0"), TRAILERS_START),
        (request(method=b"HEAD"), TRAILERS_START),
        (request(), {**TRAILERS_START, "status": 204}),
        (request(), {**TRAILERS_START, "headers": [(b"content-length", b"5")]}),
    ],
    ids=["http/1.0", "HEAD", "204", "content-length"],
)
async def test_trailers_the_framing_cannot_carry_are_dropped(
    req: RequestReceived, start: Message
) -> None:
    ex, owner = exchange(req)
    await ex.run(app_sending(start, BODY, TRAILERS))
    assert owner.of(SendTrailers) == []
    assert owner.of(SendData)[-1].end_stream
    assert ex.state is ResponseState.DONE and owner.done == [1]


async def test_trailers_without_announcing_them_are_a_contract_error() -> None:
    ex, _ = exchange()
    await ex.send(START)
    await ex.send(BODY)
    with pytest.raises(ASGIContractError, match="'done'"):
        await ex.send(TRAILERS)


async def test_announced_trailers_never_sent_reset_the_stream() -> None:
    ex, owner = exchange()
    await ex.run(app_sending(TRAILERS_START, BODY))
    assert isinstance(owner.events[-1], ResetStream)
    assert owner.done == [1]


async def test_early_hint_sends_a_103_with_link_fields() -> None:
    ex, owner = exchange()
    hint: Message = {"type": "http.response.early_hint", "links": [b"</a.css>; rel=preload"]}
    await ex.run(app_sending(hint, START, BODY))
    assert owner.events[0] == SendInformational(
        stream_id=1, status=103, headers=[(b"link", b"</a.css>; rel=preload")]
    )
    assert owner.head.status == 200


async def test_early_hint_after_the_start_is_a_contract_error() -> None:
    ex, _ = exchange()
    await ex.send(START)
    with pytest.raises(ASGIContractError):
        await ex.send({"type": "http.response.early_hint", "links": []})


async def test_early_hint_links_must_be_a_list() -> None:
    ex, _ = exchange()
    with pytest.raises(ASGIContractError, match="links"):
        await ex.send({"type": "http.response.early_hint", "links": b"</a>"})


# -- the one-message response (`send`'s inline path) against the general path ------------


class FlushRecordingOwner(RecordingOwner):
    """Also records each event's `flush` and when the stream was done, in one log."""

    def __init__(self) -> None:
        super().__init__()
        self.log: list[tuple[str, object, bool]] = []

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None:
        super().send_event(event, flush=flush)
        self.log.append(("event", event, flush))

    def stream_done(self, stream_id: int) -> None:
        super().stream_done(stream_id)
        self.log.append(("done", stream_id, True))


@pytest.mark.parametrize(
    ("method", "status", "headers", "body"),
    [
        (b"GET", 200, [(b"content-type", b"text/plain")], b"hello"),
        (b"GET", 200, [], b""),
        (b"HEAD", 200, [], b"hello"),
        (b"GET", 204, [], b""),
        (b"GET", 304, [(b"etag", b'"x"')], b"dropped"),
        (b"GET", 200, [(b"content-length", b"5")], b"hello"),
        (b"GET", 200, [(b"transfer-encoding", b"chunked")], b"hello"),
        (b"HEAD", 200, [(b"content-length", b"99")], b""),
    ],
)
async def test_one_message_response_matches_the_general_path(
    method: bytes, status: int, headers: Headers, body: bytes
) -> None:
    """A final body of `bytes` on a held head takes `send`'s inline path; a `bytearray`
    takes `_body_message`. Both must hand the owner the same events, with the same
    `flush`, in the same order, then end the stream the same way."""
    outcomes = []
    for payload in (body, bytearray(body)):
        owner = FlushRecordingOwner()
        req = request(method=method, has_body=True)  # a body that never comes
        ex, _ = exchange(req, owner=owner, ctx=context(defaults=True))
        waiter = asyncio.ensure_future(ex.receive())
        await asyncio.sleep(0)  # the receive waits for the body
        await ex.send({"type": "http.response.start", "status": status, "headers": headers})
        await ex.send({"type": "http.response.body", "body": payload})
        assert ex.state is ResponseState.DONE
        # The end of the response wakes a waiting receive: it hears the disconnect.
        assert await asyncio.wait_for(waiter, 2) == {"type": "http.disconnect"}
        outcomes.append((owner.log, ex.bytes_sent, ex.status, owner.drains))
    assert outcomes[0] == outcomes[1]
    log = outcomes[0][0]
    assert [entry[0] for entry in log] == ["event", "event", "done"]
    assert [entry[2] for entry in log] == [False, True, True]  # head and body: one write


async def test_one_message_response_refused_head_still_gets_a_500() -> None:
    """The inline path lets go of the held head only after the owner took it: a head
    the core refuses (before a byte went out) still leaves room for the 500."""

    class RefusesFirstHead(RecordingOwner):
        def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None:
            if isinstance(event, SendResponse) and event.status == 200:
                raise LocalProtocolError("refused", status=500)
            super().send_event(event, flush=flush)

    ex, owner = exchange(owner=RefusesFirstHead())
    await ex.run(app_sending(START, BODY))
    assert ex.status == 500
    assert owner.head.status == 500
    assert owner.done == [1]
    (data,) = owner.of(SendData)
    assert data.end_stream
