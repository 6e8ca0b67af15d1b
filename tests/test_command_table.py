"""The command list lives in one place (cli.commands.COMMANDS): help, usage errors and
suggestions all read it."""

from __future__ import annotations

import re

import pytest
from conftest import RunCli

from intercom_events_cli.cli.commands import COMMANDS, Group


def listed(text: str) -> list[str]:
    """The command names of a help's ``Commands:`` section, in order."""
    section = text.split("Commands:\n", 1)[1].split("\n\n", 1)[0]
    return re.findall(r"^  (\S+)", section, re.M)


def test_help_lists_the_tables_commands_in_its_order(run_cli: RunCli) -> None:
    result = run_cli("--help", env={"COLUMNS": "100"})
    assert result.code == 0, result
    assert listed(result.stdout) == list(COMMANDS)
    outbox = COMMANDS["outbox"]
    assert isinstance(outbox, Group)
    group = run_cli("outbox", "--help", env={"COLUMNS": "100"})
    assert listed(group.stdout) == list(outbox.commands)


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("outbox", "move", "--from"), "ievents outbox move"),
        (("outbox", "default-workspace", "--outbox"), "ievents outbox default-workspace"),
        (("outbox", "list", "--limit"), "ievents outbox list"),
        (("flush", "--profile"), "ievents flush"),
    ],
)
def test_an_option_missing_its_value_names_the_command_in_its_hint(
    run_cli: RunCli, args: tuple[str, ...], command: str
) -> None:
    result = run_cli(*args)
    assert result.code == 2, result
    assert result.stderr.splitlines() == [
        f"ievents: error: option '{args[-1]}' requires an argument.",
        f"  hint: see '{command} --help'",
    ]


def test_a_mistyped_command_is_matched_against_every_name(run_cli: RunCli) -> None:
    result = run_cli("sedn")
    assert result.code == 2, result
    assert "no such command 'sedn'. Did you mean 'send'?" in result.stderr
    inner = run_cli("outbox", "purj")
    assert "Did you mean 'purge'?" in inner.stderr, inner
