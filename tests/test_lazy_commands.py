"""A run imports only the command it names (cli.commands.COMMANDS, click's lazy group).

Each case is a real ``ievents`` run in a fresh interpreter (what a process imports is
what these tests are about), reporting the ``cli`` modules it loaded.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = """
import sys
from intercom_events_cli.cli import main
code = main(sys.argv[1:])
loaded = sorted(
    name.removeprefix("intercom_events_cli.cli.")
    for name in sys.modules
    if name.startswith("intercom_events_cli.cli.")
)
sys.stderr.write("\\nloaded: " + " ".join(loaded) + "\\n")
sys.exit(code)
"""
COMMAND_MODULES = {
    "send",
    "batch",
    "flush",
    "outbox",
    "outbox.inspection",
    "outbox.admin",
    "outbox.workspaces",
    "check",
    "list_events",
    "configure",
}


def loaded(tmp_path: Path, *argv: str) -> tuple[int, set[str]]:
    """The exit code of ``ievents ARGV`` and the command modules it imported."""
    env = {"HOME": str(tmp_path), "XDG_STATE_HOME": str(tmp_path / "state"), "PATH": "/usr/bin"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env=env,
    )
    last = done.stderr.splitlines()[-1] if done.stderr else ""
    assert last.startswith("loaded:"), done.stderr
    return done.returncode, set(last.split()[1:]) & COMMAND_MODULES


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("--version",), set()),
        (("send", "signed-up", "--user-id", "1", "--dry-run"), {"send"}),
        (("-q", "send", "e"), set()),  # an option before the command: a usage error
        (("flush", "--help"), {"flush"}),
        (("batch", "--help"), {"batch"}),
        (("check", "--help"), {"check"}),
        (("list", "--help"), {"list_events"}),
        (("config", "--help"), {"configure"}),
        (("outbox", "status", "--help"), {"outbox", "outbox.inspection"}),
        (("outbox", "move", "--help"), {"outbox", "outbox.workspaces"}),
        (("outbox",), {"outbox", "outbox.inspection", "outbox.admin", "outbox.workspaces"}),
    ],
)
def test_a_run_imports_only_the_command_it_names(
    tmp_path: Path, argv: tuple[str, ...], expected: set[str]
) -> None:
    code, modules = loaded(tmp_path, *argv)
    assert code in (0, 2)
    assert modules == expected


def test_help_loads_every_command(tmp_path: Path) -> None:
    code, modules = loaded(tmp_path, "--help")
    assert code == 0
    # Each command's summary, and the outbox group's own: its commands load with
    # ievents outbox --help.
    assert modules == {"send", "flush", "batch", "check", "list_events", "configure"}


def test_completion_finds_a_command_it_had_not_imported(tmp_path: Path) -> None:
    env = {
        "_IEVENTS_COMPLETE": "complete_bash",
        "COMP_WORDS": "ievents outbox pu",
        "COMP_CWORD": "2",
    }
    done = subprocess.run(
        [sys.executable, "-m", "intercom_events_cli"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"HOME": str(tmp_path), "PATH": "/usr/bin", **env},
    )
    assert "purge" in done.stdout.split(), done
