"""The PostgreSQL outbox: connection errors, the schema it owns, the SQL entry point.

Against the real test server (``pg_server`` / ``pg_uri`` in conftest.py) and the real CLI.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from conftest import REPO_ROOT, RunCli, base_env
from fake_intercom import FakeIntercom, Reply
from helpers import app_uri, run_process, run_without_module, sql
from pg_server import APP_PASSWORD, APP_USER, free_port

psycopg = pytest.importorskip("psycopg")

CREATED = 1_700_000_000


def test_unreachable_database_is_75_naming_the_host_not_the_password(run_cli: RunCli) -> None:
    port = free_port()
    uri = f"postgresql://someone:hunter2-secret@127.0.0.1:{port}/events"
    for args in (
        ("send", "e", "--user-id", "1", "--queue"),
        ("outbox", "status"),
        ("batch", "-", "--queue"),
    ):
        result = run_cli(
            *args, input='{"event_name":"e","user_id":"1"}\n', env={"IEVENTS_OUTBOX": uri}
        )
        assert result.code == 75, result
        assert f"127.0.0.1:{port}/events" in result.stderr
        assert "hunter2" not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
    status = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": uri})
    assert status.json()["error"]["code"] == "outbox_unavailable"


def test_wrong_password_is_78_without_the_password(run_cli: RunCli, pg_uri: str) -> None:
    uri = pg_uri.replace("ievents_test@", f"{APP_USER}:wrong-pw-77@")
    result = run_cli("send", "e", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX": uri})
    assert result.code == 78, result
    assert "password authentication failed" in result.stderr
    assert "wrong-pw-77" not in result.stdout + result.stderr
    assert len(result.stderr.strip().splitlines()) <= 2  # the error and its hint


def test_queue_on_failure_never_claims_a_kept_event_when_the_database_is_down(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    fake.script_repeat(Reply(status=503), 5)
    uri = f"postgresql://x:pw@127.0.0.1:{free_port()}/events"
    result = run_cli(
        "send",
        "e",
        "--user-id",
        "1",
        "--queue-on-failure",
        "--retries",
        "1",
        env={"IEVENTS_OUTBOX": uri},
    )
    assert result.code == 75, result
    assert "could not be queued" in result.stderr
    assert "queued, NOT delivered" not in result.stdout


def test_without_psycopg_a_uri_is_one_line_naming_the_extra(tmp_path: Any) -> None:
    done = run_without_module(
        "psycopg",
        ["outbox", "status", "--outbox", "postgresql://h/db"],
        env=base_env(tmp_path, None),
    )
    assert done.returncode == 78, done
    assert "pip install -e" in done.stderr and "[postgres]" in done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) <= 2


def test_sqlite_path_never_imports_psycopg_or_prometheus(tmp_path: Any, fake: FakeIntercom) -> None:
    env = base_env(tmp_path, fake.url)
    for args in (["send", "e", "--user-id", "1", "--queue"], ["flush"], ["outbox", "status"]):
        done = run_process(args, env=env, cwd=REPO_ROOT, python_flags=("-X", "importtime"))
        stderr = done.stderr.decode()
        assert done.returncode == 0, stderr[-2000:]
        imported = {line.split("|")[-1].strip() for line in stderr.splitlines()}
        assert "psycopg" not in imported and "prometheus_client" not in imported
        assert "intercom_events_cli.outbox.pg_outbox" not in imported


# -- the schema it owns ---------------------------------------------------------------------


def test_schema_is_created_versioned_and_configurable(run_cli: RunCli, pg_uri: str) -> None:
    # flush makes the schema (outbox status, which only looks, never does: issue 21).
    assert run_cli("flush", env={"IEVENTS_OUTBOX": pg_uri}).code == 0
    tables = sql(
        pg_uri,
        "SELECT table_name FROM information_schema.tables "
        "WHERE table_schema = 'ievents' ORDER BY 1",
    )
    assert [t[0] for t in tables] == ["destinations", "events", "meta", "workspace_names"]
    assert sql(pg_uri, "SELECT value FROM ievents.meta WHERE key = 'schema_version'") == [("3",)]

    env = {"IEVENTS_OUTBOX": pg_uri, "IEVENTS_OUTBOX_SCHEMA": "relay_two"}
    queued = run_cli("send", "e", "--user-id", "1", "--queue", env=env)
    assert queued.code == 0, queued
    assert sql(pg_uri, "SELECT count(*) FROM relay_two.events") == [(1,)]
    assert sql(pg_uri, "SELECT count(*) FROM ievents.events") == [(0,)]
    bad = run_cli("outbox", "status", env={**env, "IEVENTS_OUTBOX_SCHEMA": "Robert'); drop"})
    assert bad.code == 78 and "IEVENTS_OUTBOX_SCHEMA" in bad.stderr


def test_a_foreign_schema_or_a_newer_version_is_left_untouched(
    run_cli: RunCli, pg_uri: str
) -> None:
    sql(pg_uri, "CREATE SCHEMA ievents; CREATE TABLE ievents.orders (id int)")
    foreign = run_cli("outbox", "status", env={"IEVENTS_OUTBOX": pg_uri})
    assert foreign.code == 78 and "not an ievents outbox" in foreign.stderr
    assert sql(
        pg_uri, "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'ievents'"
    ) == [(1,)]

    env = {"IEVENTS_OUTBOX": pg_uri, "IEVENTS_OUTBOX_SCHEMA": "newer"}
    assert run_cli("flush", env=env).code == 0
    sql(pg_uri, "UPDATE newer.meta SET value = '99' WHERE key = 'schema_version'")
    newer = run_cli("send", "e", "--user-id", "1", "--queue", env=env)
    assert newer.code == 78 and "newer ievents" in newer.stderr
    assert sql(pg_uri, "SELECT count(*) FROM newer.events") == [(0,)]


def test_an_unprivileged_role_with_create_on_the_database_is_enough(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    uri = app_uri(pg_uri)
    queued = run_cli("send", "e", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX": uri})
    assert queued.code == 0, queued
    assert APP_PASSWORD not in queued.stdout + queued.stderr
    flushed = run_cli("flush", "--json", env={"IEVENTS_OUTBOX": uri})
    assert flushed.code == 0 and flushed.json()["delivered"] == 1
    assert APP_PASSWORD not in flushed.stdout and ":***@" in flushed.json()["outbox"]


# -- the transactional outbox ---------------------------------------------------------------


def test_enqueue_in_committed_and_rolled_back_transactions(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    env = {"IEVENTS_OUTBOX": pg_uri}
    assert run_cli("flush", env=env).code == 0  # creates the schema
    # The application's role needs only EXECUTE on the function (SECURITY DEFINER).
    sql(
        pg_uri,
        f"GRANT USAGE ON SCHEMA ievents TO {APP_USER}; "
        f"GRANT EXECUTE ON FUNCTION ievents.enqueue(jsonb) TO {APP_USER}",
    )
    committed = {
        "event_name": "upgraded",
        "user_id": "42",
        "created_at": CREATED,
        "metadata": {"plan": "pro"},
    }
    with psycopg.connect(app_uri(pg_uri)) as app:
        with app.transaction():
            app.execute("CREATE TEMP TABLE orders (id int)")
            app.execute("INSERT INTO orders VALUES (1)")
            app.execute("SELECT ievents.enqueue(%s::jsonb)", (json.dumps(committed),))
        with pytest.raises(psycopg.errors.DivisionByZero):
            with app.transaction():
                app.execute(
                    "SELECT ievents.enqueue(%s::jsonb)",
                    (json.dumps({**committed, "user_id": "rolled-back"}),),
                )
                app.execute("SELECT 1 / 0")
        # No created_at: the transaction's time, fixed at enqueue.
        with app.transaction():
            app.execute(
                'SELECT ievents.enqueue(\'{"event_name": "later", "email": '
                '"a@example.com"}\'::jsonb)'
            )
        with pytest.raises(psycopg.errors.InvalidParameterValue):
            app.execute("SELECT ievents.enqueue('[1, 2]'::jsonb)")
    # Rows that name no workspace go to the schema's default only (issue 22).
    assert run_cli("outbox", "default-workspace", "abc123xy", env=env).code == 0
    flushed = run_cli("flush", "--json", env=env)
    assert flushed.code == 0, flushed
    posted = fake.events_posted()
    assert sorted(e["event_name"] for e in posted) == ["later", "upgraded"]
    upgraded = next(e for e in posted if e["event_name"] == "upgraded")
    assert upgraded == committed
    later = next(e for e in posted if e["event_name"] == "later")
    assert isinstance(later["created_at"], int) and later["created_at"] > CREATED


def test_invalid_enqueued_row_becomes_a_dead_letter_with_its_reason(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    env = {"IEVENTS_OUTBOX": pg_uri}
    assert run_cli("flush", env=env).code == 0  # creates the schema
    assert run_cli("outbox", "default-workspace", "abc123xy", env=env).code == 0
    sql(pg_uri, 'SELECT ievents.enqueue(\'{"event_name": "no-contact", "created_at": 1}\')')
    sql(pg_uri, 'SELECT ievents.enqueue(\'{"event_name": "x", "user_id": "1", "colour": "red"}\')')
    sql(pg_uri, "SELECT ievents.enqueue('{}')")
    flushed = run_cli("flush", "--json", env=env)
    # Dead letters made by this run: said so, and exit as a dead letter does.
    assert flushed.code == 65, flushed
    assert (flushed.json()["refused"], flushed.json()["dead"]) == (3, 3)
    assert fake.posts() == []
    dead = run_cli("outbox", "list", "--dead", "--json", env=env).json_lines()
    reasons = sorted(d["error"]["message"] for d in dead)
    assert len(dead) == 3
    assert "event_name is missing" in reasons[0]
    assert "no contact given" in reasons[1] and 'unknown field "colour"' in reasons[2]
    assert all(d["error"]["code"] == "invalid_event" for d in dead)
    table = run_cli("outbox", "list", env=env)
    assert table.code == 0 and "no-contact" in table.stdout


def test_enqueued_duplicate_of_a_captured_event_is_sent_once(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    env = {"IEVENTS_OUTBOX": pg_uri}
    queued = run_cli(
        "send", "e", "--user-id", "9", "--created-at", str(CREATED), "--queue", env=env
    )
    assert queued.code == 0
    assert run_cli("outbox", "default-workspace", "abc123xy", env=env).code == 0
    for _ in range(2):
        sql(
            pg_uri,
            "SELECT ievents.enqueue(%s::jsonb)",
            (json.dumps({"user_id": "9", "event_name": "e", "created_at": CREATED}),),
        )
    assert run_cli("flush", env=env).code == 0
    assert len(fake.events_posted()) == 1
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["delivered"], status["pending"], status["dead"]) == (1, 0, 0)


def test_now_is_the_database_clock_from_the_start_on_a_host_whose_clock_is_off(
    pg_uri: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before: a store just opened answered now() by this host's clock (300 s off here)
    until its first write measured the database's."""
    import time
    import types

    from intercom_events_cli.outbox import pg_outbox
    from intercom_events_cli.outbox.store import open_store

    ahead = types.SimpleNamespace(time=lambda: time.time() + 300, monotonic=time.monotonic)
    monkeypatch.setattr(pg_outbox, "time", ahead)  # this host's clock, as the store sees it
    started = time.monotonic()
    with open_store(pg_uri, {}) as store:
        reading = store.now()
        [(database_now,)] = sql(pg_uri, "SELECT extract(epoch FROM clock_timestamp())::float8")
    # The error of a clock measured over a round trip is bounded by the calls' duration.
    slack = time.monotonic() - started
    assert abs(database_now - reading) <= slack, (database_now, reading)
