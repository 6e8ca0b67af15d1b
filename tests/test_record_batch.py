"""``record()`` writes many results in one call (one statement per kind of result), on both
backends: each row gets its own result, a stale claim's result is ignored row by row, and
the count returned is the rows actually changed.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from helpers import event as numbered_event

from intercom_events_cli.outbox.rows import RowResult, State
from intercom_events_cli.outbox.store import OutboxStore, open_store


@pytest.fixture
def store(store_location: str) -> Iterator[OutboxStore]:
    with open_store(store_location, {}) as opened:
        yield opened


def test_one_record_call_settles_every_kind_of_result_each_on_its_own_row(
    store: OutboxStore,
) -> None:
    for number in range(12):
        store.add(numbered_event(number, "paid"))
    rows = store.claim("me", 12)
    assert len(rows) == 12
    later = store.now() + 3600
    tokens = {row.id: row.claim_token for row in rows}
    ids = [row.id for row in rows]
    results = [
        # delivered, each with its own request id
        *(
            RowResult(i, State.DELIVERED, status=202, request_id=f"req-{i}", claim_token=tokens[i])
            for i in ids[0:4]
        ),
        # dead, with the API error
        *(
            RowResult(
                i,
                State.DEAD,
                status=422,
                error_code="parameter_invalid",
                error_message=f"bad {i}",
                claim_token=tokens[i],
            )
            for i in ids[4:6]
        ),
        # pending again after an attempt, later
        RowResult(
            ids[6], State.PENDING, status=503, next_attempt_at=later, claim_token=tokens[ids[6]]
        ),
        # handed back unsent
        RowResult(ids[7], State.PENDING, counts_attempt=False, claim_token=tokens[ids[7]]),
        # stale: a claim this row no longer carries (each kind once)
        RowResult(ids[8], State.DELIVERED, status=202, claim_token=(tokens[ids[8]] or 0) + 1),
        RowResult(ids[9], State.DEAD, status=400, claim_token=(tokens[ids[9]] or 0) + 1),
        RowResult(ids[10], State.PENDING, status=500, claim_token=(tokens[ids[10]] or 0) + 1),
        # no token: written while this owner holds the row
        RowResult(ids[11], State.DELIVERED, status=202, request_id="req-plain"),
    ]
    assert store.record("me", results) == 9

    by_id = {row.id: row for row in store.rows(list(State))}
    for i in ids[0:4]:
        assert by_id[i].state is State.DELIVERED and by_id[i].request_id == f"req-{i}"
        assert by_id[i].attempts == 1 and by_id[i].last_status == 202
    for i in ids[4:6]:
        assert by_id[i].state is State.DEAD
        assert by_id[i].error() == {"code": "parameter_invalid", "message": f"bad {i}"}
    assert by_id[ids[6]].state is State.PENDING and by_id[ids[6]].attempts == 1
    assert by_id[ids[6]].next_attempt_at == pytest.approx(later)
    assert by_id[ids[7]].state is State.PENDING and by_id[ids[7]].attempts == 0
    for i in ids[8:11]:  # the stale results changed nothing: still claimed, unattempted
        assert by_id[i].state is State.IN_FLIGHT and by_id[i].attempts == 0
    assert by_id[ids[11]].state is State.DELIVERED and by_id[ids[11]].request_id == "req-plain"
    assert store.summary().last_success_at is not None


def test_a_batch_of_only_stale_results_changes_nothing_and_says_so(store: OutboxStore) -> None:
    for number in range(5):
        store.add(numbered_event(number, "paid"))
    rows = store.claim("me", 5)
    stale = [
        RowResult(row.id, State.DELIVERED, status=202, claim_token=(row.claim_token or 0) + 1)
        for row in rows
    ]
    assert store.record("me", stale) == 0
    assert store.summary().counts[State.IN_FLIGHT] == 5
    assert store.summary().last_success_at is None
