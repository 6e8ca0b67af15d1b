"""``ievents send``: one event, delivered now (or queued), with a clear outcome."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, NoReturn

import typer

from ..config.settings import Settings
from ..errors import IeventsError, Interrupted, UsageError
from ..event import Event, format_utc, merge_metadata, parse_metadata_json
from ..outcome import Outcome, status_text
from .common import attempt_logger, reporting
from .options import OUTBOX, OUTPUTS, SETTINGS, Identity, Options, identity_options, shared
from .output import Output
from .render import describe_failure, failure_hint, failure_json, outcome_json

EVENT = "Event"
# The largest --metadata-json @FILE read (Intercom takes at most 10 metadata keys).
MAX_METADATA_FILE_BYTES = 64 * 1024


def read_metadata_json(value: str) -> dict[str, Any]:
    """``--metadata-json``: inline JSON, or ``@FILE`` to read it from a file."""
    if value.startswith("@"):
        path = Path(value[1:]).expanduser()
        try:
            with path.open("rb") as handle:
                # Bounded: @/dev/zero or a wrong, huge file must not take all memory.
                data = handle.read(MAX_METADATA_FILE_BYTES + 1)
            if len(data) > MAX_METADATA_FILE_BYTES:
                raise UsageError(
                    f"--metadata-json file {str(path)!r} is larger than "
                    f"{MAX_METADATA_FILE_BYTES // 1024} KiB; event metadata is a few keys: "
                    "check the file name",
                )
            # utf-8-sig: a file saved with a byte-order mark (Notepad) reads as NDJSON does.
            value = data.decode("utf-8-sig")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not UTF-8"
            raise UsageError(f"cannot read --metadata-json file {str(path)!r}: {reason}") from None
    return parse_metadata_json(value)


def build_event(
    event_name: str,
    identity: Identity,
    *,
    created_at: str | None,
    metadata: list[str] | None,
    metadata_json: str | None,
) -> Event:
    """Validate the command line into an Event (created_at fixed here, once)."""
    user_id, email, contact_id = identity.user_id, identity.email, identity.contact_id
    if not (user_id or email or contact_id):
        raise UsageError(
            "no contact: give --user-id, --email or --id (Intercom's contact id, for leads)"
        )
    base = read_metadata_json(metadata_json) if metadata_json is not None else {}
    return Event.create(
        event_name,
        user_id=user_id,
        email=email,
        contact_id=contact_id,
        created_at=created_at,
        metadata=merge_metadata(base, metadata or []),
    )


def print_dry_run(ui: Output, event: Event, settings: Settings) -> None:
    """Show exactly what would be sent, with the token as ``Bearer ***``."""
    from ..http.client import events_url

    url = events_url(settings)
    if ui.json_mode:
        ui.json(
            {"ok": True, "dry_run": True, "method": "POST", "url": url, "event": event.payload()}
        )
        return
    headers = {**settings.headers(redacted=True), "Content-Type": "application/json"}
    lines = [f"POST {url}", *(f"{k}: {v}" for k, v in headers.items()), ""]
    # The body as sent (canonical key order), indented for reading.
    lines.append(json.dumps(event.payload(), indent=2, ensure_ascii=False, sort_keys=True))
    ui.result("\n".join(lines))
    if not settings.has_token:
        ui.info("note: no access token is configured yet; set INTERCOM_ACCESS_TOKEN to send")


@shared("outbox", *SETTINGS, *OUTPUTS)
@identity_options(panel=EVENT, id_help="Intercom's contact id (the way to target a lead).")
def send(
    event_name: Annotated[
        str,
        typer.Argument(
            metavar="EVENT_NAME", help="Event name, e.g. invited-friend.", show_default=False
        ),
    ],
    created_at: Annotated[
        str | None,
        typer.Option(
            "--created-at",
            metavar="WHEN",
            help="Unix time or ISO-8601 (naive = UTC). [default: now]",
            rich_help_panel=EVENT,
            show_default=False,
        ),
    ] = None,
    metadata: Annotated[
        list[str] | None,
        typer.Option(
            "--metadata",
            "-m",
            metavar="KEY=VALUE",
            help="Repeatable; KEY:=JSON for a number or object.",
            rich_help_panel=EVENT,
            show_default=False,
        ),
    ] = None,
    metadata_json: Annotated[
        str | None,
        typer.Option(
            "--metadata-json",
            metavar="JSON",
            help="A metadata object, or @FILE (-m wins on a key).",
            rich_help_panel=EVENT,
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool,
        typer.Option(
            "--dry-run",
            "-n",
            help="Validate and show the request; send nothing.",
            rich_help_panel=EVENT,
        ),
    ] = False,
    queue: Annotated[
        bool,
        typer.Option(
            "--queue",
            help="Store in the outbox only; ievents flush sends it.",
            rich_help_panel=OUTBOX,
        ),
    ] = False,
    queue_on_failure: Annotated[
        bool,
        typer.Option(
            "--queue-on-failure",
            help="Temporary failure: keep it in the outbox (exit 0).",
            rich_help_panel=OUTBOX,
        ),
    ] = False,
    *,
    identity: Identity,
    opts: Options,
) -> None:
    """Send one event to Intercom now.

    Examples:
      ievents send invited-friend --user-id 314159 -m plan=pro -m seats:=3
      ievents send order-placed --email ada@example.com --queue-on-failure
    """
    ui = opts.output()
    built: list[Event] = []  # the event once valid, for the --json object of a failure
    with reporting(ui, opts.debug, on_error=json_failure(ui, built)):
        check_queue_options(dry_run, queue, queue_on_failure, opts.outbox)
        event = build_event(
            event_name,
            identity,
            created_at=created_at,
            metadata=metadata,
            metadata_json=metadata_json,
        )
        built.append(event)
        settings = opts.settings(require_token=not dry_run)
        code = send_or_queue(
            ui,
            event,
            settings,
            opts.environment(),
            dry_run=dry_run,
            queue=queue,
            queue_on_failure=queue_on_failure,
            outbox=opts.outbox,
        )
        if code:
            raise typer.Exit(code)


def json_failure(ui: Output, built: list[Event]) -> Callable[[IeventsError], None]:
    """``send --json`` on an error: the send object, with the event when it was valid."""

    def report(exc: IeventsError) -> None:
        if ui.json_mode:
            kept = exc.outbox_id if isinstance(exc, Interrupted) else None  # then queued
            ui.json(
                failure_json(
                    exc,
                    delivered=False,
                    queued=kept is not None,
                    **({"outbox_id": kept} if kept is not None else {}),
                    status=None,
                    attempts=0,
                    request_id=None,
                    event=built[0].payload() if built else None,
                )
            )

    return report


def send_or_queue(
    ui: Output,
    event: Event,
    settings: Settings,
    env: dict[str, str],
    *,
    dry_run: bool,
    queue: bool,
    queue_on_failure: bool,
    outbox: str | None,
) -> int:
    """Queue, show (--dry-run) or send the event and say what became of it; the exit code."""
    if queue:
        # Capture binds the event to this configuration's workspace: it needs the
        # token (never sent: no network is touched).
        from .capture import queue_event

        return queue_event(ui, event, outbox, env, settings)
    if dry_run:
        print_dry_run(ui, event, settings)
        return 0
    try:
        outcome = deliver_now(ui, event, settings)
    except KeyboardInterrupt:
        if queue_on_failure:
            keep_interrupted(event, outbox, env)
        raise Interrupted(
            f"interrupted before Intercom answered: {event.event_name} for "
            f"{event.contact} may or may not have arrived",
            hint=f"send it again with --created-at {event.created_at}: Intercom "
            "de-duplicates the same event, contact and time",
        ) from None
    if queue_on_failure:
        # Imported only here: a plain send never loads the outbox.
        from ..capture import kept_after_failure

        if kept_after_failure(outcome):
            from .capture import queue_after_failure

            return queue_after_failure(ui, outcome, outbox, env, settings)
    report_outcome(ui, outcome, settings)
    return 0 if outcome.delivered else int(outcome.exit_code)


def keep_interrupted(event: Event, outbox: str | None, env: dict[str, str]) -> NoReturn:
    """``--queue-on-failure`` interrupted (Ctrl-C, SIGTERM): keep the event
    (:func:`~intercom_events_cli.capture.capture_interrupted`), then exit 130.

    A second signal while the row is written is ignored (a short write).
    """
    import signal

    from ..capture import capture_interrupted
    from .common import open_outbox, outbox_path

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
    with open_outbox(outbox_path(outbox, env), env) as store:
        interrupted = capture_interrupted(store, event)
    raise interrupted


def check_queue_options(
    dry_run: bool, queue: bool, queue_on_failure: bool, outbox: str | None
) -> None:
    """Refuse combinations of the outbox options that make no sense (exit 2)."""
    if queue and queue_on_failure:
        raise UsageError(
            "--queue stores without sending and --queue-on-failure sends first: choose one"
        )
    if dry_run and (queue or queue_on_failure):
        raise UsageError("--dry-run stores nothing: drop --queue / --queue-on-failure")
    if outbox is not None and not (queue or queue_on_failure):
        raise UsageError("--outbox is used only with --queue or --queue-on-failure")


def deliver_now(ui: Output, event: Event, settings: Settings) -> Outcome:
    """Send the event with one client, logging each attempt with ``-v``."""
    from ..http.client import EventsClient

    with EventsClient(settings, on_attempt=attempt_logger(ui)) as client:
        return client.send(event)


def report_outcome(ui: Output, outcome: Outcome, settings: Settings) -> None:
    """Result line (stdout) or error and hint (stderr), and the ``--json`` object."""
    if ui.json_mode:
        ui.json(outcome_json(outcome))
    if outcome.delivered:
        if not ui.json_mode:
            event = outcome.event
            ui.result(
                f"delivered {event.event_name} for {event.contact} at "
                f"{format_utc(event.created_at)} ({status_text(outcome.status)}, "
                f"{outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''}, "
                f"{outcome.elapsed_s * 1000:.0f} ms)",
                style="green",
            )
        return
    ui.error(describe_failure(outcome), failure_hint(outcome, settings))
