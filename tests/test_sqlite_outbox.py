"""What only the SQLite outbox has, on real files: the file (modes, header, WAL, locks,
files that are not an outbox), its migrations, claimers known by their process id, and the
``SqliteOutbox`` class's own ``add_many``.

What every backend does alike is ``test_store_conformance.py``'s.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import event

from intercom_events_cli.errors import ExitCode, OutboxError
from intercom_events_cli.event import Event
from intercom_events_cli.outbox import (
    SCHEMA_VERSION,
    RowResult,
    SqliteOutbox,
    State,
    new_owner,
    owner_is_gone,
)

IS_ROOT = hasattr(os, "geteuid") and os.geteuid() == 0


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "state" / "ievents" / "outbox.sqlite3"


@pytest.fixture
def store(path: Path) -> Iterator[SqliteOutbox]:
    with SqliteOutbox.open(path) as opened:
        yield opened


def mode(target: Path) -> int:
    return stat.S_IMODE(os.stat(target).st_mode)


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


# -- creation, modes, schema ------------------------------------------------------------------


def test_new_outbox_is_private_and_versioned(store: SqliteOutbox, path: Path) -> None:
    store.add(event())  # writes, so the WAL and shared-memory files exist while open
    assert mode(path.parent) == 0o700
    assert mode(path) == 0o600
    side_files = [Path(f"{path}-wal"), Path(f"{path}-shm")]
    assert all(p.exists() for p in side_files)
    assert all(mode(p) == 0o600 for p in side_files)
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    raw.close()


def test_existing_folder_keeps_its_mode(tmp_path: Path) -> None:
    folder = tmp_path / "shared"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    SqliteOutbox.open(folder / "o.sqlite3").close()
    assert mode(folder) == 0o755  # not ours to change
    assert mode(folder / "o.sqlite3") == 0o600


# -- files that cannot be used -------------------------------------------------------------------


def test_garbage_file_is_refused_and_left_alone(path: Path) -> None:
    path.parent.mkdir(parents=True)
    garbage = b"this is not a database\x00\xff" * 100
    path.write_bytes(garbage)
    with pytest.raises(OutboxError) as caught:
        SqliteOutbox.open(path)
    assert str(path) in caught.value.message
    assert caught.value.exit_code is ExitCode.CONFIG
    assert path.read_bytes() == garbage


def test_damaged_database_is_refused_and_left_alone(path: Path) -> None:
    with SqliteOutbox.open(path) as store:
        store.add_many([event(n) for n in range(50)])
    data = bytearray(path.read_bytes())
    data[100:4096] = b"\xab" * (4096 - 100)  # keep the header, wreck the schema page
    path.write_bytes(bytes(data))
    with pytest.raises(OutboxError) as caught:
        with SqliteOutbox.open(path) as store:
            store.summary()
    assert str(path) in caught.value.message
    assert path.read_bytes() == bytes(data)


def test_foreign_database_is_refused(path: Path) -> None:
    path.parent.mkdir(parents=True)
    raw = sqlite3.connect(path)
    raw.execute("CREATE TABLE accounts (id INTEGER)")
    raw.commit()
    raw.close()
    before = path.read_bytes()
    with pytest.raises(OutboxError, match="not an ievents outbox"):
        SqliteOutbox.open(path)
    assert path.read_bytes() == before


def test_newer_schema_is_refused(path: Path) -> None:
    SqliteOutbox.open(path).close()
    raw = sqlite3.connect(path)
    raw.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    raw.commit()
    raw.close()
    with pytest.raises(OutboxError, match="newer ievents"):
        SqliteOutbox.open(path)


def test_locked_outbox_gives_a_clear_error(path: Path) -> None:
    SqliteOutbox.open(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with SqliteOutbox.open(path, busy_timeout_s=0.2) as store:
            with pytest.raises(OutboxError, match="locked") as caught:
                store.add(event())
            assert str(path) in caught.value.message
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with SqliteOutbox.open(path) as store:
        assert store.add(event()).added


def test_folder_instead_of_file(tmp_path: Path) -> None:
    with pytest.raises(OutboxError, match="is a folder"):
        SqliteOutbox.open(tmp_path)


@pytest.mark.skipif(IS_ROOT, reason="root reads any file")
def test_unreadable_file_gives_a_clear_error(path: Path) -> None:
    SqliteOutbox.open(path).close()
    os.chmod(path, 0)
    try:
        with pytest.raises(OutboxError, match="cannot read") as caught:
            SqliteOutbox.open(path)
        assert str(path) in caught.value.message
    finally:
        os.chmod(path, 0o600)


# -- claimers known by their process (a claim's owner: host:pid:start:nonce) -------------------


def test_claim_of_a_dead_process_is_taken_back_at_once(store: SqliteOutbox) -> None:
    store.add_many([event(n) for n in range(3)])
    gone = f"{new_owner().rsplit(':', 3)[0]}:{dead_pid()}:-:abcd"
    assert owner_is_gone(gone)
    assert len(store.claim(gone, 10, lease_s=3600)) == 3
    assert len(store.claim(new_owner(), 10)) == 3  # lease far from expired, yet reclaimed


def test_reused_pid_is_recognised(store: SqliteOutbox) -> None:
    host, pid, start, _ = new_owner().rsplit(":", 3)
    if start == "-":
        pytest.skip("process start times are not available here")
    assert owner_is_gone(f"{host}:{pid}:{int(start) + 1}:x")
    assert not owner_is_gone(f"{host}:{pid}:{start}:x")
    assert not owner_is_gone(f"another-host:{dead_pid()}:-:x")


# -- migrations, add_many, opening together ---------------------------------------------------


def test_a_version_1_outbox_is_migrated_in_place(tmp_path: Path) -> None:
    """A file made by the first schema keeps its rows and gains the source columns."""
    path = tmp_path / "v1.sqlite3"
    raw = sqlite3.connect(path)
    raw.executescript(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL, event_name TEXT NOT NULL, state TEXT NOT NULL,
            attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error_code TEXT,
            last_error_message TEXT, request_id TEXT, created REAL NOT NULL,
            updated REAL NOT NULL, next_attempt_at REAL NOT NULL, owner TEXT,
            lease_expires_at REAL
        );
        CREATE INDEX events_by_state ON events (state, created);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO events (dedup_key, payload, event_name, state, created, updated,
            next_attempt_at) VALUES ('k1', '{"event_name":"a","created_at":1,"user_id":"1"}',
            'a', 'pending', 1, 1, 1);
        PRAGMA user_version = 1;
        """
    )
    raw.close()
    with SqliteOutbox.open(path) as store:
        rows = store.rows([State.PENDING])
        assert [(r.dedup_key, r.source, r.source_line) for r in rows] == [("k1", None, None)]
        event = Event.create("b", user_id="2", created_at=5)
        store.add_many([event], source="run-1", source_lines=[7])
        added = [r for r in store.rows([State.PENDING]) if r.event_name == "b"]
        assert [(r.source, r.source_line) for r in added] == [("run-1", 7)]
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
    check.close()


def test_resend_makes_a_delivered_event_pending_again(tmp_path: Path) -> None:
    """--resend reuses the ledger row; without it a delivered event is only reported."""
    with SqliteOutbox.open(tmp_path / "o.sqlite3") as store:
        event = Event.create("a", user_id="1", created_at=5)
        (first,) = store.add_many([event])
        owner = "test-owner"
        store.claim(owner, 10)
        store.record(owner, [RowResult(first.id, State.DELIVERED, status=202)])
        (again,) = store.add_many([event])
        assert (again.added, again.state) == (False, State.DELIVERED)
        (resent,) = store.add_many([event], resend=True)
        assert (resent.added, resent.state, resent.id) == (True, State.PENDING, first.id)
        (pending,) = store.add_many([event], resend=True)
        assert (pending.added, pending.state) == (False, State.PENDING)


def test_the_same_event_twice_in_one_call_is_stored_once(tmp_path: Path) -> None:
    with SqliteOutbox.open(tmp_path / "o.sqlite3") as store:
        one = Event.create("a", user_id="1", created_at=5)
        other = Event.create("a", user_id="2", created_at=5)
        results = store.add_many([one, other, one])
        assert [r.added for r in results] == [True, True, False]
        assert results[2].id == results[0].id
        assert len(store.rows([State.PENDING])) == 2


def test_a_version_2_outbox_is_migrated_to_destinations(tmp_path: Path) -> None:
    """Rows of a version-2 file become unbound; the first configuration to claim binds them."""
    from intercom_events_cli.config.settings import Settings

    path = tmp_path / "v2.sqlite3"
    raw = sqlite3.connect(path)
    raw.executescript(
        """
        CREATE TABLE events (
            id INTEGER PRIMARY KEY AUTOINCREMENT, dedup_key TEXT NOT NULL UNIQUE,
            payload TEXT NOT NULL, event_name TEXT NOT NULL, state TEXT NOT NULL
                CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
            attempts INTEGER NOT NULL DEFAULT 0, last_status INTEGER, last_error_code TEXT,
            last_error_message TEXT, request_id TEXT, created REAL NOT NULL,
            updated REAL NOT NULL, next_attempt_at REAL NOT NULL, owner TEXT,
            lease_expires_at REAL, source TEXT, source_line INTEGER
        );
        CREATE INDEX events_by_state ON events (state, created);
        CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
        INSERT INTO events (dedup_key, payload, event_name, state, created, updated,
            next_attempt_at, source, source_line) VALUES
            ('k1', '{"event_name":"a","created_at":1,"user_id":"1"}', 'a', 'pending', 1, 1, 1,
             'batch:x', 3),
            ('k2', '{"event_name":"a","created_at":2,"user_id":"1"}', 'a', 'pending', 2, 2, 2,
             NULL, NULL);
        INSERT INTO meta VALUES ('last_flush_at', '5.0');
        PRAGMA user_version = 2;
        """
    )
    raw.close()
    us = Settings(token="tok_us_workspace_1234", base_url="http://127.0.0.1:1")
    eu = Settings(token="tok_eu_workspace_9876", base_url="http://127.0.0.1:2")
    with SqliteOutbox.open(path) as store:
        rows = store.rows([State.PENDING])
        assert [(r.dedup_key, r.source_line, r.destination_id) for r in rows] == [
            ("k1", 3, None),
            ("k2", None, None),
        ]
        assert store.summary().schema_version == SCHEMA_VERSION
        assert store.summary().last_flush_at == 5.0
        us_id, eu_id = store.bind(us), store.bind(eu)
        assert us_id != eu_id and store.bind(us) == us_id
        # Only the fingerprint is kept: no token in the file.
        other = Event.create("b", user_id="2", created_at=5)
        new = store.add(other, destination_id=eu_id)
        claimed = store.claim("me", 10, destination_id=us_id)
        assert [r.dedup_key for r in claimed] == ["k1", "k2"]  # unbound: taken and bound
        assert store.claim("other", 10, destination_id=us_id) == []
        assert [(d.base_url, n) for d, n in store.waiting_elsewhere(us_id)] == [
            ("http://127.0.0.1:2", 1)
        ]
        assert store.rows([State.PENDING])[0].id == new.id
    text = path.read_bytes()
    assert b"tok_us_workspace_1234" not in text and b"tok_eu_workspace_9876" not in text
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    bound = check.execute("SELECT dedup_key, destination_id FROM events ORDER BY id").fetchall()
    assert bound == [
        ("k1", us_id),
        ("k2", us_id),
        (new.row.dedup_key if new.row else bound[2][0], eu_id),
    ]
    key = check.execute("SELECT value FROM meta WHERE key = 'fingerprint_key'").fetchone()[0]
    assert len(bytes.fromhex(key)) == 32
    check.close()


def test_processes_opening_a_new_outbox_at_the_same_moment_all_get_it(tmp_path: Path) -> None:
    """Two cron jobs queueing at the same minute on a new outbox: neither fails.

    The creator's tables, committed between another opener's two reads, made that opener
    call the file foreign (exit 78); and switching to WAL answered "database is locked" at
    once. Four openers start together on each of 50 new files (the race showed in about
    one file in four before the fix).
    """
    import threading

    failures: list[BaseException] = []
    for n in range(50):
        path = tmp_path / f"new-{n}.sqlite3"
        start = threading.Barrier(4)

        def open_it(path: Path = path, start: threading.Barrier = start) -> None:
            start.wait()
            try:
                SqliteOutbox.open(path).close()
            except OutboxError as exc:
                failures.append(exc)

        openers = [threading.Thread(target=open_it) for _ in range(4)]
        for opener in openers:
            opener.start()
        for opener in openers:
            opener.join()
        with SqliteOutbox.open(path) as opened:
            assert opened.summary().schema_version == SCHEMA_VERSION
    assert failures == []
