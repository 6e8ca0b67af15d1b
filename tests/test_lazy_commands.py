"""Only the named command's modules are imported at start-up (cli.COMMAND_MODULES)."""

from __future__ import annotations

import subprocess
import sys

import pytest

SCRIPT = """
import sys
from intercom_events_cli.cli import register_commands
register_commands(sys.argv[1:])
print(" ".join(sorted(
    name.rsplit(".", 1)[1] for name in sys.modules if name.startswith("intercom_events_cli.cli.")
)))
"""
COMMAND_MODULES = {"send", "batch", "flush", "outbox", "outbox_inspect", "outbox_admin", "lookup"}


def loaded(*argv: str) -> set[str]:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, *argv], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split()) & COMMAND_MODULES


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (("flush", "-q"), {"flush"}),
        (("outbox", "status"), {"outbox", "outbox_inspect", "outbox_admin"}),
        (("-q", "send", "e"), {"send"}),
        (("batch", "-"), {"batch"}),
    ],
)
def test_a_named_command_loads_only_its_modules(argv: tuple[str, ...], expected: set[str]) -> None:
    assert loaded(*argv) == expected


def test_help_loads_every_command() -> None:
    assert loaded() == COMMAND_MODULES
