"""Found by the PostgreSQL hunt: IEVENTS_OUTBOX_SCHEMA set to a reserved word of SQL
(``user``, ``order``, ``select``...) or a ``pg_`` name passed the name check and failed at
the first statement with 'the PostgreSQL outbox ... failed: syntax error at or near
"user"' (or 'unacceptable schema name "pg_events"'), and no hint. It is refused up front,
78, naming the variable and a name that works; nothing is created.
"""

from __future__ import annotations

import pytest
from conftest import RunCli
from helpers import sql


@pytest.mark.parametrize(
    ("schema", "why"),
    [
        ("user", "a reserved word of SQL"),
        ("order", "a reserved word of SQL"),
        ("analyse", "a reserved word of SQL"),
        ("pg_events", "reserved by PostgreSQL"),
    ],
)
def test_a_reserved_schema_name_is_refused_with_a_hint(
    run_cli: RunCli, pg_uri: str, schema: str, why: str
) -> None:
    env: dict[str, str | None] = {"IEVENTS_OUTBOX": pg_uri, "IEVENTS_OUTBOX_SCHEMA": schema}
    for args in (("send", "x", "--user-id", "1", "--queue"), ("flush",), ("outbox", "status")):
        result = run_cli(*args, env=env)
        assert result.code == 78, result
        assert f"IEVENTS_OUTBOX_SCHEMA={schema!r} is {why}" in result.stderr, result
        assert "hint: choose another name" in result.stderr, result
        assert "syntax error" not in result.stderr
    assert sql(pg_uri, "SELECT 1 FROM pg_namespace WHERE nspname = %s", (schema,)) == []


def test_a_keyword_that_is_not_reserved_still_works(run_cli: RunCli, pg_uri: str) -> None:
    env: dict[str, str | None] = {"IEVENTS_OUTBOX": pg_uri, "IEVENTS_OUTBOX_SCHEMA": "values"}
    assert run_cli("send", "x", "--user-id", "1", "--queue", env=env).code == 0
    assert sql(pg_uri, 'SELECT count(*) FROM "values".events') == [(1,)]
