"""The development error page: an exception and the request it broke, for a human.

Pure: an exception and an ASGI scope in, a response body out. `render_html`
for browsers, `render_text` for everything else (curl, an API client), chosen
by `wants_html` from the request's ``Accept``. Both show the exception's type
and message, the traceback (cause and context chains included) with a few
source lines around each frame's line, and the request: method, path,
query string and headers, with secret values masked (`pounce.layers.masking`).

Everything from the request and the exception is attacker-influenced (a
header, a path, a message that quotes input), so every piece of text goes
through `html.escape`, and the page forbids scripts and every outside load
with its Content-Security-Policy as a second line of defence.
"""

from __future__ import annotations

import html
import linecache
import os
import traceback
from collections.abc import Iterator
from dataclasses import dataclass

from pounce.asgi.types import Scope
from pounce.layers.masking import masked_headers, masked_query

CONTEXT_LINES = 2  # source lines shown before and after each frame's line
CAUSE = "The above exception was the direct cause of the following exception:"
CONTEXT = "During handling of the above exception, another exception occurred:"
_OWN_FRAMES = os.path.dirname(__file__) + os.sep  # the layer's own frame is noise on the page

HTML_HEADERS = (
    (b"content-type", b"text/html; charset=utf-8"),
    (b"content-security-policy", b"default-src 'none'; style-src 'unsafe-inline'"),
)
TEXT_HEADERS = ((b"content-type", b"text/plain; charset=utf-8"),)
COMMON_HEADERS = (
    (b"cache-control", b"no-store"),
    (b"x-content-type-options", b"nosniff"),
    (b"connection", b"close"),  # as the server's own 500: the request may be half read
)


def wants_html(scope: Scope) -> bool:
    """Does the client accept ``text/html`` (a browser), with a q-value above 0?"""
    for name, value in scope["headers"]:
        if name != b"accept":
            continue
        for item in value.decode("latin-1").lower().split(","):
            media, _, params = item.partition(";")
            if media.strip() == "text/html" and not _q_zero(params):
                return True
    return False


def _q_zero(params: str) -> bool:
    for param in params.split(";"):
        key, _, value = param.partition("=")
        if key.strip() == "q":
            try:
                return float(value) == 0
            except ValueError:
                return False
    return False


@dataclass(frozen=True, slots=True)
class Frame:
    """One traceback entry with the source around its line."""

    filename: str
    lineno: int
    name: str
    source: tuple[tuple[int, str], ...]  # (line number, text), the frame's line among them


@dataclass(frozen=True, slots=True)
class Failure:
    """One exception of the chain: what Python prints above a traceback."""

    title: str  # "ValueError: bad input"
    frames: tuple[Frame, ...]
    link: str  # how it leads to the next one ("" for the last)


def failures(exc: BaseException) -> list[Failure]:
    """The exception chain, first cause first, as Python prints it."""
    found: list[Failure] = []
    te: traceback.TracebackException | None = traceback.TracebackException.from_exception(exc)
    link = ""  # how the failure found next leads to the one found before it
    while te is not None:
        title = "".join(te.format_exception_only()).strip()
        frames = tuple(
            _frame(f.filename, f.lineno or 0, f.name)
            for f in te.stack
            if not f.filename.startswith(_OWN_FRAMES)
        )
        found.append(Failure(title, frames, link))
        if te.__cause__ is not None:
            te, link = te.__cause__, CAUSE
        elif te.__context__ is not None and not te.__suppress_context__:
            te, link = te.__context__, CONTEXT
        else:
            te = None
    found.reverse()  # each one's link now says how it leads to the one after it
    return found


def _frame(filename: str, lineno: int, name: str) -> Frame:
    first = max(1, lineno - CONTEXT_LINES)
    source = []
    for number in range(first, lineno + CONTEXT_LINES + 1):
        text = linecache.getline(filename, number)
        if text:
            source.append((number, text.rstrip("\n")))
    return Frame(filename, lineno, name, tuple(source))


def _request_lines(scope: Scope) -> tuple[str, list[tuple[str, str]]]:
    target = scope["path"]
    query = masked_query(scope.get("query_string", b""))
    if query:
        target += "?" + query
    line = f"{scope['method']} {target} HTTP/{scope['http_version']}"
    return line, masked_headers(scope["headers"])


# -- plain text -------------------------------------------------------------------------------


def render_text(exc: BaseException, scope: Scope) -> bytes:
    """The page as plain text: the traceback as Python prints it, then the request."""
    line, headers = _request_lines(scope)
    parts = ["500 Internal Server Error (pounce --debug)", ""]
    for failure in failures(exc):
        parts.append("Traceback (most recent call last):")
        for frame in failure.frames:
            parts.append(f'  File "{frame.filename}", line {frame.lineno}, in {frame.name}')
            parts += [f"    {text.strip()}" for n, text in frame.source if n == frame.lineno]
        parts.append(failure.title)
        if failure.link:
            parts += ["", failure.link, ""]
    parts += ["", "Request:", f"  {line}"]
    parts += [f"  {name}: {value}" for name, value in headers]
    return ("\n".join(parts) + "\n").encode("utf-8", "replace")


# -- HTML -------------------------------------------------------------------------------------

_STYLE = """
body{font:14px/1.4 system-ui,sans-serif;margin:0;color:#222;background:#fafafa}
header{background:#b00020;color:#fff;padding:16px 24px}
h1{font-size:20px;margin:0 0 4px;word-break:break-word}
header p{margin:0;opacity:.85}
main{padding:8px 24px 24px}
h2{font-size:16px;margin:20px 0 8px}
.frame{background:#fff;border:1px solid #ddd;border-radius:4px;margin:8px 0}
.where{padding:6px 10px;border-bottom:1px solid #eee;font-family:monospace}
pre{margin:0;padding:6px 0;overflow-x:auto;font:13px/1.4 monospace}
.line{display:block;padding:0 10px;white-space:pre}
.failing{background:#ffe3e6;font-weight:bold}
.link{margin:16px 0 4px;font-style:italic}
table{border-collapse:collapse;background:#fff;font-family:monospace}
td{border:1px solid #ddd;padding:3px 8px;vertical-align:top;word-break:break-all}
"""


def render_html(exc: BaseException, scope: Scope) -> bytes:
    """The page as HTML; every piece of text escaped."""
    chain = failures(exc)
    last = chain[-1].title if chain else type(exc).__name__
    line, headers = _request_lines(scope)
    body = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        f"<title>500: {_e(last)}</title><style>{_STYLE}</style></head><body>",
        f'<header><h1 id="exception">{_e(last)}</h1>',
        "<p>500 Internal Server Error: shown because the server runs with --debug</p></header>",
        "<main>",
        *_traceback_html(chain),
        '<h2>Request</h2><p id="request"><code>',
        _e(line),
        '</code></p><table id="headers">',
        *(f"<tr><td>{_e(name)}</td><td>{_e(value)}</td></tr>" for name, value in headers),
        "</table></main></body></html>",
    ]
    return "\n".join(body).encode("utf-8", "replace")


def _traceback_html(chain: list[Failure]) -> Iterator[str]:
    yield '<h2>Traceback <small>(most recent call last)</small></h2><div id="traceback">'
    for failure in chain:
        yield f"<h3>{_e(failure.title)}</h3>"
        for frame in failure.frames:
            yield '<div class="frame">'
            yield (
                f'<div class="where">{_e(frame.filename)}, line {frame.lineno}, '
                f"in <b>{_e(frame.name)}</b></div>"
            )
            yield "<pre>" + "".join(_source_lines(frame)) + "</pre></div>"  # no newline: in <pre>
        if failure.link:
            yield f'<p class="link">{_e(failure.link)}</p>'
    yield "</div>"


def _source_lines(frame: Frame) -> Iterator[str]:
    for number, text in frame.source:
        css = "line failing" if number == frame.lineno else "line"
        yield f'<span class="{css}">{number:>5}  {_e(text)}</span>'


def _e(text: str) -> str:
    return html.escape(text, quote=True)
