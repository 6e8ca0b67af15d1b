"""docs/cli.md is generated from the app and must be current."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "cli.md"


def test_cli_reference_is_current() -> None:
    generated = subprocess.run(
        [sys.executable, "-m", "intercom_events_cli.cli.reference"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin", "COLUMNS": "50"},  # no terminal width may leak in
    ).stdout
    assert DOC.read_text(encoding="utf-8") == generated, (
        "docs/cli.md is out of date: python -m intercom_events_cli.cli.reference > docs/cli.md"
    )


def test_reference_covers_every_command_and_option() -> None:
    text = DOC.read_text(encoding="utf-8")
    for command in (
        "send",
        "batch",
        "flush",
        "check",
        "list",
        "config",
        "outbox status",
        "outbox list",
        "outbox export",
        "outbox retry",
        "outbox purge",
    ):
        assert f"## `ievents {command}`" in text, command
    for option in ("--profile", "--token-file", "--max-time", "--queue-on-failure", "--summary"):
        assert f"`{option}`" in text, option
    assert "<str>" not in text and "{" not in text.split("```")[1]  # clean metavars
    assert "docs/cli.md" in (REPO_ROOT / "README.md").read_text(encoding="utf-8")
