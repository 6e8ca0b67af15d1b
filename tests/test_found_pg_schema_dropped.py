"""Found by the PostgreSQL hunt: a relay whose outbox schema is dropped while it runs
(``DROP SCHEMA ievents CASCADE`` by an operator, a restore without it) exited with
'the PostgreSQL outbox ... failed: relation "ievents.events" does not exist at character
85', and every event captured afterwards (``send --queue`` makes the schema anew) waited
for a relay nobody restarted. It now says the outbox was dropped, opens it again (making
it anew) and delivers what is captured into it, as a relay whose SQLite file was deleted
does.
"""

from __future__ import annotations

from collections.abc import Callable

from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import Relay, sql, wait_for


def _drop_schema(uri: str) -> None:
    """``DROP SCHEMA ievents CASCADE``, as an operator would run it: again when PostgreSQL
    chose it as the victim of a deadlock with the relay's own writes (it locks the tables
    in another order than the relay does), as a run under load once met."""
    import psycopg

    def dropped() -> bool:
        try:
            sql(uri, "DROP SCHEMA ievents CASCADE")
        except psycopg.errors.DeadlockDetected:
            return False
        return True

    wait_for(dropped, what="the schema dropped")


def test_a_relay_goes_on_with_an_outbox_schema_dropped_under_it(
    run_cli: RunCli,
    fake: FakeIntercom,
    pg_uri: str,
    start_relay: Callable[..., Relay],
) -> None:
    env: dict[str, str | None] = {"IEVENTS_OUTBOX": pg_uri}
    assert run_cli("send", "before", "--user-id", "1", "--queue", env=env).code == 0
    relay = start_relay(pg_uri)
    wait_for(lambda: len(fake.events_posted()) == 1, what="the first delivery", alive=relay.process)

    _drop_schema(pg_uri)
    # The relay notices at its next write (its heartbeat), before anything new comes.
    relay.wait_for_stderr("was dropped while in use")
    assert run_cli("send", "after", "--user-id", "2", "--queue", env=env).code == 0
    wait_for(
        lambda: [e["event_name"] for e in fake.events_posted()] == ["before", "after"],
        what=f"the event captured into the new schema (relay stderr: {relay.stderr!r})",
        alive=relay.process,
    )
    assert relay.stop() == 0, relay.stderr
    assert "does not exist" not in relay.stderr, relay.stderr
    assert "internal error" not in relay.stderr
