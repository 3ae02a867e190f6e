"""Prometheus metrics: a subscriber of the lifecycle events, and the path that serves them.

The only module that imports ``prometheus_client`` (the ``pounce[prometheus]``
extra). `PrometheusMetrics` turns events into counters, gauges and
histograms in a registry of its own (one per built server); `MetricsEndpoint`
is an app layer that answers ``GET <path>`` with the text exposition before
the app or any limit sees it (a scrape is never metered, counted or logged).

Labels are bounded: the method is one of the standard methods or ``other``,
the status is its class (``2xx``), the protocol one of a handful; never a
path. With process workers each worker counts its own requests; set
``PROMETHEUS_MULTIPROC_DIR`` (prometheus-client's multiprocess mode) to have
every worker's scrape answer the sum over all of them (docs/observability.md).
"""

from __future__ import annotations

import contextlib
import glob
import os
from typing import ClassVar

from pounce.errors import BuildError
from pounce.events import (
    EVENT_TYPES,
    ConnectionClosed,
    ConnectionOpened,
    ConnectionProtocol,
    Event,
    Refused,
    RequestCompleted,
    RequestDequeued,
    RequestQueued,
    RequestStarted,
    WebSocketClosed,
    WebSocketOpened,
    WorkerStarted,
    WorkerStopped,
)
from pounce.layers.metrics import MetricsEndpoint

try:
    import prometheus_client
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
    from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
except ImportError as exc:  # pragma: no cover - the extra is in the dev group
    raise BuildError(
        "Prometheus metrics need the prometheus-client package",
        hint="pip install pounce[prometheus]",
    ) from exc

METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT"})
# Seconds; from 1 ms (a cached answer) to 10 s (past most proxies' patience).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class PrometheusMetrics:
    """Counts the lifecycle events in a registry of its own (thread-safe: prometheus-client
    locks each sample)."""

    event_kinds: ClassVar[frozenset[type[Event]]] = frozenset(EVENT_TYPES)

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "pounce_requests",
            "Responses by method, status class, protocol",
            ["method", "status", "protocol"],
            registry=r,
        )
        self.duration = Histogram(
            "pounce_request_duration_seconds",
            "Request head to the last byte of the response",
            ["protocol"],
            buckets=BUCKETS,
            registry=r,
        )
        self.ttfb = Histogram(
            "pounce_request_ttfb_seconds",
            "Request head to the response head",
            ["protocol"],
            buckets=BUCKETS,
            registry=r,
        )
        self.queued = Histogram(
            "pounce_request_queue_wait_seconds",
            "Time waited in the concurrency limit's queue (requests that waited)",
            buckets=BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "pounce_requests_in_flight",
            "Requests between head and last byte",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.waiting = Gauge(
            "pounce_requests_queued",
            "Requests waiting in the concurrency limit's queue",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.refused = Counter(
            "pounce_refused",
            "Requests refused by an overload layer, and accept pauses (status 0)",
            ["reason", "status"],
            registry=r,
        )
        self.connections = Gauge(
            "pounce_connections_open",
            "Open connections by protocol (none: not chosen yet)",
            ["protocol"],
            registry=r,
            multiprocess_mode="livesum",
        )
        self.closed = Counter(
            "pounce_connections", "Closed connections by protocol", ["protocol"], registry=r
        )
        self.bytes_in = Counter(
            "pounce_received_bytes", "Bytes received on connections", registry=r
        )
        self.bytes_out = Counter("pounce_sent_bytes", "Bytes sent on connections", registry=r)
        self.websockets = Gauge(
            "pounce_websockets_open",
            "Open WebSocket sessions",
            registry=r,
            multiprocess_mode="livesum",
        )
        self.websocket_sessions = Counter(
            "pounce_websocket_sessions",
            "Ended WebSocket sessions by close code class",
            ["accepted"],
            registry=r,
        )
        self.worker_starts = Counter(
            "pounce_worker_starts", "Workers started (a restart counts again)", registry=r
        )

    def __call__(self, event: Event) -> None:
        kind = type(event)
        if kind is RequestCompleted:
            assert isinstance(event, RequestCompleted)
            self._completed(event)
        elif kind is RequestStarted:
            self.in_flight.inc()
        elif kind is ConnectionOpened:
            self.connections.labels("none").inc()
        elif kind is ConnectionProtocol:
            assert isinstance(event, ConnectionProtocol)
            self.connections.labels(event.previous or "none").dec()
            self.connections.labels(event.protocol).inc()
        elif kind is ConnectionClosed:
            assert isinstance(event, ConnectionClosed)
            self.connections.labels(event.protocol or "none").dec()
            self.closed.labels(event.protocol or "none").inc()
            self.bytes_in.inc(event.bytes_in)
            self.bytes_out.inc(event.bytes_out)
        elif kind is RequestQueued:
            self.waiting.inc()
        elif kind is RequestDequeued:
            self.waiting.dec()
        elif kind is Refused:
            assert isinstance(event, Refused)
            self.refused.labels(event.reason, str(event.status)).inc()
        elif kind is WebSocketOpened:
            self.websockets.inc()
        elif kind is WebSocketClosed:
            assert isinstance(event, WebSocketClosed)
            if event.accepted:
                self.websockets.dec()
            self.websocket_sessions.labels("yes" if event.accepted else "no").inc()
        elif kind is WorkerStarted:
            self.worker_starts.inc()
        elif kind is WorkerStopped and os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            # Its live gauges (in flight, open connections) leave the sum with it.
            mark_process_dead(os.getpid())  # type: ignore[no-untyped-call,unused-ignore]

    def _completed(self, event: RequestCompleted) -> None:
        self.in_flight.dec()
        if event.probe:
            return
        protocol = f"HTTP/{event.http_version}"
        method = event.method if event.method in METHODS else "other"
        status = f"{event.status // 100}xx" if event.status else "none"
        self.requests.labels(method, status, protocol).inc()
        self.duration.labels(protocol).observe(event.duration)
        if event.ttfb is not None:
            self.ttfb.labels(protocol).observe(event.ttfb)
        if event.queue_wait:
            self.queued.observe(event.queue_wait)

    def exposition(self) -> bytes:
        """The text exposition: this server's registry, or with ``PROMETHEUS_MULTIPROC_DIR``
        set, the sum over every worker process."""
        path = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
        if path:
            forget_dead_workers(path)
            registry = CollectorRegistry()
            MultiProcessCollector(registry)  # type: ignore[no-untyped-call,unused-ignore]
            return prometheus_client.generate_latest(registry)
        return prometheus_client.generate_latest(self.registry)

    def describe(self) -> str:
        return "prometheus metrics"


def forget_dead_workers(path: str) -> None:
    """Drop the live gauges of worker processes that are gone.

    A worker that stops gracefully drops its own (`WorkerStopped`); one that
    was killed (out of memory, SIGKILL after a missed heartbeat) never does,
    and its open connections, requests in flight and queued would stay in the
    live sum for good. Its counters stay, as they should: what it served was
    served, and its start stays counted in ``pounce_worker_starts``.
    """
    for name in glob.glob(os.path.join(path, "gauge_live*_*.db")):
        pid = os.path.basename(name)[: -len(".db")].rpartition("_")[2]
        if pid.isdigit() and not _alive(int(pid)):
            with contextlib.suppress(FileNotFoundError):  # another scrape dropped it first
                mark_process_dead(int(pid), path)  # type: ignore[no-untyped-call,unused-ignore]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # no signal sent: only asks whether the process exists
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    return True


def metrics_stack(path: str | None, port: int | None) -> tuple[PrometheusMetrics, MetricsEndpoint]:
    """The subscriber and the layer of `.metrics(path=..., bind=...)`."""
    metrics = PrometheusMetrics()
    content_type = prometheus_client.CONTENT_TYPE_LATEST
    endpoint = MetricsEndpoint(path, metrics.exposition, content_type, "Prometheus", port)
    return metrics, endpoint
