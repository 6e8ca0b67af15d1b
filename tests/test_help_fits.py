"""Help that fits: every command's --help at 80 columns, bare groups, usage errors.

Each help is a summary, examples and the options, under about 40 lines, with nothing cut
("…"), no typer metavars (``<str>``), no line wider than the terminal; a bare ``ievents``
or ``ievents outbox`` lists the commands; a usage error is one line plus a hint.
"""

from __future__ import annotations

import re

import pytest
from conftest import RunCli

from intercom_events_cli.cli import app


def command_paths() -> list[tuple[str, ...]]:
    """Every command and group of the app, as argv prefixes: (), ("send",), ("outbox", "list")..."""
    import typer

    root = typer.main.get_command(app)
    paths: list[tuple[str, ...]] = [()]
    for name, command in root.commands.items():  # type: ignore[attr-defined]
        paths.append((name,))
        for sub in getattr(command, "commands", {}):
            paths.append((name, sub))
    return paths


PATHS = command_paths()


def test_every_command_is_checked() -> None:
    names = {" ".join(path) for path in PATHS}
    for expected in ("send", "batch", "flush", "check", "list", "config", "outbox status"):
        assert expected in names
    assert len(PATHS) >= 13


@pytest.mark.parametrize("path", PATHS, ids=lambda path: " ".join(path) or "ievents")
def test_help_fits_80_columns(run_cli: RunCli, path: tuple[str, ...]) -> None:
    result = run_cli(*path, "--help", env={"COLUMNS": "80"})
    assert result.code == 0, result
    lines = result.stdout.splitlines()
    assert len(lines) <= 40, f"{len(lines)} lines:\n{result.stdout}"
    assert "…" not in result.stdout, "a default or option cut short"
    assert not re.search(r"<(str|int|float|text)[^>]*>", result.stdout, re.I), result.stdout
    assert not set("╭╮╰╯│") & set(result.stdout), "no boxes"
    too_wide = [line for line in lines if len(line) > 80]
    assert too_wide == [], too_wide
    # A wrapped option text leaves no lone word behind ("exit" / "0."); a default may go
    # on a line of its own.
    orphans = [
        line
        for line in lines
        if re.match(r" {20,}\S", line) and len(line.split()) == 1 and "default" not in line
    ]
    assert orphans == [], orphans
    assert lines[0].startswith(f"Usage: ievents {' '.join(path)}".rstrip())
    summary = lines[2]
    assert summary and not summary.startswith(" "), "a one-line summary under the usage"
    if path and path != ("outbox",):
        assert re.search(r"^Examples?:\n  (\S.*\| )?ievents ", result.stdout, re.M), result.stdout


@pytest.mark.parametrize("path", [p for p in PATHS if len(p) == 2 or p in (("send",),)])
def test_help_lists_every_option_with_its_default_whole(
    run_cli: RunCli, path: tuple[str, ...]
) -> None:
    result = run_cli(*path, "--help", env={"COLUMNS": "80"})
    text = result.stdout
    for option in re.findall(r"^  (?:-\w, )?(--[\w-]+)", text, re.M):
        assert option in text
    if "--outbox" in text:
        assert "[default: $XDG_STATE_HOME/ievents/outbox.sqlite3]" in text
    if "--region" in text:
        assert "--region us|eu|au" in text and "[default: us]" in text


@pytest.mark.parametrize("group", [(), ("outbox",)], ids=["ievents", "ievents outbox"])
def test_a_bare_group_lists_its_commands(run_cli: RunCli, group: tuple[str, ...]) -> None:
    result = run_cli(*group, env={"COLUMNS": "80"})
    assert result.code == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) <= 15, result.stderr
    assert lines[0] == f"Usage: {' '.join(('ievents', *group))} COMMAND [OPTIONS]"
    assert "Commands:" in lines
    assert "Options:" not in result.stderr and "--install-completion" not in result.stderr
    expected = ("status", "list", "retry") if group else ("send", "batch", "flush", "outbox")
    for name in expected:
        assert re.search(rf"^  {name}\s+\S", result.stderr, re.M), name
    assert f"See '{' '.join(('ievents', *group))} COMMAND --help'" in result.stderr


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (("list",), "give exactly one of --user-id, --email or --id"),
        (("send",), "missing argument 'EVENT_NAME'"),
    ],
)
def test_a_usage_error_is_one_line_and_a_hint(
    run_cli: RunCli, args: tuple[str, ...], needle: str
) -> None:
    result = run_cli(*args, env={"COLUMNS": "80"})
    assert result.code == 2, result
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert len(lines) == 2, result.stderr
    assert lines[0].startswith("ievents: error: ") and needle in lines[0]
    assert lines[1].startswith("  hint: ")


@pytest.mark.parametrize(
    ("args", "command"),
    [
        (("outbox", "purge"), "ievents outbox purge"),
        (("batch", "--dry-run", "--queue", "f.ndjson"), "ievents batch"),
        (("send", "x", "--user-id", "1", "--dry-run", "--queue"), "ievents send"),
    ],
)
def test_a_usage_error_found_by_the_command_also_has_a_hint(
    run_cli: RunCli, args: tuple[str, ...], command: str
) -> None:
    result = run_cli(*args)
    assert result.code == 2, result
    lines = result.stderr.splitlines()
    assert len(lines) == 2 and lines[0].startswith("ievents: error: "), result.stderr
    assert lines[1].startswith("  hint: ")
