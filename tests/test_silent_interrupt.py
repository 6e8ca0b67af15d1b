"""A Ctrl-C that lands after a command wrote its result, but before the run ended (outside
the command's own error handling), still says "interrupted": typer turns it into a bare
exit 130. Before, any output counted as the run having said why (seen once in a loaded
full run: a dry run's request printed, then a silent 130)."""

from __future__ import annotations

import io

import typer

from intercom_events_cli.cli.environment import Environment, activated
from intercom_events_cli.cli.output import Output
from intercom_events_cli.cli.runner import run

app = typer.Typer()


@app.command()
def dry_run() -> None:
    """Write a result, then meet a Ctrl-C outside any error handling."""
    Output().result("POST https://api.intercom.io/events")
    raise KeyboardInterrupt


@app.command()
def other() -> None:
    """A second command, so that the group keeps its subcommands."""


def test_a_silent_130_after_a_result_says_interrupted() -> None:
    stdout, stderr = io.StringIO(), io.StringIO()
    env = Environment(stdin=None, stdout=stdout, stderr=stderr, environ={})
    with activated(env):
        code = run(typer.main.get_command(app), ["dry-run"])
    assert code == 130
    assert stdout.getvalue() == "POST https://api.intercom.io/events\n"
    assert stderr.getvalue().splitlines()[-1] == "ievents: error: interrupted", stderr.getvalue()
