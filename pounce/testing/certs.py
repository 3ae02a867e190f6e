"""A throwaway certificate authority for test servers (trustme, imported here only).

`TestCertificates` makes a CA, issues a server certificate for the loopback
names and writes it to a directory as PEM files (what ``ssl_certfile`` and
``ssl_keyfile`` read); `client_context()` trusts that CA and nothing else.
trustme is a test dependency, not one of Pounce's: without it, asking for
TLS is an error that says how to install it.
"""

from __future__ import annotations

import ssl
from pathlib import Path
from typing import Any

HOSTS = ("localhost", "127.0.0.1", "::1")


def _trustme() -> Any:
    try:
        import trustme
    except ImportError:
        raise ImportError(
            "TLS test servers need trustme for their throwaway certificates: pip install trustme"
        ) from None
    return trustme


class TestCertificates:
    """A fresh CA and a server certificate for `HOSTS`, as files in `directory`."""

    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self._ca = _trustme().CA()
        issued = self._ca.issue_cert(*HOSTS)
        self.cert_file = directory / "cert.pem"
        self.key_file = directory / "key.pem"
        self.ca_file = directory / "ca.pem"  # for clients that read a file (curl --cacert)
        issued.cert_chain_pems[0].write_to_path(str(self.cert_file))
        issued.private_key_pem.write_to_path(str(self.key_file))
        self._ca.cert_pem.write_to_path(str(self.ca_file))

    def client_context(self) -> ssl.SSLContext:
        """A client context trusting this CA only (httpx ``verify=``, websockets ``ssl=``)."""
        context = ssl.create_default_context()
        self._ca.configure_trust(context)
        return context
