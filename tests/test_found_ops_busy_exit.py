"""A SQLite outbox another process holds past the busy timeout (a backup tool, a
``sqlite3`` shell left in a transaction) made ``send --queue``, ``batch --queue`` and
``flush`` exit 78, a configuration error, while the message said "try again": a cron
wrapper that retries on 75 and pages a human on 78 paged for a lock that would go by
itself. It is a temporary failure now: 75, the message unchanged."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunCli
from helpers import numbered_ndjson, outbox_file

BUSY = {"IEVENTS_OUTBOX_BUSY_TIMEOUT": "0.2"}


@pytest.fixture
def held(tmp_path: Path, run_cli: RunCli) -> Iterator[Path]:
    """The test environment's outbox, created, then held by another connection."""
    path = outbox_file(tmp_path)
    assert run_cli("send", "first", "--user-id", "u1", "--queue").code == 0
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield path
    finally:
        holder.execute("ROLLBACK")
        holder.close()


@pytest.mark.parametrize(
    "args",
    [
        ("send", "second", "--user-id", "u2", "--queue"),
        ("batch", "-", "--queue"),
        ("flush",),
        ("send", "second", "--user-id", "u2", "--queue", "--json"),
    ],
    ids=["send", "batch", "flush", "send-json"],
)
def test_a_held_outbox_is_a_temporary_failure(
    run_cli: RunCli, held: Path, args: tuple[str, ...]
) -> None:
    result = run_cli(*args, input=numbered_ndjson(3), env=BUSY)
    assert result.code == 75, result
    if "--json" in args:
        assert result.json()["exit_code"] == 75
        assert result.json()["error"]["code"] == "outbox_error"  # as before
    else:
        assert f"the outbox '{held}' is locked by another process" in result.stderr, result
        assert "try again" in result.stderr
