"""Found by the migration hunt: an outbox whose stored schema version is no version
ievents ever wrote (PostgreSQL: not a whole number, or negative; SQLite: a negative
user_version), edited by hand or written by something else, is refused with a message
that names it, exit 78, and left untouched, instead of 'internal error: ValueError' or
'internal error: KeyError: 0' (a negative version was "migrated" from step 0)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

import psycopg
import pytest
from conftest import RunCli


@pytest.mark.parametrize("stored", ["3.1", "three", "", "-1"])
def test_an_unreadable_schema_version_is_refused_by_name(
    run_cli: RunCli, pg_uri: str, stored: str
) -> None:
    env: dict[str, str | None] = {"IEVENTS_OUTBOX": pg_uri}
    assert run_cli("send", "a", "--user-id", "u1", "--queue", env=env).code == 0
    with psycopg.connect(pg_uri, autocommit=True) as db:
        db.execute("UPDATE ievents.meta SET value = %s WHERE key = 'schema_version'", (stored,))
        before: list[Any] = db.execute("SELECT * FROM ievents.events ORDER BY id").fetchall()
    for args in (("outbox", "status"), ("send", "b", "--user-id", "u2", "--queue"), ("flush",)):
        result = run_cli(*args, env=env)
        assert result.code == 78, result
        assert f"unreadable schema version {stored!r}" in result.stderr, result
        assert "internal error" not in result.stderr
        assert "Traceback" not in result.stderr
    with psycopg.connect(pg_uri, autocommit=True) as db:
        assert db.execute("SELECT * FROM ievents.events ORDER BY id").fetchall() == before
        version = db.execute("SELECT value FROM ievents.meta WHERE key = 'schema_version'")
        assert version.fetchone() == (stored,)


def test_a_negative_sqlite_user_version_is_refused_by_name(run_cli: RunCli, tmp_path: Path) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    env: dict[str, str | None] = {"IEVENTS_OUTBOX": str(outbox)}
    assert run_cli("send", "a", "--user-id", "u1", "--queue", env=env).code == 0
    with closing(sqlite3.connect(outbox)) as raw:
        raw.execute("PRAGMA user_version = -1")
        raw.commit()
        before = raw.execute("SELECT * FROM events ORDER BY id").fetchall()
    for args in (("outbox", "status"), ("send", "b", "--user-id", "u2", "--queue"), ("flush",)):
        result = run_cli(*args, env=env)
        assert result.code == 78, result
        assert "unreadable schema version (-1)" in result.stderr, result
        assert "internal error" not in result.stderr
    with closing(sqlite3.connect(outbox)) as raw:
        assert raw.execute("SELECT * FROM events ORDER BY id").fetchall() == before
        assert raw.execute("PRAGMA user_version").fetchone() == (-1,)
