"""Bulk capture into the SQLite outbox: the statements and the rows already there.

:meth:`Outbox.queue_many <intercom_events_cli.outbox.sqlite.Outbox.queue_many>` inserts a
chunk with one statement that skips a key already stored (:data:`INSERT_NEW`); only when
it skipped some does it look them up, to requeue or adopt them (:func:`settle_known`).
"""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Sequence
from typing import Any

from .rows import COLUMNS, OutboxRow, State
from .sql_parts import IDS_PER_QUERY

INSERT_NEW = (
    "INSERT INTO events (dedup_key, payload, event_name, state, attempts, created, updated, "
    "next_attempt_at, source, source_line, destination_id) "
    "SELECT ?1, ?2, ?3, 'pending', 0, ?4, ?4, ?4, ?5, ?6, ?7 "
    "WHERE NOT EXISTS (SELECT 1 FROM events WHERE dedup_key = ?1)"
)
LAST_ID = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
BULK_CACHE_KIB = 32 * 1024
BULK_CHECKPOINT_PAGES = 10_000  # of 4 KiB: 40 MiB (SQLite's default: 1,000)
REQUEUE = (
    "UPDATE events SET state = 'pending', attempts = 0, last_status = NULL, "
    "last_error_code = NULL, last_error_message = NULL, request_id = NULL, updated = ?, "
    "next_attempt_at = ?, source = ?, source_line = ?, destination_id = ? WHERE id = ?"
)


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
