"""README's two Quick start commands, run as written in a fresh copy of the repository.

Both on a distribution Python that refuses ``pip install`` outside a virtual environment
(PEP 668; Debian 12's /usr/bin/python3 here) and inside an already active venv. They
install from the configured package index, so this is the slowest test (~25 s): it runs
with IEVENTS_TEST_INSTALLS=1, which .ci/run sets in a step of its own.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
from conftest import INSTALLS_FROM_THE_INDEX, REPO_ROOT

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")


def quick_start_commands() -> list[str]:
    section = README.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.+?)\n```", section)


def fresh_copy(tmp_path: Path) -> Path:
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO_ROOT,
        capture_output=True,
        check=True,
    ).stdout.decode()
    copy = tmp_path / "clone"
    for name in filter(None, listed.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    return copy


def pep668_python() -> str:
    """A Python marked externally managed when this machine has one, else this one's base."""
    for candidate in ("/usr/bin/python3",):
        stdlib = subprocess.run(
            [candidate, "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
            capture_output=True,
            text=True,
        ).stdout.strip()
        if stdlib and Path(stdlib, "EXTERNALLY-MANAGED").exists():
            return candidate
    base = Path(sysconfig.get_config_var("BINDIR") or "") / "python3"
    return str(base) if base.exists() else sys.executable


def run(command: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True, timeout=600
    )


def test_quick_start_has_two_commands_through_scripts_dev() -> None:
    commands = quick_start_commands()
    assert len(commands) == 2, commands
    assert "--dry-run" in commands[0] and "pytest" in commands[1]
    assert all(command.startswith("scripts/dev ") for command in commands)


@pytest.mark.skipif(
    os.environ.get(INSTALLS_FROM_THE_INDEX) != "1",
    reason="installs from the package index: .ci/run runs it as its own step",
)
@pytest.mark.skipif(
    shutil.which("git") is None or not (REPO_ROOT / ".git").exists(),
    reason="needs a git checkout to list the files of a fresh clone",
)
def test_quick_start_works_on_a_pep668_python_and_in_an_active_venv(tmp_path: Path) -> None:
    dry_run, tests = quick_start_commands()
    # The test command runs one small test file in one process, not the whole suite again.
    tests = tests + " -q -n0 tests/test_usage_errors.py"
    clean = {
        "HOME": str(tmp_path / "home"),
        "PATH": "/usr/bin:/bin",
        "PYTHON": pep668_python(),
        "LANG": os.environ.get("LANG", "C.UTF-8"),
    }

    copy = fresh_copy(tmp_path)
    first = run(dry_run, copy, clean)
    assert first.returncode == 0, first.stderr
    assert "POST https://api.intercom.io/events" in first.stdout
    assert "externally-managed" not in first.stderr
    assert (copy / ".venv" / "bin" / "ievents").exists()
    suite = run(tests, copy, clean)
    assert suite.returncode == 0, suite.stdout + suite.stderr
    assert " passed" in suite.stdout

    # Inside an active venv (the first copy's: a developer's venv that holds another
    # checkout): installs this copy there, makes no .venv of its own.
    other = fresh_copy(tmp_path / "second")
    active = copy / ".venv"
    in_venv = {**clean, "VIRTUAL_ENV": str(active), "PATH": f"{active}/bin:/usr/bin:/bin"}
    second = run(dry_run, other, in_venv)
    assert second.returncode == 0, second.stderr
    assert "installing ievents" in second.stderr
    assert '"event_name": "invited-friend"' in second.stdout
    assert not (other / ".venv").exists()
    assert (active / "bin" / "ievents").exists()
    imported = subprocess.run(
        [
            str(active / "bin" / "python"),
            "-c",
            "import intercom_events_cli as m; print(m.__file__)",
        ],
        cwd=tmp_path,
        env=in_venv,
        capture_output=True,
        text=True,
    )
    assert imported.stdout.strip() == str(other / "intercom_events_cli" / "__init__.py")
