"""Bulk capture into the SQLite outbox: the statements and the rows already there.

:meth:`Outbox.queue_many <intercom_events_cli.outbox.sqlite.Outbox.queue_many>` builds a
chunk's rows (:func:`new_rows`) and inserts them (:func:`insert_new`): first as plain
inserts, which is all a chunk of new events needs; when a key is already stored, the
chunk goes again with a statement that skips stored keys (:data:`INSERT_NEW`), and only
then are those looked up, to requeue or adopt them (:func:`settle_known`).
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from ..event import Event
from .rows import COLUMNS, OutboxRow, State
from .sql_parts import IDS_PER_QUERY

INSERT_NEW = (
    "INSERT INTO events (dedup_key, payload, event_name, state, attempts, created, updated, "
    "next_attempt_at, source, source_line, destination_id) "
    "SELECT ?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4, ?5, ?6, ?7 "
    "WHERE NOT EXISTS (SELECT 1 FROM events WHERE dedup_key = ?1)"
)
# The plain form: a third cheaper than INSERT_NEW for SQLite (no subquery per row), but a
# stored key makes it fail (the UNIQUE dedup_key), so it runs inside a savepoint.
INSERT_PLAIN = (
    "INSERT INTO events (dedup_key, payload, event_name, state, attempts, created, updated, "
    "next_attempt_at, source, source_line, destination_id) "
    "VALUES (?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4, ?5, ?6, ?7)"
)
LAST_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
BULK_CACHE_KIB = 32 * 1024
BULK_CHECKPOINT_PAGES = 10_000  # of 4 KiB: 40 MiB (SQLite's default: 1,000)
REQUEUE = (
    "UPDATE events SET state = 'pending', attempts = 0, last_status = NULL, "
    "last_error_code = NULL, last_error_message = NULL, request_id = NULL, updated = ?, "
    "next_attempt_at = ?, source = ?, source_line = ?, destination_id = ? WHERE id = ?"
)


def new_rows(
    events: Sequence[Event],
    stamp: float,
    source: str | None,
    source_lines: Sequence[int] | None,
    destination_id: int | None,
) -> list[tuple[Any, ...]]:
    """The rows for :data:`INSERT_NEW` / :data:`INSERT_PLAIN`, one per key (a key's first
    event: a duplicate later in the chunk is skipped).

    The key is :meth:`Event.dedup_key`, computed here from the canonical text taken once:
    each call through the Event's cached properties costs about as much as the hash.
    """
    sha256 = hashlib.sha256
    rows: dict[str, tuple[Any, ...]] = {}
    for index, event in enumerate(events):
        text = event.canonical_json()
        key = sha256(text.encode()).hexdigest()
        if key not in rows:
            line = source_lines[index] if source_lines is not None else None
            rows[key] = (key, text, event.event_name, stamp, source, line, destination_id)
    return list(rows.values())


def insert_new(db: sqlite3.Connection, rows: Sequence[tuple[Any, ...]]) -> tuple[int, bool]:
    """Insert the rows whose key is not stored yet (inside the caller's transaction).

    Returns (inserted, whether some key was already stored). A chunk of new events, the
    common case, goes in with plain inserts. When one of its keys is stored, the first
    such insert fails: the savepoint undoes the rows before it (and the ids they took),
    and the chunk goes again with :data:`INSERT_NEW`, which skips stored keys without
    using up an id (AUTOINCREMENT): the outcome is INSERT_NEW's alone.
    """
    db.execute("SAVEPOINT bulk_plain")
    try:
        inserted = db.executemany(INSERT_PLAIN, rows).rowcount
    except sqlite3.IntegrityError:
        db.execute("ROLLBACK TO bulk_plain")
        db.execute("RELEASE bulk_plain")
        inserted = db.executemany(INSERT_NEW, rows).rowcount
        return inserted, inserted < len(rows)
    db.execute("RELEASE bulk_plain")
    return inserted, False


def settle_known(
    db: sqlite3.Connection,
    before: int,
    stamp: float,
    requeue: Collection[State],
    new_rows: Sequence[tuple[Any, ...]],
) -> int:
    """The events of a bulk capture that were here before it (rows up to id
    ``before``): made pending again when their state is in ``requeue``, adopted by the
    source when pending or in flight. Returns how many were made pending again."""
    requeued = 0
    known = known_rows(db, [row[0] for row in new_rows])
    for key, _source, _name, _stamp, source, line, destination_id in new_rows:
        row = known[key]
        if row.id > before:
            continue  # inserted just now
        if row.state in requeue:
            db.execute(REQUEUE, (stamp, stamp, source, line, destination_id, row.id))
            requeued += 1
        elif source is not None and row.state in (State.PENDING, State.IN_FLIGHT):
            db.execute(
                "UPDATE events SET source = ?, source_line = ? WHERE id = ?",
                (source, line, row.id),
            )
    return requeued


def known_rows(db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, OutboxRow]:
    """The rows already stored for these keys, by key.

    Looked up first, a chunk of keys per query: a refused INSERT would still use up an id
    (AUTOINCREMENT), and one query per chunk is much cheaper than one per event.
    """
    known: dict[str, OutboxRow] = {}
    for start in range(0, len(keys), IDS_PER_QUERY):
        part = keys[start : start + IDS_PER_QUERY]
        marks = ",".join("?" * len(part))
        for values in db.execute(
            f"SELECT {COLUMNS} FROM events WHERE dedup_key IN ({marks})", part
        ):
            found = OutboxRow.from_db(values)
            known[found.dedup_key] = found
    return known
