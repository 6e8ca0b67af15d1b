"""A reader that goes away (``ievents ... | head``) is not an internal error.

Before the fix every command whose stdout reader had gone ended with "internal error:
BrokenPipeError" and exit 1, even after Intercom had accepted the event: a cron job
reading that exit code sends the event again.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

from conftest import RunCli, assert_no_token, base_env
from fake_intercom import FakeIntercom
from helpers import launch


def run_with_reader(
    tmp_path: Path, fake: FakeIntercom, *args: str, lines_read: int
) -> tuple[int, str, list[str]]:
    """Run ``ievents ARGS``; read ``lines_read`` lines of stdout, then close it (like head)."""
    workdir = tmp_path / "work"
    workdir.mkdir(exist_ok=True)
    proc = launch(
        args,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=base_env(tmp_path, fake.url),
        cwd=workdir,
    )
    assert proc.stdout is not None and proc.stderr is not None
    read = [proc.stdout.readline().decode() for _ in range(lines_read)]
    proc.stdout.close()
    stderr = proc.stderr.read().decode("utf-8", "replace")
    code = proc.wait(timeout=60)
    assert_no_token(stderr, *read)
    return code, stderr, read


def test_send_with_stdout_closed_reports_the_delivery(tmp_path: Path, fake: FakeIntercom) -> None:
    for extra in ((), ("--json",)):
        code, stderr, _ = run_with_reader(
            tmp_path, fake, "send", "signed-up", "--user-id", "1", *extra, lines_read=0
        )
        assert code == 0, stderr
        assert "internal error" not in stderr
        assert "Exception ignored" not in stderr
    assert len(fake.events_posted()) == 2


def test_send_failure_with_stdout_closed_keeps_its_exit_code(
    tmp_path: Path, fake: FakeIntercom
) -> None:
    fake.unknown_contacts.add("404")
    code, stderr, _ = run_with_reader(
        tmp_path, fake, "send", "x", "--user-id", "404", "--json", lines_read=0
    )
    assert code == 67
    assert "User Not Found" in stderr


def test_export_stops_quietly_when_the_reader_leaves(
    tmp_path: Path, fake: FakeIntercom, run_cli: RunCli
) -> None:
    # Far more than a pipe buffer (64 KiB), so the writer meets the closed pipe mid-export.
    records = "".join(
        json.dumps({"event_name": "imported", "user_id": str(i), "created_at": 1714548600}) + "\n"
        for i in range(3000)
    )
    assert run_cli("batch", "-", "--queue", "-q", input=records).code == 0
    code, stderr, read = run_with_reader(tmp_path, fake, "outbox", "export", lines_read=1)
    assert json.loads(read[0])["event_name"] == "imported"
    assert code == 0, stderr
    assert stderr == ""


def test_list_fetches_no_more_pages_once_the_reader_left(
    tmp_path: Path, fake: FakeIntercom, run_cli: RunCli
) -> None:
    # 30 pages of about 5 KB: a pipe buffer (64 KiB) holds fewer than half of them.
    note = "n" * 250
    records = "".join(
        json.dumps(
            {
                "event_name": f"viewed-{i}",
                "user_id": "7",
                "created_at": 1714548600 + i,
                "metadata": {"note": note},
            }
        )
        + "\n"
        for i in range(300)
    )
    assert run_cli("batch", "-", "-q", input=records).code == 0
    before = len(fake.requests)
    code, stderr, read = run_with_reader(
        tmp_path, fake, "list", "--user-id", "7", "--json", "--per-page", "10", lines_read=1
    )
    assert json.loads(read[0])["event_name"] == "viewed-299"
    assert code == 0, stderr
    assert "internal error" not in stderr
    pages_asked = len(fake.requests) - before
    assert pages_asked < 30  # stopped early instead of reading every page
