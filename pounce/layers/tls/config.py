"""TLS configuration: checked at build time, turned into ``ssl.SSLContext`` objects.

Everything that can be wrong with a certificate, a key, a password, a CA file,
a cipher string or a version is found here, when the builder's ``.tls()`` is
called, and reported as a `BuildError` that names the file — before any port
is bound. `ServerTLS` holds the live context and swaps in a freshly loaded one
on `reload` (SIGHUP or ``Server.reload_tls()``): connections that start later
use the new certificate, established ones keep theirs.

`truststore` (the ``pounce[tls]`` extra) is imported in this module only, and
only to verify client certificates against the system store when no CA file
is given; it is never injected process-wide.
"""

from __future__ import annotations

import os
import ssl
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from pounce.errors import BuildError, TLSError
from pounce.options import REQUIRED, option, seconds

ClientCerts = Literal["none", "optional", "required"]
CLIENT_CERTS: dict[str, ClientCerts] = {
    # Uvicorn's --ssl-cert-reqs numbers are ssl.CERT_NONE / CERT_OPTIONAL / CERT_REQUIRED.
    "0": "none",
    "1": "optional",
    "2": "required",
    "none": "none",
    "optional": "optional",
    "required": "required",
}
_VERIFY_MODES = {
    "none": ssl.CERT_NONE,
    "optional": ssl.CERT_OPTIONAL,
    "required": ssl.CERT_REQUIRED,
}
MIN_VERSIONS = {
    "1.2": ssl.TLSVersion.TLSv1_2,
    "tlsv1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
    "tlsv1.3": ssl.TLSVersion.TLSv1_3,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
    # Uvicorn's --ssl-version takes ssl.PROTOCOL_* numbers; 2 (PROTOCOL_TLS) and
    # 17 (PROTOCOL_TLS_SERVER, its default) both mean "the library's default".
    "2": ssl.TLSVersion.TLSv1_2,
    "17": ssl.TLSVersion.TLSv1_2,
}
DEFAULT_HANDSHAKE_TIMEOUT = (
    10.0  # seconds; Hypercorn and asyncio use 60, nginx's client_header_timeout is 60
)


def client_certs_mode(value: object) -> ClientCerts:
    """``none`` / ``optional`` / ``required``, also from Uvicorn's 0 / 1 / 2."""
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be none, optional or required (or 0, 1, 2)")
    key = str(value).strip().lower()
    try:
        return CLIENT_CERTS[key]
    except KeyError:
        raise ValueError("must be none, optional or required (or 0, 1, 2)") from None


def min_tls_version(value: object) -> ssl.TLSVersion:
    """``"1.2"`` / ``"1.3"`` (also ``TLSv1.3``, Uvicorn's 2 and 17, an `ssl.TLSVersion`)."""
    if isinstance(value, ssl.TLSVersion):
        if value < ssl.TLSVersion.TLSv1_2:
            raise ValueError("must be 1.2 or 1.3: TLS below 1.2 is not offered")
        return value
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise ValueError("must be 1.2 or 1.3")
    try:
        return MIN_VERSIONS[str(value).strip().lower()]
    except KeyError:
        raise ValueError("must be 1.2 or 1.3") from None


def version_text(value: object) -> str:
    """A minimum version as the CLI spells it (``"1.3"``)."""
    version = min_tls_version(value)
    return '"1.3"' if version == ssl.TLSVersion.TLSv1_3 else '"1.2"'


def _no_empty(value: object) -> str | None:
    """A path or string option that may be unset (None); an empty string counts as unset."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError("must be a string")
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class TLSConfig:
    """The options of `.tls()`: paths as given, checked by `load`. Names outside are
    Uvicorn's ``--ssl-*``; the standard preset turns TLS on when ``ssl_certfile`` is set."""

    builder_call = ".tls"
    options_group = "TLS"

    cert: str = option(
        REQUIRED, name="ssl_certfile", help="PEM certificate (chain); turns TLS on. See tls.md"
    )
    key: str | None = option(
        None,
        name="ssl_keyfile",
        help="PEM private key",
        shown="in the certificate file",
        convert=_no_empty,
    )
    password: str | None = option(
        None,
        name="ssl_keyfile_password",
        help="password of an encrypted key",
        convert=_no_empty,
        secret=True,
    )
    client_certs: ClientCerts = option(
        "none",
        name="ssl_cert_reqs",
        help="client certificates (mTLS): none, optional, required (Uvicorn's 0, 1, 2)",
        convert=client_certs_mode,
    )
    ca: str | None = option(
        None,
        name="ssl_ca_certs",
        help="CA file that client certificates are checked against",
        shown="the system store",
        convert=_no_empty,
    )
    ciphers: str | None = option(
        None,
        name="ssl_ciphers",
        help="OpenSSL cipher string for TLS 1.2",
        shown="OpenSSL's",
        convert=_no_empty,
    )
    min_version: ssl.TLSVersion = option(
        ssl.TLSVersion.TLSv1_2,
        name="ssl_version",
        help="minimum TLS version: 1.2 or 1.3 (Uvicorn's 17 means 1.2)",
        convert=min_tls_version,
        show=version_text,
    )
    handshake_timeout: float = option(
        DEFAULT_HANDSHAKE_TIMEOUT,
        unit="s",
        name="ssl_handshake_timeout",
        help="to finish the TLS handshake (Hypercorn and asyncio: 60 s)",
        check=seconds(),
    )


@dataclass(frozen=True, slots=True)
class LoadedContext:
    """One loaded `ssl.SSLContext` and the facts the ``tls`` scope extension reports."""

    context: ssl.SSLContext
    server_cert: str | None
    cipher_ids: dict[str, int]


def load(config: TLSConfig, alpn: Sequence[str] = ()) -> LoadedContext:
    """Build a server context from `config`; `BuildError` naming the file at fault."""
    for label, path in (("certificate", config.cert), ("key", config.key), ("CA", config.ca)):
        if path is not None and not os.path.isfile(path):
            raise BuildError(f".tls(): {label} file {path!r} not found")
    context = _new_context(config)
    context.minimum_version = config.min_version
    context.options |= ssl.OP_NO_COMPRESSION | ssl.OP_CIPHER_SERVER_PREFERENCE
    _load_chain(context, config)
    if config.ciphers:
        try:
            context.set_ciphers(config.ciphers)
        except ssl.SSLError as exc:
            raise BuildError(
                f".tls(ciphers={config.ciphers!r}): {getattr(exc, 'reason', None) or exc}"
            ) from exc
    context.verify_mode = _VERIFY_MODES[config.client_certs]
    if config.ca is not None:
        try:
            context.load_verify_locations(cafile=config.ca)
        except (ssl.SSLError, OSError, ValueError) as exc:
            raise BuildError(f".tls(): cannot load CA file {config.ca!r}: {exc}") from exc
    if alpn:
        context.set_alpn_protocols(list(alpn))
    ids = {c["name"]: c["id"] & 0xFFFF for c in context.get_ciphers()}
    return LoadedContext(context, _first_pem_cert(config.cert), ids)


def _new_context(config: TLSConfig) -> ssl.SSLContext:
    if config.client_certs == "none" or config.ca is not None:
        return ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # Client certificates checked against the system store: truststore, never
    # inject_into_ssl() (a process-wide patch).
    try:
        import truststore
    except ImportError:
        raise BuildError(
            f".tls(client_certs={config.client_certs!r}) without ca= verifies clients "
            "against the system store, which needs truststore",
            hint="pip install 'pounce[tls]', or give ca= (--ssl-ca-certs)",
        ) from None
    return truststore.SSLContext(ssl.PROTOCOL_TLS_SERVER)


def _no_password() -> bytes:
    raise _EncryptedKey()


class _EncryptedKey(Exception):
    """The key is encrypted and no password was given (stops OpenSSL's tty prompt)."""


def _load_chain(context: ssl.SSLContext, config: TLSConfig) -> None:
    key = config.key or config.cert
    password = config.password if config.password is not None else _no_password
    try:
        context.load_cert_chain(config.cert, config.key, password)
    except _EncryptedKey:
        raise BuildError(
            f".tls(): key file {key!r} is encrypted",
            hint="give password= (--ssl-keyfile-password)",
        ) from None
    except ssl.SSLError as exc:
        raise BuildError(_chain_error(config, key, exc)) from exc
    except OSError as exc:
        raise BuildError(f".tls(): cannot read {config.cert!r} / {key!r}: {exc}") from exc


def _chain_error(config: TLSConfig, key: str, exc: ssl.SSLError) -> str:
    reason = (getattr(exc, "reason", None) or str(exc)).upper()
    if "KEY_VALUES_MISMATCH" in reason:
        return f".tls(): key file {key!r} does not match certificate file {config.cert!r}"
    if "BAD_DECRYPT" in reason or (config.password is not None and _is_encrypted(key)):
        return f".tls(): wrong password for key file {key!r}"
    if _first_pem_cert(config.cert) is None:
        return f".tls(): certificate file {config.cert!r} holds no PEM certificate"
    return f".tls(): cannot load key file {key!r} ({getattr(exc, 'reason', None) or exc})"


def _is_encrypted(path: str) -> bool:
    """PKCS #8 ``ENCRYPTED PRIVATE KEY`` or a legacy ``Proc-Type: 4,ENCRYPTED`` PEM."""
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return "ENCRYPTED" in f.read()
    except OSError:
        return False


def _first_pem_cert(path: str) -> str | None:
    begin, end = "-----BEGIN CERTIFICATE-----", "-----END CERTIFICATE-----"
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            text = f.read()
    except OSError:
        return None
    start = text.find(begin)
    stop = text.find(end, start)
    if start < 0 or stop < 0:
        return None
    return text[start : stop + len(end)] + "\n"


class ServerTLS:
    """The live context of one TLS layer in one serve; `reload` swaps it for new connections.

    Made per serve by `TLSLayer.wrap_serving` (the layer itself is immutable)
    and kept by the server, which reloads every live one on SIGHUP or
    ``Server.reload_tls()`` — from another thread, too: `reload` holds a lock
    while it loads, and readers take `current` once per connection (an
    attribute read, atomic).
    """

    __slots__ = ("_alpn", "_lock", "config", "current")

    def __init__(self, config: TLSConfig, alpn: Sequence[str]) -> None:
        self.config = config
        self._alpn = tuple(alpn)
        self._lock = threading.Lock()
        self.current = load(config, self._alpn)

    @property
    def alpn(self) -> tuple[str, ...]:
        return self._alpn

    def reload(self) -> None:
        """Re-read certificate and key; on failure keep serving the old ones."""
        with self._lock:
            try:
                fresh = load(self.config, self._alpn)
            except BuildError as exc:
                raise TLSError(f"certificate reload failed, keeping the old one: {exc}") from exc
            self.current = fresh
