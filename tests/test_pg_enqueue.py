"""``<schema>.enqueue()`` (the SQL entry point) at schema version 2, and the migration to it.

- ``created_at`` "now" (or missing) is resolved by the database's clock at each call,
  before the de-duplication key: calls in different seconds are different events;
- an event over 64 KiB of JSON is refused, naming the limit;
- a version-1 schema is migrated in place (rows, grants and in-flight claims kept).

Against the real test server and the real CLI.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import app_uri, sql
from pg_server import APP_USER

from intercom_events_cli.outbox.pg_schema import MAX_EVENT_BYTES, SCHEMA_VERSION

psycopg = pytest.importorskip("psycopg")

V1_SQL = Path(__file__).parent / "data" / "pg_outbox_v1.sql"


def grant_enqueue(pg_uri: str) -> None:
    sql(
        pg_uri,
        f"GRANT USAGE ON SCHEMA ievents TO {APP_USER}; "
        f"GRANT EXECUTE ON FUNCTION ievents.enqueue(jsonb) TO {APP_USER}",
    )


def enqueue_in_own_transaction(db: Any, event: dict[str, Any]) -> tuple[int, int, int]:
    """(the id enqueue returned, the database clock's second before and after the call)."""
    second = "floor(extract(epoch FROM clock_timestamp()))::bigint"
    with db.transaction():
        before = db.execute(f"SELECT {second}").fetchone()[0]
        row_id = db.execute("SELECT ievents.enqueue(%s::jsonb)", (json.dumps(event),)).fetchone()[0]
        after = db.execute(f"SELECT {second}").fetchone()[0]
    return int(row_id), int(before), int(after)


def created_at(pg_uri: str, row_id: int) -> Any:
    [(payload,)] = sql(pg_uri, "SELECT payload FROM ievents.events WHERE id = %s", (row_id,))
    return json.loads(payload)["created_at"]


def test_now_and_a_missing_created_at_are_resolved_at_each_enqueue(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    """Before version 2, "now" was stored as is and every call made the same row."""
    env = {"IEVENTS_OUTBOX": pg_uri}
    assert run_cli("flush", env=env).code == 0  # the schema, made by its owner
    # Rows enqueued without a workspace go to the schema's default only (issue 22).
    assert run_cli("outbox", "default-workspace", "abc123xy", env=env).code == 0
    grant_enqueue(pg_uri)
    now_event = {"event_name": "ping", "user_id": "7", "created_at": "now"}
    ids: dict[int, int] = {}  # created_at as stored -> the id enqueue returned
    with psycopg.connect(app_uri(pg_uri), autocommit=True) as app:
        # Separate transactions until the database's clock has moved on twice: what is
        # waited for is the clock's reading (observable), not a length of time.
        deadline = time.monotonic() + 30
        while len(ids) < 3:
            assert time.monotonic() < deadline, "the database clock did not move"
            row_id, before, after = enqueue_in_own_transaction(app, now_event)
            created = created_at(pg_uri, row_id)
            assert isinstance(created, int) and before <= created <= after, (before, created)
            assert ids.setdefault(created, row_id) == row_id  # same second: the same event
        missing_id, before, after = enqueue_in_own_transaction(
            app, {"event_name": "nodate", "user_id": "7"}
        )
    assert len(set(ids.values())) == 3, ids  # one event per second, not one in all
    assert before <= created_at(pg_uri, missing_id) <= after
    flushed = run_cli("flush", "--json", env=env)
    assert flushed.code == 0 and flushed.json()["delivered"] == 4, flushed
    sent = sorted(e["created_at"] for e in fake.events_posted() if e["event_name"] == "ping")
    assert sent == sorted(ids)


def test_enqueue_refuses_an_event_over_64_kib_naming_the_limit(
    run_cli: RunCli, pg_uri: str
) -> None:
    assert run_cli("flush", env={"IEVENTS_OUTBOX": pg_uri}).code == 0  # the schema, by its owner
    grant_enqueue(pg_uri)
    small = {"event_name": "e", "user_id": "1", "metadata": {"note": "x" * 1000}}
    huge = {"event_name": "e", "user_id": "1", "metadata": {"note": "x" * MAX_EVENT_BYTES}}
    with psycopg.connect(app_uri(pg_uri), autocommit=True) as app:
        assert app.execute("SELECT ievents.enqueue(%s::jsonb)", (json.dumps(small),)).fetchone()
        with pytest.raises(psycopg.errors.ProgramLimitExceeded) as refused:
            app.execute("SELECT ievents.enqueue(%s::jsonb)", (json.dumps(huge),))
    message = str(refused.value)
    assert "65536" in message and "64 KiB" in message and "ievents.enqueue" in message
    assert sql(pg_uri, "SELECT count(*) FROM ievents.events") == [(1,)]


def test_a_version_1_schema_is_migrated_in_place(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    for statement in V1_SQL.read_text().split("\n--;\n"):
        if statement.strip():
            sql(pg_uri, statement)
    grant_enqueue(pg_uri)
    sql(
        pg_uri, 'SELECT ievents.enqueue(\'{"event_name": "old", "user_id": "1", "created_at": 5}\')'
    )
    # An in-flight claim of a version-1 relay (an advisory-lock key, a lease far away).
    sql(
        pg_uri,
        "INSERT INTO ievents.events (dedup_key, payload, event_name, state, created, updated, "
        "next_attempt_at, owner, lease_expires_at, claim_session) VALUES ('held', "
        '\'{"event_name": "held", "user_id": "1", "created_at": 6}\', \'held\', '
        "'in_flight', 6, 6, 6, 'old-relay:1:-:x', 1e12, 12345)",
    )
    big = json.dumps({"event_name": "big", "user_id": "1", "metadata": {"n": "x" * 100_000}})
    sql(pg_uri, "SELECT ievents.enqueue(%s::jsonb)", (big,))  # version 1 took it
    status = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": pg_uri})
    assert status.code == 0, status
    assert status.json()["schema_version"] == SCHEMA_VERSION == 3
    assert sql(pg_uri, "SELECT value FROM ievents.meta WHERE key = 'schema_version'") == [("3",)]
    rows = {
        name: (state, session, message)
        for name, state, session, message in sql(
            pg_uri,
            "SELECT event_name, state, claim_session, last_error_message FROM ievents.events",
        )
    }
    assert rows["old"][0] == "pending"
    assert rows["held"][:2] == ("in_flight", None)  # kept; it comes back by its lease
    assert rows["big"][0] == "dead" and "65536" in rows["big"][2]
    assert sql(pg_uri, "SELECT count(claim_token) FROM ievents.events") == [(0,)]
    # The function is the new one, and the application's grant survived the migration.
    with psycopg.connect(app_uri(pg_uri), autocommit=True) as app:
        app.execute(
            'SELECT ievents.enqueue(\'{"event_name": "new", "user_id": "2", "created_at": "now"}\')'
        )
    [(payload,)] = sql(pg_uri, "SELECT payload FROM ievents.events WHERE event_name = 'new'")
    assert isinstance(json.loads(payload)["created_at"], int)
    # Rows enqueued before version 3 name no workspace: they wait for the default.
    env = {"IEVENTS_OUTBOX": pg_uri}
    waiting = run_cli("flush", "--json", env=env)
    assert waiting.json()["waiting_for_workspace"] == [{"workspace": None, "events": 2}]
    assert run_cli("outbox", "default-workspace", "abc123xy", env=env).code == 0
    flushed = run_cli("flush", "--json", env=env)
    assert flushed.code == 0 and flushed.json()["delivered"] == 2, flushed
    assert sorted(e["event_name"] for e in fake.events_posted()) == ["new", "old"]
