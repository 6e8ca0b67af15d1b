"""The commands of ievents, in one table, each imported only when it is invoked.

click's documented lazy-group pattern: a group lists its commands' names from
:data:`COMMANDS` and imports a command's module when the command is invoked (or its help
shown), so ``ievents send`` builds only ``send`` and ``ievents --version`` imports no
command at all (``tests/test_lazy_commands.py``). ``--help``, a bare group and shell
completion list every name; usage errors name the command from the same table.

Adding a command is one module in ``cli/`` with its function, and one line here.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any

import typer

from ..frozen import frozen
from .clickshim import TyperCommand, TyperGroup
from .helpformat import reflow_help, render_help


@frozen
class Group:
    """A command group: its help (a summary and an example) and its own table."""

    help: str
    commands: Mapping[str, str | Group]


# Command name -> "module:function" in cli/ (or a Group), in the order --help lists them.
COMMANDS: Mapping[str, str | Group] = {
    "send": "send:send",
    "flush": "flush:flush",
    "batch": "batch:batch",
    "check": "check:check",
    "list": "list_events:list_command",
    "config": "configure:config_command",
    "outbox": Group(
        "Inspect and manage the outbox, where events wait for Intercom.\n\n"
        "Example:\n  ievents outbox status",
        {
            "status": "outbox.inspection:status",
            "list": "outbox.inspection:list_rows",
            "export": "outbox.inspection:export",
            "retry": "outbox.admin:retry",
            "purge": "outbox.admin:purge",
            "default-workspace": "outbox.workspaces:default_workspace",
            "move": "outbox.workspaces:move",
        },
    ),
}


def _plain_metavar(piece: str) -> str:
    """``EVENT_NAME``, not typer's ``{EVENT_NAME}`` for a required argument."""
    return piece[1:-1] if piece.startswith("{") and piece.endswith("}") else piece


class Command(TyperCommand):
    """A command whose ``--help`` is :func:`~.helpformat.render_help`'s plain text."""

    def collect_usage_pieces(self, ctx: Any) -> list[str]:
        """The usage line's pieces, arguments without typer's braces."""
        return [_plain_metavar(piece) for piece in super().collect_usage_pieces(ctx)]

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The plain help of :mod:`.helpformat` instead of typer's rich boxes."""
        formatter.write(render_help(self, ctx))


class LazyCommands(MutableMapping[str, Any]):
    """A group's commands: every name of its table, each built on first use."""

    def __init__(self, table: Mapping[str, str | Group]) -> None:
        self.table = table
        self.built: dict[str, Any] = {}

    def __getitem__(self, name: str) -> Any:
        if name not in self.built:
            self.built[name] = build(name, self.table[name])
        return self.built[name]

    def __setitem__(self, name: str, command: Any) -> None:
        self.built[name] = command

    def __delitem__(self, name: str) -> None:
        del self.built[name]

    def __contains__(self, name: object) -> bool:
        return name in self.table or name in self.built

    def __iter__(self) -> Iterator[str]:
        yield from self.table
        yield from (name for name in self.built if name not in self.table)

    def __len__(self) -> int:
        return len(set(self.table) | set(self.built))


class LazyGroup(TyperGroup):
    """A group whose commands are imported when invoked (:data:`COMMANDS` by default)."""

    def __init__(self, *, table: Mapping[str, str | Group] | None = None, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = LazyCommands(COMMANDS if table is None else table)

    def list_commands(self, ctx: Any) -> list[str]:
        """Every name in the table, in its order, without importing a command."""
        return list(self.commands)

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        """The command named, its module imported now; None for an unknown name."""
        return self.commands.get(cmd_name)

    def format_help(self, ctx: Any, formatter: Any) -> None:
        """The plain help of :mod:`.helpformat`: usage, summary, commands, options."""
        formatter.write(render_help(self, ctx))


def build(name: str, entry: str | Group) -> Any:
    """The click command of one table entry: its module imported, its function wrapped by
    typer (``typer.main.get_command``), its docstring reflowed as its ``--help``."""
    if isinstance(entry, Group):
        return LazyGroup(name=name, table=entry.commands, help=entry.help, no_args_is_help=True)
    module_name, _, attribute = entry.partition(":")
    function = getattr(importlib.import_module(f"{__package__}.{module_name}"), attribute)
    single = typer.Typer(
        add_completion=False, pretty_exceptions_enable=False, pretty_exceptions_show_locals=False
    )
    single.command(name, cls=Command, help=reflow_help(function.__doc__ or ""))(function)
    return typer.main.get_command(single)


def command_path(args: list[str]) -> str:
    """``ievents outbox list`` for the command a command line names (else ``ievents``)."""
    path = ["ievents"]
    table: Mapping[str, str | Group] = COMMANDS
    rest = list(args)
    while True:
        name = next((arg for arg in rest if arg in table), None)
        if name is None:
            return " ".join(path)
        path.append(name)
        entry = table[name]
        rest = rest[rest.index(name) + 1 :]
        if not isinstance(entry, Group):
            return " ".join(path)
        table = entry.commands
        rest = rest[:1]  # a group's command comes right after the group's name
