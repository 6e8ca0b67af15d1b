"""Found by the outside hunt on batch's capture path: the largest events Intercom takes
(10 metadata values of 255 characters) made ``batch --queue`` peak at 1 GiB of memory
(20,000 of them; 408 MiB before the writing thread), against 73 MiB for small events.

A chunk was 10,000 records whatever their size, and while it is stored it is alive
several times over (its rows, their JSON array, SQLite's copy of it), two chunks at once
(one stored, one filled). A chunk now also ends once its bodies hold ``CHUNK_CHARS``
characters: 176 MiB for the same file. Seen from the outbox: the rows one chunk stored
share their ``created`` time (one stamp per chunk).
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

from conftest import RunCli
from helpers import outbox_file, write

from intercom_events_cli.delivery.batch import CHUNK_CHARS


def _fat(n: int) -> str:
    metadata = {f"k{key}": f"{n:06d}" + 'é"\\x' * 62 + "y" for key in range(10)}
    return json.dumps(
        {"event_name": "fat", "user_id": f"u{n}", "created_at": 1_700_000_000, "metadata": metadata}
    )


def test_a_chunk_of_large_events_is_bounded_by_their_size(tmp_path: Path, run_cli: RunCli) -> None:
    count = 6_000
    source = write(tmp_path / "fat.ndjson", "\n".join(_fat(n) for n in range(count)) + "\n")
    outbox = outbox_file(tmp_path)
    result = run_cli("batch", str(source), "--queue", "--outbox", str(outbox))
    assert result.code == 0, result
    with sqlite3.connect(outbox) as db:
        shortest = db.execute("SELECT min(length(payload)) FROM events").fetchone()[0]
        sizes = [n for (n,) in db.execute("SELECT count(*) FROM events GROUP BY created")]
    assert sum(sizes) == count
    # A chunk ends with the record that reaches CHUNK_CHARS (well under 10,000 of these).
    most = CHUNK_CHARS // shortest + 1
    assert most < count // 2
    assert max(sizes) <= most, sizes
