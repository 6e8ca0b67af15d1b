"""Prometheus metrics: the outbox's state, and a relay's deliveries.

``outbox status --format prometheus`` prints :func:`status_text` (for node_exporter's
textfile collector); ``flush --watch --metrics-port`` serves the same plus delivery
counters and a latency histogram (:class:`RelayMetrics`). prometheus-client is imported
here only, by those two commands (extra ``metrics``).

Metrics (gauges unless said)::

    ievents_outbox_events{state="pending|in_flight|dead|delivered"}
    ievents_outbox_workspace_undelivered_events{workspace=...,region=...}
                                                     pending and in flight, by workspace
    ievents_outbox_oldest_pending_age_seconds        0 when nothing is pending
    ievents_outbox_last_success_timestamp_seconds    0 when nothing was ever delivered
    ievents_outbox_last_flush_timestamp_seconds      absent until a flush has run
    ievents_outbox_last_flush_exit_code              absent until a flush has run
    ievents_outbox_relay_heartbeat_timestamp_seconds absent until a relay has run
    ievents_relay_outbox_summary_age_seconds         age of the counts above (relay only)
    ievents_relay_deliveries_total{result=...}       counter (relay only)
    ievents_relay_workspace_deliveries_total{workspace=...,region=...,result=...}
                                                     the same by workspace (relay only)
    ievents_relay_delivery_latency_seconds           histogram, capture to 202 (relay only)
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, IeventsError, MissingExtra
from ..outbox import OutboxSummary, State
from .timings import METRICS_RENDER_S

if TYPE_CHECKING:
    from .engine import Delivery

# Capture to acceptance: from a relay's sub-second to a backlog of hours.
LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600, 21600, 86400)


def _prometheus() -> Any:
    try:
        import prometheus_client
    except ImportError:
        raise MissingExtra(
            "Prometheus output needs prometheus-client (the extra 'metrics')", "metrics"
        ) from None
    return prometheus_client


def _families(summary: OutboxSummary | None, now: float) -> Iterator[Any]:
    from prometheus_client.core import GaugeMetricFamily

    counts = summary.counts if summary is not None else {}
    events = GaugeMetricFamily(
        "ievents_outbox_events", "Events in the outbox, by state.", labels=["state"]
    )
    for state in State:
        events.add_metric([state.value], counts.get(state, 0))
    yield events
    by_workspace = GaugeMetricFamily(
        "ievents_outbox_workspace_undelivered_events",
        'Events pending or in flight, by workspace and region (workspace "": not '
        'learned yet; region "": unbound). Read at each full summary.',
        labels=["workspace", "region"],
    )
    undelivered: dict[tuple[str, str], int] = {}
    for destination, count in summary.pending_by_destination if summary is not None else ():
        labels = (destination.workspace_id or "", destination.region) if destination else ("", "")
        undelivered[labels] = undelivered.get(labels, 0) + count
    for labels, count in sorted(undelivered.items()):
        by_workspace.add_metric(list(labels), count)
    yield by_workspace
    oldest = summary.oldest_pending_created if summary is not None else None
    yield GaugeMetricFamily(
        "ievents_outbox_oldest_pending_age_seconds",
        "Age of the oldest event not delivered yet (0: none).",
        value=max(0.0, now - oldest) if oldest is not None else 0.0,
    )
    success = summary.last_success_at if summary is not None else None
    yield GaugeMetricFamily(
        "ievents_outbox_last_success_timestamp_seconds",
        "When Intercom last accepted an event from this outbox (Unix time; 0: never).",
        value=success or 0.0,
    )
    if summary is not None and summary.last_flush_at is not None:
        yield GaugeMetricFamily(
            "ievents_outbox_last_flush_timestamp_seconds",
            "When a flush last finished (Unix time).",
            value=summary.last_flush_at,
        )
    if summary is not None and summary.last_flush_exit_code is not None:
        yield GaugeMetricFamily(
            "ievents_outbox_last_flush_exit_code",
            "The exit code of the last flush.",
            value=summary.last_flush_exit_code,
        )
    if summary is not None and summary.relay_heartbeat_at is not None:
        yield GaugeMetricFamily(
            "ievents_outbox_relay_heartbeat_timestamp_seconds",
            "When a relay (flush --watch) last said it was alive (Unix time).",
            value=summary.relay_heartbeat_at,
        )


class _OutboxCollector:
    """The outbox at each scrape, from ``summary`` (a relay's: a cached snapshot, never a
    query; ``summary`` may raise: then no outbox metrics). ``age`` says how old it is."""

    def __init__(
        self,
        summary: Callable[[], OutboxSummary | None],
        age: Callable[[], float | None] | None = None,
    ) -> None:
        self.summary = summary
        self.age = age

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        try:
            summary = self.summary()
        except IeventsError:
            return  # the outbox is unavailable right now: the scrape says nothing of it
        if summary is None:
            return  # not read yet
        yield from _families(summary, time.time())
        age = self.age() if self.age is not None else None
        if age is not None:
            yield GaugeMetricFamily(
                "ievents_relay_outbox_summary_age_seconds",
                "Seconds since the outbox counts were read in full (settled rows are "
                "counted in between).",
                value=age,
            )

    def describe(self) -> list[Any]:
        return []


def status_text(summary: OutboxSummary | None, *, now: float | None = None) -> str:
    """The outbox's state in the Prometheus text format (``None``: no outbox yet)."""
    client = _prometheus()
    stamp = time.time() if now is None else now
    registry = client.CollectorRegistry(auto_describe=False)

    class Once:
        def collect(self) -> Iterator[Any]:
            yield from _families(summary, stamp)

    registry.register(Once())
    text: bytes = client.generate_latest(registry)
    return text.decode()


class RelayMetrics:
    """What ``flush --watch --metrics-port`` serves: the outbox plus deliveries."""

    def __init__(
        self,
        summary: Callable[[], OutboxSummary | None],
        age: Callable[[], float | None] | None = None,
        *,
        render_every_s: float = METRICS_RENDER_S,
    ) -> None:
        self.render_every_s = render_every_s
        client = _prometheus()
        self.registry = client.CollectorRegistry(auto_describe=False)
        self.registry.register(_OutboxCollector(summary, age))
        self.deliveries = client.Counter(
            "ievents_relay_deliveries",
            "Delivery results of this relay: delivered, dead (rejected), deferred "
            "(temporary failure, retried later), released (handed back unsent).",
            ["result"],
            registry=self.registry,
        )
        for result in ("delivered", "dead", "deferred", "released"):
            self.deliveries.labels(result)
        # The same by workspace: a new series, so that the one above stays as it was.
        self.by_workspace = client.Counter(
            "ievents_relay_workspace_deliveries",
            "Delivery results of this relay by workspace and region (never a token).",
            ["workspace", "region", "result"],
            registry=self.registry,
        )
        self.latency = client.Histogram(
            "ievents_relay_delivery_latency_seconds",
            "From capture to Intercom's 202, per delivered event.",
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._server: Any = None

    def observe(
        self,
        delivery: Delivery,
        now: float | None = None,
        *,
        workspace: str | None = None,
        region: str = "",
    ) -> None:
        """Count one result (the relay's ``on_result``); ``workspace`` (learned, with its
        region) counts it by workspace as well."""
        stamp = time.time() if now is None else now
        if delivery.state is State.DELIVERED:
            result = "delivered"
            self.latency.observe(max(0.0, stamp - delivery.row.created))
        elif delivery.state is State.DEAD:
            result = "dead"
        elif delivery.outcome is None:
            result = "released"
        else:
            result = "deferred"
        self.deliveries.labels(result).inc()
        if workspace is not None:
            self.by_workspace.labels(workspace, region, result).inc()

    def serve(self, host: str, port: int) -> int:
        """Serve ``/metrics`` on ``host:port`` (a thread); returns the port bound.

        At a bounded cost however often it is scraped (:mod:`.metrics_server`).
        """
        from .metrics_server import ThrottledMetrics, serve

        client = _prometheus()
        text = ThrottledMetrics(
            lambda: bytes(client.generate_latest(self.registry)),
            render_every_s=self.render_every_s,
        )
        try:
            server = serve(host, port, text, client.CONTENT_TYPE_LATEST)
        except OSError as exc:
            raise ConfigError(
                f"cannot serve metrics on {host}:{port}: {exc.strerror or exc}",
                hint="choose another --metrics-port",
            ) from None
        self._server = server
        bound: int = server.server_address[1]
        return bound

    def close(self) -> None:
        """Stop serving."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
