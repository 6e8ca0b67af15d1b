"""The PostgreSQL outbox migration from a real version-2 schema (as ievents made it at
1f9b252^: ``tests/data/pg_outbox_v2.sql``) to the current one. Until now the 2 -> 3 step
was tested only on a current schema with version 3's columns dropped (its ``enqueue`` is
not version 2's) and through the 1 -> 2 -> 3 chain.

Every row keeps every value it had; the new columns are NULL; an application role's grant
on ``enqueue(jsonb)`` still works; a claim of a session that is gone comes back when its
lease ends and is delivered with the rest; dead and delivered rows stay as they were.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import app_uri, sql
from pg_server import APP_USER

from intercom_events_cli.outbox.pg_schema import SCHEMA_VERSION

V2_SQL = Path(__file__).parent / "data" / "pg_outbox_v2.sql"
EVENT = '{{"event_name": "{name}", "user_id": "{user}", "created_at": {at}}}'
# Rows as version 2 wrote them: captured unbound (before destinations were learned, as
# migrated rows are), a claim of a relay whose session is gone and whose lease ran out,
# delivered and dead ones.
ROWS = [
    # dedup_key, name, state, attempts, owner, lease_expires_at, claim_session, claim_token
    ("k-pending", "pending", "pending", 0, None, None, None, None),
    ("k-held", "held", "in_flight", 1, "old-relay:1:-:x", 1.0, 987654321, 7),
    ("k-done", "done", "delivered", 1, None, None, None, None),
    ("k-dead", "dead", "dead", 3, None, None, None, None),
]


def rows(pg_uri: str, table: str) -> dict[Any, dict[str, Any]]:
    with psycopg.connect(pg_uri, autocommit=True) as db:
        cursor = db.execute(f"SELECT * FROM ievents.{table} ORDER BY id")
        names = [column.name for column in cursor.description or []]
        return {row[0]: dict(zip(names, row, strict=True)) for row in cursor.fetchall()}


def test_a_real_version_2_schema_is_migrated_without_changing_a_row(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    for statement in V2_SQL.read_text().split("\n--;\n"):
        if statement.strip():
            sql(pg_uri, statement)
    sql(
        pg_uri,
        f"GRANT USAGE ON SCHEMA ievents TO {APP_USER}; "
        f"GRANT EXECUTE ON FUNCTION ievents.enqueue(jsonb) TO {APP_USER}",
    )
    sql(
        pg_uri,
        "INSERT INTO ievents.destinations (base_url, api_version, token_fingerprint, "
        "token_hint, last_success_at) VALUES ('https://api.example.com', '2.11', 'fp', "
        "'...abcd', 5.5)",
    )
    for n, (key, name, state, attempts, owner, lease, session, token) in enumerate(ROWS):
        sql(
            pg_uri,
            "INSERT INTO ievents.events (dedup_key, payload, event_name, state, attempts, "
            "created, updated, next_attempt_at, owner, lease_expires_at, claim_session, "
            "claim_token, last_status, source, source_line) "
            "VALUES (%s, %s, %s, %s, %s, %s, %s, 0, %s, %s, %s, %s, %s, 'batch', %s)",
            (
                key,
                EVENT.format(name=name, user=n, at=1_700_000_000 + n),
                name,
                state,
                attempts,
                100.0 + n,
                200.0 + n,
                owner,
                lease,
                session,
                token,
                400 if state == "dead" else None,
                n + 1,
            ),
        )
    with psycopg.connect(app_uri(pg_uri), autocommit=True) as app:
        app.execute("SELECT ievents.enqueue(%s::jsonb)", (EVENT.format(name="sql", user=9, at=9),))
    events_before, destinations_before = rows(pg_uri, "events"), rows(pg_uri, "destinations")
    meta_before = sql(pg_uri, "SELECT key, value FROM ievents.meta ORDER BY key")

    env: dict[str, str | None] = {"IEVENTS_OUTBOX": pg_uri}
    status = run_cli("outbox", "status", "--json", env=env)
    assert status.code == 0, status
    assert status.json()["schema_version"] == SCHEMA_VERSION == 3

    # Every value of every row is kept; what version 3 adds is NULL.
    events_after, destinations_after = rows(pg_uri, "events"), rows(pg_uri, "destinations")
    assert events_after.keys() == events_before.keys()
    for row_id, before in events_before.items():
        after = events_after[row_id]
        assert {k: after[k] for k in before} == before
        assert after["workspace"] is None
    for row_id, before in destinations_before.items():
        assert {k: destinations_after[row_id][k] for k in before} == before
        assert destinations_after[row_id]["workspace_id"] is None
    meta_after = sql(pg_uri, "SELECT key, value FROM ievents.meta ORDER BY key")
    assert [m for m in meta_after if m[0] != "schema_version"] == [
        m for m in meta_before if m[0] != "schema_version"
    ]
    assert ("schema_version", "3") in meta_after

    # The application's grant still works, on the function version 3 made.
    with psycopg.connect(app_uri(pg_uri), autocommit=True) as app:
        app.execute("SELECT ievents.enqueue(%s::jsonb)", (EVENT.format(name="new", user=8, at=8),))

    # The unbound rows, the expired claim among them, go to the first flush.
    flushed = run_cli("flush", "--json", env=env)
    assert flushed.code == 0, flushed
    assert sorted(e["event_name"] for e in fake.events_posted()) == ["held", "pending"]
    states = dict(sql(pg_uri, "SELECT event_name, state FROM ievents.events"))
    assert states == {
        "pending": "delivered",
        "held": "delivered",
        "done": "delivered",
        "dead": "dead",
        "sql": "pending",  # names no workspace: waits for the schema's default
        "new": "pending",
    }
