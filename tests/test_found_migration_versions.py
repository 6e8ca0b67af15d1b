"""Found by the migration hunt: a PostgreSQL outbox whose stored schema version is not a
whole number (edited by hand, written by something else) is refused with a message that
names it, exit 78, and left untouched, instead of 'internal error: ValueError'."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
from conftest import RunCli


@pytest.mark.parametrize("stored", ["3.1", "three", ""])
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
