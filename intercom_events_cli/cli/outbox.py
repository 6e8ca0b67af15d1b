"""``ievents outbox``: the command group, and the options its subcommands share.

The subcommands register on :data:`outbox_app` from their own modules:
:mod:`.outbox_inspect` (``status``, ``list``, ``export``) and :mod:`.outbox_admin`
(``retry``, ``purge``). sqlite3 is imported inside the commands, never at startup.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from ..errors import UsageError
from . import app

if TYPE_CHECKING:
    from ..outbox import State

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
