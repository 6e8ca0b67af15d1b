"""The ievents command line: a thin Typer layer over the library.

:data:`app` is the root group: its commands are listed in one table,
:data:`.commands.COMMANDS`, and each is imported only when invoked; the options they share
are declared once, in :mod:`.options`. Every outcome becomes a message and an exit code in
:mod:`.common`.
"""

from __future__ import annotations

import functools
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import __version__
from ..early_signals import HANDLERS
from .commands import LazyGroup
from .environment import current
from .helpformat import reflow_help

if TYPE_CHECKING:
    from .environment import Environment

__all__ = ["app", "command", "main", "reflow_help"]

app = typer.Typer(
    name="ievents",
    cls=LazyGroup,
    help=(
        "Submit Intercom data events from scripts, cron jobs and pipelines.\n\n"
        "Example:\n  ievents send invited-friend --user-id 314159\n\n"
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
        current().stdout.write(f"ievents {__version__}\n")
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


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (``timeout``, systemd, ``kill``) is handled as Ctrl-C: said, exit 130."""
    raise KeyboardInterrupt


@functools.cache
def command() -> Any:
    """The click command of :data:`app`, built once a process.

    It holds no state of one run (click makes a new context and parser for each call),
    and its commands are built when first invoked (:mod:`.commands`): a process that
    calls :func:`main` more than once (the in-process tests, a program that embeds
    ievents) builds each command once.
    """
    return typer.main.get_command(app)


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run ievents on ``argv`` (else ``sys.argv[1:]``) and return the exit code.

    The console script and ``python -m`` do ``sys.exit(main())``. ``env`` is what the run
    reads and writes (else the process's own streams, variables and clock): an in-process
    caller, such as the tests, passes its own (see :mod:`.environment`).
    """
    from .environment import Environment, activated
    from .runner import run

    args = list(sys.argv[1:] if argv is None else argv)
    with activated(env or Environment.from_process()):
        # Every command handles SIGTERM as SIGINT (flush and batch install their own
        # stop-cleanly handler for both while they run): a message and exit 130, not a
        # silent 143. Only the main thread may install a handler.
        # Unless the entry point already handles it from the first moment (its handlers
        # do the same, or ask a relay to stop: see early_signals).
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGTERM) not in HANDLERS
        ):
            signal.signal(signal.SIGTERM, _terminate)
        return run(command(), args)
