"""``--debug`` shows what an expected error was made from: an outbox failure the message
alone cannot explain (a SQLite error of no known kind) prints the SQLite traceback,
redacted, before the one line; without ``--debug`` only the line and its exit code."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from conftest import RunCli


def test_debug_prints_the_sqlite_error_behind_an_outbox_failure(
    run_cli: RunCli, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    env: dict[str, str | None] = {"IEVENTS_OUTBOX": str(outbox)}
    assert run_cli("send", "x", "--user-id", "1", "--queue", env=env).code == 0
    with sqlite3.connect(outbox) as db:  # a schema no version of ievents wrote
        db.execute("ALTER TABLE events RENAME COLUMN state TO st")
    db.close()

    plain = run_cli("outbox", "status", env=env)
    assert plain.code == 78, plain
    assert "failed: no such column: state" in plain.stderr
    assert "Traceback" not in plain.stderr

    debug = run_cli("outbox", "status", "--debug", env=env)
    assert debug.code == 78, debug
    assert "Traceback" in debug.stderr
    assert "sqlite3.OperationalError: no such column: state" in debug.stderr
    assert debug.stderr.rstrip().endswith("failed: no such column: state")
