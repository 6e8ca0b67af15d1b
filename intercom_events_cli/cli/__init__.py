"""The ievents command line: a thin Typer layer over the library.

Each command group lives in its own module and registers itself on :data:`app`; every
outcome becomes a message and an exit code in :mod:`.common`.
"""

from __future__ import annotations

import importlib
import inspect
import signal
import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Annotated, Any

import typer

from .. import __version__
from ..early_signals import HANDLERS
from .environment import current

if TYPE_CHECKING:
    from .environment import Environment

app = typer.Typer(
    name="ievents",
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


# The modules that register each command; --help lists the modules in this order
# (flush and outbox before batch, as ievents has always listed them).
COMMAND_MODULES = {
    "send": ("send",),
    "batch": ("batch",),
    "flush": ("flush",),
    "outbox": ("outbox_inspect", "outbox_admin", "outbox_workspaces"),
    "check": ("lookup",),
    "list": ("lookup",),
    "config": ("configure",),
}
MODULE_ORDER = (
    "send",
    "outbox",
    "flush",
    "outbox_inspect",
    "outbox_admin",
    "outbox_workspaces",
    "batch",
    "lookup",
    "configure",
)


def register_commands(argv: list[str] | None = None) -> typer.Typer:
    """Register the command named in ``argv`` (every command when none is named).

    Building every command's options costs about 20 ms per run, more as commands grow:
    a cron job running ``ievents send`` needs only ``send``. ``--help``, an unknown
    command and shell completion get them all.
    """
    wanted: tuple[str, ...] | None = None
    environ = current().environ
    completing = any(key.startswith("_") and key.endswith("_COMPLETE") for key in environ)
    if argv and not completing:
        first = next((arg for arg in argv if not arg.startswith("-")), None)
        wanted = COMMAND_MODULES.get(first) if first is not None else None
    for module in wanted or MODULE_ORDER:
        importlib.import_module(f"{__name__}.{module}")
    _in_module_order(app)
    return app


def _in_module_order(typer_app: typer.Typer) -> None:
    """Order the commands as MODULE_ORDER lists their modules, whatever imported them first.

    Commands register as their module is imported: a program that imported ``cli.batch``
    before calling :func:`main` got ``batch`` first in ``--help``. Within a module, the
    order is the source's (the sort is stable).
    """

    def rank(module: str | None) -> int:
        name = (module or "").rpartition(".")[2]
        return MODULE_ORDER.index(name) if name in MODULE_ORDER else len(MODULE_ORDER)

    typer_app.registered_commands.sort(
        key=lambda info: rank(getattr(info.callback, "__module__", None))
    )
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _in_module_order(group.typer_instance)


def reflow_help(text: str) -> str:
    """Join a docstring's wrapped lines so that --help wraps them to the terminal.

    typer's rich help keeps every line break, so source lines wrapped at 90 columns
    break again at 80. A line is joined to the one before unless that one ends a
    sentence or a label (``.``, ``:``) or the line starts an item (``-``, ``Example``);
    blank lines still separate paragraphs.
    """
    paragraphs = []
    for paragraph in inspect.cleandoc(text).split("\n\n"):
        lines: list[str] = []
        for line in paragraph.split("\n"):
            if (
                lines
                and not lines[-1].endswith((".", ":"))
                and not line.startswith(("-", "Example", " "))
                and not lines[-1].startswith(" ")
            ):
                lines[-1] += " " + line
            else:
                lines.append(line)
        paragraphs.append("\n".join(lines))
    return "\n\n".join(paragraphs)


def _reflow_all_help(typer_app: typer.Typer) -> None:
    for command in typer_app.registered_commands:
        if command.callback is not None and command.callback.__doc__:
            command.callback.__doc__ = reflow_help(command.callback.__doc__)
    for group in typer_app.registered_groups:
        if group.typer_instance is not None:
            _reflow_all_help(group.typer_instance)


def _terminate(signum: int, frame: object) -> None:
    """SIGTERM (``timeout``, systemd, ``kill``) is handled as Ctrl-C: said, exit 130."""
    raise KeyboardInterrupt


def _plain_argument_metavars() -> None:
    """Usage lines show ``EVENT_NAME``, not typer's ``{EVENT_NAME}`` for a required argument."""
    from typer.core import TyperArgument

    original = TyperArgument.make_metavar
    if getattr(original, "_ievents_plain", False):
        return

    def make_metavar(self: TyperArgument, ctx: Any, *, usage: bool = False) -> str:
        text = original(self, ctx, usage=usage)
        return text[1:-1] if text.startswith("{") and text.endswith("}") else text

    make_metavar._ievents_plain = True  # type: ignore[attr-defined]
    TyperArgument.make_metavar = make_metavar  # type: ignore[method-assign]


def main(argv: Sequence[str] | None = None, env: Environment | None = None) -> int:
    """Run ievents on ``argv`` (else ``sys.argv[1:]``) and return the exit code.

    The console script and ``python -m`` do ``sys.exit(main())``. ``env`` is what the run
    reads and writes (else the process's own streams, variables and clock): an in-process
    caller, such as the tests, passes its own (see :mod:`.environment`).
    """
    from .environment import Environment, activated
    from .usage import run

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
        register_commands(args)
        _plain_argument_metavars()
        from .helpformat import install

        install()
        _reflow_all_help(app)  # microseconds; help also shows without -h (no arguments)
        return run(app, args)
