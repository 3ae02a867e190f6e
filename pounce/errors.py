"""The one error tree of Pounce.

Every error a user can see is a `PounceError` with a stable `code` (for logs
and tests to match on) and an optional `hint` that says what to do about it.
Third-party exceptions (h11, h2, ssl, OSError) are translated at the seam that
meets them with ``raise ... from exc``, so callers only ever catch these.
"""

from __future__ import annotations


class PounceError(Exception):
    """Base of every error Pounce raises on purpose."""

    code: str = "pounce"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        if self.hint:
            return f"{self.message} (hint: {self.hint})"
        return self.message


class BuildError(PounceError):
    """The server description is invalid; raised before any port is bound."""

    code = "build"


class TransportError(PounceError):
    """A listening socket could not be opened or an inherited one is unusable."""

    code = "transport"


class TLSError(PounceError):
    """A TLS certificate, key or handshake problem."""

    code = "tls"


class ProtocolError(PounceError):
    """A violation of a wire protocol.

    `status` is the HTTP status this maps to on the wire when the violation
    is answered with a response (HTTP/1.1); `error_code` is the protocol's own
    code where it has one (an HTTP/2 error code, a WebSocket close code).
    """

    code = "protocol"

    def __init__(
        self,
        message: str,
        *,
        status: int = 400,
        error_code: int | None = None,
        hint: str | None = None,
    ) -> None:
        super().__init__(message, hint=hint)
        self.status = status
        self.error_code = error_code


class RemoteProtocolError(ProtocolError):
    """The peer sent something the protocol forbids; answered, then closed."""

    code = "protocol.remote"


class LocalProtocolError(ProtocolError):
    """We (or the app through us) tried to send something the protocol forbids."""

    code = "protocol.local"


class LimitExceededError(PounceError):
    """A configured size or count limit was exceeded by a peer."""

    code = "limit"

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class RefusedError(PounceError):
    """A request refused before it reached the app, with the answer it gets.

    `status` is the HTTP status of that answer; `retry_after` the seconds a
    client should wait before trying again (the ``Retry-After`` field,
    RFC 9110 §10.2.3), or None to send none.
    """

    code = "refused"
    status: int = 503

    def __init__(
        self, message: str, *, retry_after: float | None = None, hint: str | None = None
    ) -> None:
        super().__init__(message, hint=hint)
        if retry_after is not None and not retry_after >= 0:
            raise ValueError(f"retry_after must be a number of seconds >= 0, not {retry_after!r}")
        self.retry_after = retry_after

    def retry_after_header(self) -> tuple[bytes, bytes] | None:
        """The ``retry-after`` field to answer with: whole seconds, rounded up."""
        if self.retry_after is None:
            return None
        return (b"retry-after", b"%d" % -(-self.retry_after // 1))


class OverloadedError(RefusedError):
    """The server is at capacity and sheds the request: 503 Service Unavailable."""

    code = "overloaded"
    status = 503


class RateLimitedError(RefusedError):
    """A client exceeded its configured request rate: 429 Too Many Requests (RFC 6585 §4)."""

    code = "rate_limited"
    status = 429


class ASGIContractError(PounceError):
    """The application broke the ASGI contract (e.g. a message out of order)."""

    code = "asgi.contract"


class LifespanError(PounceError):
    """The application's lifespan startup or shutdown failed."""

    code = "lifespan"


class AppImportError(PounceError):
    """An application named as ``module:attribute`` could not be loaded."""

    code = "app.import"


class ClientDisconnectedError(PounceError, OSError):
    """Raised from ``send()`` once the client has gone (ASGI spec 2.4).

    Subclasses `OSError` because the ASGI spec asks servers to raise "a
    server-specific subclass of OSError" when an app sends on a closed
    connection.
    """

    code = "client.disconnected"
