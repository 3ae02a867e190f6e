"""The repo's wrk scenarios (docs/benchmarks.md), each with its exact-answer check.

The machinery (the Scenario type, the Lua scripts, the checks) is
`pounce.bench.scenario`, shared with ``pounce bench``; what is here is which
requests this harness times, against ``apps.py`` and ``framework_apps.py``.
"""

from __future__ import annotations

import apps
from browser_head import BROWSER_FIELDS

from harness.servers import APP
from pounce.bench.scenario import Scenario, close_check, keep_alive_check


def _check_hello(scenario: Scenario, port: int) -> int:
    return keep_alive_check(scenario, port, apps.HELLO_BODY)


def _check_close(scenario: Scenario, port: int) -> int:
    return close_check(scenario, port, apps.HELLO_BODY)


def _check_json(scenario: Scenario, port: int) -> int:
    return keep_alive_check(scenario, port, apps.JSON_BODY)


def _check_large(scenario: Scenario, port: int) -> int:
    return keep_alive_check(scenario, port, apps.LARGE_BODY)


def _check_upload(scenario: Scenario, port: int) -> int:
    return keep_alive_check(scenario, port, str(apps.UPLOAD_SIZE).encode())


def _check_stream(scenario: Scenario, port: int) -> int:
    return keep_alive_check(scenario, port, apps.STREAM_BODY, want_chunked=True)


SCENARIOS: tuple[Scenario, ...] = (
    Scenario(
        app=APP,
        key="hello",
        title="hello keep-alive: GET, 13-byte answer",
        method="GET",
        path="/hello",
        connections=64,
        headers=(),
        body=b"",
        response_size=len(apps.HELLO_BODY),
        check=_check_hello,
    ),
    Scenario(
        app=APP,
        key="browser",
        title="hello keep-alive, the request head a browser sends (Chromium's, ~740 bytes)",
        method="GET",
        path="/hello",
        connections=64,
        headers=BROWSER_FIELDS,  # Host first, wrk's; then these in order (browser_head.py)
        body=b"",
        response_size=len(apps.HELLO_BODY),
        check=_check_hello,
    ),
    Scenario(
        app=APP,
        key="receive",
        title="hello keep-alive, the app awaits receive() once first (as frameworks do)",
        method="GET",
        path="/receive",
        connections=64,
        headers=(),
        body=b"",
        response_size=len(apps.HELLO_BODY),
        check=_check_hello,
    ),
    *(
        Scenario(
            app=f"framework_apps:{framework}_app",
            key=f"{framework}-{what}",
            title=f"{title} {what} keep-alive: GET /{what}, {answer}",
            method="GET",
            path=f"/{what}",
            connections=64,
            headers=(),
            body=b"",
            response_size=len(body),
            check=check,
        )
        for framework, title in (("starlette", "Starlette"), ("fastapi", "FastAPI"))
        for what, answer, body, check in (
            ("hello", "13-byte text", apps.HELLO_BODY, _check_hello),
            ("json", f"{len(apps.JSON_BODY)}-byte JSON", apps.JSON_BODY, _check_json),
        )
    ),
    Scenario(
        app=APP,
        key="close",
        title="hello with Connection: close: a new TCP connection per request",
        method="GET",
        path="/hello",
        connections=64,
        headers=(("Connection", "close"),),
        body=b"",
        response_size=len(apps.HELLO_BODY),
        check=_check_close,
    ),
    Scenario(
        app=APP,
        key="64k",
        title="64 KiB response, keep-alive",
        method="GET",
        path="/64k",
        connections=64,
        headers=(),
        body=b"",
        response_size=len(apps.LARGE_BODY),
        check=_check_large,
    ),
    Scenario(
        app=APP,
        key="upload",
        title="1 MiB POST upload, read whole, length answered",
        method="POST",
        path="/upload",
        connections=16,
        headers=(("Content-Type", "application/octet-stream"),),
        body=b"x" * apps.UPLOAD_SIZE,
        response_size=len(str(apps.UPLOAD_SIZE)),
        check=_check_upload,
    ),
    Scenario(
        app=APP,
        key="stream",
        title="streamed response: 100 x 1 KiB more_body chunks (chunked)",
        method="GET",
        path="/stream",
        connections=64,
        headers=(),
        body=b"",
        response_size=len(apps.STREAM_BODY),
        check=_check_stream,
    ),
    Scenario(
        app=APP,
        key="workers2",
        title="hello keep-alive, two workers per server, unpinned, wrk -t2",
        method="GET",
        path="/hello",
        connections=64,
        headers=(),
        body=b"",
        response_size=len(apps.HELLO_BODY),
        check=_check_hello,
        wrk_threads=2,
        pinned=False,
        workers=2,
    ),
)
MEMORY_KEY = "memory"
H2_KEY = "h2-hello"  # h2load, not wrk: harness/h2load.py
H2_1MIB_KEY = "h2-1mib"  # h2load downloading 1 MiB per request
WS_KEY = "ws-echo"  # a Python WebSocket client, not wrk: harness/wsecho.py
DEFAULT_KEYS = (MEMORY_KEY, *(scenario.key for scenario in SCENARIOS), H2_KEY)
# Only when asked for: ws-echo adds ~7 minutes, h2-1mib a few.
ALL_KEYS = (*DEFAULT_KEYS, H2_1MIB_KEY, WS_KEY)
