"""``ievents outbox status``, ``outbox list`` and ``outbox export``: look into the outbox.

Nothing here changes the outbox; ``retry`` and ``purge`` are in :mod:`.outbox_admin`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from ..outcome import api_error_text, status_text
from .common import (
    DebugOpt,
    EnvFileOpt,
    JsonOpt,
    NoColorOpt,
    OutboxOpt,
    ProfileOpt,
    json_error,
    load_environment,
    open_outbox,
    outbox_path,
    reporting,
)
from .environment import current
from .outbox import SQLITE_MAX_INT, outbox_app
from .output import Output
from .render import destination_text, relative, row_json, status_json, when

if TYPE_CHECKING:
    from ..destination import Destination
    from ..outbox import OutboxRow, OutboxSummary, State
    from ..outbox.store import OutboxLocation


PendingOpt = Annotated[
    bool, typer.Option("--pending", help="Only events waiting to be delivered (or in flight).")
]
DeadOpt = Annotated[bool, typer.Option("--dead", help="Only dead letters (rejected by Intercom).")]
ReadQuietOpt = Annotated[
    bool,
    typer.Option(
        "--quiet",
        "-q",
        help="Print nothing; exit 0 when the outbox can be read, else 78.",
        rich_help_panel="Output",
    ),
]


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
    quiet: ReadQuietOpt = False,
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
    with reporting(ui, debug, on_error=json_error(ui)):
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
    if summary.relay_heartbeat_at is not None:
        lines.append(f"relay alive   {moment('relay_heartbeat_at')}")
    for destination, count in summary.pending_by_destination:
        lines.append(f"  {count} not delivered for {destination_text(destination)}")
    for line in lines:
        ui.result(line)


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
    quiet: ReadQuietOpt = False,
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
        status = status_text(row.last_status) if row.last_status is not None else None
        error = api_error_text(status, api_error_text(row.last_error_code, row.last_error_message))
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

    from ..outbox import State

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
    styles = {State.DEAD: "red", State.DELIVERED: "green", State.IN_FLIGHT: "cyan"}
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
            style=styles.get(row.state),
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
