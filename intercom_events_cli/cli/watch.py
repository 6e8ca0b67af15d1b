"""``ievents flush --watch``: the relay on the command line, and its metrics endpoint.

The relay itself is :mod:`intercom_events_cli.delivery.relay`; this module turns its notices
into stderr lines, serves ``--metrics-port``, and decides the exit code: 0 after
SIGTERM or Ctrl-C (a relay asked to stop has done its job), 130 on a second Ctrl-C,
78 for a configuration that cannot work.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

from ..delivery.timings import TIMINGS_ENV, RelayTimings, timings_from_text
from ..errors import ExitCode, IeventsError, UsageError
from .common import attempt_logger, stop_on_signals
from .output import Output
from .render import delivery_counts, plural, refused_line, relay_line

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..delivery.engine import Delivery
    from ..delivery.lanes import Lane, LaneConfig
    from ..delivery.relay import Relay, RelayReport
    from ..outbox.store import OutboxLocation, OutboxStore

DEFAULT_METRICS_HOST = "127.0.0.1"
# Rows refused as invalid are told one line each up to this many (the final line and the
# metrics count them all).
MAX_REFUSED_LINES = 10
T = TypeVar("T")


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
    reload_settings: Callable[[], Settings] | None = None,
) -> int:
    """Run the relay until SIGTERM / Ctrl-C; returns the exit code. ``reload_settings``
    makes the settings again (a token file read anew: a rotation)."""
    from ..delivery.destination import Destination
    from ..delivery.relay import Relay
    from ..early_signals import relay_stop
    from ..outbox.owner import lease_seconds
    from ..outbox.store import open_store

    address = parse_metrics_address(metrics_port) if metrics_port is not None else None
    region = Destination(settings.base_url.rstrip("/"), "", "", "").region
    timings = timings_from_text(env.get(TIMINGS_ENV))
    # The process's own: a signal since the run began has already asked it to stop.
    stop = relay_stop() or threading.Event()
    metrics, cache = _metrics(address, location, env, timings)
    teller = _RelayTeller(ui, metrics, cache, region)
    relay = Relay(
        location,
        settings,
        lambda: open_store(location, env),
        stop=stop,
        on_result=teller.on_result,
        on_store=teller.on_store,
        on_attempt=attempt_logger(ui),
        on_notice=teller.on_notice,
        concurrency=concurrency,
        lease_s=lease_seconds(env),
        reload_settings=reload_settings,
        timings=timings,
    )
    teller.relay = relay
    _serve_metrics(ui, metrics, address)
    ui.info(f"watching {location} for new events; SIGTERM, SIGHUP or Ctrl-C stops")
    report = _run_until_stopped(relay.run, stop, metrics, cache)
    _tell_stopped(ui, [report])
    return int(ExitCode.OK)


class _RelayTeller:
    """What the one relay of ``run_watch`` hears, told: each delivery into the metrics,
    refused rows and notices as stderr lines, each delivery with ``-v``."""

    def __init__(self, ui: Output, metrics: Any, cache: Any, region: str) -> None:
        self.ui = ui
        self.metrics = metrics  # None without --metrics-port, and so is the cache
        self.cache = cache
        self.region = region
        # Set once the relay is made (it takes these callbacks when made): its
        # workspace, once learned, labels the metrics.
        self.relay: Relay | None = None
        # Lines come from the relay's delivery threads: one at a time, never interleaved.
        self.log_lock = threading.Lock()
        self.told_refused = 0

    def on_result(self, delivery: Delivery) -> None:
        """One delivery: counted in the metrics; told if refused (the first ones) or -v."""
        if self.metrics is not None and self.cache is not None:
            workspace = self.relay.workspace if self.relay is not None else None
            self.metrics.observe(delivery, workspace=workspace, region=self.region)
            self.cache.observe(delivery)
        if delivery.outcome is None and delivery.state.value == "dead":
            # Refused as invalid (never sent): said even without -v, the first ones.
            self.told_refused += 1
            if self.told_refused <= MAX_REFUSED_LINES:
                with self.log_lock:
                    self.ui.warn(refused_line(delivery))
            return
        if self.ui.verbose:
            with self.log_lock:
                self.ui.log(relay_line(delivery))

    def on_notice(self, text: str) -> None:
        """A relay notice (outbox down, delivery paused, events waiting): a warning line."""
        with self.log_lock:
            self.ui.warn(text)

    def on_store(self, store: OutboxStore | None) -> None:
        """The relay opened the outbox: the metrics' summary cache may start reading."""
        if store is not None and self.cache is not None:
            # Only once the relay has opened the outbox: opening a SQLite file checks
            # it outside SQLite, which would drop the locks of a connection open already.
            self.cache.start()


def _serve_metrics(ui: Output, metrics: Any, address: tuple[str, int] | None) -> None:
    """Serve ``--metrics-port`` (nothing without it) and say where."""
    if metrics is not None and address is not None:
        ui.info(f"metrics on http://{address[0]}:{metrics.serve(*address)}/metrics")


def _run_until_stopped(run: Callable[[], T], stop: threading.Event, *closing: Any) -> T:
    """``run()`` until SIGTERM or Ctrl-C sets ``stop``; then close what ``closing`` names
    (the metrics server, its cache, a shared store: None where there is none), in order."""
    try:
        with stop_on_signals(stop):
            return run()
    finally:
        for resource in closing:
            if resource is not None:
                resource.close()


def _tell_stopped(ui: Output, reports: Sequence[RelayReport]) -> None:
    """The last line of a watch: what its relays did, summed over them."""
    released = sum(r.released for r in reports)
    counts = delivery_counts(
        sum(r.delivered for r in reports),
        sum(r.dead for r in reports),
        sum(r.deferred for r in reports),
        plural(released, "event") + " handed back unsent" if released else None,
        sum(r.refused for r in reports),
    )
    ui.result(f"watch stopped: {counts}")


def watch_several(
    ui: Output,
    configs: Sequence[LaneConfig],
    location: OutboxLocation,
    env: Mapping[str, str],
    *,
    concurrency: int,
    metrics_port: str | None,
) -> int:
    """``flush --watch`` over several profiles: a relay per workspace, until SIGTERM or
    Ctrl-C (:class:`~intercom_events_cli.delivery.lanes.LaneRelays`); returns 0."""
    from ..delivery.lanes import LaneRelays, SharedStore
    from ..early_signals import relay_stop
    from ..outbox.owner import lease_seconds
    from ..outbox.store import open_reader, open_store
    from .render import waiting_elsewhere_text, waiting_for_workspace_text
    from .render_lanes import deferred_line, lane_label

    address = parse_metrics_address(metrics_port) if metrics_port is not None else None
    timings = timings_from_text(env.get(TIMINGS_ENV))
    stop = relay_stop() or threading.Event()
    metrics, cache = _metrics(address, location, env, timings)
    log_lock = threading.Lock()
    told_refused = [0]
    failing: set[str] = set()  # lanes whose last answer was a temporary failure (told)

    def on_result(lane: Lane, delivery: Delivery) -> None:
        if metrics is not None and cache is not None:
            metrics.observe(delivery, workspace=lane.workspace or "", region=lane.region)
            cache.observe(delivery)
        if delivery.outcome is not None:
            # Said once per outage, per workspace: why its events wait while others go.
            temporary = delivery.outcome.kind.value == "temporary"
            if temporary and lane.profile not in failing:
                failing.add(lane.profile)
                with log_lock:
                    ui.warn(f"{lane_label(lane)}: {deferred_line(delivery.outcome)}")
            elif not temporary:
                failing.discard(lane.profile)
        if delivery.outcome is None and delivery.state.value == "dead":
            told_refused[0] += 1
            if told_refused[0] <= MAX_REFUSED_LINES:
                with log_lock:
                    ui.warn(f"{lane_label(lane)}: {refused_line(delivery)}")
            return
        if ui.verbose:
            with log_lock:
                ui.log(f"{lane_label(lane)}: {relay_line(delivery)}")

    def on_notice(lane: Lane, text: str) -> None:
        with log_lock:
            ui.warn(f"{lane_label(lane)}: {text}")

    def on_store(store: OutboxStore | None) -> None:
        if store is not None and cache is not None:
            cache.start()

    # One connection for every lane where writers take turns anyway (SQLite: ten
    # connections would each keep a page cache); a connection per lane where they do not.
    from ..outbox.store import backend_of

    concurrent = backend_of(location).concurrent_writers
    shared = None if concurrent else SharedStore(lambda: open_store(location, env))
    lanes = LaneRelays(
        location,
        configs,
        shared.open if shared is not None else (lambda: open_store(location, env)),
        stop=stop,
        on_result=on_result,
        on_notice=on_notice,
        on_store=on_store,
        on_attempt=attempt_logger(ui),
        concurrency=concurrency,
        lease_s=lease_seconds(env),
        timings=timings,
    )

    def tell_waiting() -> None:
        try:
            with open_reader(location, env) as store:
                nobody = lanes.waiting_for_nobody(store)
                unbound = store.waiting_for_workspace()
        except IeventsError:
            return  # the lanes meet the same error and say so
        with log_lock:
            for destination, count in nobody:
                ui.warn(waiting_elsewhere_text(destination, count))
            for workspace, count in unbound:
                ui.warn(waiting_for_workspace_text(workspace, count))

    _serve_metrics(ui, metrics, address)
    ui.info(
        f"watching {location} for new events of {plural(len(configs), 'profile')}; "
        "SIGTERM, SIGHUP or Ctrl-C stops"
    )
    reports = _run_until_stopped(
        lambda: lanes.run(on_learned=tell_waiting), stop, metrics, cache, shared
    )
    _tell_stopped(ui, reports)
    return int(ExitCode.OK)


def _metrics(
    address: tuple[str, int] | None,
    location: OutboxLocation,
    env: Mapping[str, str],
    timings: RelayTimings,
) -> tuple[Any, Any]:
    """The metrics and the summary cache they read (both None without --metrics-port)."""
    if address is None:
        return None, None
    from ..delivery.metrics import RelayMetrics
    from ..delivery.summary_cache import SummaryCache
    from ..outbox.store import open_reader

    cache = SummaryCache(lambda: open_reader(location, env), refresh_s=timings.summary_refresh_s)
    metrics = RelayMetrics(cache.get, cache.age_s, render_every_s=timings.metrics_render_s)
    return metrics, cache
