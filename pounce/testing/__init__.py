"""Test helpers that users need too: a real server, and conformance checks.

`TestServer` runs a real Pounce server on a free port: a built `Server`, or
an ASGI app on the standard stack with ``pounce.run()`` options (``tls=True``:
a throwaway CA, `TestCertificates`); the pytest plugin
(`pounce.testing.pytest_plugin`) gives it as the ``pounce_server`` fixture.
The conformance kit
checks what every layer and protocol must do, in memory, so a third party's
test is one line::

    def test_my_layer():
        check_stream_layer(lambda: MyLayer(limit=10))

`check_stream_layer`, `check_app_layer` and `check_protocol` run every check
of their kind (`STREAM_LAYER_CHECKS`, `APP_LAYER_CHECKS`,
`PROTOCOL_CHECKS`), or those named in ``checks=`` — parametrize over the
names to get one test per check. `check_bad_options` asserts that bad values
fail at build with `pounce.BuildError`. Each raises AssertionError naming the
layer and the rule it broke. `MemoryConn`, `MemorySetupConn` and
`RecordingHandler` are the in-memory connection and inner handler the checks
drive, for tests of your own.
"""

from pounce.testing.app_checks import APP_LAYER_CHECKS, EchoApp, check_app_layer, http_scope
from pounce.testing.build_checks import check_bad_options
from pounce.testing.certs import TestCertificates
from pounce.testing.memory import (
    Callback,
    MemoryConn,
    MemorySetupConn,
    RecordingFactory,
    RecordingHandler,
)
from pounce.testing.protocol_checks import PROTOCOL_CHECKS, check_protocol, upgrade_request
from pounce.testing.server import TestServer
from pounce.testing.stream_checks import STREAM_LAYER_CHECKS, check_stream_layer

__all__ = [
    "APP_LAYER_CHECKS",
    "PROTOCOL_CHECKS",
    "STREAM_LAYER_CHECKS",
    "Callback",
    "EchoApp",
    "MemoryConn",
    "MemorySetupConn",
    "RecordingFactory",
    "RecordingHandler",
    "TestCertificates",
    "TestServer",
    "check_app_layer",
    "check_bad_options",
    "check_protocol",
    "check_stream_layer",
    "http_scope",
    "upgrade_request",
]
