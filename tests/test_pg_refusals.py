"""A PostgreSQL outbox that refuses: missing privileges (78, naming them and the GRANT) and
a read-only database (75 for a capture; a relay waits and delivers once it is writable).

Against the real test server, the real CLI and real relay processes.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import Relay, app_uri, sql, wait_for
from pg_server import APP_PASSWORD, APP_USER

psycopg = pytest.importorskip("psycopg")


def schema_made_by_the_owner(run_cli: RunCli, pg_uri: str) -> None:
    # A command that writes: a read-only one (outbox status) creates no outbox.
    assert run_cli("flush", env={"IEVENTS_OUTBOX": pg_uri}).code == 0


# -- privileges (finding 5) -------------------------------------------------------------------


def test_a_role_without_usage_on_the_schema_is_78_naming_the_grant(
    run_cli: RunCli, pg_uri: str
) -> None:
    schema_made_by_the_owner(run_cli, pg_uri)
    env = {"IEVENTS_OUTBOX": app_uri(pg_uri)}
    result = run_cli("send", "e", "--user-id", "1", "--queue", env=env)
    assert result.code == 78, result
    assert "went away" not in result.stderr
    assert f"the role {APP_USER} lacks USAGE on the schema ievents" in result.stderr
    assert f"GRANT USAGE ON SCHEMA ievents TO {APP_USER}" in result.stderr
    assert "IEVENTS_OUTBOX_SCHEMA" in result.stderr
    assert APP_PASSWORD not in result.stdout + result.stderr
    # USAGE alone: the table privileges are what is missing now.
    sql(pg_uri, f"GRANT USAGE ON SCHEMA ievents TO {APP_USER}")
    result = run_cli("outbox", "status", env=env)
    assert result.code == 78, result
    assert "lacks SELECT, INSERT, UPDATE, DELETE on ievents.destinations" in result.stderr
    assert f"ON ALL TABLES IN SCHEMA ievents TO {APP_USER}" in result.stderr
    sql(
        pg_uri,
        f"GRANT SELECT, INSERT, UPDATE, DELETE ON ALL TABLES IN SCHEMA ievents TO {APP_USER}",
    )
    assert run_cli("send", "e", "--user-id", "1", "--queue", env=env).code == 0


def test_a_relay_without_rights_exits_78_instead_of_retrying(
    run_cli: RunCli, pg_uri: str, start_relay: Callable[..., Relay]
) -> None:
    schema_made_by_the_owner(run_cli, pg_uri)
    relay = start_relay(app_uri(pg_uri))
    assert relay.wait(timeout=120) == 78
    err = relay.stderr
    assert "lacks USAGE on the schema ievents" in err and "went away" not in err


def test_the_public_schema_is_refused_with_78(run_cli: RunCli, pg_uri: str) -> None:
    env = {"IEVENTS_OUTBOX": app_uri(pg_uri), "IEVENTS_OUTBOX_SCHEMA": "public"}
    result = run_cli("send", "e", "--user-id", "1", "--queue", env=env)
    assert result.code == 78, result
    assert "'public'" in result.stderr and "schema of its own" in result.stderr
    assert "IEVENTS_OUTBOX_SCHEMA" in result.stderr and "went away" not in result.stderr
    # Even for a role that could create tables there.
    result = run_cli("outbox", "status", env={**env, "IEVENTS_OUTBOX": pg_uri})
    assert result.code == 78 and "'public'" in result.stderr, result
    assert sql(pg_uri, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'") == [(0,)]


def test_a_role_that_cannot_create_the_schema_is_told_which_grant(
    run_cli: RunCli, pg_uri: str
) -> None:
    database = pg_uri.rsplit("/", 1)[1]
    sql(pg_uri, f"REVOKE CREATE ON DATABASE {database} FROM {APP_USER}")
    # A command that writes (outbox status creates nothing, so it needs no grant).
    result = run_cli(
        "send", "e", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX": app_uri(pg_uri)}
    )
    assert result.code == 78, result
    assert f"lacks CREATE on the database {database}" in result.stderr
    assert f"GRANT CREATE ON DATABASE {database} TO {APP_USER}" in result.stderr


# -- a read-only database (finding 6) ---------------------------------------------------------


def test_a_read_only_database_is_temporary_and_a_relay_waits_it_out(
    run_cli: RunCli,
    fake: FakeIntercom,
    pg_server: Any,
    pg_uri: str,
    start_relay: Callable[..., Relay],
) -> None:
    env = {"IEVENTS_OUTBOX": pg_uri}
    for user in ("1", "2"):
        assert run_cli("send", "e", "--user-id", user, "--queue", env=env).code == 0
    database = pg_uri.rsplit("/", 1)[1]
    # What a standby looks like during a failover (new sessions only, as after one).
    sql(pg_uri, f"ALTER DATABASE {database} SET default_transaction_read_only = on")
    queued = run_cli("send", "e", "--user-id", "3", "--queue", env=env)
    assert queued.code == 75, queued
    assert "read-only" in queued.stderr
    relay = start_relay(pg_uri)
    wait_for(lambda: relay.stderr.count("read-only") >= 2, what="the relay to retry")
    assert relay.process.poll() is None, relay.stderr  # still waiting, not exited
    assert fake.posts() == []
    pg_server.admin(f"ALTER DATABASE {database} SET default_transaction_read_only = off")
    wait_for(lambda: len(fake.events_posted()) == 2, what="the relay to deliver after")

    def recorded() -> bool:
        # The fake counts a POST when it arrives: a SIGTERM before the relay has read the
        # answer hands that event back unsent (correctly, but not what is tested here).
        status = run_cli("outbox", "status", "--json", env=env).json()
        return (status["delivered"], status["pending"]) == (2, 0)

    wait_for(recorded, what="both deliveries recorded in the outbox", alive=relay.process)
    assert relay.stop(signal.SIGTERM, timeout=60) == 0, relay.stderr
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["delivered"], status["pending"]) == (2, 0)
