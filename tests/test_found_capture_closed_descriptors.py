"""Found in the capture bug hunt: ievents started with stdout or stderr closed.

``ievents send ... >&-`` (or a supervisor that starts jobs without descriptor 1 or 2)
leaves ``sys.stdout`` / ``sys.stderr`` None. ``send`` then delivered the event and
ended in "internal error: AttributeError: 'NoneType' object has no attribute 'write'",
exit 1: a wrapper that retries on failure sent it again, with a new created_at. With
stderr closed, an invalid event ended in exit 1 instead of 65. What cannot be written
goes nowhere, as to a closed pipe; the exit code still says how the run ended.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
from conftest import cli_env
from fake_intercom import FakeIntercom
from helpers import check_no_token, cli_argv


def run_closed(
    tmp_path: Path, fake: FakeIntercom, redirect: str, *args: str
) -> subprocess.CompletedProcess[bytes]:
    """``ievents ARGS`` with ``redirect`` (``>&-``, ``2>&-``) applied by a shell."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    completed = subprocess.run(
        ["sh", "-c", f'exec "$@" {redirect}', "sh", *cli_argv(args)],
        capture_output=True,
        env=cli_env(tmp_path, fake.url),
        cwd=workdir,
        timeout=120,
    )
    check_no_token(completed.stdout, completed.stderr)
    return completed


SEND = ("send", "signed-up", "--user-id", "u1", "--created-at", "1700000000")


@pytest.mark.parametrize("extra", [(), ("--json",)], ids=["human", "json"])
def test_send_with_stdout_closed_delivers_once_and_exits_0(
    tmp_path: Path, fake: FakeIntercom, extra: tuple[str, ...]
) -> None:
    completed = run_closed(tmp_path, fake, ">&-", *SEND, *extra)
    assert completed.returncode == 0, completed
    assert b"internal error" not in completed.stderr
    assert fake.events_posted() == [
        {"event_name": "signed-up", "user_id": "u1", "created_at": 1700000000}
    ]


def test_an_invalid_event_with_stderr_closed_still_exits_65(
    tmp_path: Path, fake: FakeIntercom
) -> None:
    completed = run_closed(tmp_path, fake, "2>&-", *SEND, "-m", "no-equals-sign", "--json")
    assert completed.returncode == 65, completed
    assert json.loads(completed.stdout)["exit_code"] == 65
    assert fake.requests == []


def test_config_with_both_closed_exits_0(tmp_path: Path, fake: FakeIntercom) -> None:
    completed = run_closed(tmp_path, fake, ">&- 2>&-", "config")
    assert completed.returncode == 0, completed
