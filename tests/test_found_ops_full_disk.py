"""A SQLite outbox on a full file system (or past the file-size limit, ``ulimit -f``).

Found by queueing onto a 300 KB tmpfs: ``batch --queue`` ended with "the outbox
'f.sqlite3' failed: database or disk is full" and no hint, and past ``ulimit -f`` with
"cannot open the outbox 'f.sqlite3' (disk I/O error)" and the hint "check the permissions
of the file and its folder", which sends the operator the wrong way; both exit 78, so a
relay ended on a full disk instead of waiting for space. A unit test of the
translation (outbox/sqlite_file.py): a full disk cannot be made portably in a test.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from intercom_events_cli.errors import ExitCode
from intercom_events_cli.outbox.sqlite_file import translate_error


@pytest.mark.parametrize(
    ("error", "said"),
    [("database or disk is full", "full"), ("disk I/O error", "disk I/O error")],
)
def test_a_full_or_failing_disk_is_named_with_what_to_check(error: str, said: str) -> None:
    translated = translate_error(sqlite3.OperationalError(error), Path("/srv/o.sqlite3"), 5.0)
    assert said in translated.message
    # Temporary: a relay waits for space instead of ending (and being restarted in a loop).
    assert translated.exit_code == ExitCode.TEMPORARY
    assert translated.hint is not None
    assert "permissions" not in translated.hint
    assert "space" in translated.hint
    assert "/srv" in translated.hint
