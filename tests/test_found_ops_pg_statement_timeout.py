"""A PostgreSQL outbox whose statements are cancelled: a ``statement_timeout`` set for the
role, the database or in the URI (``?options=-c statement_timeout=...``) shorter than a
claim on a big table or a wait for a lock.

It was reported as "lost the PostgreSQL outbox ...: canceling statement due to statement
timeout" with the hint "the database went away (restart, network)": nothing had gone
away, and the setting to change was not named. Still temporary (75): the same statement
may pass later, and a relay tries again.
"""

from __future__ import annotations

from urllib.parse import quote

import psycopg
import pytest
from conftest import RunCli


@pytest.mark.parametrize("setting", ["statement_timeout", "lock_timeout"])
@pytest.mark.parametrize("args", [("outbox", "status"), ("send", "x", "--user-id", "1", "--queue")])
def test_a_cancelled_statement_names_the_timeout_not_a_lost_database(
    run_cli: RunCli, pg_uri: str, args: tuple[str, ...], setting: str
) -> None:
    assert (
        run_cli("send", "first", "--user-id", "0", "--queue", env={"IEVENTS_OUTBOX": pg_uri}).code
        == 0
    )
    timed = pg_uri + "?options=" + quote(f"-c {setting}=300")
    # Another session holds the table: the command's statement waits, and is cancelled.
    with psycopg.connect(pg_uri) as holder:
        holder.execute("LOCK TABLE ievents.events IN ACCESS EXCLUSIVE MODE")
        result = run_cli(*args, env={"IEVENTS_OUTBOX": timed})
    assert result.code == 75, result
    assert setting in result.stderr
    assert "went away" not in result.stderr
    assert "Traceback" not in result.stderr
