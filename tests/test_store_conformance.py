"""What every outbox backend must do: the ``OutboxStore`` protocol, method by method.

Each test runs once per backend of the registry (``outbox/store.py`` ``BACKENDS``: SQLite
and PostgreSQL), through ``open_store`` and the protocol only, never a backend's class. A
new backend is one module and one line in ``BACKENDS``; ``store_location`` (conftest.py)
then runs every test here for it too, and fails until ``OUTBOX_BACKENDS`` there says how
to make a fresh, empty location of it. What only one backend has (a file's modes and header, a
schema's name, migrations) is in ``test_sqlite_outbox.py`` and ``test_pg_outbox.py``.
"""

from __future__ import annotations

import ast
import inspect
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers import event, wait_for

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.event import Event
from intercom_events_cli.outbox.owner import new_owner
from intercom_events_cli.outbox.rows import RowResult, State, bulk_row
from intercom_events_cli.outbox.store import OutboxStore, open_store, redact_uri

US = Settings(token="tok_us_workspace_1234", base_url="http://127.0.0.1:1")
EU = Settings(token="tok_eu_workspace_9876", base_url="http://127.0.0.1:2")
APAC = Settings(token="tok_apac_workspace_5555", base_url="http://127.0.0.1:3")
FOREIGN = "other-host:1:-:x"  # a claimer on another host: never taken for gone


def reopen(location: str) -> OutboxStore:
    """Another store on the same outbox (another connection, as another process has)."""
    return open_store(location, {})


@pytest.fixture
def store(store_location: str) -> Iterator[OutboxStore]:
    with open_store(store_location, {}) as opened:
        yield opened


# -- opening, path, close ------------------------------------------------------------------


def test_opening_again_keeps_rows_and_closing_keeps_what_was_written(store_location: str) -> None:
    opened = open_store(store_location, {})
    with opened as entered:
        assert entered is opened
        entered.add(event(1))
        version = entered.summary().schema_version
    later = reopen(store_location)
    later.add(event(2))
    later.close()
    with reopen(store_location) as again:
        summary = again.summary()
        assert summary.counts[State.PENDING] == 2
        assert summary.schema_version == version > 0
        assert summary.path == again.path and again.path.exists()
        assert str(again.path) == redact_uri(store_location)  # safe to print


# -- capture ---------------------------------------------------------------------------------


def test_the_same_event_is_stored_once(store: OutboxStore) -> None:
    first = store.add(event())
    again = store.add(event())
    assert first.added and not again.added
    assert again.id == first.id and again.state is State.PENDING
    assert store.summary().counts[State.PENDING] == 1


def test_a_delivered_event_captured_again_is_recognised_as_delivered(store: OutboxStore) -> None:
    owner = new_owner()
    first = store.add(event())
    store.claim(owner, 10)
    store.record(owner, [RowResult(first.id, State.DELIVERED, status=202)])
    again = store.add(event())
    assert not again.added and again.state is State.DELIVERED and again.id == first.id
    assert again.row is not None and again.row.last_status == 202


def test_the_payload_is_stored_exactly_by_add_and_by_bulk_capture(store: OutboxStore) -> None:
    single, bulk = (
        Event.create("paid", email=f"{who}@example.org", created_at=1_700_000_000,
                     metadata={"é": "ü", "n": 1.5, "who": who})
        for who in ("ada", "grace")
    )  # fmt: skip
    store.add(single)
    assert store.queue_many([bulk]) == (1, 0)
    rows = store.rows([State.PENDING])
    assert [r.event() for r in rows] == [single, bulk]
    for row, original in zip(rows, (single, bulk), strict=True):
        assert row.payload_text.encode() == original.body()
        assert row.dedup_key == original.dedup_key() and row.event_name == "paid"


def test_add_keeps_what_a_failed_send_learned(store: OutboxStore) -> None:
    """``send --queue-on-failure``: the attempts made, the last answer, when to try again."""
    later = store.now() + 3600  # times given to a store are on its clock
    dest = store.bind(US)
    added = store.add(
        event(),
        attempts=2,
        last_status=503,
        last_error_code="http_503",
        last_error_message="Service Unavailable",
        request_id="req-1",
        next_attempt_at=later,
        destination_id=dest,
    )
    (row,) = store.rows([State.PENDING])
    assert row.id == added.id and added.added
    assert (row.attempts, row.last_status, row.request_id) == (2, 503, "req-1")
    assert row.error() == {"code": "http_503", "message": "Service Unavailable"}
    assert (row.next_attempt_at, row.destination_id) == (later, dest)
    assert store.claim("a", 10, destination_id=dest) == []  # not due yet


def test_bulk_capture_counts_stored_and_skipped_and_requeues_only_what_it_is_told(
    store: OutboxStore,
) -> None:
    delivered, dead, fresh = (Event.create("a", user_id=str(n), created_at=5) for n in range(3))
    ids = [store.add(delivered).id, store.add(dead).id]
    store.claim("owner", 10)
    store.record(
        "owner",
        [RowResult(ids[0], State.DELIVERED, status=202), RowResult(ids[1], State.DEAD, status=404)],
    )
    # dead is requeued, delivered skipped, fresh stored; fresh twice counts once.
    assert store.queue_many(
        [delivered, dead, fresh, fresh],
        source="run",
        source_lines=[1, 2, 3, 4],
        requeue=(State.DEAD,),
    ) == (2, 2)
    pending = {r.event_name + r.payload["user_id"]: r for r in store.rows([State.PENDING])}
    assert set(pending) == {"a1", "a2"}
    requeued = pending["a1"]
    assert (requeued.id, requeued.source, requeued.source_line) == (ids[1], "run", 2)
    assert (requeued.attempts, requeued.error()) == (0, None)
    assert pending["a2"].source_line == 3
    # --resend: delivered ones too, the same row (one row per event in the ledger).
    assert store.queue_many([delivered], requeue=(State.DEAD, State.DELIVERED)) == (1, 0)
    assert ids[0] in {r.id for r in store.rows([State.PENDING])}
    assert store.queue_many([]) == (0, 0)


def test_bulk_capture_binds_new_rows_and_stamps_them(store: OutboxStore) -> None:
    dest = store.bind(US)
    stamp = time.time() - 60
    assert store.queue_many([event(1), event(2)], now=stamp, destination_id=dest) == (2, 0)
    rows = store.rows([State.PENDING])
    assert {(r.destination_id, r.created) for r in rows} == {(dest, stamp)}
    assert store.count_due(dest) == 2


def test_bulk_capture_of_rows_stores_each_key_once_in_their_order(store: OutboxStore) -> None:
    """``queue_rows``: what a batch run hands the store (rows made as each record is
    read). Their order is the ids' order; a key twice keeps its first line; a stored
    key is skipped; key and body are the Event's own."""
    assert store.queue_many([event(5)], source="run-1", source_lines=[1]) == (1, 0)
    rows = [bulk_row(event(n), line) for line, n in ((10, 3), (11, 1), (12, 3), (13, 5), (14, 2))]
    assert store.queue_rows(rows, source="run-2") == (3, 2)
    stored = sorted(store.rows([State.PENDING]), key=lambda r: r.id)
    assert [(r.payload["user_id"], r.source_line) for r in stored] == [
        ("u5", 13),  # adopted by run-2, at its line there
        ("u3", 10),
        ("u1", 11),
        ("u2", 14),
    ]
    assert [r.dedup_key for r in stored[1:]] == [event(n).dedup_key() for n in (3, 1, 2)]
    assert [r.payload_text for r in stored[1:]] == [event(n).canonical_json() for n in (3, 1, 2)]
    assert {r.source for r in stored} == {"run-2"}
    assert store.queue_rows([]) == (0, 0)


def test_bulk_capture_adopts_undelivered_rows_for_its_run(store: OutboxStore) -> None:
    """A batch run answers for events of its input already waiting (count_undelivered)."""
    events = [event(n) for n in range(4)]
    assert store.queue_many(events[:3], source="run-1", source_lines=[1, 2, 3]) == (3, 0)
    (held,) = store.claim("a", 1)  # in flight: adopted as well
    assert held.payload["user_id"] == "u0"
    again = [events[0], events[2], events[3]]
    assert store.queue_many(again, source="run-2", source_lines=[7, 8, 9]) == (1, 2)
    rows = {r.payload["user_id"]: r for r in store.rows([State.PENDING, State.IN_FLIGHT])}
    assert [(rows[f"u{n}"].source, rows[f"u{n}"].source_line) for n in range(4)] == [
        ("run-2", 7),
        ("run-1", 2),
        ("run-2", 8),
        ("run-2", 9),
    ]
    # (undelivered, of which in flight): run-2's u0 is held by "a".
    assert store.count_undelivered("run-2") == (3, 1)
    assert store.count_undelivered("run-1") == (1, 0)
    # One of run-2's comes back for later, one is delivered; run-1's is taken by "b".
    claimed = {r.payload["user_id"]: r.id for r in store.claim("b", 3)}
    assert set(claimed) == {"u1", "u2", "u3"}
    later = time.time() + 3600
    store.record(
        "b",
        [
            RowResult(claimed["u3"], State.PENDING, status=503, next_attempt_at=later),
            RowResult(claimed["u2"], State.DELIVERED, status=202),
        ],
    )
    assert store.count_undelivered("run-2") == (2, 1)  # u0 (in flight, "a") and u3 (later)
    assert store.count_undelivered("run-1") == (1, 1)
    assert store.count_undelivered("nobody") == (0, 0)


# -- claims and leases -----------------------------------------------------------------------


def test_claims_are_disjoint_and_oldest_capture_first(
    store: OutboxStore, store_location: str
) -> None:
    now = time.time()
    store.queue_many([event(n) for n in range(10)], now=now - 60)
    store.add(event(99), now=now - 600)  # captured earlier: goes first
    with reopen(store_location) as other:
        mine = store.claim("a", 4)
        theirs = other.claim("b", 100)
    assert mine[0].dedup_key == event(99).dedup_key()
    assert [r.id for r in mine[1:]] == sorted(r.id for r in mine[1:])
    assert {r.id for r in mine}.isdisjoint({r.id for r in theirs})
    assert len(mine) + len(theirs) == 11
    assert all(r.state is State.IN_FLIGHT for r in mine + theirs)
    assert store.summary().counts[State.IN_FLIGHT] == 11


def test_claims_of_valid_events_refuse_nothing(store: OutboxStore) -> None:
    """``take_refused`` names only rows a claim turned into dead letters unsent (a row
    enqueued around ievents that is not an event: ``test_relay_ops.py``); events stored
    through the protocol are all valid, so none is refused and every one is claimed."""
    assert store.queue_many([event(n) for n in range(5)]) == (5, 0)
    assert store.take_refused() == []
    claimed = store.claim("a", 10)
    assert len(claimed) == 5
    assert store.take_refused() == []
    assert store.summary().counts[State.DEAD] == 0


def test_release_hands_back_all_or_the_named_rows_of_their_owner_only(store: OutboxStore) -> None:
    assert store.queue_many([event(n) for n in range(10)]) == (10, 0)
    first = store.claim("owner-a", 4)
    second = store.claim("owner-b", 10)
    assert [r.id for r in first] == sorted(r.id for r in first)
    assert not {r.id for r in first} & {r.id for r in second}
    assert len(first) + len(second) == 10
    assert store.release("owner-c") == 0  # holds nothing
    assert store.release("owner-b", [second[0].id, second[1].id, first[0].id]) == 2
    assert store.release("owner-a") == 4
    counts = store.summary().counts
    assert (counts[State.PENDING], counts[State.IN_FLIGHT]) == (6, 4)
    released = {r.id: r for r in store.rows([State.PENDING])}
    assert {second[0].id, second[1].id} <= set(released)
    assert all(r.attempts == 0 for r in released.values())  # unsent: no attempt counted


def test_rows_not_due_wait_unless_probed_or_made_due(store: OutboxStore) -> None:
    dest = store.bind(US)
    later = time.time() + 3600
    store.add(event(1), next_attempt_at=later, destination_id=dest)
    store.add(event(2), next_attempt_at=later, destination_id=store.bind(EU))
    assert store.claim("a", 10, destination_id=dest) == []
    assert store.count_due(dest) == 0
    assert store.count_due(dest, now=later + 1) == 1
    # The probe after an outage: the oldest one, due or not.
    (probe,) = store.claim("a", 1, destination_id=dest, due_or_not=True)
    assert probe.payload["user_id"] == "u1"
    assert store.release("a") == 1
    assert store.make_all_due(destination_id=dest) == 1  # only its own rows
    assert store.count_due(dest) == 1
    assert [r.payload["user_id"] for r in store.claim("a", 10, destination_id=dest)] == ["u1"]
    assert store.count_due(None) == 0
    assert store.make_all_due() == 1  # every destination's
    assert store.count_due(None) == 1


def test_a_live_claim_holds_until_its_lease_ends(store: OutboxStore, store_location: str) -> None:
    added = store.add(event())
    alive = new_owner()  # this very process, another engine
    assert len(store.claim(alive, 10, lease_s=3600)) == 1
    with reopen(store_location) as other:
        assert other.claim(FOREIGN, 10) == []
        assert store.renew(alive, lease_s=0) == [added.id]  # the lease ends now
        taken = wait_for(lambda: other.claim(FOREIGN, 10), what="the ended lease taken back")
    assert [r.dedup_key for r in taken] == [event().dedup_key()]


def test_renew_extends_the_leases_of_their_owner_only(
    store: OutboxStore, store_location: str
) -> None:
    store.queue_many([event(1), event(2), event(3)])
    owner = new_owner()
    held = store.claim(owner, 2, lease_s=0)  # ended at once, not taken yet
    assert len(held) == 2
    assert store.renew("someone-else", lease_s=3600) == []
    assert sorted(store.renew(owner, lease_s=3600)) == sorted(r.id for r in held)
    with reopen(store_location) as other:
        assert [r.payload["user_id"] for r in other.claim(FOREIGN, 10)] == ["u3"]
    store.release(owner)
    assert store.renew(owner) == []  # nothing held any more


def test_now_is_the_clock_of_the_stores_own_timestamps_and_never_goes_back(
    store: OutboxStore, store_location: str
) -> None:
    """``now()``: the clock claims, leases and due times use (PostgreSQL: the database's,
    SQLite: this host's), so that the engine's own times (backoffs) agree with the rows'."""
    started = time.monotonic()
    readings = [store.now()]
    added = store.add(event(1))  # stamped by the store itself
    readings.append(store.now())
    (claimed,) = store.claim(new_owner(), 1, lease_s=600)
    readings.append(store.now())
    with reopen(store_location) as other:
        elsewhere = other.now()  # another connection, the same clock
    readings.append(store.now())
    # How far a reading may be from a stamp: the time these calls took, which bounds the
    # error of a clock measured over a round trip (no fixed tolerance).
    slack = time.monotonic() - started
    assert readings == sorted(readings)  # monotone
    assert readings[2] - slack <= elsewhere <= readings[3] + slack
    (row,) = store.rows([State.IN_FLIGHT])
    assert row.id == added.id == claimed.id
    assert readings[0] - slack <= row.created <= readings[1] + slack
    assert row.lease_expires_at is not None
    assert readings[1] + 600 - slack <= row.lease_expires_at <= readings[2] + 600 + slack
    # A row due a second ago by now() is due; one due in an hour is not.
    dest = store.bind(US)
    store.add(event(2), next_attempt_at=store.now() - 1, destination_id=dest)
    store.add(event(3), next_attempt_at=store.now() + 3600, destination_id=dest)
    assert [r.payload["user_id"] for r in store.claim("a", 10, destination_id=dest)] == ["u2"]


def test_a_claim_whose_lease_ran_out_is_taken_back(store: OutboxStore) -> None:
    store.add(event())
    assert len(store.claim(FOREIGN, 5, lease_s=0.2)) == 1
    again = wait_for(lambda: store.claim("me", 5), what="the expired claim taken back")
    assert [r.dedup_key for r in again] == [event().dedup_key()]


def test_the_rows_of_a_killed_claimer_are_taken_back_long_before_its_lease_ends(
    store: OutboxStore, store_location: str
) -> None:
    store.queue_many([event(n) for n in range(3)])
    claimer = (
        "import os, signal, sys\n"
        "from intercom_events_cli.outbox.owner import new_owner\n"
        "from intercom_events_cli.outbox.store import open_store\n"
        "store = open_store(sys.argv[1], {})\n"
        "print(len(store.claim(new_owner(), 10, lease_s=3600)), flush=True)\n"
        "os.kill(os.getpid(), signal.SIGKILL)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", claimer, store_location],
        capture_output=True,
        text=True,
        timeout=120,
        env=dict(os.environ),
    )
    assert (done.returncode, done.stdout.strip()) == (-signal.SIGKILL, "3"), done
    assert store.summary().counts[State.IN_FLIGHT] == 3
    taken = wait_for(lambda: store.claim(new_owner(), 10), what="the killed claimer's rows back")
    assert len(taken) == 3  # within a minute, where its lease had an hour to go


# -- settling --------------------------------------------------------------------------------


def test_record_writes_each_result_and_release_the_rest(store: OutboxStore) -> None:
    ids = [store.add(event(n)).id for n in range(5)]
    owner = new_owner()
    store.claim(owner, 10)
    later = time.time() + 300
    assert store.record(owner, []) == 0
    changed = store.record(
        owner,
        [
            RowResult(ids[0], State.DELIVERED, status=202, request_id="r1"),
            RowResult(ids[1], State.DEAD, status=422, error_code="bad", error_message="no"),
            RowResult(ids[2], State.PENDING, status=503, next_attempt_at=later),
            RowResult(ids[3], State.PENDING, counts_attempt=False),
        ],
    )
    assert changed == 4
    assert store.release(owner) == 1
    rows = store.rows(list(State))
    got = {r.id: r for r in rows}
    assert got[ids[0]].state is State.DELIVERED and got[ids[0]].request_id == "r1"
    assert got[ids[0]].attempts == 1 and got[ids[0]].last_status == 202
    assert got[ids[1]].state is State.DEAD
    assert got[ids[1]].error() == {"code": "bad", "message": "no"}
    assert got[ids[1]].last_status == 422
    assert got[ids[2]].state is State.PENDING and got[ids[2]].next_attempt_at == later
    assert got[ids[2]].attempts == 1
    assert (got[ids[3]].state, got[ids[3]].attempts) == (State.PENDING, 0)  # handed back
    assert got[ids[4]].state is State.PENDING and got[ids[4]].attempts == 0
    summary = store.summary()
    assert summary.last_success_at is not None
    assert summary.counts == {
        State.PENDING: 3,
        State.IN_FLIGHT: 0,
        State.DELIVERED: 1,
        State.DEAD: 1,
    }


def test_result_of_a_lost_claim_is_ignored_unless_delivered(store: OutboxStore) -> None:
    ids = [store.add(event(1)).id, store.add(event(2)).id]
    store.claim("a", 10)
    assert store.record("b", [RowResult(ids[0], State.DEAD, status=400)]) == 0
    assert store.record("b", [RowResult(ids[1], State.DELIVERED, status=202)]) == 1
    states = {r.id: r.state for r in store.rows(list(State))}
    assert states == {ids[0]: State.IN_FLIGHT, ids[1]: State.DELIVERED}


# -- destinations ----------------------------------------------------------------------------


def test_bind_gives_one_id_per_destination_and_keeps_no_token(
    store: OutboxStore, store_location: str
) -> None:
    us_id, eu_id = store.bind(US), store.bind(EU)
    assert us_id != eu_id and store.bind(US) == us_id
    with reopen(store_location) as other:
        assert other.bind(EU) == eu_id  # the same fingerprint from another connection
    known = store.destinations()
    assert set(known) == {us_id, eu_id}
    us, eu = known[us_id], known[eu_id]
    assert (us.base_url, us.api_version, us.token_hint) == ("http://127.0.0.1:1", "2.14", "1234")
    assert (eu.base_url, eu.token_hint) == ("http://127.0.0.1:2", "9876")
    assert us.token_fingerprint != eu.token_fingerprint
    for field in (*us.__dict__.values(), *eu.__dict__.values()):
        assert field is None or (US.token not in field and EU.token not in field)


US_ROTATED = Settings(token="tok_us_workspace_rotated_4321", base_url="http://127.0.0.1:1")
EU_SAME_ID = Settings(token="tok_eu_same_id_other_host_8888", base_url="http://127.0.0.1:2")


def test_learning_a_tokens_workspace_binds_every_token_of_it_to_one_destination(
    store: OutboxStore, store_location: str
) -> None:
    old_id = store.bind(US)
    assert store.token_workspace(US) is None  # capture never asks Intercom
    store.queue_many([event(1), event(2)], destination_id=old_id)
    assert store.learn(US, "ws_us") == old_id
    new_id = store.bind(US_ROTATED)  # a new token, not yet learned: its own row
    assert new_id != old_id
    store.queue_many([event(3)], destination_id=new_id)
    eu_id = store.bind(EU_SAME_ID)
    store.queue_many([event(4)], destination_id=eu_id)
    # The rotated token learns its workspace: every row of the workspace is one destination.
    assert store.learn(US_ROTATED, "ws_us") == old_id
    assert store.bind(US_ROTATED) == old_id and store.token_workspace(US_ROTATED) == "ws_us"
    with reopen(store_location) as other:
        assert other.bind(US_ROTATED) == old_id  # remembered in the outbox
    # Same workspace id on another API host: another workspace, left alone.
    assert store.learn(EU_SAME_ID, "ws_us") == eu_id
    bound = {r.id: r.destination_id for r in store.rows([State.PENDING])}
    assert sorted(bound.values()) == [old_id, old_id, old_id, eu_id]
    assert [r.event_name for r in store.claim("me", 10, destination_id=old_id)] == ["signed-up"] * 3
    known = store.destinations()
    assert known[old_id].workspace_id == known[new_id].workspace_id == "ws_us"
    assert store.waiting_elsewhere(old_id) == [(known[eu_id], 1)]


def test_move_binds_rows_of_one_state_to_another_destination(store: OutboxStore) -> None:
    us_id, eu_id = store.bind(US), store.bind(EU)
    store.queue_many([event(1), event(2)], destination_id=eu_id)
    assert store.move([eu_id], us_id, State.PENDING, dry_run=True) == 2
    assert store.waiting_elsewhere(us_id) != []  # a dry run changes nothing
    assert store.move([eu_id], us_id, State.DEAD) == 0
    assert store.move([eu_id, us_id], us_id, State.PENDING) == 2
    assert store.waiting_elsewhere(us_id) == []
    assert len(store.claim("me", 10, destination_id=us_id)) == 2


def test_the_default_workspace_is_kept_and_legacy_unbound_rows_wait_for_no_one(
    store: OutboxStore, store_location: str
) -> None:
    assert store.default_workspace() is None
    store.add(event(1))  # unbound, as captured by an older ievents: anyone's
    assert store.waiting_for_workspace() == []
    assert store.set_default_workspace("ws_us") == 0  # no SQL-enqueued row waited
    with reopen(store_location) as other:
        assert other.default_workspace() == "ws_us"
    us_id = store.learn(US, "ws_us", name="us")
    assert [r.destination_id for r in store.claim("me", 10, destination_id=us_id)] == [None]


def test_a_claim_for_a_destination_takes_its_rows_and_unbound_ones_and_binds_those(
    store: OutboxStore,
) -> None:
    us_id, eu_id = store.bind(US), store.bind(EU)
    unbound = store.add(event(1)).id  # as captured by an older ievents
    mine = store.add(event(2), destination_id=us_id).id
    theirs = store.add(event(3), destination_id=eu_id).id
    claimed = {r.id: r.destination_id for r in store.claim("me", 10, destination_id=us_id)}
    # Bound by this claim: said so (None), so that it can be unbound again.
    assert claimed == {unbound: None, mine: us_id}
    assert store.claim("other", 10, destination_id=us_id) == []
    assert {r.id: r.destination_id for r in store.rows([State.IN_FLIGHT])} == {
        unbound: us_id,
        mine: us_id,
    }
    # Intercom never answered (a rejected token): unbound again, no attempt counted.
    store.record("me", [RowResult(unbound, State.PENDING, counts_attempt=False, unbind=True)])
    store.record("me", [RowResult(mine, State.PENDING, counts_attempt=False)])
    pending = {r.id: (r.destination_id, r.attempts) for r in store.rows([State.PENDING])}
    assert pending == {unbound: (None, 0), mine: (us_id, 0), theirs: (eu_id, 0)}
    # Without a destination: any row.
    assert {r.id for r in store.claim("any", 10)} == {unbound, mine, theirs}


def test_waiting_elsewhere_counts_undelivered_rows_of_other_destinations(
    store: OutboxStore,
) -> None:
    us_id, eu_id, apac_id = store.bind(US), store.bind(EU), store.bind(APAC)
    store.queue_many([event(1)], destination_id=us_id)
    store.queue_many([event(n) for n in range(2, 6)], destination_id=eu_id)
    store.queue_many([event(9)], destination_id=apac_id)
    held = store.claim("eu-flush", 2, destination_id=eu_id)  # in flight still waits
    store.record("eu-flush", [RowResult(held[0].id, State.DELIVERED, status=202)])
    store.add(event(0))  # unbound: anyone's, so waiting for no one else
    known = store.destinations()
    assert store.waiting_elsewhere(us_id) == [(known[eu_id], 3), (known[apac_id], 1)]
    assert store.waiting_elsewhere(eu_id) == [(known[us_id], 1), (known[apac_id], 1)]
    store.release("eu-flush")
    store.claim("all", 100)
    store.record("all", [RowResult(r.id, State.DEAD) for r in store.rows([State.IN_FLIGHT])])
    assert store.summary().counts[State.DEAD] == 6
    assert store.waiting_elsewhere(us_id) == []  # dead letters wait for no one


def test_a_failing_destination_is_remembered_until_it_answers(store: OutboxStore) -> None:
    """The probe flags: a destination whose last attempt failed starts its next run probing."""
    us_id, eu_id = store.bind(US), store.bind(EU)
    assert not store.is_failing(us_id) and not store.is_failing(eu_id)
    store.note_destination(us_id, up=False)
    store.note_destination(us_id, up=False, now=time.time() + 5)
    assert store.is_failing(us_id) and not store.is_failing(eu_id)
    store.note_destination(eu_id, up=True)
    assert not store.is_failing(eu_id)
    store.note_destination(us_id, up=True)
    assert not store.is_failing(us_id)
    assert not store.is_failing(us_id + eu_id + 100)  # unknown: not failing


# -- inspecting ------------------------------------------------------------------------------


def test_summary_counts_states_and_keeps_the_heartbeat(store: OutboxStore) -> None:
    empty = store.summary()
    assert empty.counts == dict.fromkeys(State, 0)
    assert (empty.oldest_pending_created, empty.next_attempt_at) == (None, None)
    assert (empty.last_flush_at, empty.last_flush_exit_code, empty.last_success_at) == (
        None,
        None,
        None,
    )
    assert empty.pending_by_destination == ()
    now = time.time()
    eu_id = store.bind(EU)
    store.add(event(1), now=now - 100, next_attempt_at=now + 50)
    store.add(event(2), now=now - 50, destination_id=eu_id)
    store.add(event(3), now=now - 10, destination_id=eu_id)
    store.note_flush(75, now=now - 5)
    summary = store.summary()
    assert summary.counts[State.PENDING] == 3
    assert summary.oldest_pending_created == now - 100
    assert summary.next_attempt_at == now - 50
    assert (summary.last_flush_at, summary.last_flush_exit_code) == (now - 5, 75)
    assert summary.last_success_at is None
    assert summary.pending_by_destination == ((store.destinations()[eu_id], 2), (None, 1))
    (row,) = store.claim("a", 1, destination_id=eu_id)
    store.record("a", [RowResult(row.id, State.DELIVERED, status=202)], now=now)
    store.note_flush(0, now=now + 1)
    summary = store.summary()
    assert (summary.last_success_at, summary.last_flush_at) == (now, now + 1)
    assert summary.last_flush_exit_code == 0
    assert summary.counts[State.DELIVERED] == 1


def test_rows_come_by_id_a_page_at_a_time_and_iter_rows_reads_them_all(
    store: OutboxStore,
) -> None:
    ids = [store.add(event(n)).id for n in range(7)]
    store.claim("a", 1)
    store.record("a", [RowResult(ids[0], State.DELIVERED, status=202)])
    pending = [r.id for r in store.rows([State.PENDING])]
    assert pending == ids[1:]
    assert [r.id for r in store.rows([State.PENDING], limit=2)] == ids[1:3]
    assert [r.id for r in store.rows([State.PENDING], limit=2, after_id=ids[2])] == ids[3:5]
    assert [r.id for r in store.rows([State.DELIVERED, State.PENDING])] == ids
    assert store.rows([]) == [] and store.rows([State.DEAD]) == []
    for page in (1, 3, 6, 500):  # a page that ends exactly at the last row, too
        assert [r.id for r in store.iter_rows([State.PENDING], page=page)] == ids[1:]
    assert [r.id for r in store.iter_rows(list(State))] == ids


# -- managing --------------------------------------------------------------------------------


def test_retry_dead_moves_dead_letters_back_due_now(store: OutboxStore) -> None:
    ids = [store.add(event(n)).id for n in range(3)]
    pending = store.add(event(9)).id
    store.claim("a", 3)
    store.record("a", [RowResult(i, State.DEAD, status=404) for i in ids])
    moved, missing = store.retry_dead([ids[0], 12345, ids[0], pending])
    assert moved == [ids[0]] and missing == [12345, pending]
    assert store.count_due(None) == 2  # due now
    moved, missing = store.retry_dead()
    assert sorted(moved) == ids[1:] and missing == []
    assert store.summary().counts[State.PENDING] == 4
    assert store.retry_dead() == ([], [])


def test_purge_respects_age_state_and_late_arrivals(store: OutboxStore) -> None:
    now = time.time()
    old, new = store.add(event(1), now=now - 40 * 86400), store.add(event(2), now=now)
    store.claim("a", 10)
    store.record("a", [RowResult(old.id, State.DELIVERED, status=202)], now=now - 40 * 86400)
    store.record("a", [RowResult(new.id, State.DELIVERED, status=202)], now=now)
    count, max_id, cutoff = store.purge_plan(State.DELIVERED, older_than_s=30 * 86400)
    assert count == 1
    assert store.purge(State.DELIVERED, max_id=max_id, cutoff=cutoff) == 1
    assert [r.id for r in store.rows([State.DELIVERED])] == [new.id]
    assert store.purge_plan(State.DELIVERED, older_than_s=30 * 86400, now=now + 31 * 86400)[0] == 1
    store.add(event(5))
    count, max_id, cutoff = store.purge_plan(State.PENDING)
    assert count == 1
    store.add(event(3))  # arrives while the user confirms: must survive
    assert store.purge(State.PENDING, max_id=max_id, cutoff=cutoff) == 1
    assert [r.dedup_key for r in store.rows([State.PENDING])] == [event(3).dedup_key()]
    with pytest.raises(ValueError):
        store.purge_plan(State.IN_FLIGHT)
    with pytest.raises(ValueError):
        store.purge(State.IN_FLIGHT, max_id=10**9, cutoff=float("inf"))


# -- change notification -----------------------------------------------------------------


def test_the_waker_wakes_on_another_connections_capture_and_on_stop(
    store: OutboxStore, store_location: str
) -> None:
    stop = threading.Event()
    waker = store.waker(stop)
    try:
        waker.wait(0.05)  # the first wait settles in (connects, reads where it starts)
        while waker.wait(0.05):  # whatever the settling saw, it has said it
            pass
        with reopen(store_location) as other:
            other.add(event(1))
        # Another connection committed: the waker says so, well before this deadline.
        assert waker.wait(60.0) is True
        # And outlives the store it was made from (the relay reconnects under it).
        store.close()
        with reopen(store_location) as other:
            other.add(event(2))
        assert waker.wait(60.0) is True
        stop.set()
        started = time.monotonic()
        assert waker.wait(60.0) is True  # a stop ends the wait at once
        assert time.monotonic() - started < 30.0
    finally:
        waker.close()
        waker.close()  # twice: harmless


# -- this module covers the protocol, through the protocol --------------------------------


def protocol_members() -> set[str]:
    """What ``OutboxStore`` declares (not what ``Protocol`` brings)."""
    return {
        name
        for name, value in vars(OutboxStore).items()
        if isinstance(value, property)
        or (inspect.isfunction(value) and value.__qualname__ == f"OutboxStore.{name}")
    }


def test_every_member_of_the_protocol_is_used_by_a_test_here() -> None:
    tests = {
        name: inspect.getsource(value)
        for name, value in globals().items()
        if name.startswith("test_") and "protocol" not in name
    }
    covered = {
        member: [
            test
            for test, source in tests.items()
            # a dunder: a ``with`` block on a store
            if (f".{member}" in source if not member.startswith("__") else "with " in source)
        ]
        for member in protocol_members()
    }
    assert len(covered) >= 25  # the protocol as it stands: fewer would be a wrong look
    assert [member for member, users in covered.items() if not users] == []


def test_this_module_reaches_a_store_only_through_the_protocol() -> None:
    """So that a backend added to ``store_location`` is tested by these tests unchanged."""
    tree = ast.parse(Path(__file__).read_text(encoding="utf-8"))
    modules = {
        node.module for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
    }
    outbox = {m for m in modules if m.startswith("intercom_events_cli.outbox")}
    assert outbox == {
        "intercom_events_cli.outbox.owner",
        "intercom_events_cli.outbox.rows",
        "intercom_events_cli.outbox.store",
    }


def test_a_store_says_when_its_location_names_another_outbox_now(
    store: OutboxStore, store_location: str
) -> None:
    # Other connections' writes change nothing: the store still has the outbox there.
    with reopen(store_location) as other:
        other.add(event(1))
    store.add(event(2))
    assert store.replaced() is False
    file = Path(store_location)
    if not file.is_file():
        return  # a database: what is at its URI stays the same one
    # A file moved aside (a relay keeps it open): the path names a new one once created.
    file.rename(file.with_name("aside.sqlite3"))
    for suffix in ("-wal", "-shm"):
        Path(f"{file}{suffix}").unlink(missing_ok=True)
    with reopen(store_location) as fresh:
        assert store.replaced() is True
        assert fresh.replaced() is False
