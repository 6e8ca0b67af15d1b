"""Fencing tokens on both stores: a result counts only while its row still carries the
claim it came from; a renewal names the rows still held; and the SQLite file's migration
to version 4 (the token column).

The stores through their Python API (real SQLite files, the real test server).
"""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import RunCli
from helpers import event as numbered_event

from intercom_events_cli.outbox import RowResult, State
from intercom_events_cli.outbox.sqlite_file import SCHEMA_VERSION
from intercom_events_cli.outbox.store import OutboxStore, open_store

CREATED = 1_700_000_000


@pytest.fixture(params=["sqlite", "postgres"])
def location(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgres":
        return str(request.getfixturevalue("pg_uri"))
    return str(tmp_path / "outbox.sqlite3")


@pytest.fixture
def store(request: pytest.FixtureRequest, location: str) -> OutboxStore:
    opened = open_store(location, {})
    request.addfinalizer(opened.close)
    return opened


def test_a_stale_claims_results_are_ignored(store: OutboxStore, location: str) -> None:
    store.add_many([numbered_event(1, "e"), numbered_event(2, "e")], now=1000.0)
    first = store.claim("stale", 10, lease_s=10, now=1000.0)
    assert len(first) == 2 and all(row.claim_token is not None for row in first)
    # The lease ran out; another claimer took both rows and delivered the first one.
    with open_store(location, {}) as other:
        second = other.claim("fresh", 10, lease_s=10, now=1020.0)
    assert [row.id for row in second] == [row.id for row in first]
    assert {row.claim_token for row in second}.isdisjoint({row.claim_token for row in first})
    one, two = second
    store.record(
        "fresh", [RowResult(one.id, State.DELIVERED, status=202, claim_token=one.claim_token)]
    )
    # The stale sender's results: neither a failure nor a delivery of a row another holds.
    stale = [
        RowResult(first[0].id, State.DEAD, status=422, claim_token=first[0].claim_token),
        RowResult(first[1].id, State.DELIVERED, status=202, claim_token=first[1].claim_token),
    ]
    assert store.record("stale", stale) == 0
    rows = {row.id: row for row in store.rows(list(State))}
    assert rows[one.id].state is State.DELIVERED and rows[one.id].last_status == 202
    assert rows[two.id].state is State.IN_FLIGHT and rows[two.id].owner == "fresh"
    # The holder's own result is written.
    assert (
        store.record(
            "fresh", [RowResult(two.id, State.DEAD, status=422, claim_token=two.claim_token)]
        )
        == 1
    )


def test_a_delivery_is_kept_for_a_row_nobody_holds_any_more(store: OutboxStore) -> None:
    store.add(numbered_event(1, "e"), now=1000.0)
    [row] = store.claim("slow", 1, lease_s=10, now=1000.0)
    assert store.release("slow") == 1  # pending again, e.g. taken back after the lease
    result = RowResult(row.id, State.DELIVERED, status=202, claim_token=row.claim_token)
    assert store.record("slow", [result]) == 1  # it happened, and nobody else sends it
    assert store.rows([State.DELIVERED])[0].id == row.id


def test_renew_names_the_rows_still_held(store: OutboxStore) -> None:
    store.add_many([numbered_event(n, "e") for n in (1, 2, 3)], now=1000.0)
    mine = store.claim("me", 2, lease_s=10, now=1000.0)
    assert sorted(store.renew("me", lease_s=10)) == sorted(row.id for row in mine)
    store.release("me", [mine[0].id])
    assert store.renew("me", lease_s=10) == [mine[1].id]
    assert store.renew("nobody", lease_s=10) == []


def test_a_version_3_file_is_migrated_to_fencing_tokens(tmp_path: Path) -> None:
    path = tmp_path / "v3.sqlite3"
    with closing(sqlite3.connect(path)) as raw:
        raw.executescript(
            """
            CREATE TABLE destinations (
                id INTEGER PRIMARY KEY, base_url TEXT NOT NULL, api_version TEXT NOT NULL,
                token_fingerprint TEXT NOT NULL, token_hint TEXT NOT NULL,
                failing_since REAL, last_failure_at REAL, last_success_at REAL,
                UNIQUE (base_url, api_version, token_fingerprint)
            );
            CREATE TABLE events (
                id INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL UNIQUE,
                payload TEXT NOT NULL, event_name TEXT NOT NULL, state TEXT NOT NULL
                    CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
                attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error_code TEXT,
                last_error_message TEXT, request_id TEXT, created REAL NOT NULL,
                updated REAL NOT NULL, next_attempt_at REAL NOT NULL, owner TEXT,
                lease_expires_at REAL, source TEXT, source_line INTEGER,
                destination_id INTEGER REFERENCES destinations (id)
            );
            CREATE INDEX events_by_state ON events (state, created);
            CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
            INSERT INTO events (dedup_key, payload, event_name, state, created, updated,
                next_attempt_at, owner, lease_expires_at) VALUES
                ('k1', '{"event_name":"a","created_at":1,"user_id":"1"}', 'a', 'pending',
                 1, 1, 1, NULL, NULL),
                ('k2', '{"event_name":"a","created_at":2,"user_id":"1"}', 'a', 'in_flight',
                 2, 2, 2, 'other-host:1:-:x', 1000);
            PRAGMA user_version = 3;
            """
        )
    with open_store(str(path), {}) as store:
        assert store.summary().schema_version == SCHEMA_VERSION == 5
        rows = {row.dedup_key: row for row in store.rows(list(State))}
        assert rows["k1"].state is State.PENDING and rows["k1"].claim_token is None
        # A claim made before the migration holds until its lease ends, token or not.
        assert rows["k2"].state is State.IN_FLIGHT and rows["k2"].lease_expires_at == 1000
        assert [r.dedup_key for r in store.claim("me", 10, lease_s=9000, now=500.0)] == ["k1"]
        [taken] = store.claim("me", 10, now=1001.0)
        assert taken.dedup_key == "k2" and taken.claim_token is not None
        result = RowResult(taken.id, State.DELIVERED, status=202, claim_token=taken.claim_token)
        assert store.record("me", [result]) == 1
    with closing(sqlite3.connect(path)) as check:
        assert check.execute("PRAGMA user_version").fetchone()[0] == 5
        columns = [row[1] for row in check.execute("PRAGMA table_info(events)")]
        assert "claim_token" in columns


@pytest.mark.parametrize("watch", [False, True])
def test_a_lease_that_is_not_a_length_is_a_configuration_error(
    run_cli: RunCli, watch: bool
) -> None:
    assert run_cli("send", "e", "--user-id", "1", "--queue").code == 0
    result = run_cli("flush", *(["--watch"] if watch else []), env={"IEVENTS_LEASE_S": "0"})
    assert result.code == 78, result
    assert "IEVENTS_LEASE_S='0' is not a lease length" in result.stderr
    assert "between 1 and 86400" in result.stderr
