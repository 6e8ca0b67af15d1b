"""``ievents outbox``: the command group its subcommands register on.

The subcommands register on :data:`outbox_app` from their own modules:
:mod:`.outbox_inspect` (``status``, ``list``, ``export``) and :mod:`.outbox_admin`
(``retry``, ``purge``).
"""

from __future__ import annotations

import typer

# The largest outbox id or limit: larger numbers are refused as options (a store would
# refuse them as parameters).
from ..outbox.store import MAX_ID as MAX_ID
from . import app

outbox_app = typer.Typer(
    name="outbox",
    help="Inspect and manage the outbox, where events wait for Intercom.\n\n"
    "Example:\n  ievents outbox status",
    no_args_is_help=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(outbox_app, name="outbox")
