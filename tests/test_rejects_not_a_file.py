"""``--rejects`` naming something that is not a regular file: a named pipe, or a device
such as ``/dev/null`` or ``/dev/stderr``.

A rejects file is created 0600 and an existing one tightened to 0600 (it holds the
records, contacts and all). That tightening was applied to whatever was opened: run as
root, ``batch --rejects /dev/null`` made /dev/null 0600 for the whole machine, and every
other program's ``open("/dev/null", "w")`` failed. Only a regular file's mode is touched;
this test uses a named pipe, whose mode the old code changed the same way.
"""

from __future__ import annotations

import os
import stat
import threading
from pathlib import Path

import pytest
from conftest import RunCli
from helpers import ndjson


def test_a_named_pipe_given_as_rejects_receives_them_and_keeps_its_mode(
    run_cli: RunCli, tmp_path: Path
) -> None:
    pipe = tmp_path / "rejects.fifo"
    os.mkfifo(pipe, 0o644)
    pipe.chmod(0o644)  # whatever the umask
    received: list[bytes] = []

    def drain() -> None:
        with open(pipe, "rb") as reader:
            received.append(reader.read())

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    records = [{"event_name": "ok", "user_id": "1"}, {"event_name": "no-contact"}]
    result = run_cli("batch", "-", "--dry-run", "--rejects", str(pipe), input=ndjson(records))
    reader.join(60)
    assert result.code == 65, result.stderr
    assert b'"_line": 2' in b"".join(received)
    assert stat.S_IMODE(pipe.stat().st_mode) == 0o644


def test_a_regular_rejects_file_is_still_tightened_to_0600(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "rejects.ndjson"
    path.write_text("")
    path.chmod(0o644)
    result = run_cli(
        "batch", "-", "--dry-run", "--rejects", str(path), input=ndjson([{"event_name": "x"}])
    )
    assert result.code == 65, result.stderr
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
def test_a_dry_run_that_an_error_ends_claims_nothing_was_stored(run_cli: RunCli) -> None:
    """A batch an error ends says what it had stored (a9e56e0); a dry run stores nothing
    and has no outbox, so it says nothing of storing: only the error."""
    records = [{"event_name": "ok", "user_id": "1"}, {"event_name": "no-contact"}]
    result = run_cli("batch", "-", "--dry-run", "--rejects", "/dev/full", input=ndjson(records))
    assert result.code != 0, result
    assert "stored" not in result.stderr and "stopped by the error" not in result.stderr
    assert "Traceback" not in result.stderr
