"""``ievents flush`` and ``ievents outbox ...``: deliver and manage the queued events.

Also the two ways ``send`` stores an event (``--queue``, ``--queue-on-failure``). sqlite3
and httpx are imported inside the commands that use them, never at startup.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config import Settings
from ..errors import ExitCode, IeventsError, Interrupted, UsageError
from ..outcome import Outcome, OutcomeKind, status_text
from . import app
from .common import (
    ApiVersionOpt,
    BaseUrlOpt,
    DebugOpt,
    EnvFileOpt,
    JsonOpt,
    NoColorOpt,
    OutboxOpt,
    ProfileOpt,
    QuietOpt,
    RegionOpt,
    RetriesOpt,
    TimeoutOpt,
    TokenFileOpt,
    VerboseOpt,
    attempt_logger,
    finite,
    load_environment,
    open_outbox,
    outbox_path,
    reporting,
    stop_on_signals,
)
from .environment import current
from .output import Output
from .render import describe_failure, failure_hint, plural, relative, when

if TYPE_CHECKING:
    from ..delivery import Delivery, FlushReport
    from ..destination import Destination
    from ..outbox import OutboxRow, OutboxSummary, State
    from ..outbox.store import OutboxLocation, OutboxStore

DELIVERY = "Delivery"
MAX_ERROR_LINES = 10
_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
# Larger numbers cannot be outbox ids or limits: SQLite refuses them with OverflowError.
SQLITE_MAX_INT = 2**63 - 1

outbox_app = typer.Typer(
    name="outbox",
    help=(
        "Inspect and manage the outbox: the local file that keeps events until Intercom "
        "has accepted them.\n\n"
        "Example: ievents outbox status"
    ),
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(outbox_app, name="outbox")


# -- shared helpers ----------------------------------------------------------------------------


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` as seconds."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise UsageError(
            f"--older-than {text!r} is not a duration; use a number and a unit, such as "
            "30d, 12h, 90m, 45s or 2w"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def chosen_states(
    *, pending: bool, dead: bool, delivered: bool = False, default: list[State]
) -> list[State]:
    """The states picked by ``--pending`` / ``--dead`` / ``--delivered`` (at most one)."""
    from ..outbox import State

    picked = [flag for flag in (pending, dead, delivered) if flag]
    if len(picked) > 1:
        raise UsageError("choose one of --pending, --dead and --delivered")
    if pending:
        return [State.PENDING, State.IN_FLIGHT]
    if dead:
        return [State.DEAD]
    if delivered:
        return [State.DELIVERED]
    return default


def row_json(
    row: OutboxRow, destinations: Mapping[int, Destination] | None = None
) -> dict[str, Any]:
    """One outbox row for ``--json``: the event (API field names), its last error and
    its destination (null: unbound)."""
    from ..outbox import State

    return {
        "id": row.id,
        "state": row.state.value,
        "event": row.payload,
        "attempts": row.attempts,
        "captured_at": when(row.created),
        "updated_at": when(row.updated),
        "next_attempt_at": when(row.next_attempt_at) if row.state is State.PENDING else None,
        "last_status": row.last_status,
        "error": row.error(),
        "request_id": row.request_id,
        "dedup_key": row.dedup_key,
        "destination": destination_json(
            (destinations or {}).get(row.destination_id) if row.destination_id else None
        ),
    }


def _json_error(ui: Output, extra: Mapping[str, Any] | None = None) -> Any:
    def report(exc: IeventsError) -> None:
        if ui.json_mode:
            ui.json(
                {
                    "ok": False,
                    **(extra or {}),
                    "error": {"code": exc.code, "message": exc.message},
                }
            )

    return report


# -- send --queue and send --queue-on-failure ------------------------------------------------


# -- flush ----------------------------------------------------------------------------------


def _event_line(delivery: Delivery) -> str:
    row = delivery.row
    return f"#{row.id} {row.event_name} for {row.event().contact}"


def flush_json(
    report: FlushReport,
    path: OutboxLocation,
    remaining: OutboxSummary | None,
    due_remaining: int = 0,
) -> dict[str, Any]:
    """The ``flush --json`` object."""
    from ..outbox import State

    counts = remaining.counts if remaining is not None else {}
    return {
        "ok": report.exit_code == ExitCode.OK,
        "exit_code": int(report.exit_code),
        "outbox": str(path),
        "claimed": report.claimed,
        "delivered": report.delivered,
        "dead": report.dead,
        "deferred": report.deferred,
        "released": report.released,
        "stopped": report.stopped,
        "probed": report.probed,
        "retried_in_run": report.retried_in_run,
        "due_remaining": due_remaining,
        "waiting_elsewhere": [
            {
                "base_url": destination.base_url,
                "api_version": destination.api_version,
                "token_hint": destination.token_hint,
                "events": count,
            }
            for destination, count in report.waiting_elsewhere
        ],
        "next_attempt_at": when(report.next_attempt_at),
        "elapsed_s": round(report.elapsed_s, 3),
        "remaining": {state.value: counts.get(state, 0) for state in State},
        # At most the first 1,000 (``dead`` counts all; outbox list --dead shows every one).
        "dead_letters": [
            {
                "id": d.row.id,
                "event": d.row.payload,
                "status": d.outcome.status if d.outcome else None,
                "error": d.outcome.error() if d.outcome else None,
            }
            for d in report.dead_letters
        ],
    }


def _stop_reason(failure: Outcome) -> str:
    """Why a run stopped at once: a rejected token, a redirect, an untrusted certificate."""
    if failure.kind is OutcomeKind.AUTH:
        return f"the token was rejected ({status_text(failure.status)})"
    if failure.status is None:
        return failure.error_message or "the configuration cannot work"
    return f"redirected ({status_text(failure.status)})"


def report_flush(
    ui: Output,
    report: FlushReport,
    settings: Settings,
    remaining: OutboxSummary,
    max_time: float | None,
) -> None:
    """The summary (stdout) and what went wrong (stderr)."""
    from ..delivery import STOP_INTERRUPTED, STOP_MAX_TIME
    from ..outbox import State

    pending = remaining.counts[State.PENDING] + remaining.counts[State.IN_FLIGHT]
    dead_total = remaining.counts[State.DEAD]
    if not ui.json_mode:
        if report.claimed == 0 and report.stopped is None:
            upcoming = (
                f", next attempt {relative(remaining.next_attempt_at)}"
                if pending and remaining.next_attempt_at is not None
                else ""
            )
            ui.result(f"nothing to flush: {plural(pending, 'event')} pending{upcoming}")
        else:
            parts = [f"{report.delivered} delivered"]
            if report.dead:
                parts.append(f"{report.dead} rejected")
            if report.deferred:
                parts.append(f"{report.deferred} to retry later")
            if report.released:
                parts.append(f"{report.released} not sent")
            ui.result(
                f"flush: {', '.join(parts)} in {report.elapsed_s:.1f} s; the outbox holds "
                f"{pending} pending, {dead_total} dead",
                style="green" if report.exit_code == ExitCode.OK else None,
            )
    for shown, delivery in enumerate(report.dead_letters):
        if shown == MAX_ERROR_LINES:
            ui.error(f"... and {report.dead - MAX_ERROR_LINES} more rejected")
            break
        assert delivery.outcome is not None
        ui.error(f"{describe_failure(delivery.outcome)} [outbox id {delivery.row.id}]")
    if report.dead:
        ui.error(
            f"{plural(report.dead, 'event')} rejected by Intercom, kept as dead letters",
            "see them with: ievents outbox list --dead; fix the data and send again, or "
            "try again as they are: ievents outbox retry ID",
        )
    failure = report.last_failure
    if report.auth_failed and failure is not None:
        ui.error(
            f"{_stop_reason(failure)}; flush stopped and every event stays pending ({pending} now)",
            failure_hint(failure, settings),
        )
    if report.deferred and failure is not None:
        last = status_text(failure.status) if failure.status is not None else None
        detail = ": ".join(p for p in (last, failure.error_message) if p)
        next_try = (
            f" from {when(report.next_attempt_at)}" if report.next_attempt_at is not None else ""
        )
        ui.error(
            f"{plural(report.deferred, 'event')} not delivered ({detail}); they stay in the outbox",
            f"Intercom or the network is unavailable; the next flush retries them{next_try} "
            "(ievents flush --now: at once)",
        )
    for destination, count in report.waiting_elsewhere:
        ui.info(
            f"{plural(count, 'event')} wait for another workspace ({destination.describe()} "
            "at capture): run flush with that configuration"
        )
    for message in report.internal_errors[:MAX_ERROR_LINES]:
        ui.error(f"internal error: {message}", "this is a bug in ievents; the event stays pending")
    if report.stopped == STOP_INTERRUPTED:
        ui.error(f"interrupted; every event not delivered stays pending ({pending} now)")
    elif report.stopped == STOP_MAX_TIME:
        ui.info(
            f"stopped after --max-time {max_time:g} s: {plural(pending, 'event')} left "
            "pending for the next flush"
        )


@app.command()
def flush(
    concurrency: Annotated[
        int,
        typer.Option(
            "--concurrency",
            "-c",
            metavar="N",
            min=1,
            max=256,
            help="Events sent at once.",
            rich_help_panel=DELIVERY,
        ),
    ] = 16,
    max_time: Annotated[
        float | None,
        typer.Option(
            "--max-time",
            metavar="SECONDS",
            min=0.0,
            callback=finite,
            help="Start no new delivery after this long (requests on the wire get up to "
            "--timeout to finish); what is left waits for the next flush.",
            rich_help_panel=DELIVERY,
            show_default=False,
        ),
    ] = None,
    now: Annotated[
        bool,
        typer.Option(
            "--now",
            help="Also send events whose next attempt is not due yet (after an outage).",
            rich_help_panel=DELIVERY,
        ),
    ] = False,
    watch: Annotated[
        bool,
        typer.Option(
            "--watch",
            help="Keep running: deliver new events as they arrive (a relay), until "
            "SIGTERM or Ctrl-C (exit 0).",
            rich_help_panel=DELIVERY,
        ),
    ] = False,
    metrics_port: Annotated[
        str | None,
        typer.Option(
            "--metrics-port",
            metavar="[HOST:]PORT",
            help="With --watch: serve Prometheus metrics on this port (127.0.0.1 unless "
            "HOST is given).",
            rich_help_panel=DELIVERY,
            show_default=False,
        ),
    ] = None,
    outbox: OutboxOpt = None,
    token_file: TokenFileOpt = None,
    env_file: EnvFileOpt = None,
    profile: ProfileOpt = None,
    region: RegionOpt = None,
    base_url: BaseUrlOpt = None,
    api_version: ApiVersionOpt = None,
    timeout: TimeoutOpt = 10.0,
    retries: RetriesOpt = 4,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    verbose: VerboseOpt = False,
    no_color: NoColorOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Deliver the events waiting in the outbox, oldest first, several at once.

    Example (crontab, every minute; the absolute path of ievents, explicit configuration,
    a log): * * * * * /opt/ievents/.venv/bin/ievents flush -q --max-time 50 --env-file
    /etc/ievents/app.env >> /var/log/ievents/cron.log 2>&1

    Example (a relay, as a service): ievents flush --watch --metrics-port 9464

    202: delivered, kept in the ledger.
    400, 404, 422: dead letter, with the API error (ievents outbox list --dead).
    401, 403: stop at once; every event stays pending.
    Network, timeout, 408, 429, 5xx after the retries: another round in this run while
    Intercom answers other requests; else pending, tried again later (30 s, doubling up
    to 1 h; --now: at once).
    Only events captured for this configuration's workspace (and unbound ones) are sent;
    others are reported. After a temporary failure, the next flush first sends one probe:
    if Intercom answers, every deferred event is sent at once; if not, it stops (75).
    Ctrl-C or SIGTERM: what is not answered yet goes back to pending (exit 130).
    Two flushes at once never send the same event twice.
    --watch: keep running and deliver new events within a second of capture
    (woken by PostgreSQL NOTIFY, or by the SQLite file changing); outages and
    database restarts are waited out; SIGTERM or Ctrl-C stops it (exit 0, a
    second Ctrl-C: 130).
    Summary on stdout (none with -q), errors on stderr; --json: one object.

    Exit codes: 0 all delivered (or nothing to do), 65 some rejected as invalid,
    67 some contacts not found, 75 some failed temporarily, 77 token rejected,
    78 configuration or unusable outbox, 130 interrupted; several: most severe.
    """
    ui = Output(json_mode=json_output, quiet=quiet, verbose=verbose or debug, no_color=no_color)
    with reporting(ui, debug, on_error=_json_error(ui)):
        env = load_environment(env_file, profile=profile)
        settings = Settings.load(
            env=env,
            token_file=token_file,
            region=region,
            base_url=base_url,
            api_version=api_version,
            timeout=timeout,
            retries=retries,
        )
        path = outbox_path(outbox, env)
        if watch or metrics_port is not None:
            if not watch or max_time is not None or json_output:
                raise UsageError(
                    "--metrics-port needs --watch"
                    if not watch
                    else "--watch runs until stopped: it takes neither --max-time nor --json"
                )
            from .watch import run_watch

            code = run_watch(
                ui, path, env, settings, concurrency=concurrency, metrics_port=metrics_port
            )
            raise typer.Exit(code)
        if not path.exists():
            # Nothing was ever queued here: do not create a file just to find it empty.
            from ..delivery import FlushReport

            if json_output:
                ui.json(flush_json(FlushReport(), path, None))
            else:
                ui.result(f"nothing to flush: no outbox at {path} yet")
            return
        with open_outbox(path, env) as store:
            report = run_flush(ui, store, settings, concurrency, max_time, now)
            remaining = store.summary()
            due = store.count_due(store.bind(settings))
        if json_output:
            ui.json(flush_json(report, path, remaining, due))
        report_flush(ui, report, settings, remaining, max_time)
        if report.exit_code != ExitCode.OK:
            raise typer.Exit(int(report.exit_code))


def run_flush(
    ui: Output,
    store: OutboxStore,
    settings: Settings,
    concurrency: int,
    max_time: float | None,
    ignore_schedule: bool,
) -> FlushReport:
    """Run the engine with Ctrl-C handling and ``-v`` lines."""
    from ..delivery import Deliverer
    from ..outbox import State

    log_lock = threading.Lock()

    def log_result(delivery: Delivery) -> None:
        outcome = delivery.outcome
        if outcome is None:
            line = f"{_event_line(delivery)}: not sent, pending again"
        elif delivery.state is State.DELIVERED:
            line = f"{_event_line(delivery)}: delivered ({status_text(outcome.status)})"
        elif delivery.state is State.DEAD:
            line = f"{_event_line(delivery)}: dead letter ({status_text(outcome.status)})"
        else:
            line = f"{_event_line(delivery)}: pending again ({status_text(outcome.status)})"
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
    )
    with stop_on_signals(stop):
        return deliverer.run()


# -- outbox status / list / export / retry / purge -------------------------------------------


@outbox_app.command()
def status(
    outbox: OutboxOpt = None,
    env_file: EnvFileOpt = None,
    profile: ProfileOpt = None,
    json_output: JsonOpt = False,
    output_format: Annotated[
        str,
        typer.Option(
            "--format",
            metavar="text|json|prometheus",
            help="text, json (as --json) or prometheus (the text exposition format).",
        ),
    ] = "text",
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print nothing; exit 0 when the outbox can be read, else 78.",
            rich_help_panel="Output",
        ),
    ] = False,
    no_color: NoColorOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Where the outbox is, what it holds, and when a flush last ran and succeeded.

    Example (monitoring): ievents outbox status --json | jq .oldest_pending_age_s

    --json fields: path, exists, schema_version, pending, in_flight, dead, delivered,
    oldest_pending_at, oldest_pending_age_s, next_attempt_at,
    last_flush_at, last_flush_age_s, last_flush_exit_code,
    last_success_at, last_success_age_s, pending_by_destination (a list of
    {destination: {base_url, api_version, token_hint} or null if unbound, events}).
    Times are UTC (ISO-8601), ages in seconds; null when unknown.
    Exits 0 unless the outbox cannot be read (78; 75 for a database that is down).

    --format prometheus (for node_exporter's textfile collector):
    ievents_outbox_events{state=...}, ievents_outbox_oldest_pending_age_seconds,
    ievents_outbox_last_success_timestamp_seconds (0: never),
    ievents_outbox_last_flush_timestamp_seconds, ievents_outbox_last_flush_exit_code.
    Example (cron): ievents outbox status --format prometheus > /var/lib/node_exporter/ievents.prom
    """
    fmt = output_format.strip().lower()
    ui = Output(json_mode=json_output or fmt == "json", quiet=quiet, no_color=no_color)
    with reporting(ui, debug, on_error=_json_error(ui)):
        if fmt not in ("text", "json", "prometheus"):
            raise UsageError(f"--format {output_format!r}: choose text, json or prometheus")
        env = load_environment(env_file, profile=profile)
        path = outbox_path(outbox, env)
        summary = None
        if path.exists():
            with open_outbox(path, env) as store:
                summary = store.summary()
        if quiet:
            return
        if fmt == "prometheus":
            from ..metrics import status_text

            ui.raw(status_text(summary))
            return
        print_status(ui, path, summary)


def status_json(path: OutboxLocation, summary: OutboxSummary | None) -> dict[str, Any]:
    """The ``outbox status --json`` object."""
    from ..outbox import State

    now = current().clock()

    def age(moment: float | None) -> float | None:
        return None if moment is None else round(max(0.0, now - moment), 1)

    counts = summary.counts if summary is not None else {}
    oldest = summary.oldest_pending_created if summary else None
    last_flush = summary.last_flush_at if summary else None
    last_success = summary.last_success_at if summary else None
    return {
        "path": str(path),
        "exists": summary is not None,
        "schema_version": summary.schema_version if summary else None,
        "pending": counts.get(State.PENDING, 0),
        "in_flight": counts.get(State.IN_FLIGHT, 0),
        "dead": counts.get(State.DEAD, 0),
        "delivered": counts.get(State.DELIVERED, 0),
        "oldest_pending_at": when(oldest),
        "oldest_pending_age_s": age(oldest),
        "next_attempt_at": when(summary.next_attempt_at if summary else None),
        "last_flush_at": when(last_flush),
        "last_flush_age_s": age(last_flush),
        "last_flush_exit_code": summary.last_flush_exit_code if summary else None,
        "last_success_at": when(last_success),
        "last_success_age_s": age(last_success),
        # Pending and in-flight events per destination; unbound (an older outbox): null.
        "pending_by_destination": [
            {"destination": destination_json(destination), "events": count}
            for destination, count in (summary.pending_by_destination if summary else ())
        ],
    }


def destination_json(destination: Destination | None) -> dict[str, str] | None:
    """A destination without any secret: base URL, API version, the token's last 4."""
    if destination is None:
        return None
    return {
        "base_url": destination.base_url,
        "api_version": destination.api_version,
        "token_hint": destination.token_hint,
    }


def destination_text(destination: Destination | None) -> str:
    """``https://api.intercom.io (2.14, token ending …f3a2)``; ``unbound`` for None."""
    if destination is None:
        return "unbound (any configuration that flushes)"
    version, hint = destination.api_version, destination.token_hint
    return f"{destination.base_url} ({version}, token ending …{hint})"


def short_destination(row: OutboxRow, destinations: Mapping[int, Destination]) -> str:
    """``api.eu.intercom.io …f3a2``: host and token ending, for a narrow table cell."""
    destination = destinations.get(row.destination_id) if row.destination_id else None
    if destination is None:
        return "unbound"
    host = destination.base_url.split("://", 1)[-1]
    return f"{host} …{destination.token_hint}"


def print_status(ui: Output, path: OutboxLocation, summary: OutboxSummary | None) -> None:
    """``outbox status`` for humans (or ``--json``)."""
    data = status_json(path, summary)
    if ui.json_mode:
        ui.json(data)
        return
    if summary is None:
        ui.result(f"outbox        {path} (not created yet: nothing was ever queued)")
        return

    def moment(key: str) -> str:
        value = data[key]
        if value is None:
            return "never"
        stamp = getattr(summary, key, None)
        return f"{value} ({relative(stamp)})" if isinstance(stamp, float) else str(value)

    pending_line = str(data["pending"])
    if summary.oldest_pending_created is not None:
        pending_line += (
            f" (oldest captured {data['oldest_pending_at']}, "
            f"{relative(summary.oldest_pending_created)}"
        )
        if summary.next_attempt_at is not None and summary.next_attempt_at > current().clock():
            pending_line += f"; next attempt {relative(summary.next_attempt_at)}"
        else:
            pending_line += "; due now"
        pending_line += ")"
    flush_line = moment("last_flush_at")
    if summary.last_flush_exit_code is not None:
        flush_line += f", exit {summary.last_flush_exit_code}"
    lines = [
        f"outbox        {path} (schema {summary.schema_version})",
        f"pending       {pending_line}",
        f"in flight     {data['in_flight']}",
        f"dead          {data['dead']}",
        f"delivered     {data['delivered']}",
        f"last flush    {flush_line}",
        f"last success  {moment('last_success_at')}",
    ]
    for destination, count in summary.pending_by_destination:
        lines.append(f"  {count} not delivered for {destination_text(destination)}")
    for line in lines:
        ui.result(line)


PendingOpt = Annotated[
    bool, typer.Option("--pending", help="Only events waiting to be delivered (or in flight).")
]
DeadOpt = Annotated[bool, typer.Option("--dead", help="Only dead letters (rejected by Intercom).")]


@outbox_app.command("list")
def list_rows(
    pending: PendingOpt = False,
    dead: DeadOpt = False,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="Only delivered events (the ledger).")
    ] = False,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", metavar="N", min=0, max=SQLITE_MAX_INT, help="At most this many (0: all)."
        ),
    ] = 50,
    outbox: OutboxOpt = None,
    env_file: EnvFileOpt = None,
    profile: ProfileOpt = None,
    json_output: Annotated[
        bool, typer.Option("--json", help="One JSON object per line (NDJSON).")
    ] = False,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Print nothing; exit 0 when the outbox can be read, else 78.",
            rich_help_panel="Output",
        ),
    ] = False,
    no_color: NoColorOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List the events in the outbox with their state and last error, oldest first.

    Example: ievents outbox list --dead

    Without --pending, --dead or --delivered: everything not delivered.
    On a terminal: a table. Otherwise one tab-separated line per event:
    id, state, event, contact, captured, attempts, last error, destination
    (base URL, API version, last 4 characters of the token; "unbound" for rows of an
    older outbox, which the first configuration that flushes them delivers).
    --json: one object per line, the event (API field names), its last error and its
    destination.
    """
    from ..outbox import State

    ui = Output(json_mode=json_output, quiet=quiet, no_color=no_color)
    with reporting(ui, debug):
        states = chosen_states(
            pending=pending,
            dead=dead,
            delivered=delivered,
            default=[State.PENDING, State.IN_FLIGHT, State.DEAD],
        )
        env = load_environment(env_file, profile=profile)
        path = outbox_path(outbox, env)
        rows: list[OutboxRow] = []
        destinations: dict[int, Destination] = {}
        if path.exists():
            with open_outbox(path, env) as store:
                rows = store.rows(states, limit=limit or None)
                destinations = store.destinations()
        if quiet:
            return
        if json_output:
            for row in rows:
                ui.json(row_json(row, destinations))
        elif ui.stdout_isatty:
            print_table(ui, rows, path, destinations)
        else:
            for row in rows:
                ui.result("\t".join(row_cells(row, destinations)))


def row_cells(row: OutboxRow, destinations: Mapping[int, Destination] | None = None) -> list[str]:
    """id, state, event, contact, captured, attempts, last result (empty once delivered),
    destination."""
    from ..outbox import State

    error = ""
    if row.state is not State.DELIVERED and (
        row.last_status is not None or row.last_error_code is not None
    ):
        parts = [status_text(row.last_status) if row.last_status is not None else None]
        parts += [row.last_error_code, row.last_error_message]
        error = ": ".join(p for p in parts if p)
    return [
        str(row.id),
        row.state.value,
        row.event_name,
        _contact(row),
        when(row.created) or "",
        str(row.attempts),
        " ".join(error.split()),
        destination_text((destinations or {}).get(row.destination_id))
        if row.destination_id
        else "unbound",
    ]


def _contact(row: OutboxRow) -> str:
    try:
        return row.event().contact
    except (KeyError, TypeError, ValueError):
        # A row enqueued from SQL that failed validation: shown as stored, never parsed.
        return "?"


def print_table(
    ui: Output,
    rows: list[OutboxRow],
    path: OutboxLocation,
    destinations: Mapping[int, Destination],
) -> None:
    """A rich table of outbox rows (terminals only)."""
    from rich.table import Table

    console = ui.rich_console()
    if not rows:
        console.print(f"no such events in {path}")
        return
    from rich import box

    # Fits 80 columns: no vertical rules, the contact under the event name, minutes in the
    # table (the seconds are in --json and the tab-separated output); times and addresses
    # are never broken mid-token (a value too long for its column ends in an ellipsis),
    # only the last result wraps.
    table = Table(
        box=box.SIMPLE_HEAD,
        show_edge=False,
        pad_edge=False,
        padding=(0, 1, 0, 0),
        header_style="bold",
    )
    table.add_column("id", justify="right", no_wrap=True)
    table.add_column("state", no_wrap=True)
    table.add_column("event / contact", no_wrap=True, overflow="ellipsis", max_width=28)
    table.add_column("captured (UTC)", no_wrap=True, min_width=16)
    table.add_column("tries", justify="right", no_wrap=True)
    table.add_column("last result", overflow="fold", min_width=11)
    styles = {"dead": "red", "delivered": "green", "in_flight": "cyan"}
    for row in rows:
        ident, state, event, contact, captured, tries, result, _ = row_cells(row, destinations)
        table.add_row(
            ident,
            state,
            # An address needs no label; the destination in short (in full: --json).
            f"{event}\n{contact.removeprefix('email ')}\n{short_destination(row, destinations)}",
            captured.replace("T", " ")[:16],  # 2026-11-30 19:40
            tries,
            result,
            style=styles.get(row.state.value),
        )
    console.print(table)


@outbox_app.command()
def export(
    pending: PendingOpt = False,
    dead: DeadOpt = False,
    outbox: OutboxOpt = None,
    env_file: EnvFileOpt = None,
    profile: ProfileOpt = None,
    quiet: Annotated[
        bool,
        typer.Option(
            "--quiet",
            "-q",
            help="Accepted as everywhere; export writes only the events, errors on stderr.",
            rich_help_panel="Output",
        ),
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Print the events as NDJSON: one payload per line, API field names, replayable.

    Example: ievents outbox export --dead > rejected.ndjson

    Without --pending or --dead: every event not delivered.
    Each line is the exact body posted, created_at included,
    so Intercom de-duplicates a replay of an event it already has.
    """
    from ..outbox import State

    ui = Output(quiet=quiet)
    with reporting(ui, debug):
        states = chosen_states(
            pending=pending, dead=dead, default=[State.PENDING, State.IN_FLIGHT, State.DEAD]
        )
        env = load_environment(env_file, profile=profile)
        path = outbox_path(outbox, env)
        if not path.exists():
            return
        with open_outbox(path, env) as store:
            for row in store.iter_rows(states):
                ui.raw(row.payload_text + "\n", flush=False)
                if ui.reader_gone:
                    return
        ui.flush()


@outbox_app.command()
def retry(
    ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="ID...",
            max=SQLITE_MAX_INT,
            help="Outbox ids of dead letters (default: all).",
            show_default=False,
        ),
    ] = None,
    outbox: OutboxOpt = None,
    env_file: EnvFileOpt = None,
    profile: ProfileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Move dead letters back to pending, so that the next flush tries them again.

    Example: ievents outbox retry 12 15 && ievents flush

    Without ids: every dead letter.
    An id that is not a dead letter is an error (exit 2); the others still move.
    """
    ui = Output(json_mode=json_output, quiet=quiet)
    with reporting(ui, debug, on_error=_json_error(ui)):
        env = load_environment(env_file, profile=profile)
        path = outbox_path(outbox, env)
        moved: list[int] = []
        missing: list[int] = list(ids or [])
        if path.exists():
            with open_outbox(path, env) as store:
                moved, missing = store.retry_dead(ids or None)
        if json_output:
            ui.json({"ok": not missing, "retried": moved, "not_dead": missing})
        elif moved:
            ui.result(
                f"{plural(len(moved), 'dead letter')} back to pending; ievents flush sends them"
            )
        elif not missing:
            ui.result("no dead letters to retry")
        if missing:
            shown = ", ".join(str(i) for i in missing)
            ui.error(
                f"no dead letter with id {shown} in {path}",
                "see the dead letters with: ievents outbox list --dead",
            )
            raise typer.Exit(int(ExitCode.USAGE))


@outbox_app.command()
def purge(
    pending: Annotated[
        bool,
        typer.Option("--pending", help="Delete events never delivered (they are lost)."),
    ] = False,
    dead: Annotated[bool, typer.Option("--dead", help="Delete dead letters.")] = False,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="Trim the ledger of delivered events.")
    ] = False,
    older_than: Annotated[
        str | None,
        typer.Option(
            "--older-than",
            metavar="DURATION",
            help="Only those last changed longer ago than this: 30d, 12h, 90m, 2w.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask (required without a terminal).")
    ] = False,
    outbox: OutboxOpt = None,
    env_file: EnvFileOpt = None,
    profile: ProfileOpt = None,
    json_output: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Delete events from the outbox: one of --pending, --dead or --delivered.

    Example (cron, daily at 03:00): 0 3 * * *
    /opt/ievents/.venv/bin/ievents outbox purge --delivered --older-than 30d --yes -q --env-file
    /etc/ievents/app.env >> /var/log/ievents/cron.log 2>&1

    Asks for confirmation on a terminal; without one, needs --yes (else exit 2).
    "n": not purged, exit 0. Ctrl-C or end of input at the question: not purged, 130.
    Events in flight are never deleted.
    A delivered event purged from the ledger is no longer recognised when the
    same event is captured again.
    """
    ui = Output(json_mode=json_output, quiet=quiet)
    with reporting(ui, debug, on_error=_json_error(ui)):
        from ..outbox import State

        if sum((pending, dead, delivered)) != 1:
            raise UsageError("choose what to purge: one of --pending, --dead or --delivered")
        state = State.PENDING if pending else State.DEAD if dead else State.DELIVERED
        age_s = parse_duration(older_than) if older_than is not None else None
        env = load_environment(env_file, profile=profile)
        path = outbox_path(outbox, env)
        if not path.exists():
            finish_purge(ui, 0, state)
            return
        with open_outbox(path, env) as store:
            count, max_id, cutoff = store.purge_plan(state, older_than_s=age_s)
            if count and not yes:
                confirm_purge(count, state, path, older_than)
            deleted = store.purge(state, max_id=max_id, cutoff=cutoff) if count else 0
        finish_purge(ui, deleted, state)


def confirm_purge(count: int, state: State, path: OutboxLocation, older_than: str | None) -> None:
    """Ask on the terminal; refuse without one (the caller passes --yes in scripts)."""
    from ..outbox import State

    if not current().stdin_isatty:
        raise UsageError(
            f"purge would delete {plural(count, state.value + ' event')} from {path}; "
            "there is no terminal to confirm on",
            "add --yes to purge without asking",
        )
    age = f" last changed more than {older_than} ago" if older_than else ""
    warning = " They were never delivered and will be lost." if state is State.PENDING else ""
    question = f"Delete {plural(count, state.value + ' event')}{age} from {path}?{warning}"
    try:
        confirmed = typer.confirm(question, default=False, err=True)
    except typer.Abort:
        # Ctrl-C or end of input at the prompt: an answer was not given, nothing purged.
        raise Interrupted("not purged: no answer (Ctrl-C or end of input)") from None
    if not confirmed:
        current().stderr.write("not purged\n")
        raise typer.Exit(int(ExitCode.OK))


def finish_purge(ui: Output, deleted: int, state: State) -> None:
    """The purge result line (or ``--json``)."""
    if ui.json_mode:
        ui.json({"ok": True, "purged": deleted, "state": state.value})
    else:
        ui.result(f"purged {plural(deleted, state.value + ' event')}")
