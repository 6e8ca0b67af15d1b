"""Bulk capture into the SQLite outbox: the statements and the rows already there.

:meth:`SqliteOutbox.queue_rows <intercom_events_cli.outbox.sqlite.SqliteOutbox.queue_rows>`
inserts a chunk's rows (:func:`insert_new`): first as plain inserts, which is all a chunk
of new events needs; when a key is already stored, the chunk goes again with a statement
that skips stored keys (:data:`INSERT_NEW`), and only then are those looked up, to
requeue or adopt them (:func:`settle_known`).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Collection, Sequence

from .rows import COLUMNS, BulkRow, OutboxRow, State
from .sql_parts import IDS_PER_QUERY

_COLUMNS = (
    "dedup_key, payload, event_name, state, attempts, created, updated, next_attempt_at, "
    "source, source_line, destination_id"
)
# The chunk as one JSON array of [key, body, name, line] bound as ?1: one statement stores
# it all, and SQLite runs it start to end without holding Python's lock (the GIL), so the
# reading thread goes on parsing meanwhile. (``executemany`` takes the GIL back after each
# row, and a thread that is parsing holds it for milliseconds at a time.)
_FROM_JSON = (
    "SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), "
    "json_extract(value, '$[2]'), 'pending', 0, ?2, ?2, ?2, ?3, json_extract(value, '$[3]'), ?4 "
    "FROM json_each(?1)"
)
INSERT_PLAIN = f"INSERT INTO events ({_COLUMNS}) {_FROM_JSON}"
# Skips keys already stored without using up an id (AUTOINCREMENT); a third dearer than
# INSERT_PLAIN, which fails on a stored key (the UNIQUE dedup_key) inside a savepoint.
INSERT_NEW = (
    f"INSERT INTO events ({_COLUMNS}) {_FROM_JSON} WHERE NOT EXISTS "
    "(SELECT 1 FROM events WHERE dedup_key = json_extract(value, '$[0]'))"
)
# The same two statements a row at a time (``executemany``), for a SQLite built without
# its JSON functions (before 3.38 they were a build option; see json_functions).
_ROW = "?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4, ?5, ?6, ?7"
INSERT_PLAIN_ROWS = f"INSERT INTO events ({_COLUMNS}) VALUES ({_ROW})"
INSERT_NEW_ROWS = (
    f"INSERT INTO events ({_COLUMNS}) SELECT {_ROW} "
    "WHERE NOT EXISTS (SELECT 1 FROM events WHERE dedup_key = ?1)"
)
LAST_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
BULK_CACHE_KIB = 24 * 1024
BULK_CHECKPOINT_PAGES = 10_000  # of 4 KiB: 40 MiB (SQLite's default: 1,000)
REQUEUE = (
    "UPDATE events SET state = 'pending', attempts = 0, last_status = NULL, "
    "last_error_code = NULL, last_error_message = NULL, request_id = NULL, updated = ?, "
    "next_attempt_at = ?, source = ?, source_line = ?, destination_id = ? WHERE id = ?"
)


def first_of_each_key(rows: Sequence[BulkRow]) -> Sequence[BulkRow]:
    """``rows`` without a key's later repeats (the first line of an event stays)."""
    unique: dict[str, BulkRow] = {}
    for row in rows:
        if row[0] not in unique:
            unique[row[0]] = row
    return list(unique.values()) if len(unique) < len(rows) else rows


def json_functions(db: sqlite3.Connection) -> bool:
    """Whether this SQLite has ``json_each`` and ``json_extract`` (built in since 3.38,
    a build option before: Python's own builds and the usual distributions have them)."""
    try:
        db.execute("SELECT json_extract(value, '$[0]') FROM json_each('[[1]]')").fetchall()
    except sqlite3.OperationalError:
        return False
    return True


def insert_new(
    db: sqlite3.Connection,
    rows: Sequence[BulkRow],
    stamp: float,
    source: str | None,
    destination_id: int | None,
    *,
    as_json: bool = True,
) -> tuple[int, bool]:
    """Insert the rows whose key is not stored yet (inside the caller's transaction;
    ``rows`` hold each key once).

    Returns (inserted, whether some key was already stored). A chunk of new events, the
    common case, goes in with plain inserts. When one of its keys is stored, the insert
    fails: the savepoint undoes the rows before it (and the ids they took), and the chunk
    goes again with :data:`INSERT_NEW`, which skips stored keys without using up an id
    (AUTOINCREMENT): the outcome is INSERT_NEW's alone. ``as_json`` False: a row at a
    time, for a SQLite without JSON functions (:func:`json_functions`).
    """
    if as_json:
        chunk = json.dumps(rows, ensure_ascii=False, separators=(",", ":"), check_circular=False)
        args = (chunk, stamp, source, destination_id)

        def insert(statement: str) -> int:
            return db.execute(statement, args).rowcount

        plain, new = INSERT_PLAIN, INSERT_NEW
    else:
        params = [
            (key, body, name, stamp, source, line, destination_id) for key, body, name, line in rows
        ]

        def insert(statement: str) -> int:
            return db.executemany(statement, params).rowcount

        plain, new = INSERT_PLAIN_ROWS, INSERT_NEW_ROWS
    db.execute("SAVEPOINT bulk_plain")
    try:
        inserted = insert(plain)
    except sqlite3.IntegrityError:
        db.execute("ROLLBACK TO bulk_plain")
        db.execute("RELEASE bulk_plain")
        inserted = insert(new)
        return inserted, inserted < len(rows)
    db.execute("RELEASE bulk_plain")
    return inserted, False


def settle_known(
    db: sqlite3.Connection,
    before: int,
    stamp: float,
    requeue: Collection[State],
    rows: Sequence[BulkRow],
    source: str | None,
    destination_id: int | None,
) -> int:
    """The events of a bulk capture that were here before it (rows up to id
    ``before``): made pending again when their state is in ``requeue``, adopted by the
    source when pending or in flight. Returns how many were made pending again."""
    requeued = 0
    known = known_rows(db, [row[0] for row in rows])
    for key, _body, _name, line in rows:
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
