"""``ievents flush --watch``: the relay on the command line, and its metrics endpoint.

The relay itself is :mod:`intercom_events_cli.relay`; this module turns its notices
into stderr lines, serves ``--metrics-port``, and decides the exit code: 0 after
SIGTERM or Ctrl-C (a relay asked to stop has done its job), 130 on a second Ctrl-C,
78 for a configuration that cannot work.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING

from ..errors import ExitCode, UsageError
from .common import attempt_logger, stop_on_signals
from .output import Output
from .render import delivery_counts, plural, relay_line

if TYPE_CHECKING:
    from ..config import Settings
    from ..delivery import Delivery
    from ..outbox import OutboxSummary
    from ..outbox.store import OutboxLocation

DEFAULT_METRICS_HOST = "127.0.0.1"


def parse_metrics_address(text: str) -> tuple[str, int]:
    """``PORT`` (loopback) or ``HOST:PORT`` (``0.0.0.0:9464`` for every interface)."""
    host, sep, port_text = text.strip().rpartition(":")
    host = host.strip("[]") if sep else DEFAULT_METRICS_HOST
    try:
        port = int(port_text)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535 or (sep and not host):
        raise UsageError(
            f"--metrics-port {text!r} is not a port",
            "give a port (9464) or HOST:PORT (0.0.0.0:9464 to serve beyond this host)",
        )
    return host, port


def run_watch(
    ui: Output,
    location: OutboxLocation,
    env: Mapping[str, str],
    settings: Settings,
    *,
    concurrency: int,
    metrics_port: str | None,
) -> int:
    """Run the relay until SIGTERM / Ctrl-C; returns the exit code."""
    from ..early_signals import relay_stop
    from ..outbox.owner import lease_seconds
    from ..outbox.store import open_store
    from ..relay import Relay

    address = parse_metrics_address(metrics_port) if metrics_port is not None else None
    # The process's own: a signal since the run began has already asked it to stop.
    stop = relay_stop() or threading.Event()
    relay: Relay | None = None

    def summary() -> OutboxSummary | None:
        store = relay.store if relay is not None else None
        return store.summary() if store is not None else None

    metrics = None
    if address is not None:
        from ..metrics import RelayMetrics

        metrics = RelayMetrics(summary)
    log_lock = threading.Lock()

    def on_result(delivery: Delivery) -> None:
        if metrics is not None:
            metrics.observe(delivery)
        if ui.verbose:
            with log_lock:
                ui.log(relay_line(delivery))

    def on_notice(text: str) -> None:
        with log_lock:
            ui.warn(text)

    relay = Relay(
        location,
        settings,
        lambda: open_store(location, env),
        stop=stop,
        on_result=on_result,
        on_attempt=attempt_logger(ui),
        on_notice=on_notice,
        concurrency=concurrency,
        lease_s=lease_seconds(env),
    )
    if metrics is not None and address is not None:
        port = metrics.serve(*address)
        ui.info(f"metrics on http://{address[0]}:{port}/metrics")
    ui.info(f"watching {location} for new events; SIGTERM or Ctrl-C stops")
    try:
        with stop_on_signals(stop):
            report = relay.run()
    finally:
        if metrics is not None:
            metrics.close()
    released = plural(report.released, "event") + " handed back unsent"
    counts = delivery_counts(
        report.delivered, report.dead, report.deferred, released if report.released else None
    )
    ui.result(f"watch stopped: {counts}")
    return int(ExitCode.OK)
