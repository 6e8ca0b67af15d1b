"""Found by the outside hunt on batch's capture path: a SQLite outbox deleted (or moved
aside) while ``producer | ievents batch - --queue`` runs.

SQLite goes on writing to the file it opened. The chunks stored after the ``rm`` went
into a file that no longer existed, and the run said::

    batch --queue: read 200000 records: 200000 valid, 0 invalid; 200000 stored, ...

with exit 0 and no outbox file at the path: every event lost, silently. Reads and claims
already checked that the path still names the file opened; bulk capture now does too,
before and after each chunk, and the run ends with the outbox's error (75) instead.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

from fake_intercom import FakeIntercom
from helpers import finish, numbered_ndjson, wait_for


def _stored(outbox: Path) -> int:
    if not outbox.exists():
        return 0
    try:
        with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True) as db:
            return int(db.execute("SELECT count(*) FROM events").fetchone()[0])
    except sqlite3.Error:
        return 0  # not made yet


def test_an_outbox_removed_while_batch_reads_a_pipe_is_an_error_not_a_success(
    start_cli: Any, fake: FakeIntercom, tmp_path: Path
) -> None:
    outbox = tmp_path / "outbox.sqlite3"
    read_end, write_end = os.pipe()
    process = start_cli(
        "batch", "-", "--queue", "--json", stdin=read_end, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )  # fmt: skip
    os.close(read_end)
    try:
        with os.fdopen(write_end, "wb") as pipe:
            pipe.write(numbered_ndjson(50).encode())
            pipe.flush()
            # The first records are stored (the pipe stays open): the run is under way.
            wait_for(lambda: _stored(outbox) == 50, what="the first records", alive=process)
            for suffix in ("", "-wal", "-shm"):
                Path(f"{outbox}{suffix}").unlink(missing_ok=True)
            pipe.write(numbered_ndjson(50, start=50).encode())
        code, stdout, stderr = finish(process, timeout=60)
    finally:
        process.kill()
    # What the second part went into is gone: the run must not say it is stored.
    assert code == 75, (code, stdout, stderr)
    document = json.loads(stdout)
    assert document["ok"] is False
    assert "moved, removed or replaced" in stderr
    assert "Traceback" not in stderr
    assert fake.requests == []
    # What it had done by then is said, before the error (it said nothing of it before).
    said = re.search(
        r"stopped by the error below after reading (\d+) records: \d+ valid \((\d+) stored", stderr
    )
    assert said is not None, stderr
    assert int(said.group(1)) >= 50 and int(said.group(2)) == 50, stderr
    assert stderr.index("stopped by the error below") < stderr.index("moved, removed or replaced")
