"""The built-in demo app, ``pounce.demo:app``: see the server work at once.

A plain ASGI 3 app that needs nothing beyond the standard library, so it runs
under Pounce (or any ASGI server) straight after install::

    python -m pounce.demo            # http://127.0.0.1:8000/

Endpoints:

* ``GET /`` — an HTML page showing the request as the server saw it;
* ``GET /json`` — the same as JSON;
* ``GET /stream`` — server-sent events, one tick a second for five seconds;
* ``GET /download?size=N`` — N zero bytes (default 10 MiB, at most 1 GiB) in
  64 KiB chunks, with ``Content-Length``, as an attachment;
* ``POST /echo`` — the request body back (at most 1 MiB);
* ``GET /websocket`` — a page that talks to the WebSocket echo at ``/ws``
  (text and binary messages back as sent, at most 64 KiB each; needs a server
  with WebSocket, e.g. ``pounce[ws]``);
* anything else — a 404 page.

Invariants: every client-supplied string that reaches HTML is escaped; every
response says ``X-Content-Type-Options: nosniff``; streaming responses stop
as soon as the client disconnects. The app answers the ``lifespan`` scope.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import html
import json
from collections.abc import Awaitable, Callable, Sequence
from urllib.parse import parse_qs

from pounce.asgi.types import Message, Receive, Scope, Send

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB

DEFAULT_TICK = 1.0  # seconds between server-sent events
DEFAULT_TICKS = 5  # events per /stream response
DEFAULT_DOWNLOAD_SIZE = 10 * MiB  # bytes, when /download has no ?size=
MAX_DOWNLOAD_SIZE = 1 * GiB  # bytes; larger sizes are answered 400
DOWNLOAD_CHUNK = 64 * KiB  # bytes per http.response.body message
MAX_ECHO_SIZE = 1 * MiB  # bytes of request body /echo accepts; more → 413

_ZEROS = bytes(DOWNLOAD_CHUNK)

# The page loads nothing and runs no script; forms may only post back here.
_CSP = b"default-src 'none'; style-src 'unsafe-inline'; form-action 'self'"

Handler = Callable[[Scope, Receive, Send], Awaitable[None]]


class DemoApp:
    """The demo as an ASGI app; `tick` (seconds) and `ticks` shape ``/stream``."""

    def __init__(self, *, tick: float = DEFAULT_TICK, ticks: int = DEFAULT_TICKS) -> None:
        self.tick = tick
        self.ticks = ticks
        self._routes: dict[str, tuple[tuple[str, ...], Handler]] = {
            "/": (("GET", "HEAD"), self.page),
            "/json": (("GET", "HEAD"), self.as_json),
            "/stream": (("GET",), self.stream),
            "/download": (("GET", "HEAD"), self.download),
            "/echo": (("POST",), self.echo),
            "/websocket": (("GET", "HEAD"), self.websocket_page),
        }

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await _lifespan(receive, send)
        elif scope["type"] == "http":
            await self._route(scope, receive, send)
        elif scope["type"] == "websocket":
            await ws_echo(scope, receive, send)

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        route = self._routes.get(scope["path"])
        if route is None:
            await not_found(scope, send)
            return
        methods, handler = route
        if scope["method"] not in methods:
            allow = ", ".join(methods).encode("ascii")
            await respond(send, 405, b"Method Not Allowed\n", b"text/plain", [(b"allow", allow)])
            return
        await handler(scope, receive, send)

    # -- endpoints ---------------------------------------------------------------

    async def page(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = render_page(request_info(scope)).encode("utf-8")
        await respond(
            send, 200, body, b"text/html; charset=utf-8", [(b"content-security-policy", _CSP)]
        )

    async def as_json(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = json.dumps(request_info(scope), indent=2).encode("utf-8") + b"\n"
        await respond(send, 200, body, b"application/json")

    async def stream(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = [
            (b"content-type", b"text/event-stream"),
            (b"cache-control", b"no-cache"),
            (b"x-accel-buffering", b"no"),  # tell nginx not to buffer the events
            (b"x-content-type-options", b"nosniff"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        watcher = asyncio.create_task(_until_disconnect(receive))
        try:
            for n in range(1, self.ticks + 1):
                await send(_more(sse_event("tick", {"n": n, "of": self.ticks}, n)))
                done, _ = await asyncio.wait({watcher}, timeout=self.tick)
                if done:
                    return  # the client left: stop at once
            await send({"type": "http.response.body", "body": sse_event("done", {}, None)})
        finally:
            watcher.cancel()

    async def download(self, scope: Scope, receive: Receive, send: Send) -> None:
        size = download_size(scope["query_string"])
        if size is None:
            message = f"size must be an integer 0-{MAX_DOWNLOAD_SIZE} (bytes)\n"
            await respond(send, 400, message.encode("ascii"), b"text/plain")
            return
        headers = [
            (b"content-type", b"application/octet-stream"),
            (b"content-length", b"%d" % size),
            (b"content-disposition", b'attachment; filename="pounce-demo-%d.bin"' % size),
            (b"x-content-type-options", b"nosniff"),
        ]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        remaining = 0 if scope["method"] == "HEAD" else size
        while remaining > DOWNLOAD_CHUNK:
            await send(_more(_ZEROS))
            remaining -= DOWNLOAD_CHUNK
        await send({"type": "http.response.body", "body": _ZEROS[:remaining]})

    async def websocket_page(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = render_websocket_page().encode("utf-8")
        await respond(
            send, 200, body, b"text/html; charset=utf-8", [(b"content-security-policy", _WS_CSP)]
        )

    async def echo(self, scope: Scope, receive: Receive, send: Send) -> None:
        body = await read_body(receive, MAX_ECHO_SIZE)
        if body is None:
            await respond(send, 413, b"Request body too large (1 MiB at most)\n", b"text/plain")
            return
        await respond(send, 200, body, b"text/plain; charset=utf-8")


app = DemoApp()
"""``pounce.demo:app``."""


# -- the request as data --------------------------------------------------------------


def request_info(scope: Scope) -> dict[str, object]:
    """What the server told the app about a request, as JSON-ready values."""
    return {
        "method": scope["method"],
        "path": scope["path"],
        "query": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "scheme": scope["scheme"],
        "client": _address(scope.get("client")),
        "server": _address(scope.get("server")),
        "root_path": scope.get("root_path", ""),
        "headers": [[n.decode("latin-1"), v.decode("latin-1")] for n, v in scope["headers"]],
    }


def _address(address: Sequence[object] | None) -> str | None:
    if not address:
        return None
    host, port = address[0], address[1]
    return str(host) if port is None else f"{host}:{port}"


def download_size(query_string: bytes) -> int | None:
    """The ``size`` parameter in bytes, the default if absent, None if invalid."""
    values = parse_qs(query_string.decode("latin-1")).get("size")
    if not values:
        return DEFAULT_DOWNLOAD_SIZE
    text = values[0].strip()
    if not text.isdigit() or len(text) > 12:
        return None
    size = int(text)
    return size if size <= MAX_DOWNLOAD_SIZE else None


# -- HTML ------------------------------------------------------------------------------

_STYLE = """
body { font: 15px/1.5 system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; padding: 0 1rem;
       color: #222; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; vertical-align: top; padding: .25rem .6rem;
         border-bottom: 1px solid #ddd; font: 13px ui-monospace, monospace;
         word-break: break-all; }
th { width: 12rem; color: #555; font-weight: normal; }
nav a { margin-right: 1rem; } .muted { color: #777; }
"""

_LINKS = (
    ("/json", "this request as JSON"),
    ("/stream", "server-sent events (5 ticks)"),
    ("/download?size=1048576", "1 MiB download"),
    ("/download", "10 MiB download"),
    ("/websocket", "WebSocket echo"),
)


def render_page(info: dict[str, object]) -> str:
    """The ``/`` page for `info` (from `request_info`); every value is escaped."""
    headers = info["headers"]
    assert isinstance(headers, list)
    summary = [(key, info[key]) for key in info if key != "headers"]
    links = "".join(f'<a href="{href}">{text}</a>' for href, text in _LINKS)
    return _document(
        "Pounce is running",
        f"<h1>Pounce is running</h1>"
        f'<p class="muted">This is <code>pounce.demo:app</code>; the request it received:</p>'
        f"<nav>{links}</nav>"
        f"<h2>Request</h2>{_table(summary)}"
        f"<h2>Headers</h2>{_table(headers)}"
        f"<h2>Echo</h2>"
        f'<form method="post" action="/echo"><input name="message" value="hello">'
        f"<button>POST to /echo</button></form>",
    )


def render_not_found(path: str) -> str:
    """The 404 page; `path` is escaped."""
    return _document(
        "Not found",
        f"<h1>404 Not Found</h1><p>Nothing at <code>{_e(path)}</code>.</p>"
        f'<p><a href="/">Back to the demo</a></p>',
    )


def _document(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{_STYLE}</style></head><body>{body}</body></html>\n"
    )


def _table(rows: Sequence[Sequence[object]]) -> str:
    cells = "".join(f"<tr><th>{_e(key)}</th><td>{_e(value)}</td></tr>" for key, value in rows)
    return f"<table>{cells}</table>"


def _e(value: object) -> str:
    return html.escape("-" if value is None else str(value), quote=True)


# -- ASGI plumbing ------------------------------------------------------------------------


async def respond(
    send: Send,
    status: int,
    body: bytes,
    content_type: bytes,
    extra: Sequence[tuple[bytes, bytes]] = (),
) -> None:
    """A whole response in two messages, with a Content-Length."""
    headers = [
        (b"content-type", content_type),
        (b"content-length", b"%d" % len(body)),
        (b"x-content-type-options", b"nosniff"),
        *extra,
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def not_found(scope: Scope, send: Send) -> None:
    body = render_not_found(scope["path"]).encode("utf-8")
    await respond(
        send, 404, body, b"text/html; charset=utf-8", [(b"content-security-policy", _CSP)]
    )


async def read_body(receive: Receive, limit: int) -> bytes | None:
    """The whole request body, or None past `limit` bytes or on disconnect."""
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            return None
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def sse_event(event: str, data: dict[str, object], event_id: int | None) -> bytes:
    """One server-sent event (HTML Living Standard §9.2.6); `data` as one JSON line."""
    lines = [f"event: {event}", f"data: {json.dumps(data)}"]
    if event_id is not None:
        lines.insert(0, f"id: {event_id}")
    return ("\n".join(lines) + "\n\n").encode("utf-8")


def _more(body: bytes) -> Message:
    return {"type": "http.response.body", "body": body, "more_body": True}


async def _until_disconnect(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


# -- WebSocket echo ----------------------------------------------------------------------

MAX_WS_MESSAGE = 64 * KiB  # bytes (or characters) per echoed message; more → close 1009

# The page's one script, allowed by its hash; it shows messages with textContent
# only, so nothing a peer sends can become markup.
_WS_SCRIPT = """
const log = document.getElementById("log");
const form = document.getElementById("send");
const status = document.getElementById("status");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/ws");
function show(text) {
  const line = document.createElement("li");
  line.textContent = text;
  log.appendChild(line);
}
socket.onopen = () => { status.textContent = "connected"; };
socket.onclose = (e) => { status.textContent = "closed (" + e.code + ")"; };
socket.onmessage = (e) => { show("echo: " + e.data); };
form.onsubmit = (e) => {
  e.preventDefault();
  const text = form.elements.message.value;
  socket.send(text);
  show("sent: " + text);
};
"""
_WS_SCRIPT_HASH = base64.b64encode(hashlib.sha256(_WS_SCRIPT.encode("utf-8")).digest())
_WS_CSP = (
    b"default-src 'none'; style-src 'unsafe-inline'; connect-src 'self'; "
    b"script-src 'sha256-" + _WS_SCRIPT_HASH + b"'"
)


def render_websocket_page() -> str:
    """The ``/websocket`` page: a form, a log, and the script that echoes through ``/ws``."""
    return _document(
        "WebSocket echo",
        "<h1>WebSocket echo</h1>"
        '<p class="muted">Messages go to <code>/ws</code> and come back as sent.</p>'
        '<p>Status: <span id="status">connecting</span></p>'
        '<form id="send"><input name="message" value="hello" maxlength="1000">'
        "<button>Send</button></form>"
        f'<ul id="log"></ul><script>{_WS_SCRIPT}</script>'
        '<p><a href="/">Back to the demo</a></p>',
    )


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """``/ws``: accept and echo every message; any other path is refused (403)."""
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"] != "/ws":
        await send({"type": "websocket.close"})  # before the accept: 403
        return
    await send({"type": "websocket.accept"})
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text, data = message.get("text"), message.get("bytes")
        if len(text if text is not None else data or b"") > MAX_WS_MESSAGE:
            await send({"type": "websocket.close", "code": 1009, "reason": "message too big"})
            return
        await send({"type": "websocket.send", "text": text, "bytes": data})


def main() -> None:
    """``python -m pounce.demo``: serve the demo on http://127.0.0.1:8000/."""
    import pounce

    pounce.run(app)


if __name__ == "__main__":
    main()
