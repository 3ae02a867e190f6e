"""The builder: immutability, order, describe(), and every BuildError path."""

from __future__ import annotations

import pytest

from pounce import AppLayer, BuildError, ProtocolFactory, Server, StreamLayer
from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.conn import ConnectionHandler, HandlerFactory
from pounce.drivers.service import ServiceContext
from pounce.layer import Serving
from pounce.net.loops import uvloop_installed
from pounce.presets import StandardOptions, h2_installed, standard, wsproto_installed


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    pass


class Tag(AppLayer):
    def __init__(self, name: str) -> None:
        self.name = name

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        async def tagged(scope: Scope, receive: Receive, send: Send) -> None:
            scope.setdefault("tags", []).append(self.name)
            await inner(scope, receive, send)

        return tagged

    def describe(self) -> str:
        return f"tag {self.name}"


class Passthrough(StreamLayer):
    def wrap(self, inner: HandlerFactory) -> HandlerFactory:
        return inner


STANDARD_DESCRIBE = """\
listen   tcp 127.0.0.1:8000 (backlog 2048)
protocol http/1.1 (fast; max head 16384 B, max request line 8192 B)
{h2}http     keep-alive 5 s, request head 10 s, body silence 60 s, body rate 500 B/s
http     body limit none, send 60 s, headers [server, date], root path -
observe  access log (pounce.access)
app      proxy headers (trusted 127.0.0.1, ::1)
app      myapp:app (lifespan auto)
loop     {loop}"""


def test_standard_preset_describe_is_pinned() -> None:
    server = standard().asgi(app, name="myapp:app")
    loop = "uvloop" if uvloop_installed() else "asyncio"
    h2 = (
        ""
        if not h2_installed()
        else (
            "protocol h2 (max streams 100, window 65535 B / connection 1048576 B, "
            "max frame 16384 B, max header list 65536 B, max resets 200"
            + (", extended CONNECT for websocket" if wsproto_installed() else "")
            + ")\n"
        )
    )
    ws = (
        ""
        if not wsproto_installed()
        else (
            "protocol websocket (wsproto; max message 16777216 B, queue 32, "
            "ping 20 s / timeout 20 s, permessage-deflate on)\n"
        )
    )
    assert server.describe() == STANDARD_DESCRIBE.format(
        loop=loop, h2=h2 + ws
    )  # the protocol lines


def test_standard_preset_options_reach_the_stack() -> None:
    options = StandardOptions(
        uds="/tmp/x.sock",
        timeout_keep_alive=2,
        limit_request_body=100,
        headers=(("X-A", "1"),),
        server_header=False,
        access_log=False,
        root_path="/api",
        lifespan="off",
    )
    text = standard(options).asgi(app, name="m:a").describe()
    assert "listen   unix /tmp/x.sock" in text
    assert "keep-alive 2 s" in text
    assert "body limit 100 B" in text
    assert "headers [date, x-a]" in text
    assert "root path /api" in text
    assert "access log" not in text
    assert "lifespan off" in text


def test_builder_is_immutable() -> None:
    base = Server.builder().bind("127.0.0.1", 0)
    with_h1 = base.h1()
    assert base is not with_h1
    with pytest.raises(BuildError, match="no protocol"):
        base.asgi(app)
    assert "http/1.1" in with_h1.asgi(app).describe()


def test_call_order_is_wire_to_app_order() -> None:
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .layer(Passthrough())
        .layer(Tag("outer"))
        .layer(Tag("inner"))
        .asgi(app)
    )
    lines = server.describe().splitlines()
    assert lines.index("stream   Passthrough") < lines.index("protocol " + lines[2][9:])
    assert lines.index("app      tag outer") < lines.index("app      tag inner")


async def test_app_layers_wrap_outer_to_inner() -> None:
    seen: list[list[str]] = []

    async def recorder(scope: Scope, receive: Receive, send: Send) -> None:
        seen.append(list(scope["tags"]))

    server = Server.builder().bind("127.0.0.1", 0).h1().layer(Tag("a")).layer(Tag("b"))
    built = server.asgi(recorder)
    await built._wrap_app(Serving())({"type": "http"}, receive_nothing, send_nothing)
    assert seen == [["a", "b"]]


async def receive_nothing() -> dict[str, object]:
    return {}


async def send_nothing(message: object) -> None:
    pass


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda b: b.asgi(app), "no listener"),
        (lambda b: b.bind("127.0.0.1", 70000), "port must be an integer"),
        (lambda b: b.bind("", 80), "host must not be empty"),
        (lambda b: b.bind_unix(""), "path must not be empty"),
        (lambda b: b.bind_fd(-1), "fd must be"),
        (lambda b: b.backlog(0), "positive integer"),
        (lambda b: b.h1(max_incomplete_event_size=1), "at least 64 bytes"),
        (lambda b: b.h1(max_request_line="x"), "at least 64 bytes"),
        (lambda b: b.h1(parser="httptools"), "must be one of auto, fast, h11"),
        (lambda b: b.protocol(object()), "expected a ProtocolFactory"),
        (lambda b: b.layer(object()), "expected a StreamLayer or AppLayer"),
        (lambda b: b.timeouts(keep_alive=0), "positive number"),
        (lambda b: b.timeouts(request_head=-1), "positive number"),
        (
            lambda b: b.timeouts(graceful_shutdown=float("inf")).bind("h", 1).h1().asgi(app),
            "finite",
        ),
        (lambda b: b.response_headers(extra=[("bad name", "v")]), "invalid header"),
        (lambda b: b.response_headers(extra=[("x", "a\r\nb")]), "invalid header"),
        (lambda b: b.response_headers(extra=[("x",)]), "not a \\(name, value\\) pair"),
        (lambda b: b.limit_request_body(-5), "bytes >= 0"),
        (lambda b: b.root_path("api"), "must start with '/'"),
        (lambda b: b.root_path("/api/"), "must start with '/'"),
        (lambda b: b.lifespan("sometimes"), "must be one of"),
        (lambda b: b.bind("127.0.0.1", 0).h1().asgi("myapp:app"), "must be an ASGI callable"),
        (lambda b: b.bind("127.0.0.1", 0).asgi(app), "no protocol"),
        (
            lambda b: b.bind("127.0.0.1", 0).h1().layer(Tag("x")).layer(Passthrough()).asgi(app),
            "stream layer cannot come after",
        ),
        (lambda b: b.bind("127.0.0.1", 0).h1().layer(Tag("x")).build(), "need an ASGI app"),
    ],
)
def test_build_errors_name_the_call(make: object, match: str) -> None:
    with pytest.raises(BuildError, match=match) as info:
        make(Server.builder())  # type: ignore[operator]
    assert info.value.code == "build"


def test_build_error_carries_a_hint() -> None:
    with pytest.raises(BuildError) as info:
        Server.builder().h1().asgi(app)
    assert info.value.hint and ".bind(" in info.value.hint
    assert "hint:" in str(info.value)


def test_protocol_registered_twice_is_replaced() -> None:
    class Echo(ProtocolFactory):
        name = "echo"

        def handler(self, service: ServiceContext) -> ConnectionHandler:
            raise NotImplementedError

    server = Server.builder().bind("127.0.0.1", 0).protocol(Echo()).protocol(Echo()).build()
    assert server.describe().count("protocol echo") == 1


def test_ipv6_literal_in_brackets_is_accepted() -> None:
    server = Server.builder().bind("[::1]", 8000).h1().asgi(app)
    assert "listen   tcp [::1]:8000" in server.describe()


# -- WebSocket (docs/websocket.md) ------------------------------------------------------------


def test_websocket_needs_http1() -> None:
    with pytest.raises(BuildError, match=r"HTTP/1.1 is not served") as info:
        Server.builder().bind("127.0.0.1", 0).websocket().asgi(app)
    assert info.value.hint == "call .h1() too"


def test_websocket_without_wsproto_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    for name in [m for m in sys.modules if m == "wsproto" or m.startswith("wsproto.")]:
        monkeypatch.setitem(sys.modules, name, None)  # import wsproto → ImportError
    monkeypatch.setitem(sys.modules, "wsproto", None)
    monkeypatch.delitem(sys.modules, "pounce.drivers.websocket", raising=False)
    monkeypatch.delitem(sys.modules, "pounce.protocols.ws", raising=False)
    monkeypatch.delitem(sys.modules, "pounce.asgi.session", raising=False)
    with pytest.raises(BuildError) as info:
        Server.builder().h1().websocket()
    assert info.value.hint == "pip install pounce[ws]"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"max_size": 0}, "max_size"),
        ({"max_queue": True}, "max_queue"),
        ({"ping_interval": -1}, "ping_interval"),
        ({"ping_timeout": float("inf")}, "ping_timeout"),
    ],
)
def test_websocket_options_are_checked(options: dict[str, object], message: str) -> None:
    with pytest.raises(BuildError, match=message):
        Server.builder().h1().websocket(**options)  # type: ignore[arg-type]


def test_websocket_options_reach_describe() -> None:
    server = (
        Server.builder()
        .bind("127.0.0.1", 0)
        .h1()
        .websocket(max_size=1024, max_queue=4, ping_interval=None, per_message_deflate=False)
        .asgi(app)
    )
    assert (
        "protocol websocket (wsproto; max message 1024 B, queue 4, ping off / timeout 20 s, "
        "permessage-deflate off)"
    ) in server.describe()


def test_standard_preset_ws_choice() -> None:
    off = standard(StandardOptions(ws="none")).asgi(app).describe()
    on = standard(StandardOptions(ws="wsproto", ws_max_size=99)).asgi(app).describe()
    assert "websocket" not in off
    assert "max message 99 B" in on
