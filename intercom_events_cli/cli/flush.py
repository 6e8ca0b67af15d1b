"""``ievents flush``: deliver the events waiting in the outbox, and say what became of them.

The engine is :mod:`intercom_events_cli.delivery.engine`; ``--watch`` (the relay) is in
:mod:`.watch`. httpx is imported only once there is something to send.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Annotated

import typer

from ..config.settings import Settings
from ..errors import ExitCode, IeventsError, UsageError
from ..outcome import Outcome, OutcomeKind, api_error_text, status_text
from .common import attempt_logger, json_error, open_outbox, reporting, stop_on_signals
from .flush_lanes import (
    chosen_profiles,
    flush_several,
    refused_hint,
    refused_text,
    workspaces_json,
)
from .options import CONNECTION, DELIVERY, OUTPUTS, SETTINGS, Options, finite, shared
from .output import Output
from .render import (
    agree,
    delivery_counts,
    delivery_line,
    describe_failure,
    failure_hint,
    plural,
    relative,
    setup_cause,
    waiting_elsewhere_text,
    waiting_for_workspace_json,
    waiting_for_workspace_text,
    when,
)
from .render_json import flush_json

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..delivery.engine import Delivery, FlushReport
    from ..outbox import OutboxSummary
    from ..outbox.store import OutboxStore

MAX_ERROR_LINES = 10


def _stop_reason(failure: Outcome) -> str:
    """Why a run stopped at once: a rejected token, a redirect, an untrusted certificate."""
    if failure.status is None:
        return setup_cause(failure)
    if failure.kind is OutcomeKind.AUTH:
        return f"{setup_cause(failure)} ({status_text(failure.status)})"
    return f"redirected ({status_text(failure.status)})"


def report_flush(
    ui: Output,
    report: FlushReport,
    settings: Settings,
    remaining: OutboxSummary,
    max_time: float | None,
) -> None:
    """The summary (stdout) and what went wrong (stderr)."""
    from ..delivery.engine import StopReason
    from ..outbox import State

    pending = remaining.counts[State.PENDING] + remaining.counts[State.IN_FLIGHT]
    if not ui.json_mode:
        ui.result(*summary_line(report, remaining, pending))
    report_dead_letters(ui, report)
    report_failures(ui, report, settings, pending)
    if report.stopped is StopReason.INTERRUPTED:
        ui.error(f"interrupted; every event not delivered stays pending ({pending} now)")
    elif report.stopped is StopReason.MAX_TIME:
        ui.info(
            f"stopped after --max-time {max_time:g} s: {plural(pending, 'event')} left "
            "pending for the next flush"
        )


def summary_line(
    report: FlushReport, remaining: OutboxSummary, pending: int
) -> tuple[str, str | None]:
    """The flush's one result line, and its style."""
    from ..outbox import State

    if report.claimed == 0 and report.stopped is None:
        upcoming = (
            f", next attempt {relative(remaining.next_attempt_at)}"
            if pending and remaining.next_attempt_at is not None
            else ""
        )
        return f"nothing to flush: {plural(pending, 'event')} pending{upcoming}", None
    released = f"{report.released} not sent" if report.released else None
    counts = delivery_counts(
        report.delivered, report.dead, report.deferred, released, report.refused
    )
    return (
        f"flush: {counts} in {report.elapsed_s:.1f} s; the outbox holds "
        f"{pending} pending, {remaining.counts[State.DEAD]} dead",
        "green" if report.exit_code == ExitCode.OK else None,
    )


def report_dead_letters(ui: Output, report: FlushReport) -> None:
    """The first dead letters of the run, one line each, and what to do about them."""
    for shown, delivery in enumerate(report.dead_letters):
        if shown == MAX_ERROR_LINES:
            ui.error(f"... and {report.dead - MAX_ERROR_LINES} more dead letters")
            break
        if delivery.outcome is None:  # refused before delivery: the reason is stored
            row = delivery.row
            ui.error(f"{row.event_name}: {row.last_error_message} [outbox id {row.id}]")
        else:
            ui.error(f"{describe_failure(delivery.outcome)} [outbox id {delivery.row.id}]")
    rejected = report.dead - report.refused
    if rejected:
        ui.error(
            f"{plural(rejected, 'event')} rejected by Intercom, kept as "
            f"{agree(rejected, 'a dead letter', 'dead letters')}",
            "see them with: ievents outbox list --dead; fix the data and send again, or "
            "try again as they are: ievents outbox retry ID",
        )
    if report.refused:
        ui.error(
            f"{plural(report.refused, 'event')} refused as invalid before delivery (never "
            f"sent), kept as {agree(report.refused, 'a dead letter', 'dead letters')}",
            "see why with: ievents outbox list --dead; fix the data where it was enqueued "
            "and enqueue it again",
        )


def report_failures(ui: Output, report: FlushReport, settings: Settings, pending: int) -> None:
    """A setup that stopped the run, temporary failures, other workspaces, bugs."""
    failure = report.last_failure
    if report.setup_failures and failure is not None:
        ui.error(
            f"{_stop_reason(failure)}; flush stopped and every event stays pending ({pending} now)",
            failure_hint(failure, settings),
        )
    if report.deferred and failure is not None:
        last = status_text(failure.status) if failure.status is not None else None
        detail = api_error_text(last, failure.error_message)
        next_try = (
            f" from {when(report.next_attempt_at)}" if report.next_attempt_at is not None else ""
        )
        ui.error(
            f"{plural(report.deferred, 'event')} not delivered ({detail}); "
            f"{agree(report.deferred, 'it stays', 'they stay')} in the outbox",
            "Intercom or the network is unavailable; the next flush retries "
            f"{agree(report.deferred, 'it', 'them')}{next_try} "
            "(ievents flush --now: at once)",
        )
    for destination, count in report.waiting_elsewhere:
        ui.info(waiting_elsewhere_text(destination, count))
    for message in report.internal_errors[:MAX_ERROR_LINES]:
        ui.error(f"internal error: {message}", "this is a bug in ievents; the event stays pending")


# flush declares --profile itself (repeatable), and --all-profiles right after it.
_AFTER_PROFILE = SETTINGS.index("profile") + 1
_SETTINGS = (*SETTINGS[:_AFTER_PROFILE], "all_profiles", *SETTINGS[_AFTER_PROFILE:])


@shared("outbox", *_SETTINGS, *OUTPUTS)
def flush(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            min=1,
            max=256,
            help="Requests in flight, 1-256.",
            rich_help_panel=DELIVERY,
        ),
    ] = 32,
    max_time: Annotated[
        float | None,
        typer.Option(
            "--max-time",
            metavar="SECONDS",
            min=0.0,
            callback=finite,
            help="Start no new delivery after this long.",
            rich_help_panel=DELIVERY,
            show_default=False,
        ),
    ] = None,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Also send events not due yet (after an outage).",
            rich_help_panel=DELIVERY,
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep running as a relay, until SIGTERM or Ctrl-C.",
            rich_help_panel=DELIVERY,
        ),
    ] = False,
    metrics_port: Annotated[
        str | None,
        typer.Option(
            "--metrics-port",
            metavar="[HOST:]PORT",
            help="With --watch: Prometheus metrics (HOST: 127.0.0.1).",
            rich_help_panel=DELIVERY,
            show_default=False,
        ),
    ] = None,
    profile: Annotated[
        list[str] | None,
        typer.Option(
            "--profile",
            metavar="NAME",
            help="Profile in config.toml (IEVENTS_PROFILE); repeat: each workspace its own.",
            rich_help_panel=CONNECTION,
            show_default=False,
        ),
    ] = None,
    all_profiles: Annotated[
        bool,
        typer.Option(
            "--all-profiles",
            help="Deliver for every profile in config.toml, each with its own token.",
            rich_help_panel=CONNECTION,
        ),
    ] = False,
    *,
    opts: Options,
) -> None:
    """Deliver the events waiting in the outbox, oldest first.

    Examples:
      ievents flush -q --max-time 50 --env-file /etc/ievents/app.env
      ievents flush --watch --metrics-port 9464
      ievents flush --watch --all-profiles
    """
    ui = opts.output()
    json_output = opts.json_output
    with reporting(ui, opts.debug, on_error=json_error(ui)):
        problem = watch_flags_wrong(watch, metrics_port, max_time, json_output)
        if problem is not None:
            raise UsageError(problem)
        several = chosen_profiles(profile, all_profiles, opts)
        if several is not None:
            code = flush_several(
                ui,
                several,
                opts,
                watch=watch,
                metrics_port=metrics_port,
                report_flush=report_flush,
                concurrency=concurrency,
                max_time=max_time,
                now=now,
            )
            if code != ExitCode.OK:
                raise typer.Exit(code)
            return
        opts = opts.for_profile(profile[0] if profile else None)
        env = opts.environment()
        settings = opts.settings()
        path = opts.outbox_location()
        if watch:
            from .watch import run_watch

            code = run_watch(
                ui,
                path,
                env,
                settings,
                concurrency=concurrency,
                metrics_port=metrics_port,
                reload_settings=opts.settings,
            )
            raise typer.Exit(code)
        if not path.exists():
            # Nothing was ever queued here: do not create a file just to find it empty.
            from ..delivery.engine import FlushReport

            if json_output:
                ui.json(flush_json(FlushReport(), path, None))
            else:
                ui.result(f"nothing to flush: no outbox at {path} yet")
            return
        with open_outbox(path, env) as store:
            from ..delivery.workspaces import learn_workspace

            # Once per new token: its workspace, so it delivers what its others captured.
            named = env.profile.name if env.profile else None
            failures: list[IeventsError] = []
            workspace = learn_workspace(store, settings, attempt_logger(ui), named, failures.append)
            report = run_flush(ui, store, settings, concurrency, max_time, now, env)
            from ..delivery.lanes import refused_token

            refused = refused_token(failures, report)
            if refused is not None:
                # Nothing of this token's was tried, so nothing met the refusal: say it,
                # and record it as the flush's code (the engine recorded 0).
                report.note_code(refused.exit_code)
                store.note_flush(int(report.exit_code))
            remaining = store.summary()
            due = store.count_due(store.bind(settings))
            waiting = store.waiting_for_workspace()
        if json_output:
            body = flush_json(report, path, remaining, due)
            body["waiting_for_workspace"] = waiting_for_workspace_json(waiting)
            body["workspaces"] = workspaces_json(named, settings, workspace, report, remaining)
            ui.json(body)
        report_flush(ui, report, settings, remaining, max_time)
        if refused is not None:
            ui.error(refused_text(refused), hint=refused_hint(refused, named))
        for workspace, count in waiting:
            ui.info(waiting_for_workspace_text(workspace, count))
        if report.exit_code != ExitCode.OK:
            raise typer.Exit(int(report.exit_code))


def watch_flags_wrong(
    watch: bool, metrics_port: str | None, max_time: float | None, json_output: bool
) -> str | None:
    """What is wrong with the --watch flags given (None: nothing)."""
    if metrics_port is not None and not watch:
        return "--metrics-port needs --watch"
    if watch and (max_time is not None or json_output):
        return "--watch runs until stopped: it takes neither --max-time nor --json"
    return None


def run_flush(
    ui: Output,
    store: OutboxStore,
    settings: Settings,
    concurrency: int,
    max_time: float | None,
    ignore_schedule: bool,
    env: Mapping[str, str],
) -> FlushReport:
    """Run the engine with Ctrl-C handling and ``-v`` lines."""
    from ..delivery.engine import Deliverer
    from ..outbox.owner import lease_seconds

    log_lock = threading.Lock()

    def log_result(delivery: Delivery) -> None:
        line = delivery_line(delivery)
        with log_lock:
            ui.log(line)

    stop = threading.Event()
    deliverer = Deliverer(
        store,
        settings,
        concurrency=concurrency,
        max_time=max_time,
        ignore_schedule=ignore_schedule,
        on_result=log_result if ui.verbose else None,
        on_attempt=attempt_logger(ui),
        stop=stop,
        lease_s=lease_seconds(env),
    )
    with stop_on_signals(stop):
        return deliverer.run()
