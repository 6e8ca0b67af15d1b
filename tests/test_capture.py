"""Capture in the core (intercom_events_cli.capture) against real SQLite outbox files."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from helpers import event

from intercom_events_cli.capture import CaptureState, capture
from intercom_events_cli.config.settings import Settings
from intercom_events_cli.errors import ExitCode
from intercom_events_cli.event import Event
from intercom_events_cli.outbox import RowResult, SqliteOutbox, State
from intercom_events_cli.outcome import Outcome, OutcomeKind


@pytest.fixture
def store(tmp_path: Path) -> SqliteOutbox:
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as opened:
        yield opened


@pytest.fixture
def settings() -> Settings:
    return Settings(token="tok_capture_1234", base_url="http://127.0.0.1:9")


def failure(e: Event, kind: OutcomeKind, status: int | None, retry_after: float | None = None):
    return Outcome(
        event=e,
        kind=kind,
        status=status,
        attempts=5,
        elapsed_s=0.1,
        error_code="http_503" if status else "tls_error",
        error_message="down" if status else "certificate not trusted",
        retry_after_s=retry_after,
    )


def settle(store: SqliteOutbox, state: State, status: int) -> None:
    """Claim every row and record ``state`` with ``status``, as a flush would."""
    owner = "test:1:-:x"
    rows = store.claim(owner, 10)
    store.record(
        owner,
        [
            RowResult(row.id, state, status=status, error_code="bad", error_message="no")
            for row in rows
        ],
    )


def test_queue_stores_a_pending_row_bound_to_the_destination(
    store: SqliteOutbox, settings: Settings
) -> None:
    result = capture(store, event(), settings)
    assert result.state is CaptureState.QUEUED and result.stored
    assert result.exit_code == ExitCode.OK
    [row] = store.rows([State.PENDING])
    assert row.id == result.outbox_id
    assert row.destination_id == store.bind(settings)
    assert row.attempts == 0


def test_without_settings_the_row_is_unbound(store: SqliteOutbox) -> None:
    result = capture(store, event(), None)
    [row] = store.rows([State.PENDING])
    assert result.stored and row.destination_id is None


def test_the_same_event_again_is_already_queued_not_stored_twice(
    store: SqliteOutbox, settings: Settings
) -> None:
    first = capture(store, event(), settings)
    again = capture(store, event(), settings)
    assert again.state is CaptureState.ALREADY_QUEUED and not again.stored
    assert again.outbox_id == first.outbox_id and again.exit_code == ExitCode.OK
    assert len(store.rows([State.PENDING])) == 1


def test_an_event_already_delivered_is_said_so_and_exits_0(
    store: SqliteOutbox, settings: Settings
) -> None:
    capture(store, event(), settings)
    settle(store, State.DELIVERED, 202)
    again = capture(store, event(), settings)
    assert again.state is CaptureState.ALREADY_DELIVERED
    assert again.exit_code == ExitCode.OK
    assert again.row is not None and again.row.state is State.DELIVERED


@pytest.mark.parametrize(
    ("status", "kind", "code"),
    [
        (404, OutcomeKind.NO_CONTACT, ExitCode.NO_CONTACT),
        (400, OutcomeKind.INVALID, ExitCode.DATA),
        (422, OutcomeKind.INVALID, ExitCode.DATA),
    ],
)
def test_a_dead_letter_exits_as_it_failed(
    store: SqliteOutbox, settings: Settings, status: int, kind: OutcomeKind, code: ExitCode
) -> None:
    capture(store, event(), settings)
    settle(store, State.DEAD, status)
    again = capture(store, event(), settings)
    assert again.state is CaptureState.DEAD_LETTER
    assert again.dead_kind is kind
    assert again.exit_code == code
    assert len(store.rows([State.DEAD])) == 1 and not store.rows([State.PENDING])


def test_a_temporary_failure_is_kept_with_its_attempt_and_the_engines_backoff(
    store: SqliteOutbox, settings: Settings
) -> None:
    e = event()
    now = time.time()
    result = capture(store, e, settings, failure=failure(e, OutcomeKind.TEMPORARY, 503), now=now)
    assert result.stored and result.exit_code == ExitCode.OK
    [row] = store.rows([State.PENDING])
    assert row.attempts == 1 and row.last_status == 503 and row.last_error_code == "http_503"
    assert row.next_attempt_at is not None and row.next_attempt_at > now
    # The destination is marked failing: the next flush starts with one probe.
    assert store.is_failing(store.bind(settings))


def test_a_server_asked_wait_sets_the_next_attempt(store: SqliteOutbox, settings: Settings) -> None:
    e = event()
    now = time.time()
    outcome = failure(e, OutcomeKind.TEMPORARY, 429, retry_after=600.0)
    capture(store, e, settings, failure=outcome, now=now)
    [row] = store.rows([State.PENDING])
    assert row.next_attempt_at is not None and row.next_attempt_at >= now + 600.0 - 1


def test_a_configuration_failure_is_kept_but_exits_78(
    store: SqliteOutbox, settings: Settings
) -> None:
    e = event()
    result = capture(store, e, settings, failure=failure(e, OutcomeKind.CONFIG, None))
    assert result.stored and result.exit_code == ExitCode.CONFIG
    assert len(store.rows([State.PENDING])) == 1
    # Not a temporary failure: no probe is asked of the next flush.
    assert not store.is_failing(store.bind(settings))


def test_a_failure_captured_again_reports_the_row_already_there(
    store: SqliteOutbox, settings: Settings
) -> None:
    e = event()
    capture(store, e, settings)
    settle(store, State.DEAD, 404)
    again = capture(store, e, settings, failure=failure(e, OutcomeKind.TEMPORARY, 503))
    assert again.state is CaptureState.DEAD_LETTER and again.exit_code == ExitCode.NO_CONTACT
    assert again.failure is not None
