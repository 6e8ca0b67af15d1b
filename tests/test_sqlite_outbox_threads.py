"""One ``SqliteOutbox`` shared by the threads of a run, as ``ievents batch`` shares it.

``batch`` stores what it reads (``queue_rows``, on its writing thread) while the delivery engine,
on the calling thread, claims, renews, records and releases on the same connection
(``check_same_thread=False``, one lock around it). Any call that reached the connection
outside that lock would show here as a sqlite3 error (``bad parameter or other API
misuse``, a row read half-way) or as a row lost or doubled: with the interpreter switching
threads every microsecond such a race shows within a few rounds (checked by running this
with ``SqliteOutbox._lock`` replaced by a lock that does nothing: it fails at once).

Bounded by work, not time: it ends when every event is delivered, or at the first error.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.event import Event
from intercom_events_cli.outbox import RowResult, SqliteOutbox, State, new_owner

EVENTS = 2000
CHUNK = 40  # the reader's chunks: many small transactions, so the threads interleave
CLAIM = 16
ENGINES = 2  # two claimers (a batch and a flush of the same process, say)


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Threads switch every microsecond (instead of 5 ms): races show at once."""
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(before)


def test_a_reader_and_two_engines_sharing_one_outbox_lose_and_double_nothing(
    tmp_path: Path, fast_switching: None
) -> None:
    events = [
        Event.create("threads", user_id=f"u{n}", created_at=1_700_000_000 + n)
        for n in range(EVENTS)
    ]
    failures: list[BaseException] = []
    stored = threading.Event()
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        destination = store.bind(Settings(token="tok_threads_0a1b2c3d4e5f"))

        def read() -> None:
            try:
                for start in range(0, EVENTS, CHUNK):
                    if failures:
                        return
                    part = events[start : start + CHUNK]
                    store.queue_many(
                        part,
                        source="batch:threads",
                        source_lines=list(range(start + 1, start + 1 + len(part))),
                        requeue=(State.DEAD,),
                        destination_id=destination,
                    )
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                failures.append(exc)
            finally:
                stored.set()

        def deliver() -> None:
            owner = new_owner()
            rounds = 0
            try:
                while not failures:
                    rows = store.claim(owner, CLAIM, destination_id=destination)
                    if not rows:
                        if stored.is_set() and store.count_undelivered("batch:threads")[0] == 0:
                            return
                        continue
                    rounds += 1
                    store.renew(owner)
                    # Every third row fails for now (due again at once), as a 5xx with
                    # Retry-After: 0 does; the others are delivered.
                    results = [
                        RowResult(
                            row.id,
                            State.PENDING,
                            status=503,
                            next_attempt_at=0.0,
                            claim_token=row.claim_token,
                        )
                        if (row.id + rounds) % 3 == 0
                        else RowResult(
                            row.id, State.DELIVERED, status=202, claim_token=row.claim_token
                        )
                        for row in rows
                    ]
                    store.record(owner, results[: len(results) // 2])
                    store.summary()
                    store.record(owner, results[len(results) // 2 :])
                    if rounds % 7 == 0:
                        store.release(owner)
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                failures.append(exc)

        threads = [threading.Thread(target=read)]
        threads += [threading.Thread(target=deliver) for _ in range(ENGINES)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert failures == [], [f"{type(exc).__name__}: {exc}" for exc in failures]
        rows = store.rows(list(State))
    assert len(rows) == EVENTS
    assert {row.state for row in rows} == {State.DELIVERED}
