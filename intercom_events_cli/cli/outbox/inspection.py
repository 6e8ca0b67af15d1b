"""``ievents outbox status``, ``outbox list`` and ``outbox export``: look into the outbox.

Nothing here changes the outbox; ``retry`` and ``purge`` are in :mod:`.admin`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum
from itertools import islice
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ...config.outbox_path import outbox_source
from ...errors import UsageError
from ...outcome import api_error_text, status_text
from ..common import json_error, open_existing, reporting
from ..environment import current
from ..options import OUTBOX_ONLY, OUTPUT, Options, shared
from ..output import Output
from ..render import (
    RELAY_SILENT_S,
    destination_text,
    no_outbox_text,
    relative,
    relay_silent_text,
    row_json,
    waiting_for_workspace_json,
    waiting_for_workspace_text,
    when,
)
from ..render_json import schema_text, status_json
from . import MAX_ID

if TYPE_CHECKING:
    from ...delivery.destination import Destination
    from ...outbox import OutboxRow, OutboxSummary, State
    from ...outbox.store import OutboxLocation


# Rows read (and held) at a time by list and export.
PAGE = 500

PendingOpt = Annotated[
    bool, typer.Option("--pending", help="Only events waiting to be delivered (or in flight).")
]
DeadOpt = Annotated[bool, typer.Option("--dead", help="Only dead letters (rejected by Intercom).")]
READ_QUIET = typer.Option(
    "--quiet", "-q", help="Print nothing; exit 0 if the outbox can be read.", rich_help_panel=OUTPUT
)


def chosen_states(
    *, pending: bool, dead: bool, delivered: bool = False, default: list[State]
) -> list[State]:
    """The states picked by ``--pending`` / ``--dead`` / ``--delivered`` (at most one)."""
    from ...outbox import State

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


class StatusFormat(str, Enum):
    """What ``outbox status --format`` prints."""

    text = "text"
    json = "json"
    prometheus = "prometheus"


@shared(
    *OUTBOX_ONLY, "json_output", "output_format", "quiet", "no_color", "debug", quiet=READ_QUIET
)
def status(
    output_format: Annotated[
        StatusFormat,
        typer.Option(
            "--format",
            case_sensitive=False,
            help="Output format (json: as --json).",
            rich_help_panel=OUTPUT,
        ),
    ] = StatusFormat.text,
    *,
    opts: Options,
) -> None:
    """Where the outbox is and why, what it holds, its last flush.

    Examples:
      ievents outbox status --json | jq .oldest_pending_age_s
      ievents outbox status --format prometheus > ievents.prom
    """
    # A choice, like batch's --format: a wrong value is the parser's usage error (exit 2).
    fmt = output_format.value
    ui = opts.output(json_mode=opts.json_output or fmt == "json")
    with reporting(ui, opts.debug, on_error=json_error(ui)):
        env = opts.environment()
        path = opts.outbox_location()
        source = outbox_source(opts.outbox, env)
        summary = None
        waiting: list[tuple[str | None, int]] = []
        store = open_existing(path, env)  # never creates one: says there is none
        if store is not None:
            with store:
                summary = store.summary()
                waiting = store.waiting_for_workspace()
        if opts.quiet:
            return
        if fmt == "prometheus":
            from ...delivery.metrics import status_text

            ui.raw(status_text(summary))
            return
        print_status(ui, path, summary, source, waiting)


def short_destination(row: OutboxRow, destinations: Mapping[int, Destination]) -> str:
    """``abc123xy (Europe)``: workspace and region, for a narrow table cell."""
    destination = destinations.get(row.destination_id) if row.destination_id else None
    if destination is None:
        return "unbound"
    # A host of one's own (a proxy, a test server) stands without its scheme: the cell is
    # narrow, and the contact above it must stay whole.
    region = destination.region.split("://", 1)[-1]
    return f"{destination.workspace_id or '?'} ({region})"


def print_status(
    ui: Output,
    path: OutboxLocation,
    summary: OutboxSummary | None,
    source: str = "",
    waiting: list[tuple[str | None, int]] | None = None,
) -> None:
    """``outbox status`` for humans (or ``--json``); ``source`` says why this outbox;
    ``waiting``: SQL-enqueued rows no token can take yet, by workspace."""
    data = status_json(path, summary, source)
    if summary is not None:
        data["waiting_for_workspace"] = waiting_for_workspace_json(waiting or [])
    if ui.json_mode:
        ui.json(data)
        return
    if summary is None:
        ui.result(f"outbox        {no_outbox_text(path)}")
        ui.result(f"chosen by     {source}")
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
        f"outbox        {path} ({schema_text(path, summary.schema_version)})",
        f"chosen by     {source}",
        f"pending       {pending_line}",
        f"in flight     {data['in_flight']}",
        f"dead          {data['dead']}",
        f"delivered     {data['delivered']}",
        f"last flush    {flush_line}",
        f"last success  {moment('last_success_at')}",
    ]
    if summary.relay_stopped:
        lines.append(f"relay stopped {moment('relay_stopped_at')}")
    elif summary.relay_heartbeat_at is not None:
        if current().clock() - summary.relay_heartbeat_at > RELAY_SILENT_S:
            lines.append(f"relay silent  {relay_silent_text(moment('relay_heartbeat_at'))}")
        else:
            lines.append(f"relay alive   {moment('relay_heartbeat_at')}")
    for destination, count in summary.pending_by_destination:
        lines.append(f"  {count} not delivered for {destination_text(destination)}")
    for workspace, count in waiting or []:
        lines.append(f"  {waiting_for_workspace_text(workspace, count)}")
    for line in lines:
        ui.result(line)


@shared(
    *OUTBOX_ONLY,
    "json_output",
    "quiet",
    "no_color",
    "debug",
    json_output=typer.Option("--json", help="One JSON object per line (NDJSON)."),
    quiet=READ_QUIET,
)
def list_rows(
    pending: PendingOpt = False,
    dead: DeadOpt = False,
    delivered: Annotated[
        bool, typer.Option("--delivered", help="Only delivered events (the ledger).")
    ] = False,
    limit: Annotated[
        int,
        typer.Option("--limit", metavar="N", min=0, max=MAX_ID, help="At most this many (0: all)."),
    ] = 50,
    *,
    opts: Options,
) -> None:
    """List the outbox's events with their state and last error.

    Example:
      ievents outbox list --dead --limit 20
    """
    from ...outbox import State

    ui = opts.output()
    json_output = opts.json_output
    with reporting(ui, opts.debug):
        states = chosen_states(
            pending=pending,
            dead=dead,
            delivered=delivered,
            default=[State.PENDING, State.IN_FLIGHT, State.DEAD],
        )
        path = opts.outbox_location()
        store = open_existing(path, opts.environment())  # never creates one: says there is none
        if store is None:
            ui.info(no_outbox_text(path))
            return
        with store:
            if opts.quiet:
                return
            destinations = store.destinations()
            # Page by page, as export: --limit 0 on 200,000 rows holds one page at a time.
            rows: Iterable[OutboxRow] = store.iter_rows(states, page=min(limit or PAGE, PAGE))
            if limit:
                rows = islice(rows, limit)
            if ui.stdout_isatty and not json_output:
                print_table(ui, rows, path, destinations)
                return
            for row in rows:
                if json_output:
                    ui.json(row_json(row, destinations))
                else:
                    ui.result("\t".join(row_cells(row, destinations)))
                if ui.reader_gone:
                    return


def row_cells(row: OutboxRow, destinations: Mapping[int, Destination] | None = None) -> list[str]:
    """id, state, event, contact, captured, attempts, last result (empty once delivered),
    destination."""
    from ...outbox import State

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
    rows: Iterable[OutboxRow],
    path: OutboxLocation,
    destinations: Mapping[int, Destination],
) -> None:
    """A rich table of outbox rows (terminals only), a table per page of rows read."""
    console = ui.rich_console()
    pages = iter(rows)
    first = True
    while page := list(islice(pages, PAGE)):
        console.print(_table(page, destinations, header=first))
        first = False
    if first:
        console.print(f"no such events in {path}")


def _table(rows: list[OutboxRow], destinations: Mapping[int, Destination], *, header: bool) -> Any:
    from rich import box
    from rich.table import Table

    from ...outbox import State

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
        show_header=header,
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
    return table


@shared(
    *OUTBOX_ONLY,
    "quiet",
    "debug",
    quiet=typer.Option(
        "--quiet",
        "-q",
        help="Accepted as everywhere; export writes only the events, errors on stderr.",
        rich_help_panel=OUTPUT,
    ),
)
def export(pending: PendingOpt = False, dead: DeadOpt = False, *, opts: Options) -> None:
    """Print the events as NDJSON: replayable API payloads.

    Example:
      ievents outbox export --dead > dead.ndjson
    """
    from ...outbox import State

    ui = opts.output()
    with reporting(ui, opts.debug):
        states = chosen_states(
            pending=pending, dead=dead, default=[State.PENDING, State.IN_FLIGHT, State.DEAD]
        )
        path = opts.outbox_location()
        store = open_existing(path, opts.environment())  # never creates one: says there is none
        if store is None:
            ui.info(no_outbox_text(path))
            return
        with store:
            for row in store.iter_rows(states):
                ui.raw(row.payload_text + "\n", flush=False)
                if ui.reader_gone:
                    return
        ui.flush()
