"""`.static(prefix, directory)`: serve a directory's files in front of the app.

A request under `prefix` is answered from `directory` when it names a file
there (GET and HEAD; other methods 405 with ``Allow: GET, HEAD``), a directory
without its trailing slash (308 to it, the query kept) or a path that tries to
leave the root (404, never passed on: `paths.py`, `files.py`). Everything
else — another prefix, a miss, a hidden file while `hidden` is off — goes to
the app beneath, so a static mount can sit in front of any app. The root's
real path is taken once per serve, in `wrap`; everything else a request asks
of the file system runs in the loop's default executor (`files.lookup`).
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass, field
from functools import partial
from urllib.parse import quote

from pounce.asgi.types import ASGIApp, Receive, Scope, Send
from pounce.errors import BuildError
from pounce.layer import AppLayer
from pounce.layers.static import semantics
from pounce.layers.static.files import Opened, Redirect, Root, close_opened, lookup
from pounce.layers.static.options import StaticOptions
from pounce.layers.static.paths import Refused, Wanted, under_prefix, wanted
from pounce.layers.static.send import Headers, Representation, request_headers, respond

_TEXT = (b"content-type", b"text/plain; charset=utf-8")


def _check_prefix(prefix: object) -> str:
    if not isinstance(prefix, str) or not prefix.startswith("/") or "//" in prefix:
        raise BuildError(
            f".static({prefix!r}, ...): the prefix must be a path starting with /",
            hint='e.g. .static("/assets", "./public")',
        )
    for part in prefix.strip("/").split("/"):
        if part in (".", "..") or any(c in part for c in "\\\0%?#"):
            raise BuildError(f".static({prefix!r}, ...): {part!r} cannot be part of a prefix")
    return prefix.rstrip("/") or "/"


@dataclass(frozen=True, slots=True)
class Static(AppLayer):
    """Serve `directory` at `prefix`; see the module docstring and docs/static.md."""

    prefix: str
    directory: str
    options: StaticOptions = field(default_factory=StaticOptions)

    def __post_init__(self) -> None:
        object.__setattr__(self, "prefix", _check_prefix(self.prefix))
        if not isinstance(self.directory, str | os.PathLike) or not os.path.isdir(self.directory):
            raise BuildError(
                f".static({self.prefix!r}, {self.directory!r}): not a directory",
                hint="give the directory of the files to serve (relative to the working directory)",
            )
        object.__setattr__(self, "directory", os.fspath(self.directory))

    def describe(self) -> str:
        o = self.options
        shown = [f"static {self.prefix} from {self.directory}"]
        if o.max_age is not None:
            shown.append(f"max-age {o.max_age} s")
        if o.immutable:
            shown.append("immutable when fingerprinted")
        shown.append("precompressed siblings" if o.precompressed else "no precompressed siblings")
        if o.follow_symlinks:
            shown.append("symlinks inside the root")
        return ", ".join(shown)

    def wrap(self, inner: ASGIApp) -> ASGIApp:
        root = Root.of(self.directory, self.options.follow_symlinks)
        serve = _Files(self.prefix.encode(), root, self.options)

        async def static(scope: Scope, receive: Receive, send: Send) -> None:
            if scope["type"] != "http" or not await serve(scope, send):
                await inner(scope, receive, send)

        return static


@dataclass(frozen=True, slots=True)
class _Files:
    """One serve's view of one mount; `__call__` answers a request or says it is a miss."""

    prefix: bytes
    root: Root
    options: StaticOptions

    async def __call__(self, scope: Scope, send: Send) -> bool:
        """Answer `scope` and return True, or return False (a miss: the app's)."""
        rest = under_prefix(_raw_path(scope), self.prefix)
        if rest is None:
            return False
        want = wanted(rest, hidden=self.options.hidden)
        if want is None:
            return False
        request = request_headers(scope["headers"])
        target = want if isinstance(want, Refused) else await self._lookup(want, request)
        if target is None:
            return False
        if isinstance(target, Opened) and scope["method"] in ("GET", "HEAD"):
            await self._file(scope, send, request, target)
            return True
        if isinstance(target, Opened):
            os.close(target.fd)
        if isinstance(target, Refused):
            await _plain(send, 404, b"not found\n")
        elif scope["method"] not in ("GET", "HEAD"):
            await _plain(send, 405, b"method not allowed\n", (b"allow", b"GET, HEAD"))
        else:
            await _redirect(send, scope)
        return True

    async def _lookup(
        self, want: Wanted, request: dict[str, str]
    ) -> Opened | Redirect | Refused | None:
        """`files.lookup` in the default executor; what it opened is closed if we are cancelled."""
        o = self.options
        found = asyncio.get_running_loop().run_in_executor(
            None,
            partial(
                lookup,
                self.root,
                want,
                index=o.index,
                precompressed=o.precompressed,
                read_up_to=o.chunk_size,
                accept_encoding=request.get("accept-encoding"),
            ),
        )
        try:
            return await found
        except asyncio.CancelledError:
            found.add_done_callback(close_opened)
            raise

    async def _file(
        self, scope: Scope, send: Send, request: dict[str, str], opened: Opened
    ) -> None:
        fd = opened.fd
        try:
            rep = self._representation(opened)
            o = self.options
            head = scope["method"] == "HEAD"
            zero_copy = "http.response.zerocopysend" in scope.get("extensions", ())
            await respond(
                send,
                rep,
                request,
                head=head,
                max_ranges=o.max_ranges,
                chunk=o.chunk_size,
                zero_copy=zero_copy,
            )
        finally:
            os.close(fd)

    def _representation(self, opened: Opened) -> Representation:
        info, name, coding = opened.info, opened.name, opened.coding
        tag = semantics.etag(info.st_mtime_ns, info.st_size, coding or "")
        validators: Headers = [
            (b"etag", tag.encode()),
            (b"last-modified", semantics.http_date(info.st_mtime).encode()),
        ]
        cache = semantics.cache_control(name, self.options.max_age, self.options.immutable)
        if cache is not None:
            validators.append((b"cache-control", cache.encode()))
        if coding is not None:
            validators.append((b"content-encoding", coding.encode()))
        if opened.vary:  # RFC 9110 §12.5.5: the answer depends on Accept-Encoding
            validators.append((b"vary", b"accept-encoding"))
        content_type = semantics.content_type(name)
        return Representation(
            fd=opened.fd,
            data=opened.data,
            size=info.st_size,
            mtime=info.st_mtime,
            tag=tag,
            content_type=content_type,
            validators=validators,
        )


def _raw_path(scope: Scope) -> bytes:
    """The encoded path below the mount point (ASGI 2.4: ``raw_path`` includes ``root_path``)."""
    raw: bytes | None = scope.get("raw_path")
    if raw is None:
        raw = quote(scope["path"]).encode()
    root = quote(scope.get("root_path", "")).encode()
    return raw[len(root) :] if root and raw.startswith(root) else raw


async def _redirect(send: Send, scope: Scope) -> None:
    """308 to the same path with its trailing slash (paths.py refuses ``//``: no open redirect)."""
    location = quote(scope.get("root_path", "")).encode() + _raw_path(scope) + b"/"
    query: bytes = scope.get("query_string", b"")
    if query:
        location += b"?" + query
    await _plain(send, 308, b"", (b"location", location))


async def _plain(send: Send, status: int, body: bytes, *extra: tuple[bytes, bytes]) -> None:
    headers = [_TEXT, (b"content-length", b"%d" % len(body)), *extra]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def not_found(scope: Scope, receive: Receive, send: Send) -> None:
    """The app behind static mounts when there is no app (``pounce --static-dir ./site``)."""
    if scope["type"] == "http":
        await _plain(send, 404, b"not found\n")
    elif scope["type"] == "websocket":
        await send({"type": "websocket.close", "code": 1000})
