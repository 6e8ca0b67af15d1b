"""``batch --queue`` stores each event exactly as ``send --queue`` stores it.

Bulk capture has its own reader (blocks), its own validation path (plain records inline)
and its own insert (one statement per chunk): on a file of awkward records, the rows it
stores (key, payload, event name) are the rows ``send --queue`` stores one by one.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

from conftest import RunCli

RECORDS: list[dict[str, Any]] = [
    {"event_name": "signed-up", "user_id": "u1", "created_at": 1_700_000_000},
    {"event_name": "paid", "user_id": 42, "created_at": "2024-01-31T12:00:00Z"},
    {"event_name": "paid", "email": "ana@example.org", "created_at": "2024-01-31T13:00:00+0100"},
    {"event_name": "café ☕", "id": "6543a1", "created_at": 1_700_000_000_123},
    {"event_name": "x", "user_id": "u2", "created_at": "1700000005", "metadata": {"n": 1.5}},
    {
        "event_name": "ordered",
        "user_id": "u3",
        "email": "u3@example.org",
        "created_at": 1_700_000_010,
        "metadata": {
            "plan": "pro",
            "seats": -3,
            "renewal_date": "2024-02-01T00:00:00Z",
            "trial_date": 1_700_000_000_000,
            "invoice": {"url": "https://example.org/i/1", "value": "INV-1"},
            "price": {"amount": 2999, "currency": "usd"},
            "note": "ünïcödé 😀",
            "long": "y" * 255,
        },
    },
    {"event_name": "z", "user_id": "u4", "created_at": 1_700_000_020, "_line": 9},
]


def send_args(record: dict[str, Any]) -> list[str]:
    """The ``send --queue`` arguments for one record."""
    args = ["send", record["event_name"], "--queue", "--created-at", str(record["created_at"])]
    for field, option in (("user_id", "--user-id"), ("email", "--email"), ("id", "--id")):
        if field in record:
            args += [option, str(record[field])]
    if "metadata" in record:
        args += ["--metadata-json", json.dumps(record["metadata"])]
    return args


def stored(outbox: Path) -> set[tuple[str, str, str]]:
    with sqlite3.connect(outbox) as db:
        rows = db.execute("SELECT dedup_key, payload, event_name FROM events").fetchall()
    return {(key, payload, name) for key, payload, name in rows}


def test_batch_queue_stores_the_rows_send_queue_stores(run_cli: RunCli, tmp_path: Path) -> None:
    lines = [json.dumps(record, ensure_ascii=False) for record in RECORDS]
    # A BOM, CRLF endings, a blank line, a bad line and a duplicate around the records.
    text = "\ufeff" + "\r\n".join([lines[0], "", "{oops", *lines[1:], lines[1]]) + "\r\n"
    source = tmp_path / "tricky.ndjson"
    source.write_bytes(text.encode("utf-8"))
    bulk, single = tmp_path / "bulk.sqlite3", tmp_path / "single.sqlite3"

    result = run_cli("batch", str(source), "--queue", env={"IEVENTS_OUTBOX": str(bulk)})
    assert result.code == 65, result.stderr  # the bad line; every other record is stored
    assert "line 3: not valid JSON" in result.stderr
    for record in RECORDS:
        sent = run_cli(*send_args(record), env={"IEVENTS_OUTBOX": str(single)})
        assert sent.code == 0, sent.stderr

    rows = stored(bulk)
    assert len(rows) == len(RECORDS)
    assert rows == stored(single)
