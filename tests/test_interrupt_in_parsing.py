"""A Ctrl-C that lands while typer parses the command line is said like any other.

typer answers a KeyboardInterrupt it meets outside the command's body (while it parses the
arguments, or imports what parsing needs) with a bare ``Exit(130)``: the run ended 130
with nothing on stderr (seen in ``test_early_signals``: 1 run in ~200 with a signal at a
random moment). Made certain here by raising it from typer's parser.
"""

from __future__ import annotations

from typing import Any

import pytest
import typer.core
from conftest import RunCli


@pytest.fixture
def interrupted_parse(monkeypatch: pytest.MonkeyPatch) -> None:
    def parse_args(self: Any, ctx: Any, args: list[str]) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(typer.core.TyperCommand, "parse_args", parse_args)


@pytest.mark.usefixtures("interrupted_parse")
def test_an_interrupt_while_parsing_says_interrupted_and_exits_130(run_cli: RunCli) -> None:
    result = run_cli("send", "signed-up", "--user-id", "1", "--dry-run")
    assert result.code == 130
    assert result.stderr.splitlines()[-1] == "ievents: error: interrupted", result


@pytest.mark.usefixtures("interrupted_parse")
def test_an_interrupt_while_parsing_gives_the_json_error_document(run_cli: RunCli) -> None:
    result = run_cli("send", "signed-up", "--user-id", "1", "--dry-run", "--json")
    assert result.code == 130
    assert result.json()["exit_code"] == 130 and result.json()["error"]["code"] == "interrupted"
