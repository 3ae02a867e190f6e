"""Options, once: the definitions, and every front end derived from them."""

from __future__ import annotations

import math
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from pounce import BuildError, ProtocolFactory, Server
from pounce import keywords as kw
from pounce.asgi.types import Receive, Scope, Send
from pounce.cli import build_parser, settings_from
from pounce.conn import ConnectionHandler
from pounce.drivers.http1 import H1Options
from pounce.drivers.http2_options import HTTP2Options
from pounce.drivers.http3_options import HTTP3Options
from pounce.drivers.service import ResponseHeaders, ServiceContext, Timeouts
from pounce.drivers.websocket_options import WebSocketOptions
from pounce.layers.compression import Compression
from pounce.layers.debug import Debug
from pounce.layers.health import Health
from pounce.layers.limit import ConcurrencyLimit
from pounce.layers.proxy.options import ProxyHeadersOptions, ProxyProtocolOptions
from pounce.layers.rate_limit import RateLimit
from pounce.layers.sentry import Sentry
from pounce.layers.static import StaticOptions
from pounce.layers.tls.config import TLSConfig
from pounce.observe.access_log import AccessLogOptions
from pounce.observe.metrics_options import MetricsOptions, OtelOptions
from pounce.observe.request_id import RequestIdOptions
from pounce.options import options_of
from pounce.presets import FRONT_END, STANDARD, StandardOptions, standard
from pounce.settings import DOCS, builder_table, cli_table, doc_tables, docs_with_tables
from pounce.workers.options import WorkerOptions

ROOT = Path(__file__).parent.parent


async def app(scope: Scope, receive: Receive, send: Send) -> None:
    pass


# -- the definitions ----------------------------------------------------------------------------


def test_docs_tables_match_the_definitions() -> None:
    tables = doc_tables()
    assert tables["cli"] == cli_table(FRONT_END)
    assert tables["builder"] == builder_table(FRONT_END)
    for table, name in DOCS.items():
        text = (ROOT / "docs" / name).read_text(encoding="utf-8")
        assert f"<!-- options:{table} -->" in text
        assert tables[table] in text  # the table is there, not just its markers
        assert docs_with_tables(text, tables) == text, (
            f"docs/{name} is stale: run python -m pounce.settings --write"
        )


@pytest.mark.parametrize(
    ("keywords", "owner"),
    [
        (kw.H1Keywords, H1Options),
        (kw.H2Keywords, HTTP2Options),
        (kw.H3Keywords, HTTP3Options),
        (kw.WebSocketKeywords, WebSocketOptions),
        (kw.TLSKeywords, TLSConfig),
        (kw.ProxyProtocolKeywords, ProxyProtocolOptions),
        (kw.ProxyHeadersKeywords, ProxyHeadersOptions),
        (kw.TimeoutKeywords, Timeouts),
        (kw.ResponseHeaderKeywords, ResponseHeaders),
        (kw.WorkerKeywords, WorkerOptions),
        (kw.LimitKeywords, ConcurrencyLimit),
        (kw.AccessLogKeywords, AccessLogOptions),
        (kw.RequestIdKeywords, RequestIdOptions),
        (kw.MetricsKeywords, MetricsOptions),
        (kw.OtelKeywords, OtelOptions),
        (kw.RateLimitKeywords, RateLimit),
        (kw.HealthKeywords, Health),
        (kw.CompressKeywords, Compression),
        (kw.DebugKeywords, Debug),
        (kw.SentryKeywords, Sentry),
        (kw.StaticKeywords, StaticOptions),
    ],
)
def test_builder_keyword_types_match_the_definitions(keywords: type, owner: type) -> None:
    assert list(typing.get_type_hints(keywords)) == [o.field for o in options_of(owner)]


def test_names_flags_and_variables_are_unique() -> None:
    outside = [opt for opt in FRONT_END if opt.flag is not None]
    for attribute in ("name", "flag"):
        names = [getattr(opt, attribute) for opt in outside]
        assert len(names) == len(set(names)), attribute
    variables = [v for opt in outside for v in opt.env]
    assert len(variables) == len(set(variables))
    assert {opt.name for opt in STANDARD if opt.flag} == set(StandardOptions())


def test_every_default_passes_its_own_check() -> None:
    for opt in FRONT_END:
        if not opt.required:
            assert opt.coerce(opt.default) == opt.default, opt.name
        assert opt.meta.help and opt.group, opt.name


def test_every_earlier_flag_spelling_still_parses() -> None:
    flags = [
        "--factory",
        "--no-factory",
        "--server-header",
        "--no-server-header",
        "--date-header",
        "--no-date-header",
        "--http2",
        "--no-http2",
        "--access-log",
        "--no-access-log",
        "--proxy-headers",
        "--no-proxy-headers",
        "--proxy-protocol",
        "--no-proxy-protocol",
        "--ws-per-message-deflate",
        "--no-ws-per-message-deflate",
    ]
    build_parser().parse_args(["m:app", *flags])
    valued = {
        "--app-dir": ".", "--host": "::1", "--port": "1", "--uds": "/tmp/s", "--uds-mode": "660",
        "--fd": "3", "--backlog": "5", "--lifespan": "on", "--root-path": "/a",
        "--timeout-keep-alive": "1", "--timeout-request-head": "1", "--timeout-request-body": "1",
        "--timeout-graceful-shutdown": "1", "--timeout-send": "1", "--request-body-min-rate": "0",
        "--limit-request-body": "9", "--header": "x-a:1", "--h11-max-incomplete-event-size": "99",
        "--http": "h11", "--loop": "asyncio", "--log-level": "debug",
        "--http2-max-concurrent-streams": "1", "--http2-initial-window-size": "1",
        "--http2-connection-window-size": "65535", "--http2-max-frame-size": "16384",
        "--http2-max-header-list-size": "1024", "--http2-max-resets": "1", "--ws": "none",
        "--ws-max-size": "1", "--ws-max-queue": "1", "--ws-ping-interval": "off",
        "--ws-ping-timeout": "1", "--ssl-certfile": "c", "--ssl-keyfile": "k",
        "--ssl-keyfile-password": "p", "--ssl-version": "17", "--ssl-cert-reqs": "2",
        "--ssl-ca-certs": "ca", "--ssl-ciphers": "ECDHE", "--ssl-handshake-timeout": "1",
        "--forwarded-allow-ips": "*",
    }  # fmt: skip
    args = build_parser().parse_args(["m:app", *(x for pair in valued.items() for x in pair)])
    settings, _ = settings_from(args, {})
    assert {s.source for s in settings.values()} >= {"command line --uds-mode"}
    assert settings["uds_mode"].value == 0o660
    assert settings["headers"].value == (("x-a", "1"),)


# -- the builder refuses what cannot serve -----------------------------------------------------


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda b: b.timeouts(keep_alive=True), r"\.timeouts\(keep_alive=True\): must be"),
        (lambda b: b.timeouts(send=math.nan), r"\.timeouts\(send=nan\)"),
        (lambda b: b.timeouts(request_body=math.inf), "finite"),
        (lambda b: b.timeouts(request_body_min_rate=-1), "0 for no minimum"),
        (lambda b: b.bind("127.0.0.1", True), "port must be an integer"),
        (lambda b: b.backlog(True), r"\.backlog\(True\): must be a positive integer"),
        (lambda b: b.bind_fd(True), "fd must be"),
        (lambda b: b.h1(max_request_line=0), "at least 64 bytes"),
        (lambda b: b.h2(max_resets=-1), r"\.h2\(max_resets=-1\)"),
        (lambda b: b.websocket(max_queue=0), "max_queue"),
        (lambda b: b.websocket(per_message_deflate=1), "true or false"),
        (lambda b: b.response_headers(server="no"), "true or false"),
        (lambda b: b.proxy_protocol(header_timeout=0), "header_timeout"),
        (lambda b: b.loop("trio"), "one of auto, asyncio, uvloop"),
    ],
)
def test_bad_values_are_build_errors_naming_the_call(make: object, match: str) -> None:
    with pytest.raises(BuildError, match=match):
        make(Server.builder())  # type: ignore[operator]


@pytest.mark.parametrize(
    ("make", "hint"),
    [
        (lambda b: b.h2(max_stream=5), "did you mean max_concurrent_streams?"),
        (lambda b: b.timeouts(keepalive=5), "did you mean keep_alive?"),
        (lambda b: b.websocket(ping=5), "did you mean ping_timeout?"),
        (lambda b: b.h1(parsers="h11"), "did you mean parser?"),
    ],
)
def test_unknown_keywords_name_the_nearest(make: object, hint: str) -> None:
    with pytest.raises(BuildError, match="unknown option") as info:
        make(Server.builder())  # type: ignore[operator]
    assert info.value.hint == hint


def test_build_refuses_http_without_an_app() -> None:
    for builder in (
        Server.builder().bind("127.0.0.1", 0).h1(),
        Server.builder().bind("127.0.0.1", 0).h2(),
        Server.builder().bind("127.0.0.1", 0).h1().websocket(),
    ):
        with pytest.raises(BuildError, match=r"\.build\(\): .* needs an ASGI app") as info:
            builder.build()
        assert info.value.hint and ".asgi(app)" in info.value.hint


def test_a_protocol_that_needs_no_app_still_builds() -> None:
    class Echo(ProtocolFactory):
        name = "echo"

        def handler(self, service: ServiceContext) -> ConnectionHandler:
            raise NotImplementedError

    assert not Echo.needs_app
    assert (
        "protocol echo" in Server.builder().bind("127.0.0.1", 0).protocol(Echo()).build().describe()
    )


def test_options_are_unchanged_by_the_calls_that_leave_them_out() -> None:
    server = Server.builder().bind("h", 1).h1().timeouts(send=3).timeouts(keep_alive=2).asgi(app)
    http = server.spec.http
    assert (http.keep_alive_timeout, http.send_timeout, http.request_head_timeout) == (2, 3, 10)


# -- the preset and run() -----------------------------------------------------------------------


def test_standard_options_check_names_and_values() -> None:
    with pytest.raises(BuildError, match="unknown option") as info:
        StandardOptions(timeout_keepalive=1)
    assert info.value.hint == "did you mean timeout_keep_alive?"
    with pytest.raises(BuildError, match=r"backlog=True"):
        StandardOptions(backlog=True)
    options = StandardOptions(forwarded_allow_ips="10.0.0.1, unix", headers=["x-a: 1"])
    assert options.forwarded_allow_ips == ("10.0.0.1", "unix")
    assert options["headers"] == (("x-a", "1"),)


def test_a_new_option_reaches_the_stack_from_its_name() -> None:
    """limit_request_line and proxy_protocol_timeout are defined once, on their calls."""
    options = StandardOptions(limit_request_line=100, proxy_protocol=True, proxy_protocol_timeout=2)
    spec = standard(options).asgi(app).spec
    assert "max request line 100 B" in Server(spec).describe()
    assert spec.stream_layers[0].header_timeout == 2  # type: ignore[attr-defined]


# -- environment, config file, precedence ---------------------------------------------------


def settings(argv: list[str], environ: dict[str, str]) -> dict[str, object]:
    found, _ = settings_from(build_parser().parse_args(argv), environ)
    return {name: (s.value, s.source) for name, s in found.items()}


def test_precedence_command_line_environment_file_default(tmp_path: Path) -> None:
    config = tmp_path / "pounce.toml"
    config.write_text('port = 7000\nhost = "0.0.0.0"\ntimeout-keep-alive = 3\nbacklog = 9\n')
    environ = {"POUNCE_PORT": "7001", "POUNCE_BACKLOG": "10"}
    found = settings(["--config", str(config), "--backlog", "11"], environ)
    assert found["host"] == ("0.0.0.0", f"file {config}")
    assert found["timeout_keep_alive"] == (3.0, f"file {config}")
    assert found["port"] == (7001, "environment POUNCE_PORT")
    assert found["backlog"] == (11, "command line --backlog")
    assert found["timeout_send"] == (60.0, "default")


def test_pyproject_of_the_app_dir(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[project]\nname = "x"\n\n[tool.pounce]\napp = "myapp:app"\nws_ping_interval = "none"\n'
    )
    found = settings(["--app-dir", str(tmp_path)], {})
    assert found["app"] == ("myapp:app", f"file {tmp_path / 'pyproject.toml'}")
    assert found["ws_ping_interval"][0] is None
    found = settings([], {"POUNCE_APP_DIR": str(tmp_path)})
    assert found["app"][0] == "myapp:app"


@pytest.mark.parametrize(
    ("text", "message", "hint"),
    [
        ("timeout_keepalive = 5\n", "unknown key 'timeout_keepalive'", "timeout_keep_alive"),
        ('port = "80"\n', "port='80' (file", None),
        ("timeout_send = -1\n", "timeout_send=-1 (file", None),
        ("ssl_version = 1.1\n", "ssl_version=1.1", None),
        ("port = [\n", "config file", None),
    ],
)
def test_config_errors_name_the_file_and_key(
    tmp_path: Path, text: str, message: str, hint: str | None
) -> None:
    config = tmp_path / "pounce.toml"
    config.write_text(text)
    with pytest.raises(BuildError) as info:
        settings(["--config", str(config)], {})
    assert message in str(info.value) and str(config) in str(info.value)
    if hint:
        assert info.value.hint == f"did you mean {hint}?"


def test_bad_variables_name_the_variable() -> None:
    with pytest.raises(BuildError, match=r"POUNCE_BACKLOG='lots': must be a positive integer"):
        settings([], {"POUNCE_BACKLOG": "lots"})
    with pytest.raises(BuildError, match=r"POUNCE_ACCESS_LOG='maybe': must be true or false"):
        settings([], {"POUNCE_ACCESS_LOG": "maybe"})
    with pytest.raises(BuildError, match=r"backlog=0 \(environment POUNCE_BACKLOG\)"):
        settings([], {"POUNCE_BACKLOG": "0"})
    _, warnings = settings_from(build_parser().parse_args([]), {"POUNCE_BAKLOG": "3"})
    assert warnings == ["POUNCE_BAKLOG is not a Pounce variable (did you mean POUNCE_BACKLOG?)"]
    far = {"POUNCE_ZZZ": "1", "POUNCE_ARTIFACTS": "/tmp/a"}  # (the suite's own: no warning)
    _, warnings = settings_from(build_parser().parse_args([]), far)
    assert warnings == ["POUNCE_ZZZ is not a Pounce variable (docs/cli.md lists them)"]


def pounce(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pounce", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
        env={"PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_print_config_and_exit_codes(tmp_path: Path) -> None:
    (tmp_path / "pyproject.toml").write_text(
        '[tool.pounce]\nport = 9000\nssl_keyfile_password = "secret"\n'
    )
    proc = pounce("--print-config", "--timeout-send", "5", cwd=tmp_path, env={"POUNCE_PORT": "1"})
    assert proc.returncode == 0, proc.stderr
    assert "port = 1  # environment POUNCE_PORT" in proc.stdout
    assert "timeout_send = 5.0  # command line --timeout-send" in proc.stdout
    assert 'ssl_keyfile_password = "***"  # file pyproject.toml' in proc.stdout
    assert "secret" not in proc.stdout
    assert "# app is not set  # default" in proc.stdout
    (tmp_path / "pyproject.toml").write_text("[tool.pounce]\nbacklog = 0\n")
    proc = pounce("m:app", cwd=tmp_path)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert "backlog=0 (file pyproject.toml): must be a positive integer" in proc.stderr
    proc = pounce("m:app", cwd=tmp_path, env={"POUNCE_BACKLOG": "lots"})
    assert proc.returncode == 2 and "POUNCE_BACKLOG='lots'" in proc.stderr
