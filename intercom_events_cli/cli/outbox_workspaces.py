"""``ievents outbox default-workspace``: where SQL-enqueued rows that name no workspace go.

A row enqueued with ``ievents.enqueue(event)`` (no workspace) is delivered only to the
schema's default workspace, never by whichever relay claims it first; without a default
it waits, and ``flush`` and ``outbox status`` say so.
"""

from __future__ import annotations

import re
from typing import Annotated

import typer

from ..errors import OutboxError, UsageError
from .common import (
    DebugOpt,
    EnvFileOpt,
    JsonOpt,
    OutboxOpt,
    ProfileOpt,
    QuietOpt,
    attempt_logger,
    json_error,
    load_environment,
    open_outbox,
    outbox_path,
    reporting,
)
from .outbox import outbox_app
from .output import Output
from .render import agree, plural

# Intercom's workspace ids (app id_code): short, lowercase letters and digits.
_WORKSPACE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


@outbox_app.command("default-workspace")
def default_workspace(
    workspace: Annotated[
        str | None,
        typer.Argument(
            metavar="[WORKSPACE]",
            help="A workspace id (app id_code); or --profile NAME.",
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
    """Where SQL-enqueued events that name no workspace go.

    With --profile, the workspace of that profile's token (one GET /me).

    Example:
      ievents outbox default-workspace --profile eu
    """
    ui = Output(json_mode=json_output, quiet=quiet)
    with reporting(ui, debug, on_error=json_error(ui)):
        if (workspace is None) == (profile is None):
            raise UsageError(
                "name the default workspace: a workspace id, or --profile NAME (not both)"
            )
        if workspace is not None and not _WORKSPACE_ID.match(workspace):
            raise UsageError(
                f"{workspace!r} is not a workspace id (letters and digits, as `ievents "
                "check` shows after id_code)"
            )
        env = load_environment(env_file, profile=profile)
        with open_outbox(outbox_path(outbox, env), env) as store:
            if workspace is None:
                from ..config import Settings
                from ..workspaces import learn_workspace

                settings = Settings.load(env=env)
                workspace = learn_workspace(store, settings, attempt_logger(ui), profile)
                if workspace is None:
                    raise OutboxError(
                        f"could not learn the workspace of the profile {profile!r}: GET /me failed",
                        hint=f"run `ievents check --profile {profile}` to see why",
                    )
            taken = store.set_default_workspace(workspace)
        if json_output:
            ui.json({"ok": True, "default_workspace": workspace, "bound": taken})
        else:
            ui.result(
                f"default workspace: {workspace}; {plural(taken, 'waiting event')} "
                f"{agree(taken, 'goes', 'go')} there"
            )
