"""The options of `.metrics()` and `.otel()`, importable without prometheus-client or
opentelemetry (the preset and the docs tables read them)."""

from __future__ import annotations

from dataclasses import dataclass

from pounce.options import option


def check_path(value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value.startswith("/") or " " in value:
        raise ValueError('must be a path such as "/metrics"')
    return value


def check_bind(value: object) -> str | None:
    """``HOST:PORT`` (IPv6 in brackets) with a real port: the listener must be findable."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise ValueError('must be "HOST:PORT", e.g. "127.0.0.1:9100"')
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError('must be "HOST:PORT" with a port from 1 to 65535, e.g. "127.0.0.1:9100"')
    return value


def split_bind(value: str) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    return host.strip("[]"), int(port)


@dataclass(frozen=True, slots=True, kw_only=True)
class MetricsOptions:
    """The options of `.metrics()`."""

    builder_call = ".metrics"
    options_group = "logging"

    path: str | None = option(
        None,
        name="metrics_path",
        help="serve Prometheus metrics at this path of the main listener (pounce[prometheus]); "
        "not logged, metered or counted",
        shown="off",
        convert=check_path,
    )
    bind: str | None = option(
        None,
        name="metrics_bind",
        help="serve Prometheus metrics on a listener of their own, HOST:PORT (every path there; "
        "the app is not reachable on it); shared by the workers like the main listener",
        shown="off",
        convert=check_bind,
    )


def any_provider(value: object) -> object:
    """A tracer provider is whatever the OpenTelemetry API accepts; None: the global one."""
    return value


@dataclass(frozen=True, slots=True, kw_only=True)
class OtelOptions:
    """The options of `.otel()`."""

    builder_call = ".otel"
    options_group = "logging"

    tracer_provider: object | None = option(
        None,
        help="the OpenTelemetry TracerProvider; None: the one the app set globally",
        outside=False,
        convert=any_provider,
        shown="global",
    )
