"""The options of `.metrics()`, importable without prometheus-client (the preset reads them)."""

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
