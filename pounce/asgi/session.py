"""One WebSocket connection as an ASGI call: scope, ``receive`` and ``send``.

The `WebSocketSession` speaks WebSocket core events to a `WebSocketOwner`
(the driver in `pounce.drivers.websocket`) and never sees a frame. It enforces the
ASGI WebSocket contract (spec 2.4) with a transition table; a message with no
entry for the current state raises `ASGIContractError`.

Failure policy: the app fails or returns before accepting → 500; closes
before accepting → 403 (ASGI); fails after accepting → close 1011; returns
after accepting without closing → close 1000. A denial response
(``websocket.http.response``) that the app leaves unfinished closes the
connection. Received messages wait in a queue of at most ``max_queue``; past
it the driver stops reading the socket, so nothing is ever dropped.
"""

from __future__ import annotations

import asyncio
import enum
import logging
from collections import deque
from typing import Protocol

from pounce.asgi.exchange import REQUEST_ID_EXTENSION, ExchangeContext, build_scope
from pounce.asgi.headers import validate_response_headers
from pounce.asgi.types import ASGIApp, Message, Scope
from pounce.conn import ConnectionInfo
from pounce.errors import ASGIContractError, ClientDisconnectedError, PounceError
from pounce.events import WebSocketClosed, WebSocketOpened, current_request_id
from pounce.protocols.events import RejectRequest, RequestReceived, SendData, SendResponse
from pounce.protocols.ws import (
    INTERNAL_ERROR,
    NORMAL_CLOSURE,
    AcceptWebSocket,
    CloseWebSocket,
    Handshake,
    SendMessage,
    WSOutboundEvent,
)

error_log = logging.getLogger("pounce.error")

WEBSOCKET_SPEC_VERSION = "2.4"
DENIAL_EXTENSION = "websocket.http.response"


class WebSocketOwner(Protocol):
    """What a session needs from the driver that owns its connection."""

    def send_event(self, event: WSOutboundEvent) -> None: ...

    def send_message(self, data: bytes | str) -> None:
        """One whole message, after the accept: `send_event` (`SendMessage`) without the event."""
        ...

    async def drain(self) -> None: ...

    def message_consumed(self) -> None:
        """The app took a message off the queue: reading may resume."""
        ...

    def session_done(self) -> None:
        """The app finished; nothing more will be sent."""
        ...


class SessionState(enum.Enum):
    CONNECTING = "connecting"  # before websocket.accept
    OPEN = "open"
    DENYING = "denying"  # websocket.http.response.start sent, body follows
    CLOSED = "closed"


# The ASGI contract, as a table: (state, message type) → next state.
TRANSITIONS: dict[tuple[SessionState, str], SessionState] = {
    (SessionState.CONNECTING, "websocket.accept"): SessionState.OPEN,
    (SessionState.CONNECTING, "websocket.close"): SessionState.CLOSED,
    (SessionState.CONNECTING, "websocket.http.response.start"): SessionState.DENYING,
    (SessionState.DENYING, "websocket.http.response.body"): SessionState.DENYING,
    (SessionState.OPEN, "websocket.send"): SessionState.OPEN,
    (SessionState.OPEN, "websocket.close"): SessionState.CLOSED,
}


class WebSocketSession:
    """Owns one WebSocket's ASGI state; driven by the driver and the app."""

    def __init__(
        self,
        owner: WebSocketOwner,
        request: RequestReceived,
        handshake: Handshake,
        info: ConnectionInfo,
        context: ExchangeContext,
    ) -> None:
        self._owner = owner
        self._context = context
        self._handshake = handshake
        self.scope = build_websocket_scope(request, handshake, info, context)
        self.state = SessionState.CONNECTING
        self._connect_delivered = False
        self._queue: deque[bytes | str] = deque()
        self._close: tuple[int, str] | None = None  # why the connection ended
        self._app_close = (NORMAL_CLOSURE, "")  # what the app closed with
        self._waiter: asyncio.Future[None] | None = None  # the waiting receive()'s
        self._more_waiters: list[asyncio.Future[None]] = []
        self._loop = asyncio.get_running_loop()
        # What the lifecycle events report (pounce.events): messages each way, the answer.
        self._events = context.events
        self._started_at = self._events.clock() if self._events is not None else 0.0
        self._messages_in = 0
        self._messages_out = 0
        self._status = 0  # the handshake's answer once sent: 101/200, 403, a denial's, 500
        self._denial_bytes = 0
        self._was_accepted = False
        self.request_id: str | None = None
        if context.request_ids is not None:
            self.request_id = context.request_ids(request.headers, info.client)
            self.scope["extensions"][REQUEST_ID_EXTENSION] = {"id": self.request_id}

    # -- driver side ---------------------------------------------------------------

    def feed(self, data: bytes | str) -> int:
        """Queue a received message for the app; returns how many wait now."""
        self._queue.append(data)
        self._messages_in += 1
        self._wake()
        return len(self._queue)

    def disconnect(self, code: int, reason: str = "") -> None:
        """The connection ended (or is ending) with `code`; the app hears it after the queue."""
        if self._close is None:
            self._close = (code, reason)
        self._wake()

    @property
    def queued(self) -> int:
        return len(self._queue)

    @property
    def accepted(self) -> bool:
        return self.state is SessionState.OPEN

    def _wake(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._more_waiters:
            for other in self._more_waiters:
                if not other.done():
                    other.set_result(None)
            self._more_waiters.clear()

    # -- app side: receive ----------------------------------------------------------

    async def receive(self) -> Message:
        if not self._connect_delivered:
            self._connect_delivered = True
            return {"type": "websocket.connect"}
        while True:
            if self._queue:
                data = self._queue.popleft()
                self._owner.message_consumed()
                if isinstance(data, str):
                    return {"type": "websocket.receive", "text": data}
                return {"type": "websocket.receive", "bytes": data}
            if self._close is not None or self.state is SessionState.CLOSED:
                code, reason = self._close or self._app_close
                return {"type": "websocket.disconnect", "code": code, "reason": reason}
            # A fresh future per wait: a cancelled receive() cancels only its
            # own, and the app's task wakes one loop turn after `_wake`
            # (asyncio.shield would add a future, a callback and a turn).
            waiter = self._loop.create_future()
            if self._waiter is None or self._waiter.done():
                self._waiter = waiter
            else:  # a second receive() at the same time: rare, but both wake
                self._more_waiters.append(waiter)
            await waiter

    # -- app side: send ---------------------------------------------------------------

    async def send(self, message: Message) -> None:
        kind = message.get("type")
        if kind == "websocket.send" and self.state is SessionState.OPEN and self._close is None:
            # The hot path; the table below says the same: (OPEN, websocket.send) → OPEN.
            self._owner.send_message(_payload(message))
            self._messages_out += 1
            await self._owner.drain()
            return
        kind = str(kind)
        if self._close is not None:
            raise ClientDisconnectedError("the WebSocket is closed; the message cannot be sent")
        following = TRANSITIONS.get((self.state, kind))
        if following is None:
            raise ASGIContractError(
                f"unexpected ASGI message {kind!r} in WebSocket state {self.state.value!r}",
                hint="accept (or deny) first, then send; nothing after close",
            )
        if kind == "websocket.send":
            self._owner.send_event(SendMessage(data=_payload(message)))
            self._messages_out += 1
            await self._owner.drain()
            return
        if kind == "websocket.accept":
            accept = self._accept(message)
            self._owner.send_event(accept)
            self._opened(accept.subprotocol)
        elif kind == "websocket.close":
            self._send_close(message)
        elif kind == "websocket.http.response.start":
            self._owner.send_event(self._denial_head(message))
        else:
            self._denial_body(message)
            await self._owner.drain()
            return
        self.state = following

    def _accept(self, message: Message) -> AcceptWebSocket:
        subprotocol = message.get("subprotocol")
        if subprotocol is not None and subprotocol not in self._handshake.subprotocols:
            raise ASGIContractError(
                f"websocket.accept subprotocol {subprotocol!r} was not offered by the client",
                hint=f"pick one of scope['subprotocols'] {list(self._handshake.subprotocols)}",
            )
        headers = validate_response_headers(message.get("headers", []))
        return AcceptWebSocket(
            subprotocol=subprotocol, headers=self._context.response_headers(headers)
        )

    def _send_close(self, message: Message) -> None:
        if self.state is SessionState.CONNECTING:
            # ASGI: a close before the accept is answered 403 Forbidden.
            headers = self._context.response_headers([])
            self._owner.send_event(RejectRequest(stream_id=0, status=403, headers=headers))
            self._status = 403
            return
        code = message.get("code", NORMAL_CLOSURE)
        reason = message.get("reason") or ""
        if isinstance(code, bool) or not isinstance(code, int) or not isinstance(reason, str):
            raise ASGIContractError(f"websocket.close needs an int code and a str reason: {code!r}")
        self._app_close = (code, reason)
        self._owner.send_event(CloseWebSocket(code=code, reason=reason))

    def _denial_head(self, message: Message) -> SendResponse:
        status = message.get("status")
        if isinstance(status, bool) or not isinstance(status, int) or not 200 <= status <= 599:
            raise ASGIContractError(f"invalid denial response status {status!r}")
        headers = self._context.response_headers(
            validate_response_headers(message.get("headers", []))
        )
        self._status = status
        return SendResponse(stream_id=0, status=status, headers=headers)

    def _denial_body(self, message: Message) -> None:
        body = message.get("body", b"")
        if not isinstance(body, bytes | bytearray | memoryview):
            raise ASGIContractError(
                f"websocket.http.response.body 'body' must be bytes, not {type(body)}"
            )
        more = bool(message.get("more_body", False))
        self._owner.send_event(SendData(stream_id=0, data=bytes(body), end_stream=not more))
        self._denial_bytes += len(body)
        if not more:
            self.state = SessionState.CLOSED

    # -- running the app ------------------------------------------------------------------

    async def run(self, app: ASGIApp) -> None:
        if self.request_id is not None:
            current_request_id.set(self.request_id)  # this task's log lines carry it
        try:
            await app(self.scope, self.receive, self.send)
        except ClientDisconnectedError:
            pass
        except Exception as exc:
            if isinstance(exc, PounceError):
                error_log.error("ASGI app error (%s): %s", exc.code, exc)
            else:
                error_log.error("Exception in ASGI application", exc_info=exc)
            self._finish(INTERNAL_ERROR)
        else:
            if self.state is SessionState.CONNECTING:
                error_log.error("ASGI app returned without accepting or closing the WebSocket")
            self._finish(NORMAL_CLOSURE)
        finally:
            if self._events is not None:
                self._closed_event()
            self._owner.session_done()

    # -- events (only with subscribers) -----------------------------------------------------

    def _opened(self, subprotocol: str | None) -> None:
        self._status = 200 if self.scope["http_version"] == "2" else 101
        self._was_accepted = True
        if self._events is None:
            return
        self._events.emit(
            WebSocketOpened(
                path=self.scope["path"],
                http_version=self.scope["http_version"],
                client=self.scope.get("client"),
                status=self._status,
                subprotocol=subprotocol,
                duration=self._events.clock() - self._started_at,
                headers=self.scope["headers"],
                request_id=self.request_id,
            )
        )

    def _closed_event(self) -> None:
        assert self._events is not None
        accepted = self._was_accepted
        code = None
        if accepted:
            code = (self._close or self._app_close)[0]
        self._events.emit(
            WebSocketClosed(
                path=self.scope["path"],
                http_version=self.scope["http_version"],
                client=self.scope.get("client"),
                accepted=accepted,
                status=self._status or 500,
                code=code,
                messages_in=self._messages_in,
                messages_out=self._messages_out,
                bytes=self._denial_bytes,
                duration=self._events.clock() - self._started_at,
                headers=self.scope["headers"],
                request_id=self.request_id,
                extensions=self.scope["extensions"],
            )
        )

    def _finish(self, code: int) -> None:
        """End what the app left open: 500 before the accept, else a close with `code`."""
        state, self.state = self.state, SessionState.CLOSED
        try:
            if state is SessionState.CONNECTING:
                headers = self._context.response_headers([])
                self._owner.send_event(RejectRequest(stream_id=0, status=500, headers=headers))
                self._status = 500
            elif state is SessionState.OPEN and self._close is None:
                self._app_close = (code, "")  # what WebSocketClosed reports: 1011 on a failure
                self._owner.send_event(CloseWebSocket(code=code))
        except PounceError as exc:
            error_log.error("Could not end the WebSocket: %s", exc)


def build_websocket_scope(
    request: RequestReceived, handshake: Handshake, info: ConnectionInfo, context: ExchangeContext
) -> Scope:
    """The ASGI ``websocket`` scope (spec 2.4): the HTTP scope's fields, less ``method``."""
    scope = build_scope(request, info, context)
    del scope["method"]
    scope["type"] = "websocket"
    scope["asgi"]["spec_version"] = WEBSOCKET_SPEC_VERSION
    scope["scheme"] = "wss" if scope["scheme"] in ("https", "wss") else "ws"
    scope["subprotocols"] = list(handshake.subprotocols)
    scope.setdefault("extensions", {})[DENIAL_EXTENSION] = {}
    return scope


def _payload(message: Message) -> bytes | str:
    data, text = message.get("bytes"), message.get("text")
    if text is None:
        if type(data) is bytes:
            return data
        if isinstance(data, bytes | bytearray | memoryview):
            return bytes(data)
    elif data is None and isinstance(text, str):
        return text
    raise ASGIContractError(
        "websocket.send needs exactly one of 'bytes' (bytes) or 'text' (str)",
        hint="set the other to None or leave it out",
    )
