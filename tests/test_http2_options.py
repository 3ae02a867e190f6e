"""`.h2()` on the builder, the preset and the ``--http2`` flag."""

from __future__ import annotations

import sys

import pytest

from pounce import Server
from pounce.cli import build_parser, options_from
from pounce.drivers.http2 import HTTP2Protocol
from pounce.errors import BuildError
from pounce.presets import StandardOptions, standard


async def app(scope: object, receive: object, send: object) -> None:
    pass


def test_h2_registers_the_protocol_with_its_settings() -> None:
    builder = Server.builder().bind("127.0.0.1", 0).h2(max_concurrent_streams=7, max_resets=9)
    (factory,) = builder._protocols
    assert isinstance(factory, HTTP2Protocol)
    assert factory.settings.max_concurrent_streams == 7 and factory.settings.max_resets == 9
    assert "h2 (max streams 7" in builder.asgi(app).describe()


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_concurrent_streams", 0),
        ("initial_window_size", 2**31),
        ("connection_window_size", 1000),
        ("max_frame_size", 1000),
        ("max_frame_size", 2**24),
        ("max_header_list_size", 10),
        ("max_resets", True),
    ],
)
def test_h2_rejects_bad_settings(name: str, value: int) -> None:
    with pytest.raises(BuildError, match=rf"\.h2\({name}="):
        Server.builder().h2(**{name: value})


def test_h2_without_the_extra_names_the_fix(monkeypatch: pytest.MonkeyPatch) -> None:
    for module in ("h2", "pounce.drivers.http2", "pounce.protocols.h2"):
        monkeypatch.setitem(sys.modules, module, None)  # import fails as if not installed
    with pytest.raises(BuildError) as info:
        Server.builder().h2()
    assert info.value.hint == "pip install pounce[h2]"


def test_sniffing_the_preface() -> None:
    factory = HTTP2Protocol()
    assert factory.sniff(b"PRI * HT") is None
    assert factory.sniff(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n") is True
    assert factory.sniff(b"POST / HTTP/1.1\r\n") is False
    assert factory.sniff(b"G") is False
    assert factory.alpn_ids == ("h2",)


def test_preset_and_cli_switch() -> None:
    on = standard(StandardOptions(http2=True)).asgi(app).describe()
    off = standard(StandardOptions(http2=False)).asgi(app).describe()
    assert "protocol h2" in on and "protocol h2" not in off
    assert options_from(build_parser().parse_args(["m:a", "--no-http2"])).http2 is False
    assert options_from(build_parser().parse_args(["m:a", "--http2"])).http2 is True
    assert options_from(build_parser().parse_args(["m:a"])).http2 is True  # h2 is installed


def test_http2_flags_reach_the_protocol_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POUNCE_HTTP2_MAX_RESETS", "33")
    args = build_parser().parse_args(
        [
            "app:app",
            "--http2",
            "--http2-max-concurrent-streams", "12",
            "--http2-initial-window-size", "1000",
            "--http2-connection-window-size", "200000",
            "--http2-max-frame-size", "32768",
            "--http2-max-header-list-size", "8192",
        ]
    )  # fmt: skip
    builder = standard(options_from(args))
    (factory,) = [p for p in builder._protocols if isinstance(p, HTTP2Protocol)]
    s = factory.settings
    assert (s.max_concurrent_streams, s.initial_window_size, s.connection_window_size) == (
        12,
        1000,
        200000,
    )
    assert (s.max_frame_size, s.max_header_list_size, s.max_resets) == (32768, 8192, 33)


def test_a_bad_http2_flag_is_a_build_error() -> None:
    args = build_parser().parse_args(["app:app", "--http2", "--http2-max-frame-size", "10"])
    with pytest.raises(BuildError, match=r"max_frame_size=10"):
        standard(options_from(args))
