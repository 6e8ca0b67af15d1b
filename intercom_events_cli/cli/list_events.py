"""``ievents list``: did my events arrive? A contact's events, or their summaries."""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ..config.redaction import redact
from ..errors import ApiError, UsageError
from ..event import format_utc
from .common import open_client, reporting
from .options import OUTPUT, OUTPUTS, SETTINGS, Identity, Options, identity_options, shared
from .output import Output
from .render import lookup_hint

if TYPE_CHECKING:
    from ..http.client import EventsClient
    from ..http.lookup import Contact

CONTACT = "Contact"
LISTING = "Listing"
# The --limit default: a screenful; 0 lists everything.
DEFAULT_LIMIT = 50


def pick_contact(identity: Identity) -> Contact:
    """Exactly one of the three identifiers, as a :class:`Contact`."""
    from ..http.lookup import Contact

    given = [
        (key, value)
        for key, value in (
            ("user_id", identity.user_id),
            ("email", identity.email),
            ("intercom_user_id", identity.contact_id),
        )
        if value is not None
    ]
    if len(given) != 1:
        raise UsageError(
            "give exactly one of --user-id, --email or --id"
            + (f" (got {len(given)})" if given else ""),
            hint="e.g. ievents list --user-id 314159; see 'ievents list --help'",
        )
    key, value = given[0]
    flag = "--id" if key == "intercom_user_id" else f"--{key.replace('_', '-')}"
    if not value.strip():
        raise UsageError(f"{flag} is empty")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:  # bytes that are not UTF-8 in argv: they cannot go in a URL
        raise UsageError(
            f"{flag} is not valid UTF-8 text; check the encoding of the input"
        ) from None
    return Contact(key, value)


def _plain(value: object) -> str:
    """One table or TSV cell: text as is, anything else as compact JSON, no tabs/newlines."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return redact(" ".join(text.replace("\t", " ").splitlines()))


def _when(value: object) -> str:
    """created_at (Unix seconds) in UTC; anything else as Intercom sent it."""
    if isinstance(value, int) and not isinstance(value, bool):
        try:
            return format_utc(value)
        except (OverflowError, OSError, ValueError):
            pass
    return _plain(value)


def _metadata_cells(metadata: object, *, compact: bool) -> str:
    if not isinstance(metadata, dict) or not metadata:
        return ""
    if compact:
        return _plain(json.dumps(metadata, ensure_ascii=False, separators=(",", ":")))
    return "\n".join(f"{_plain(key)}={_plain(value)}" for key, value in metadata.items())


def event_row(event: dict[str, Any], *, compact: bool) -> list[str]:
    """(event name, created_at in UTC, metadata) of one listed event."""
    return [
        _plain(event.get("event_name")),
        _when(event.get("created_at")),
        _metadata_cells(event.get("metadata"), compact=compact),
    ]


def summary_row(summary: dict[str, Any]) -> list[str]:
    """(name, count, first, last) of one event summary."""
    return [_plain(summary.get(key)) for key in ("name", "count", "first", "last")]


def print_table(ui: Output, title: str, headers: list[str], rows: Iterable[list[str]]) -> None:
    """A rich table on a terminal (rich imported only here)."""
    from rich.table import Table
    from rich.text import Text

    from ..textsafe import sanitize

    table = Table(title=title, title_justify="left", show_lines=False)
    for header in headers:
        table.add_column(header, overflow="fold")
    for row in rows:
        # Text(): event names and metadata are data, never rich markup.
        # sanitize(): server text with control characters would drive the terminal.
        table.add_row(*(Text(sanitize(cell)) for cell in row))
    ui.rich_console().print(table)


@shared(
    *SETTINGS,
    *OUTPUTS,
    json_output=typer.Option(
        "--json", help="One JSON object per event (NDJSON).", rich_help_panel=OUTPUT
    ),
    quiet=typer.Option(
        "--quiet",
        "-q",
        help="Print nothing; the exit code says if it worked.",
        rich_help_panel=OUTPUT,
    ),
)
@identity_options(panel=CONTACT, id_help="Intercom's contact id (for a lead).")
def list_command(
    summary: Annotated[
        bool,
        typer.Option(
            "--summary",
            help="Per event name: count, first and last time.",
            rich_help_panel=LISTING,
        ),
    ] = False,
    per_page: Annotated[
        int | None,
        typer.Option(
            "--per-page",
            min=1,
            metavar="N",
            help="Events per page asked of Intercom.",
            rich_help_panel=LISTING,
            show_default=False,
        ),
    ] = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit",
            min=0,
            metavar="N",
            help="At most N events (or summaries); 0: all.",
            rich_help_panel=LISTING,
        ),
    ] = DEFAULT_LIMIT,
    *,
    identity: Identity,
    opts: Options,
) -> None:
    """List a contact's events (Intercom keeps the last 90 days), newest first.

    Example:
      ievents list --user-id 314159 --limit 20
    """
    ui = opts.output()
    wanted = limit or None  # 0 means all, as in outbox list
    with reporting(ui, opts.debug):
        contact = pick_contact(identity)
        settings = opts.settings()
        try:
            with open_client(ui, settings) as client:
                if opts.quiet:
                    from ..http.lookup import list_events

                    next(iter(list_events(client, contact, per_page=per_page, limit=1)), None)
                elif summary:
                    show_summaries(ui, client, contact, wanted)
                else:
                    show_events(ui, client, contact, per_page=per_page, limit=wanted)
        except ApiError as exc:
            exc.hint = exc.hint or lookup_hint(exc, settings, contact)
            raise


def show_summaries(ui: Output, client: EventsClient, contact: Contact, limit: int | None) -> None:
    """``list --summary``: one line (or row, or JSON object) per event name."""
    from ..http.lookup import get_summaries

    summaries = get_summaries(client, contact, limit=limit)
    if ui.json_mode:
        for item in summaries:
            ui.json(item)
        return
    if not summaries:
        ui.info(f"no events for {contact}")
        return
    rows = [summary_row(item) for item in summaries]
    if _is_terminal(ui):
        print_table(ui, f"Event summaries for {contact}", ["event", "count", "first", "last"], rows)
    else:
        for row in rows:
            ui.result("\t".join(row))


def show_events(
    ui: Output,
    client: EventsClient,
    contact: Contact,
    *,
    per_page: int | None,
    limit: int | None,
) -> None:
    """``list``: the events, streamed as NDJSON or lines, or collected into a table."""
    from ..http.lookup import list_events

    listing = list_events(client, contact, per_page=per_page, limit=limit)
    count = 0
    table_rows: list[list[str]] = []
    terminal = not ui.json_mode and _is_terminal(ui)
    for event in listing:
        count += 1
        if ui.json_mode:
            ui.json(event)
        elif terminal:
            table_rows.append(event_row(event, compact=False))
        else:
            ui.result("\t".join(event_row(event, compact=True)))
        if ui.reader_gone:
            return  # the reader (| head) has what it wants: fetch no more pages
    if terminal and table_rows:
        title = f"{count} event{'s' if count != 1 else ''} for {contact}, newest first"
        print_table(ui, title, ["event", "created_at (UTC)", "metadata"], table_rows)
    if listing.foreign_next is not None:
        ui.warn(
            f"stopped after {listing.pages} page{'s' if listing.pages != 1 else ''} "
            f"({count} event{'s' if count != 1 else ''}): the next page is on "
            f"{listing.foreign_next}, not on {client.settings.base_url}, and ievents never "
            "sends the token to another host; events may be missing"
        )
    if listing.repeated_next:
        ui.warn(
            f"stopped after {listing.pages} pages: Intercom's next-page link points back at a "
            "page already read"
        )
    if count == 0 and listing.foreign_next is None:
        ui.info(f"no events for {contact} in the last 90 days")
    elif listing.more_available:
        ui.info(f"showing the first {count} events; there are more (--limit 0 lists all)")


def _is_terminal(ui: Output) -> bool:
    return ui.stdout_isatty
