"""``ievents outbox retry`` and ``outbox purge``: change what the outbox holds.

Looking without changing is in :mod:`.inspection`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ...errors import ExitCode, Interrupted, UsageError
from ..common import json_error, open_existing, parse_duration, reporting
from ..environment import current
from ..options import OUTBOX_ONLY, Options, shared
from ..output import Output
from ..render import agree, plural
from . import MAX_ID

if TYPE_CHECKING:
    from ...outbox import State
    from ...outbox.store import OutboxLocation


@shared(*OUTBOX_ONLY, "json_output", "quiet", "debug")
def retry(
    ids: Annotated[
        list[int] | None,
        typer.Argument(
            metavar="ID...",
            max=MAX_ID,
            help="Outbox ids of dead letters (default: all).",
            show_default=False,
        ),
    ] = None,
    *,
    opts: Options,
) -> None:
    """Move dead letters back to pending, for the next flush.

    Example:
      ievents outbox retry 12 13 && ievents flush
    """
    ui = opts.output()
    with reporting(ui, opts.debug, on_error=json_error(ui)):
        path = opts.outbox_location()
        moved: list[int] = []
        missing: list[int] = list(ids or [])
        store = open_existing(path, opts.environment())  # none there: nothing to retry, none made
        if store is not None:
            with store:
                moved, missing = store.retry_dead(ids or None)
        if ui.json_mode:
            code = int(ExitCode.USAGE) if missing else 0
            ui.json({"ok": not missing, "exit_code": code, "retried": moved, "not_dead": missing})
        elif moved:
            ui.result(
                f"{plural(len(moved), 'dead letter')} back to pending; ievents flush sends "
                f"{agree(len(moved), 'it', 'them')}"
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


@shared(*OUTBOX_ONLY, "json_output", "quiet", "debug")
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
            help="Only those last changed before this: 30d, 12h, 2w.",
            show_default=False,
        ),
    ] = None,
    yes: Annotated[
        bool, typer.Option("--yes", "-y", help="Do not ask (required without a terminal).")
    ] = False,
    *,
    opts: Options,
) -> None:
    """Delete events: --pending, --dead or --delivered.

    Example:
      ievents outbox purge --delivered --older-than 30d
    """
    ui = opts.output()
    with reporting(ui, opts.debug, on_error=json_error(ui)):
        from ...outbox import State

        if sum((pending, dead, delivered)) != 1:
            raise UsageError("choose what to purge: one of --pending, --dead or --delivered")
        state = State.PENDING if pending else State.DEAD if dead else State.DELIVERED
        age_s = parse_duration(older_than) if older_than is not None else None
        path = opts.outbox_location()
        store = open_existing(path, opts.environment())  # none there: nothing to purge, none made
        if store is None:
            finish_purge(ui, 0, state)
            return
        with store:
            count, max_id, cutoff = store.purge_plan(state, older_than_s=age_s)
            if count and not yes:
                confirm_purge(count, state, path, older_than)
            deleted = store.purge(state, max_id=max_id, cutoff=cutoff) if count else 0
        finish_purge(ui, deleted, state)


def confirm_purge(count: int, state: State, path: OutboxLocation, older_than: str | None) -> None:
    """Ask on the terminal; refuse without one (the caller passes --yes in scripts)."""
    from ...outbox import State

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
