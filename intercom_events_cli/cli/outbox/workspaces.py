"""``ievents outbox default-workspace`` (where SQL-enqueued rows that name no workspace
go) and ``ievents outbox move`` (rows of another workspace to the one in use).

A row enqueued with ``ievents.enqueue(event)`` (no workspace) is delivered only to the
schema's default workspace, never by whichever relay claims it first; without a default
it waits, and ``flush`` and ``outbox status`` say so.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from ...errors import OutboxError, UsageError
from ..common import attempt_logger, json_error, open_existing, open_outbox, reporting
from ..environment import current
from ..options import OUTBOX_ONLY, Options, shared
from ..output import Output
from ..render import agree, plural

# Intercom's workspace ids (app id_code): short, lowercase letters and digits.
_WORKSPACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@shared(*OUTBOX_ONLY, "json_output", "quiet", "debug")
def default_workspace(
    workspace: Annotated[
        str | None,
        typer.Argument(
            metavar="[WORKSPACE]",
            help="A workspace id (app id_code); or --profile NAME.",
            show_default=False,
        ),
    ] = None,
    *,
    opts: Options,
) -> None:
    """Where SQL-enqueued events that name no workspace go.

    With --profile, the workspace of that profile's token (one GET /me).

    Example:
      ievents outbox default-workspace --profile eu
    """
    ui = opts.output()
    profile = opts.profile
    with reporting(ui, opts.debug, on_error=json_error(ui)):
        if (workspace is None) == (profile is None):
            raise UsageError(
                "name the default workspace: a workspace id, or --profile NAME (not both)"
            )
        if workspace is not None and not _WORKSPACE_ID.match(workspace):
            raise UsageError(
                f"{workspace!r} is not a workspace id (letters and digits, as `ievents "
                "check` shows after id_code)"
            )
        with open_outbox(opts.outbox_location(), opts.environment()) as store:
            if workspace is None:
                from ...delivery.workspaces import learn_workspace

                settings = opts.settings()
                workspace = learn_workspace(store, settings, attempt_logger(ui), profile)
                if workspace is None:
                    raise OutboxError(
                        f"could not learn the workspace of the profile {profile!r}: GET /me failed",
                        hint=f"run `ievents check --profile {profile}` to see why",
                    )
            taken = store.set_default_workspace(workspace)
        if ui.json_mode:
            ui.json({"ok": True, "default_workspace": workspace, "bound": taken})
        else:
            ui.result(
                f"default workspace: {workspace}; {plural(taken, 'waiting event')} "
                f"{agree(taken, 'goes', 'go')} there"
            )


@shared(*OUTBOX_ONLY, "json_output", "quiet", "debug")
def move(
    source: Annotated[
        str,
        typer.Option(
            "--from",
            metavar="WORKSPACE",
            help="A workspace id ('unknown': tokens not yet checked).",
            show_default=False,
        ),
    ],
    dead: Annotated[
        bool, typer.Option("--dead", help="Move dead letters instead of pending events.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Say how many would move; change nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask (scripts).")] = False,
    *,
    opts: Options,
) -> None:
    """Move another workspace's events to the one in use.

    For a migrated workspace, or test data that should go to production. Asks first
    on a terminal; elsewhere it needs --yes.

    Example:
      ievents outbox move --from ws_test --profile prod --dry-run
    """
    ui = opts.output()
    with reporting(ui, opts.debug, on_error=json_error(ui)):
        from ...delivery.workspaces import learn_workspace
        from ...outbox import State

        if not (dry_run or yes or current().stdin_isatty):
            raise UsageError("outbox move changes where events go: add --yes (or --dry-run)")
        settings = opts.settings()
        store = open_existing(opts.outbox_location(), opts.environment())
        if store is None:
            raise UsageError("there is no outbox here: nothing to move")
        state = State.DEAD if dead else State.PENDING
        with store:
            learn_workspace(store, settings, attempt_logger(ui), opts.profile)
            target = store.bind(settings)
            known = store.destinations()
            if source == "unknown":
                from_ids = [i for i, d in known.items() if d.workspace_id is None]
            elif source.isdigit():  # a destination's number, as the database shows it
                from_ids = [int(source)] if int(source) in known else []
            else:
                from_ids = [i for i, d in known.items() if d.workspace_id == source]
            from_ids = [i for i in from_ids if i != target]
            if not from_ids:
                raise UsageError(
                    f"no other destination is {source!r}: give a workspace id that "
                    "ievents outbox status names, or 'unknown'"
                )
            where = known[from_ids[0]].describe()
            here = known[target].describe() if target in known else "the workspace in use"
            what = "dead letter" if dead else "pending event"
            count = store.move(from_ids, target, state, dry_run=True)
            if dry_run or count == 0:
                report_move(ui, count, what, where, here, moved=False)
                return
            if not yes and not typer.confirm(
                f"move {plural(count, what)} from {where} to {here}?", err=True
            ):
                raise UsageError("nothing moved (answered no)")
            moved = store.move(from_ids, target, state)
        report_move(ui, moved, what, where, here, moved=True)


def report_move(ui: Output, count: int, what: str, where: str, here: str, *, moved: bool) -> None:
    """One line (or ``--json``) for ``outbox move``."""
    if ui.json_mode:
        ui.json({"ok": True, "moved" if moved else "would_move": count, "from": where, "to": here})
        return
    verb = "moved" if moved else "would move"
    ui.result(f"{verb} {plural(count, what)} from {where} to {here}")
