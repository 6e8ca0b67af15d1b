"""Rules kept once, in the core: which outcome stops a run (``Outcome.stops_run``), which
failed delivery ``send --queue-on-failure`` keeps, and the capture of an interrupted send
(``capture.capture_interrupted``), against real SQLite outbox files."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from helpers import event

import intercom_events_cli
from intercom_events_cli.capture import capture, capture_interrupted, kept_after_failure
from intercom_events_cli.errors import ExitCode, Interrupted
from intercom_events_cli.outbox import State
from intercom_events_cli.outbox.store import open_store
from intercom_events_cli.outcome import CODE_TLS, Outcome, OutcomeKind

PACKAGE = Path(intercom_events_cli.__file__).parent


def outcome(kind: OutcomeKind, status: int | None = None, code: str | None = None) -> Outcome:
    return Outcome(
        event=event(),
        kind=kind,
        status=status,
        attempts=1,
        elapsed_s=0.01,
        error_code=code,
        error_message=None if kind is OutcomeKind.DELIVERED else "failed",
    )


@pytest.mark.parametrize("kind", list(OutcomeKind))
def test_only_a_rejected_token_or_a_setup_failure_stops_the_run(kind: OutcomeKind) -> None:
    assert outcome(kind).stops_run is (kind in (OutcomeKind.AUTH, OutcomeKind.CONFIG))


def test_the_stop_rule_is_written_only_in_outcome_py() -> None:
    """No module spells the rule out again: they ask ``outcome.stops_run``."""
    spelled = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "outcome.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Tuple | ast.Set | ast.List):
                names = {ast.unparse(item) for item in node.elts}
                if {"OutcomeKind.AUTH", "OutcomeKind.CONFIG"} <= names:
                    spelled.append(f"{path.relative_to(PACKAGE)}:{node.lineno}")
    assert spelled == []


@pytest.mark.parametrize(
    ("failure", "kept"),
    [
        (outcome(OutcomeKind.TEMPORARY, 503, "http_503"), True),
        (outcome(OutcomeKind.TEMPORARY, None, "timeout"), True),
        (outcome(OutcomeKind.CONFIG, None, CODE_TLS), True),
        (outcome(OutcomeKind.CONFIG, 301, "redirect"), False),
        (outcome(OutcomeKind.AUTH, 401, "unauthorized"), False),
        (outcome(OutcomeKind.INVALID, 422, "parameter_invalid"), False),
        (outcome(OutcomeKind.NO_CONTACT, 404, "not_found"), False),
        (outcome(OutcomeKind.DELIVERED, 202), False),
    ],
)
def test_queue_on_failure_keeps_temporary_and_tls_failures_only(
    failure: Outcome, kept: bool
) -> None:
    assert kept_after_failure(failure) is kept


def test_an_interrupted_send_is_kept_unbound_and_the_error_carries_its_row(
    tmp_path: Path,
) -> None:
    sent = event()
    with open_store(str(tmp_path / "outbox.sqlite3"), {}) as store:
        interrupted = capture_interrupted(store, sent)
        assert isinstance(interrupted, Interrupted)
        assert interrupted.exit_code is ExitCode.INTERRUPTED
        rows = store.rows([State.PENDING])
        assert [row.id for row in rows] == [interrupted.outbox_id]
        assert rows[0].event().created_at == sent.created_at
        assert rows[0].destination_id is None  # unbound: any configuration delivers it
        assert f"id {interrupted.outbox_id}" in interrupted.message
        assert str(sent.created_at) in (interrupted.hint or "")
        # Interrupted again (the same event): the same row, not a second one.
        again = capture_interrupted(store, sent)
        assert again.outbox_id == interrupted.outbox_id
        assert capture(store, sent, None).outbox_id == interrupted.outbox_id


def test_an_interrupted_error_keeps_no_row_unless_given_one() -> None:
    assert Interrupted("stopped").outbox_id is None
    assert Interrupted("stopped", "hint", outbox_id=7).outbox_id == 7
