"""The ievents command line: a thin Typer layer over the library.

Each command group lives in its own module and registers itself on :data:`app`; every
outcome becomes a message and an exit code in :mod:`.common`.
"""

from __future__ import annotations

import importlib
from typing import Annotated

import typer

from .. import __version__

app = typer.Typer(
    name="ievents",
    help=(
        "Submit Intercom data events from scripts, cron jobs and pipelines.\n\n"
        "Example: ievents send invited-friend --user-id 314159\n\n"
        "Exit codes: 0 ok, 1 internal error, 2 usage, 65 invalid event data, 67 contact "
        "not found, 75 temporary failure (try later), 77 token rejected, "
        "78 configuration error, 130 interrupted."
    ),
    no_args_is_help=True,
    # Locals can hold the token: never show them.
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _print_version(value: bool) -> None:
    if value:
        print(f"ievents {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print the version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    """Submit Intercom data events from scripts, cron jobs and pipelines."""


# Each module registers its commands; --help lists them in this order.
for _module in ("send", "batch", "outbox", "lookup"):
    importlib.import_module(f"{__name__}.{_module}")


def main() -> None:
    """Console-script entry point."""
    app()
