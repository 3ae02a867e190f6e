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
