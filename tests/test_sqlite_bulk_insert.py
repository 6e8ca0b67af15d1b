"""SQLite bulk capture's two paths (``outbox/sqlite_bulk.py`` ``insert_new``), each in
both forms (a chunk as one JSON array, or a row at a time where SQLite has no JSON
functions).

A chunk of new events goes in with plain inserts; a chunk holding a key already stored
fails that way, is undone to a savepoint and goes again skipping stored keys. The
outcome must be the same as if only the second way existed: the same counts, no id used
up by the undone inserts (AUTOINCREMENT), the rows stored before left as they were.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from helpers import event

from intercom_events_cli.event import Event
from intercom_events_cli.outbox import SqliteOutbox, State


@pytest.fixture(autouse=True, params=["json", "rows"])
def insert_form(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Each test with a chunk as one statement over a JSON array (SQLite's JSON
    functions), then a row at a time (a SQLite built without them)."""
    if request.param == "rows":
        monkeypatch.setattr("intercom_events_cli.outbox.sqlite.json_functions", lambda db: False)
    return str(request.param)


def test_this_sqlite_has_its_json_functions_and_bulk_capture_uses_them(
    tmp_path: Path, insert_form: str
) -> None:
    from intercom_events_cli.outbox.sqlite_bulk import json_functions

    with sqlite3.connect(":memory:") as db:
        assert json_functions(db)
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        assert store.queue_many([event(1)]) == (1, 0)
        assert store._json_chunks is (insert_form == "json")


def ids_by_user(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {
            key: id_
            for id_, key in db.execute(
                "SELECT id, json_extract(payload, '$.user_id') FROM events ORDER BY id"
            )
        }


def sequence(path: Path) -> int:
    with sqlite3.connect(path) as db:
        query = "SELECT seq FROM sqlite_sequence WHERE name = 'events'"
        return int(db.execute(query).fetchone()[0])


def test_a_chunk_of_new_events_is_stored_with_consecutive_ids(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    with SqliteOutbox.open(path) as store:
        events = [event(n) for n in range(5)]
        assert store.queue_many(events, source="run", source_lines=[1, 2, 3, 4, 5]) == (5, 0)
        rows = sorted(store.rows([State.PENDING]), key=lambda r: r.id)
    assert [r.id for r in rows] == [1, 2, 3, 4, 5]
    assert [r.source_line for r in rows] == [1, 2, 3, 4, 5]
    assert [r.dedup_key for r in rows] == [e.dedup_key() for e in events]
    assert sequence(path) == 5


def test_a_stored_key_amid_new_ones_uses_up_no_id_and_keeps_the_stored_row(
    tmp_path: Path,
) -> None:
    path = tmp_path / "outbox.sqlite3"
    with SqliteOutbox.open(path) as store:
        assert store.queue_many([event(2)], source="run-1", source_lines=[9]) == (1, 0)
        # The stored key comes after new ones: the plain inserts before it are undone.
        chunk = [event(0), event(1), event(2), event(3), event(3)]
        stored = store.queue_many(chunk, source="run-2", source_lines=[1, 2, 3, 4, 5])
        assert stored == (3, 2)  # event 2 was there, event 3 came twice
        rows = {r.payload["user_id"]: r for r in store.rows([State.PENDING])}
    assert ids_by_user(path) == {"u2": 1, "u0": 2, "u1": 3, "u3": 4}
    assert sequence(path) == 4
    # The pending row stored before is adopted by the new run, not made again.
    assert (rows["u2"].id, rows["u2"].source, rows["u2"].source_line) == (1, "run-2", 3)
    assert rows["u3"].source_line == 4


def test_rows_keep_the_events_canonical_body_and_name(tmp_path: Path) -> None:
    path = tmp_path / "outbox.sqlite3"
    unusual = Event.create("café ☕", user_id="ü", created_at=1, metadata={"b": 1, "a": "x"})
    with SqliteOutbox.open(path) as store:
        assert store.queue_many([unusual]) == (1, 0)
    with sqlite3.connect(path) as db:
        query = "SELECT dedup_key, payload, event_name FROM events"
        key, payload, name = db.execute(query).fetchone()
    assert (key, payload, name) == (
        unusual.dedup_key(),
        unusual.canonical_json(),
        unusual.event_name,
    )
