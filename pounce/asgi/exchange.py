"""One HTTP request/response as an ASGI call: scope, ``receive`` and ``send``.

The `Exchange` is protocol-neutral: it speaks Pounce events to a
`StreamOwner` (the driver) and never sees bytes of a wire format, so HTTP/1.1
and HTTP/2 share it. It enforces the ASGI response contract with a
transition table; a message that has no entry for the current state raises
`ASGIContractError`.

Failure policy (DESIGN.md): the app fails before ``http.response.start`` →
500; after → the stream is reset (HTTP/1.1: the connection closes); the app
returns without finishing → logged, then the same as a failure. The head is
held until the first body message, so a failure between the two still gets
a clean 500. If the protocol core refuses even the 500, the stream is reset:
every path ends in `stream_done`, so a connection never hangs.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections.abc import Callable
from functools import lru_cache
from typing import Any, Protocol, runtime_checkable
from urllib.parse import quote, unquote_to_bytes

from pounce.asgi import files, phases
from pounce.asgi.files import FileBody
from pounce.asgi.headers import validate_response_headers
from pounce.asgi.types import ASGIApp, Message, Scope
from pounce.conn import ConnectionInfo
from pounce.errors import ASGIContractError, ClientDisconnectedError, PounceError
from pounce.events import (
    EventBus,
    RequestCompleted,
    RequestFailed,
    RequestStarted,
    ResponseStarted,
    current_request_id,
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
    send_data,
    send_response,
)

error_log = logging.getLogger("pounce.error")

ASGI_VERSION = "3.0"
HTTP_SPEC_VERSION = "2.4"

# RFC 9110 §15.3.5, §15.4.5: these responses never carry content, and a 204
# MUST NOT carry Content-Length (§8.6); a body the app sends is dropped.
NO_CONTENT_STATUSES = frozenset({204, 304})
# The fields that frame a response body.
_FRAMING_NAMES = frozenset((b"content-length", b"transfer-encoding"))

# Scope extensions Pounce fills (documented in docs/observability.md).
REQUEST_ID_EXTENSION = "pounce.request_id"  # {"id": str}, with .request_id()
PROBE_EXTENSION = "pounce.probe"  # {}, set by .health() on the probes it answers


class StreamOwner(Protocol):
    """What an exchange needs from the driver that owns its stream."""

    def send_event(self, event: OutboundEvent, *, flush: bool = True) -> None: ...

    def send_whole(self, status: int, headers: Headers, body: bytes) -> bool:
        """The held head and all of the response's `body`, ending it, at once; False,
        with nothing sent, where the owner has no such path (the exchange then sends
        them as two events). A head with no field that frames the body is sent with a
        Content-Length of ``len(body)`` (as the two events would carry it). Raises as
        `send_event` of the head would, having sent nothing."""
        ...

    async def drain(self, stream_id: int = 0) -> None:
        """Wait until `stream_id` may send more: socket buffer, HTTP/2 window."""
        ...

    def body_consumed(self, stream_id: int, size: int) -> None: ...

    def stream_done(self, stream_id: int) -> None: ...


@runtime_checkable
class FileOwner(Protocol):
    """A `StreamOwner` that can write a file's bytes itself (HTTP/1.1 on plain TCP)."""

    async def send_file(self, stream_id: int, fd: int, offset: int, count: int) -> bool:
        """Send `count` bytes of `fd` from `offset` as body; False (nothing sent) where it
        cannot, and the exchange reads the file into ordinary body messages instead."""
        ...


class ResponseState(enum.Enum):
    STARTING = "starting"  # waiting for http.response.start
    STARTED = "started"  # head sent (or held), body may follow
    TRAILING = "trailing"  # final body sent, trailers to come (``trailers: True``)
    DONE = "done"  # response complete
    FAILED = "failed"  # aborted: reset, disconnected or errored


# Module names for the members: on Python 3.11 every ``ResponseState.X`` goes through
# ``EnumType.__getattr__`` (some 400 instructions), and the exchange reads them per request.
_STARTING = ResponseState.STARTING
_STARTED = ResponseState.STARTED
_DONE = ResponseState.DONE
_TRAILING = ResponseState.TRAILING
_FAILED = ResponseState.FAILED

# The response contract, as a table: (state, message type) → next state.
TRANSITIONS: dict[tuple[ResponseState, str], ResponseState] = {
    (ResponseState.STARTING, "http.response.start"): ResponseState.STARTED,
    (ResponseState.STARTED, "http.response.body"): ResponseState.STARTED,
    # ASGI extensions (advertised in scope["extensions"]):
    (ResponseState.STARTING, "http.response.early_hint"): ResponseState.STARTING,
    (ResponseState.TRAILING, "http.response.trailers"): ResponseState.TRAILING,
    (ResponseState.STARTED, files.PATHSEND): ResponseState.DONE,
    (ResponseState.STARTED, files.ZEROCOPYSEND): ResponseState.STARTED,
}

# What the response does with the trailers an app announced (``trailers: True``).
_TRAILERS_NONE = 0  # none announced: the last body message ends the response
_TRAILERS_SEND = 1  # sent after the body (HTTP/2; HTTP/1.1 chunked)
_TRAILERS_DROP = 2  # accepted and dropped: the framing cannot carry them


class Exchange:
    """Owns one request's ASGI state; driven by the driver and the app."""

    __slots__ = (
        "__weakref__",
        "_body",
        "_body_complete",
        "_body_delivered",
        "_context",
        "_disconnected",
        "_events",
        "_expects_continue",
        "_framed",
        "_held_head",
        "_info",
        "_is_head",
        "_no_body",
        "_owner",
        "_reported",
        "_request",
        "_started_at",
        "_status",
        "_trailer_fields",
        "_trailers",
        "_ttfb",
        "_waiters",
        "bytes_sent",
        "keep_alive_refused",
        "received_body",
        "request_id",
        "scope",
        "state",
        "stream_id",
        "task",
        "unread_body",
    )

    task: asyncio.Task[None]
    """The task that runs the app (`run`), set by the owner that starts it."""

    def __init__(
        self,
        owner: StreamOwner,
        request: RequestReceived,
        info: ConnectionInfo,
        context: ExchangeContext,
    ) -> None:
        self.stream_id = request.stream_id
        self._owner = owner
        self._context = context
        self._is_head = request.method == b"HEAD"
        # The scope is built when the app starts (`run`), in its task: built here, its
        # eight dicts would wait for the task with those of every other request read in
        # the same turn of the loop (64 with wrk's 64 connections), and that many live
        # objects trip a generation-0 collection about once a turn.
        self._request: RequestReceived | None = request
        self._info = info
        self.state = _STARTING
        self._status = 0
        self._no_body = False  # HEAD, 204 or 304: whatever body the app sends is dropped
        # The response head's Content-Length or Transfer-Encoding field name, if it has one.
        self._framed: bytes | None = None
        # The response head's fields, from `_start` until the head is sent (its status is
        # `_status`): it waits for the first body message, to leave in the same write.
        self._held_head: Headers | None = None
        self._trailers = _TRAILERS_NONE
        self._expects_continue = request.expects_continue
        # Made at the first body chunk and the first wait: a GET needs neither, and
        # fewer objects wait for the app's task (see `_request`).
        self._body: list[bytes] | None = None
        self.unread_body = 0  # bytes of request body received, not yet read by the app
        self.received_body = 0  # bytes of request body received (the owner's count)
        self._body_complete = not request.has_body
        self._body_delivered = False
        self._disconnected = False
        self._waiters: list[asyncio.Future[None]] | None = None
        self.keep_alive_refused = False
        self.bytes_sent = 0
        self.request_id: str | None = None
        events = self._events = context.events
        if events is not None and not events.requests:
            events = self._events = None  # its subscribers take no request event
        if events is not None or context.request_ids is not None:
            self._observe(request, info, context, events)

    def _observe(
        self,
        request: RequestReceived,
        info: ConnectionInfo,
        context: ExchangeContext,
        events: EventBus | None,
    ) -> None:
        """Only with subscribers or request ids: the request's id, clock and first event."""
        self._build_scope()  # they read it before the app starts
        ids = context.request_ids
        if ids is not None:
            self.request_id = ids(request.headers, info.client)
            self.scope["extensions"][REQUEST_ID_EXTENSION] = {"id": self.request_id}
        if events is not None:
            self._started_at = events.clock()
            self._ttfb: float | None = None
            self._reported = False
            if not events.request_started:
                return
            events.emit(
                RequestStarted(
                    method=self.scope["method"],
                    path=self.scope["path"],
                    http_version=self.scope["http_version"],
                    client=info.client,
                    request_id=self.request_id,
                )
            )

    # -- driver side ------------------------------------------------------------

    def feed_body(self, data: bytes) -> None:
        if not data:
            return
        if self._body is None:
            self._body = [data]
        else:
            self._body.append(data)
        self.unread_body += len(data)
        self._wake()

    def end_body(self) -> None:
        self._body_complete = True
        if self._waiters:
            self._wake()

    def disconnect(self) -> None:
        """The client is gone or the stream was reset: unblock and refuse further sends."""
        self._disconnected = True
        if self.state is not _DONE:
            self.state = _FAILED
            if self._events is not None:
                self._report(complete=False)
        self._wake()

    def _build_scope(self) -> Scope:
        request = self._request
        if request is not None:
            self.scope = build_scope(request, self._info, self._context)
            self._request = None
        return self.scope

    @property
    def response_started(self) -> bool:
        return self.state is not _STARTING

    def _wake(self) -> None:
        if not self._waiters:
            return
        waiters, self._waiters = self._waiters, None
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    # -- app side: receive ---------------------------------------------------------

    async def receive(self) -> Message:
        while True:
            message = self._next_message()
            if message is not None:
                return message
            # One future per call: a cancelled receive (Starlette cancels its
            # disconnect listener) must not cancel another caller's wait.
            waiter = asyncio.get_running_loop().create_future()
            if self._waiters is None:
                self._waiters = [waiter]
            else:
                self._waiters.append(waiter)
            await waiter

    def _next_message(self) -> Message | None:
        if self._disconnected or self.state is _DONE:
            return {"type": "http.disconnect"}
        if self._expects_continue:
            self._expects_continue = False
            if self.state is _STARTING:
                self._owner.send_event(SendInformational(stream_id=self.stream_id, status=100))
        chunks = self._body
        if chunks or (self._body_complete and not self._body_delivered):
            if chunks:
                body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
                self._body = None
            else:
                body = b""
            size, self.unread_body = self.unread_body, 0
            if size:
                self._owner.body_consumed(self.stream_id, size)
            self._body_delivered = self._body_complete
            return {"type": "http.request", "body": body, "more_body": not self._body_complete}
        return None

    # -- app side: send --------------------------------------------------------------

    async def send(self, message: Message) -> None:
        if self._disconnected:
            raise ClientDisconnectedError("the client disconnected; the response cannot be sent")
        kind = message.get("type")
        state = self.state
        # The two legal moves first, without hashing an enum (Enum.__hash__ is
        # Python code); the table still decides everything else.
        if state is _STARTED and kind == "http.response.body":
            head = self._held_head
            if (
                head is not None
                and not message.get("more_body")
                and not self._trailers
                and self._events is None
            ):
                body = message.get("body", b"")
                if type(body) is bytes:
                    # The common response: the held head and one final body message of
                    # bytes, no trailers, no subscribers. What `_body_message` does for
                    # it, inline, without the branches it cannot take: the same events
                    # reach the owner in the same order.
                    owner = self._owner
                    stream_id = self.stream_id
                    # Head and body in one call where the owner can (one write; the owner
                    # adds the Content-Length a head without framing gets); a refused
                    # head raises before anything is sent, and leaves it held for the 500.
                    if not self._no_body and owner.send_whole(self._status, head, body):
                        self._held_head = None
                    else:
                        if self._no_body:
                            body = b""  # ASGI: the server strips the body of a HEAD response
                        elif not framing_field(head):
                            # A whole body in one message: a Content-Length, not chunked.
                            head.append((b"content-length", b"%d" % len(body)))
                        # (leaves with the body)
                        owner.send_event(send_response(stream_id, self._status, head), flush=False)
                        self._held_head = None  # (after: a refused head leaves room for a 500)
                        owner.send_event(send_data(stream_id, body, True))
                    self.bytes_sent += len(body)
                    self.state = _DONE
                    if self._waiters:
                        self._wake()
                    owner.stream_done(stream_id)
                    return
            if self._body_message(message):
                await self._owner.drain(self.stream_id)
            return
        if state is _STARTING and kind == "http.response.start":
            self._start(message)
            self.state = _STARTED
            return
        following = TRANSITIONS.get((state, str(kind)))
        if following is None:
            raise ASGIContractError(
                f"unexpected ASGI message {kind!r} in response state {self.state.value!r}",
                hint="send http.response.start once, then http.response.body messages",
            )
        if kind == "http.response.trailers":
            self._trailers_message(message)
        elif kind in files.FILE_MESSAGES:
            await self._file_message(message)
        else:
            self._early_hint(message)

    def _start(self, message: Message) -> None:
        status = message.get("status")
        # 1xx are not final responses; ASGI has no message that sends one.
        if type(status) is not int or not 200 <= status <= 599:
            if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
                raise ASGIContractError(
                    f"invalid response status {status!r}", hint="an int from 200 to 599"
                )
            status = int(status)  # an IntEnum such as HTTPStatus
        app_headers = validate_response_headers(message.get("headers", ()))
        headers = self._context.response_headers(app_headers)
        if self.keep_alive_refused:
            headers.append((b"connection", b"close"))
        if self.request_id is not None:
            ids = self._context.request_ids
            if ids is not None and ids.echo is not None:
                headers.append((ids.echo, self.request_id.encode("latin-1")))
        self._status = status
        self._no_body = self._is_head or status in NO_CONTENT_STATUSES
        # (The field that frames the body is looked for when the head is sent, and not
        # at all by the one-call response: its owner looks at every field anyway.)
        self._held_head = headers
        if message.get("trailers"):
            self._announce_trailers(app_headers)

    def _body_message(self, message: Message) -> bool:
        """Hand one body message to the owner; True if the sender must then wait for drain.

        Not a coroutine: most body messages need no wait, and the common
        one-message response then costs no coroutine of its own.
        """
        body = message.get("body", b"")
        if type(body) is not bytes:
            if not isinstance(body, bytes | bytearray | memoryview):
                raise ASGIContractError(
                    f"http.response.body 'body' must be bytes, not {type(body)}"
                )
            body = bytes(body)
        more = bool(message.get("more_body", False))
        if self._no_body:
            body = b""  # ASGI: the server strips the body of a HEAD response
        owner = self._owner
        head = self._held_head
        if head is not None:
            # The head waits for the first body message so both leave in one
            # write; a whole body in one message gets a Content-Length instead
            # of chunked framing (cheaper for every client to read).
            # HEAD: the length of the GET body is unknown here, so none is made up.
            framed = self._framed = framing_field(head)
            if not (more or self._no_body or self._trailers or framed):
                head.append((b"content-length", b"%d" % len(body)))
            owner.send_event(
                send_response(self.stream_id, self._status, head), flush=not (body or not more)
            )
            self._held_head = None
            if self._events is not None:
                self._response_started(self._events)
        if self._trailers and not more:
            self._body_before_trailers(body)
            return False
        if body or not more:
            owner.send_event(send_data(self.stream_id, body, not more))
            self.bytes_sent += len(body)
        if not more:
            self.state = _DONE
            if self._events is not None:
                self._report(complete=True)
            if self._waiters:
                self._wake()
            owner.stream_done(self.stream_id)
            return False
        return True

    # -- ASGI extensions: http.response.trailers, http.response.early_hint ---------------

    def _announce_trailers(self, app_headers: Headers) -> None:
        """``trailers: True``: the body will not end the response, trailers will.

        HTTP/1.1 carries trailers only in a chunked body (RFC 9112 §7.1.2):
        none for an HTTP/1.0 client, a HEAD or a 204/304 (no body at all), or
        a head with the app's own Content-Length. Those trailers are dropped.
        """
        can_send = not (self._is_head or self._status in NO_CONTENT_STATUSES)
        version = self._build_scope()["http_version"]
        if version not in ("2", "3"):  # framed by the stream's end
            can_send = can_send and version != "1.0"
            can_send = can_send and not any(n == b"content-length" for n, _ in app_headers)
        self._trailers = _TRAILERS_SEND if can_send else _TRAILERS_DROP
        self._trailer_fields: Headers = []

    def _body_before_trailers(self, body: bytes) -> None:
        """The last body message when trailers follow: the stream stays open for them."""
        # Also when empty: it flushes the head that went before it.
        self._owner.send_event(SendData(stream_id=self.stream_id, data=body))
        self.bytes_sent += len(body)
        self.state = _TRAILING

    def _trailers_message(self, message: Message) -> None:
        self._trailer_fields += validate_response_headers(message.get("headers", ()))
        if message.get("more_trailers", False):
            return
        owner = self._owner
        if self._trailers == _TRAILERS_SEND:
            owner.send_event(SendTrailers(stream_id=self.stream_id, headers=self._trailer_fields))
        else:
            owner.send_event(SendData(stream_id=self.stream_id, data=b"", end_stream=True))
        self.state = _DONE
        if self._events is not None:
            self._report(complete=True)
        self._wake()
        owner.stream_done(self.stream_id)

    def _early_hint(self, message: Message) -> None:
        """103 Early Hints (RFC 8297) with one ``link`` field per entry of ``links``.

        The cores drop it where a 1xx may not go (an HTTP/1.0 client).
        """
        links = message.get("links", ())
        if isinstance(links, bytes | str):
            raise ASGIContractError("http.response.early_hint 'links' must be a list of bytes")
        headers = validate_response_headers([(b"link", link) for link in links])
        self._owner.send_event(
            SendInformational(stream_id=self.stream_id, status=103, headers=headers)
        )

    # -- ASGI extensions: http.response.pathsend, http.response.zerocopysend -------------

    async def _file_message(self, message: Message) -> None:
        """A body that is a file (pounce/asgi/files.py): zero-copy where the owner can."""
        body = await files.open_body(message)
        try:
            await self._file_body(body)
        finally:
            body.close()

    async def _file_body(self, body: FileBody) -> None:
        head = self._held_head
        if head is not None:
            self._framed = framing_field(head)
            if not (body.more or self._framed or self._trailers):
                # The whole body is this file: its length is known, so no chunked framing.
                head.append((b"content-length", b"%d" % body.count))
                self._framed = b"content-length"
        if body.count and not self._no_body and self._framed == b"content-length":
            owner = self._owner
            if head is not None:
                owner.send_event(send_response(self.stream_id, self._status, head), flush=False)
                self._held_head = None
            if isinstance(owner, FileOwner) and await owner.send_file(
                self.stream_id, body.fd, body.offset, body.count
            ):
                self.bytes_sent += body.count
                if not body.more:
                    self._body_message({"type": "http.response.body"})
                return
        if not self._no_body:
            async for chunk in files.read_chunks(body.fd, body.offset, body.count):
                if self._disconnected:
                    raise ClientDisconnectedError("the client disconnected while a file was sent")
                if self._body_message(
                    {"type": "http.response.body", "body": chunk, "more_body": True}
                ):
                    await self._owner.drain(self.stream_id)
        if not body.more:
            self._body_message({"type": "http.response.body"})

    # -- running the app ---------------------------------------------------------------

    async def run(self, app: ASGIApp, on_exit: Callable[[Exchange], None] | None = None) -> None:
        """Run the app to its end; `on_exit` is called last, with this exchange, whatever
        happened. (The owner that runs it as a task sets `task` first.)"""
        request = self._request
        if request is not None:  # (`_build_scope` inline: once per request)
            scope = self.scope = build_scope(request, self._info, self._context)
            self._request = None
        else:
            scope = self.scope
        if self.request_id is not None:
            current_request_id.set(self.request_id)  # the task's own context: its log lines
        try:
            await app(scope, self.receive, self.send)
        except ClientDisconnectedError:
            if self._events is not None:
                self._failed(None, client_left=True, kind=ClientDisconnectedError)
        except Exception as exc:
            self._fail(exc)
        else:
            if self.state is not _DONE and not self._disconnected:
                error_log.error(
                    "ASGI app returned without completing the response (%s %s)",
                    scope["method"],
                    scope["path"],
                )
                if self._events is not None:
                    self._failed(None, client_left=False)
                self._abort()
        finally:
            if on_exit is not None:
                on_exit(self)

    def _fail(self, exc: Exception) -> None:
        # The client left and the app failed on it; or, its response complete, the app
        # read on and was told http.disconnect (Starlette raises ClientDisconnect then).
        # An OSError of the app's own (a database) is not the client's doing.
        client_left = is_disconnect_error(exc, any_oserror=self._disconnected) and (
            self._disconnected or self.state is _DONE
        )
        if client_left:
            # The app stopped because the client left (Starlette's ClientDisconnect,
            # an OSError from send): not a bug in the app, so no ERROR and no traceback.
            scope = self._build_scope()
            error_log.info(
                "Client disconnected during %s %s (%s)",
                scope["method"],
                scope["path"],
                _type_name(type(exc)),
            )
        elif isinstance(exc, PounceError):
            error_log.error("ASGI app error (%s): %s", exc.code, exc)
        else:
            error_log.error("Exception in ASGI application", exc_info=exc)
        if self._events is not None:
            self._failed(exc, client_left=client_left)
        if not self._disconnected:
            self._abort()

    def _failed(
        self,
        error: BaseException | None,
        *,
        client_left: bool,
        kind: type[BaseException] | None = None,
    ) -> None:
        assert self._events is not None
        kind = type(error) if error is not None else kind
        scope = self._build_scope()
        self._events.emit(
            RequestFailed(
                method=scope["method"],
                path=scope["path"],
                exception=None if kind is None else _type_name(kind),
                error=error,
                client_left=client_left,
                response_started=self.state is not _STARTING,
                headers=scope["headers"],
                request_id=self.request_id,
                extensions=scope["extensions"],
            )
        )

    # -- events (only with subscribers) ---------------------------------------------------

    def _response_started(self, events: EventBus) -> None:
        self._ttfb = events.clock() - self._started_at
        if not events.response_started:
            return
        scope = self._build_scope()
        events.emit(
            ResponseStarted(
                method=scope["method"],
                path=scope["path"],
                status=self._status,
                ttfb=self._ttfb,
                request_id=self.request_id,
            )
        )

    def _report(self, *, complete: bool) -> None:
        """`RequestCompleted`, once: at the last byte, a reset or the client's leaving."""
        events = self._events
        if events is None or self._reported:
            return
        self._reported = True
        scope = self._build_scope()
        target = scope["path"]
        if scope["query_string"]:
            target += "?" + scope["query_string"].decode("latin-1")
        extensions = scope["extensions"]
        events.emit(
            RequestCompleted(
                method=scope["method"],
                path=target,
                http_version=scope["http_version"],
                scheme=scope["scheme"],
                client=scope.get("client"),
                status=self._status if self._held_head is None else 0,
                bytes=self.bytes_sent,
                ttfb=self._ttfb,
                duration=events.clock() - self._started_at,
                queue_wait=phases.queue_wait(extensions),
                complete=complete,
                headers=scope["headers"],
                request_id=self.request_id,
                extensions=extensions,
                probe=PROBE_EXTENSION in extensions,
            )
        )

    def _abort(self) -> None:
        """500 while nothing is on the wire, else reset; always ends the stream."""
        if self.state is _DONE:
            return
        if self.state is _STARTING or self._held_head is not None:
            try:
                self._send_internal_error()
                return
            except PounceError as exc:  # the core refused even the 500
                error_log.error("Could not send a 500 response: %s", exc)
        self.state = _FAILED
        if self._events is not None:
            self._report(complete=False)
        try:
            self._owner.send_event(ResetStream(stream_id=self.stream_id))
        except PounceError as exc:
            error_log.error("Could not reset the stream: %s", exc)
        finally:
            self._owner.stream_done(self.stream_id)

    def _send_internal_error(self) -> None:
        body = b"Internal Server Error\n"
        headers = self._context.response_headers(
            [
                (b"content-type", b"text/plain; charset=utf-8"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ]
        )
        owner = self._owner
        owner.send_event(SendResponse(stream_id=self.stream_id, status=500, headers=headers))
        self._held_head = None
        self._status = 500
        if self._events is not None:
            self._response_started(self._events)
        sent = b"" if self._is_head else body
        owner.send_event(SendData(stream_id=self.stream_id, data=sent, end_stream=True))
        self.bytes_sent += len(sent)  # the 500 is part of what this response sent
        self.state = _DONE
        if self._events is not None:
            self._report(complete=True)
        self._wake()
        owner.stream_done(self.stream_id)

    @property
    def status(self) -> int:
        return self._status


class ExchangeContext(Protocol):
    """Per-server facts an exchange needs; implemented by the service context."""

    @property
    def root_path(self) -> str: ...

    @property
    def state(self) -> dict[str, Any] | None: ...

    def response_headers(self, app_headers: Headers) -> Headers: ...

    @property
    def events(self) -> EventBus | None:
        """The server's subscribers (None: nobody listens, nothing is emitted)."""
        ...

    @property
    def request_ids(self) -> RequestIds | None: ...


class RequestIds(Protocol):
    """Gives each request its id (``X-Request-ID``); see `pounce.observe.request_id`."""

    @property
    def echo(self) -> bytes | None:
        """The response header that carries the id back (None: not sent)."""
        ...

    def __call__(self, headers: Headers, peer: tuple[str, int] | None) -> str: ...


def is_disconnect_error(exc: BaseException, *, any_oserror: bool = False) -> bool:
    """Is `exc` what an app raises because its client left?

    Pounce's own `ClientDisconnectedError`, Starlette's ``ClientDisconnect``
    (matched by name: Starlette is not a dependency), with `any_oserror` (the
    client is known to be gone) any `OSError`, or a group of nothing else
    (anyio task groups wrap them).
    """
    if isinstance(exc, BaseExceptionGroup):
        return all(is_disconnect_error(e, any_oserror=any_oserror) for e in exc.exceptions)
    if isinstance(exc, ClientDisconnectedError) or (any_oserror and isinstance(exc, OSError)):
        return True
    return any(kind.__name__ == "ClientDisconnect" for kind in type(exc).__mro__)


def framing_field(headers: Headers) -> bytes | None:
    """The name of the field that frames the body (Content-Length or Transfer-Encoding),
    if the head has one."""
    for name, _ in headers:
        if name in _FRAMING_NAMES:
            return name
    return None


def _type_name(kind: type[BaseException]) -> str:
    module = kind.__module__
    return kind.__qualname__ if module == "builtins" else f"{module}.{kind.__qualname__}"


# A byte's value, not ``b"%"``: ``bytes in bytes`` first tries the needle as an int,
# and the TypeError it makes and clears costs ten times the search (CPython 3.11).
_PERCENT = ord("%")


def build_scope(request: RequestReceived, info: ConnectionInfo, context: ExchangeContext) -> Scope:
    """The ASGI ``http`` scope for a request (ASGI spec 2.4)."""
    raw_path, _, query = request.target.partition(b"?")
    root_path = context.root_path
    if _PERCENT in raw_path:
        path = unquote_to_bytes(raw_path).decode("utf-8", "replace")
    else:
        try:
            path = raw_path.decode()  # nothing to unquote: skip the scan
        except UnicodeDecodeError:
            path = raw_path.decode("utf-8", "replace")
    if root_path:
        # As Uvicorn: `path` and `raw_path` include the mount point (ASGI 2.4).
        path = root_path + path
        raw_path = _encoded_root_path(root_path) + raw_path
    scope: Scope = {
        "type": "http",
        # A fresh dict per scope: an app that edits it must not change the next one's.
        "asgi": {"version": ASGI_VERSION, "spec_version": HTTP_SPEC_VERSION},
        "http_version": request.http_version,
        "method": request.method.decode("ascii"),
        "scheme": request.scheme.decode("ascii") if request.scheme else info.scheme,
        "path": path,
        "raw_path": raw_path,
        "query_string": query,
        "root_path": root_path,
        "headers": request.headers,
        "client": info.client,
        "server": info.server,
        # A fresh dict per scope; apps may add to it (Starlette does).
        "extensions": {
            "http.response.trailers": {},
            "http.response.early_hint": {},
            "http.response.pathsend": {},
            "http.response.zerocopysend": {},
        },
    }
    state = context.state
    if state is not None:
        scope["state"] = dict(state)
    # -- TLS (issue 6): the ASGI "tls" extension, filled by pounce/layers/tls/layer.py --
    if info.tls is not None:
        scope["extensions"]["tls"] = info.tls.asgi_extension()
    return scope


@lru_cache(maxsize=8)
def _encoded_root_path(root_path: str) -> bytes:
    """`root_path` as it appears on the wire (percent-encoded UTF-8), for `raw_path`."""
    return quote(root_path, safe="/!$&'()*+,;=:@").encode("ascii")
