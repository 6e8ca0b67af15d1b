"""``ievents outbox``: the command group its subcommands register on.

The subcommands register on :data:`outbox_app` from their own modules:
:mod:`.outbox_inspect` (``status``, ``list``, ``export``) and :mod:`.outbox_admin`
(``retry``, ``purge``). sqlite3 is imported inside the commands, never at startup.
"""

from __future__ import annotations

import typer

from . import app

# Larger numbers cannot be outbox ids or limits: SQLite refuses them with OverflowError.
SQLITE_MAX_INT = 2**63 - 1

outbox_app = typer.Typer(
    name="outbox",
    help="Inspect and manage the outbox, where events wait for Intercom.\n\n"
    "Example:\n  ievents outbox status",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(outbox_app, name="outbox")
