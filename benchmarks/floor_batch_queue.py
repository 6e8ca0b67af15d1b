"""The floor of ``ievents batch --queue``: the least a Python script does to keep events.

    python benchmarks/floor_batch_queue.py FILE.ndjson OUTBOX.sqlite3

It parses each line with ``json.loads``, computes the key the outbox de-duplicates on
(SHA-256 of the canonical JSON: sorted keys, no spaces, UTF-8 as is) and stores the key
and that JSON in SQLite, with one ``executemany`` in one transaction, the key UNIQUE.
No validation, no line numbers, no progress, SQLite's default settings. Prints
``{"lines": N, "stored": M}``.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import sys
from collections.abc import Iterator


def rows(path: str) -> Iterator[tuple[str, str]]:
    """(key, canonical JSON) for every non-blank line."""
    dumps, sha256 = json.dumps, hashlib.sha256
    with open(path, "rb") as handle:
        for line in handle:
            if line.strip():
                body = dumps(
                    json.loads(line), ensure_ascii=False, sort_keys=True, separators=(",", ":")
                )
                yield sha256(body.encode()).hexdigest(), body


def main(path: str, outbox: str) -> int:
    db = sqlite3.connect(outbox, isolation_level=None)
    db.execute(
        "CREATE TABLE IF NOT EXISTS events "
        "(id INTEGER PRIMARY KEY, dedup_key TEXT NOT NULL UNIQUE, payload TEXT NOT NULL)"
    )
    db.execute("BEGIN")
    cursor = db.executemany(
        "INSERT OR IGNORE INTO events (dedup_key, payload) VALUES (?, ?)", rows(path)
    )
    db.execute("COMMIT")
    stored = cursor.rowcount
    lines = db.execute("SELECT count(*) FROM events").fetchone()[0]
    db.close()
    print(json.dumps({"lines": lines, "stored": stored}))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1], sys.argv[2]))
