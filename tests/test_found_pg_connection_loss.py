"""Found by the PostgreSQL hunt: a flush whose database session ends (a server restart:
``pg_ctl restart`` under a flush of 200,000 events showed it) while it writes several
results at once said so in one error, but psycopg's own log line about the broken
pipeline came first on stderr, through logging's last-resort handler::

    error ignored terminating <psycopg.Pipeline [BAD] at 0x7f1c14884350>: consuming
    input failed: server closed the connection unexpectedly ...

The outbox now keeps psycopg's log to itself; the error it raises says what happened.

The session is ended from inside the server by a trigger, at the third of 300 results
written together (one ``executemany``, a psycopg pipeline): the same moment every run.
The results are written by the store in a process of its own, whose stderr is read.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

from helpers import sql

# Whether psycopg notices the closed socket before or after it has read the error is a
# race inside psycopg (about one cut in three logged the line): the cut is made ROUNDS
# times, so that the line shows before the fix all but every time.
ROUNDS = 8
SCRIPT = textwrap.dedent(
    """
    import sys
    from intercom_events_cli.errors import OutboxError
    from intercom_events_cli.event import Event
    from intercom_events_cli.outbox import RowResult, State
    from intercom_events_cli.outbox.store import open_store

    with open_store(sys.argv[1], {}) as store:
        for round in range(int(sys.argv[2])):
            for n in range(300):
                name = f"r{round}e{n}"
                store.add(Event.create(name, user_id="u1", created_at=1_700_000_000 + n))
            rows = store.claim("test-owner", 300)
            assert len(rows) == 300, len(rows)
            print("claimed", flush=True)
            sys.stdin.readline()  # the trigger is in place
            results = [RowResult(r.id, State.DELIVERED, claim_token=r.claim_token) for r in rows]
            try:
                store.record("test-owner", results)
            except OutboxError as exc:
                print("raised", type(exc).__name__, flush=True)
    """
)


def test_a_session_cut_off_while_recording_results_logs_nothing_of_psycopg(
    pg_uri: str,
) -> None:
    process = subprocess.Popen(
        [sys.executable, "-c", SCRIPT, pg_uri, str(ROUNDS)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdin is not None
    assert process.stdout.readline().strip() == "claimed"
    # At the third of the 300 results of each round.
    sql(
        pg_uri,
        "CREATE FUNCTION public.cut() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        "PERFORM pg_terminate_backend(pg_backend_pid()); PERFORM pg_sleep(5); "
        "RETURN NEW; END $$",
    )
    sql(
        pg_uri,
        "CREATE TRIGGER cut BEFORE UPDATE ON ievents.events FOR EACH ROW "
        "WHEN (NEW.state = 'delivered' AND NEW.event_name ~ '^r[0-9]+e2$') "
        "EXECUTE FUNCTION public.cut()",
    )
    for _ in range(ROUNDS - 1):
        process.stdin.write("go\n")
        process.stdin.flush()
        assert process.stdout.readline().strip() == "raised OutboxUnavailable"
        assert process.stdout.readline().strip() == "claimed"
    stdout, stderr = process.communicate("go\n", timeout=60)
    assert process.returncode == 0, (stdout, stderr)
    assert stdout.strip() == "raised OutboxUnavailable", (stdout, stderr)
    assert stderr == "", stderr
    # Nothing was written: no row is delivered (claims of a cut session go back to pending).
    states = dict(sql(pg_uri, "SELECT state, count(*) FROM ievents.events GROUP BY 1"))
    assert set(states) <= {"pending", "in_flight"}, states
    assert sum(states.values()) == 300 * ROUNDS, states
