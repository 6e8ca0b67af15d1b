"""What ievents needs of typer beyond its public names, checked against the typer installed.

``cli/clickshim.py`` is the one module that reaches into typer's vendored click; the rest
of ``cli/`` uses typer's public API and ``cls=`` subclasses. When a typer release moves
any of it, these tests fail with a message saying what moved, where to fix it
(``cli/clickshim.py``) and that the typer pin in ``pyproject.toml`` must follow.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import typer
import typer.main

from intercom_events_cli.cli import clickshim, command
from intercom_events_cli.cli.commands import Command, LazyGroup

CLI = Path(__file__).resolve().parents[1] / "intercom_events_cli" / "cli"
UPGRADE = (
    f"typer {typer.__version__} is not the typer cli/clickshim.py was written for: "
    "update cli/clickshim.py and the typer bounds in pyproject.toml"
)


def invoke(*args: str) -> Any:
    """Run the root group as cli.main does, letting click's exceptions out."""
    return command()(args=list(args), prog_name="ievents", standalone_mode=False)


def test_the_parser_raises_the_exceptions_the_shim_names() -> None:
    with pytest.raises(Exception) as unknown:
        invoke("send", "x", "--no-such-option")
    assert isinstance(unknown.value, clickshim.NoSuchOption), f"{UPGRADE}: {unknown.value!r}"
    assert isinstance(unknown.value, clickshim.UsageError), UPGRADE
    assert unknown.value.option_name == "--no-such-option", UPGRADE
    assert unknown.value.ctx.command_path == "ievents send", UPGRADE
    with pytest.raises(Exception) as bare:
        invoke("outbox")
    assert isinstance(bare.value, clickshim.NoArgsIsHelpError), f"{UPGRADE}: {bare.value!r}"
    assert bare.value.ctx.command_path == "ievents outbox", UPGRADE


def test_typers_public_exceptions_are_the_shims_kinds() -> None:
    assert issubclass(typer.BadParameter, clickshim.UsageError), UPGRADE
    assert issubclass(clickshim.UsageError, clickshim.ClickException), UPGRADE
    assert issubclass(clickshim.ClickException, Exception), UPGRADE


def test_the_current_context_is_the_running_commands() -> None:
    assert clickshim.current_context() is None, UPGRADE
    seen: list[str] = []
    app = typer.Typer(add_completion=False)

    @app.command()
    def probe() -> None:
        seen.append(clickshim.current_context().command_path)

    typer.main.get_command(app)(args=[], prog_name="probe", standalone_mode=False)
    assert seen == ["probe"], UPGRADE


def test_typer_builds_its_commands_and_groups_from_our_classes() -> None:
    root = command()
    assert isinstance(root, LazyGroup), UPGRADE
    assert isinstance(root, clickshim.TyperGroup), UPGRADE
    send = root.get_command(None, "send")
    assert isinstance(send, Command) and isinstance(send, clickshim.TyperCommand), UPGRADE
    # Usage without typer's braces around a required argument (EVENT_NAME, not {EVENT_NAME}).
    ctx = typer.Context(send, info_name="send")
    assert send.collect_usage_pieces(ctx) == ["[OPTIONS]", "EVENT_NAME"], UPGRADE


# What no module of cli/ but the shim may do: import typer's internals or click, or patch
# a class of theirs at run time.
FORBIDDEN = (
    re.compile(r"^\s*(from|import)\s+(typer\._click|typer\.core|click)\b", re.M),
    re.compile(r"importlib\.import_module\(\s*[\"'](typer\._click|typer\.core|click)"),
    re.compile(r"^\s*(Typer\w*|click\.\w+|typer\.\w+(\.\w+)*)\.\w+\s*=", re.M),
)


@pytest.mark.parametrize("path", sorted(CLI.glob("*.py")), ids=lambda path: path.name)
def test_only_the_shim_reaches_below_typers_public_api(path: Path) -> None:
    if path.name == "clickshim.py":
        return
    text = path.read_text(encoding="utf-8")
    found = [match.group(0).strip() for pattern in FORBIDDEN for match in pattern.finditer(text)]
    assert found == [], f"{path.name}: go through cli/clickshim.py instead of {found}"
