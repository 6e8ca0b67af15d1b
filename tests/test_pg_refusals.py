"""A PostgreSQL outbox that refuses: missing privileges (78, naming them and the GRANT) and
a read-only database (75 for a capture; a relay waits and delivers once it is writable).

Against the real test server, the real CLI and real relay processes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli, base_env
from fake_intercom import FakeIntercom
from pg_server import APP_PASSWORD, APP_USER

psycopg = pytest.importorskip("psycopg")


def sql(uri: str, statement: str, params: Any = None) -> list[Any]:
    with psycopg.connect(uri, autocommit=True) as db:
        cursor = db.execute(statement, params)
        return cursor.fetchall() if cursor.description else []


def app_uri(pg_uri: str) -> str:
    return pg_uri.replace("ievents_test@", f"{APP_USER}:{APP_PASSWORD}@")


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


@pytest.fixture
def relay(tmp_path: Path, fake: FakeIntercom) -> Iterator[Callable[[str], subprocess.Popen[str]]]:
    """Start ``flush --watch`` on an outbox; stderr goes to ``tmp_path / relay.err``."""
    started: list[subprocess.Popen[str]] = []

    def start(outbox: str) -> subprocess.Popen[str]:
        env = base_env(tmp_path, fake.url)
        env["IEVENTS_OUTBOX"] = outbox
        err = (tmp_path / "relay.err").open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "intercom_events_cli", "flush", "--watch"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
            text=True,
        )
        started.append(process)
        return process

    yield start
    for process in started:
        if process.poll() is None:
            process.kill()
            process.wait()


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
    run_cli: RunCli, pg_uri: str, relay: Callable[[str], subprocess.Popen[str]], tmp_path: Path
) -> None:
    schema_made_by_the_owner(run_cli, pg_uri)
    process = relay(app_uri(pg_uri))
    assert process.wait(timeout=120) == 78
    err = (tmp_path / "relay.err").read_text()
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
    relay: Callable[[str], subprocess.Popen[str]],
    tmp_path: Path,
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
    process = relay(pg_uri)
    err = tmp_path / "relay.err"
    wait_for(lambda: err.read_text().count("read-only") >= 2, "the relay to retry")
    assert process.poll() is None, err.read_text()  # still waiting, not exited
    assert fake.posts() == []
    pg_server.admin(f"ALTER DATABASE {database} SET default_transaction_read_only = off")
    wait_for(lambda: len(fake.events_posted()) == 2, "the relay to deliver after")
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=60) == 0
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["delivered"], status["pending"]) == (2, 0)
