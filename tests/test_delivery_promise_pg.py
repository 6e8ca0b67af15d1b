"""The outbox's promise (tests/test_delivery_promise.py) kept on PostgreSQL too.

The same test functions, run with every CLI subprocess pointed at a fresh PostgreSQL
database (``IEVENTS_OUTBOX``) and with their direct outbox access opening that database.
"""

from __future__ import annotations

import inspect
from pathlib import Path
from typing import Any

import conftest
import pytest
import test_delivery_promise as promise

from intercom_events_cli.outbox.store import OutboxStore, PostgresLocation, open_store

# Those that use the outbox; the others (a file that is not SQLite, settings, the error
# vocabulary) have nothing to do with the backend.
SHARED = [
    "test_events_go_only_to_the_workspace_they_were_captured_for",
    "test_rows_of_an_older_outbox_go_to_the_first_configuration_that_flushes",
    "test_after_an_outage_the_first_flush_delivers_everything_and_during_it_one_probe",
    "test_rerunning_a_batch_whose_events_are_still_pending_is_not_ok",
    "test_3000_events_through_5xx_and_dropped_connections_are_all_delivered_once",
    "test_retry_rounds_bring_an_event_back_within_the_same_run",
    "test_chaos_flush_killed_with_sigkill_then_one_flush_delivers_everything",
    "test_a_202_with_a_body_that_cannot_be_decoded_is_delivered",
    "test_another_2xx_for_an_event_is_not_a_delivery",
    "test_queue_on_failure_of_a_dead_letter_says_so",
    "test_max_time_while_deliveries_succeed_exits_0_and_says_what_is_left",
]


@pytest.fixture
def on_postgres(monkeypatch: pytest.MonkeyPatch, pg_uri: str) -> str:
    """Point the CLI runners and the test module's ``Outbox.open`` at ``pg_uri``."""
    plain = conftest.base_env

    def pg_env(tmp_path: Path, base_url: str | None) -> dict[str, str]:
        env = plain(tmp_path, base_url)
        env["IEVENTS_OUTBOX"] = pg_uri
        return env

    class OpenPostgres:
        @staticmethod
        def open(path: Any) -> OutboxStore:
            return open_store(PostgresLocation(pg_uri), {})

    monkeypatch.setattr(conftest, "base_env", pg_env)
    monkeypatch.setattr(promise, "base_env", pg_env)
    monkeypatch.setattr(promise, "Outbox", OpenPostgres)
    return pg_uri


@pytest.mark.parametrize(
    "name",
    # Each keeps its function's marks (``long``: scheduled first).
    [
        pytest.param(name, marks=getattr(promise, name).__dict__.get("pytestmark", []))
        for name in SHARED
    ],
)
def test_promise_on_postgresql(name: str, on_postgres: str, request: pytest.FixtureRequest) -> None:
    test = getattr(promise, name)
    arguments = {arg: request.getfixturevalue(arg) for arg in inspect.signature(test).parameters}
    test(**arguments)
    # It really ran on PostgreSQL: rows there, no SQLite file beside the test.
    tmp_path: Path = request.getfixturevalue("tmp_path")
    assert not (tmp_path / "outbox.sqlite3").exists()
    with open_store(PostgresLocation(on_postgres), {}) as store:
        assert sum(store.summary().counts.values()) > 0


def test_every_shared_test_exists() -> None:
    names = {name for name, _ in inspect.getmembers(promise, inspect.isfunction)}
    assert set(SHARED) <= names
