"""The delivery engine as a library (what ``ievents batch`` builds on), against the fake."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN
from fake_intercom import FakeIntercom, Reply
from helpers import event, wait_for

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.delivery.engine import Deliverer, Delivery, StopReason, deliver_pending
from intercom_events_cli.errors import ExitCode
from intercom_events_cli.outbox import SqliteOutbox, State


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SqliteOutbox]:
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as opened:
        yield opened


@pytest.fixture
def settings(fake: FakeIntercom) -> Settings:
    return Settings(token=TOKEN, base_url=fake.url, retries=0, timeout=5)


def test_engine_keeps_going_while_a_producer_adds_rows(
    store: SqliteOutbox, settings: Settings, fake: FakeIntercom
) -> None:
    fake.latency = 0.005

    def produce() -> None:
        # Ten rows at a time, each ten once the engine has sent the ones before: rows
        # that arrive while it runs, whatever the machine's speed.
        for start in range(0, 60, 10):
            store.add_many([event(n, "imported") for n in range(start, start + 10)])
            wait_for(lambda s=start: len(fake.posts()) >= s + 10, what=f"row {start + 10} sent")

    producer = threading.Thread(target=produce)
    seen: list[Delivery] = []
    producer.start()
    report = deliver_pending(
        store,
        settings,
        concurrency=4,
        keep_going=producer.is_alive,
        on_result=seen.append,
        poll_interval_s=0.02,
    )
    producer.join()
    assert report.exit_code == ExitCode.OK
    assert report.delivered == 60 == len(seen)
    assert all(d.state is State.DELIVERED for d in seen)
    assert Counter(r.body for r in fake.posts()) == Counter(
        event(n, "imported").body() for n in range(60)
    )
    assert store.summary().counts[State.DELIVERED] == 60


def test_stop_event_hands_rows_back(
    store: SqliteOutbox, settings: Settings, fake: FakeIntercom
) -> None:
    store.add_many([event(n, "imported") for n in range(5)])
    fake.latency = 60.0  # no answer before the stop (the fake's stop ends the wait)
    stop = threading.Event()

    def stop_after_first_request() -> None:
        wait_for(fake.posts, what="the first request")
        stop.set()

    threading.Thread(target=stop_after_first_request, daemon=True).start()
    report = Deliverer(store, settings, concurrency=2, stop=stop).run()
    assert report.stopped == StopReason.INTERRUPTED
    assert report.exit_code == ExitCode.INTERRUPTED
    assert report.delivered == 0
    assert store.summary().counts[State.PENDING] == 5


def test_retries_and_timeout_override_the_settings(
    store: SqliteOutbox, settings: Settings, fake: FakeIntercom
) -> None:
    store.add(event(1, "imported"))
    fake.script(Reply(status=502))
    report = deliver_pending(store, settings, retries=1, concurrency=1)
    assert report.delivered == 1
    assert [r.status for r in fake.posts()] == [502, 202]


def test_pacer_is_asked_before_every_request(
    store: SqliteOutbox, settings: Settings, fake: FakeIntercom
) -> None:
    store.add_many([event(n, "imported") for n in range(7)])

    class CountingPacer:
        def __init__(self) -> None:
            self.acquired = 0
            self.observed: list[int | None] = []
            self.closed = False
            self.lock = threading.Lock()

        def acquire(self) -> None:
            with self.lock:
                self.acquired += 1

        def observe(self, status: int | None, headers: Mapping[str, str]) -> None:
            with self.lock:
                self.observed.append(status)

        def close(self) -> None:
            with self.lock:
                self.closed = True

    pacer = CountingPacer()
    report = deliver_pending(store, settings, pacer=pacer, concurrency=3)
    assert report.delivered == 7
    assert pacer.acquired == 7 and pacer.observed == [202] * 7
    # Closed at the end of the run, so that no worker waits on it for a reset.
    assert pacer.closed


def test_a_bug_in_a_worker_loses_no_row(store: SqliteOutbox, settings: Settings) -> None:
    store.add_many([event(n, "imported") for n in range(3)])

    class BrokenClient:
        def request(self, *args: Any, **kwargs: Any) -> Any:
            raise RuntimeError("boom")

        def close(self) -> None:
            pass

    report = deliver_pending(store, settings, client=BrokenClient(), concurrency=2)
    assert report.exit_code == ExitCode.INTERNAL
    assert report.internal_errors and "boom" in report.internal_errors[0]
    assert report.stopped == "internal_error"
    assert len(report.internal_errors) <= 2  # stopped, not retried in a loop
    counts = store.summary().counts
    assert counts[State.PENDING] == 3 and counts[State.IN_FLIGHT] == 0


def test_nothing_to_send_imports_no_http_stack(tmp_path: Path) -> None:
    script = f"""
import sys
from intercom_events_cli.config.settings import Settings
from intercom_events_cli.delivery.engine import deliver_pending
from intercom_events_cli.outbox import SqliteOutbox
with SqliteOutbox.open({str(tmp_path / "o.sqlite3")!r}) as store:
    report = deliver_pending(store, Settings(token="t", base_url="http://127.0.0.1:9"))
assert report.claimed == 0, report
print("httpx" in sys.modules)
"""
    completed = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.strip() == "False"


def test_dead_letters_kept_in_the_report_are_capped_but_all_are_counted(
    store: SqliteOutbox, settings: Settings, fake: FakeIntercom, monkeypatch: pytest.MonkeyPatch
) -> None:
    import intercom_events_cli.delivery.engine as delivery

    monkeypatch.setattr(delivery, "MAX_DEAD_LETTERS_KEPT", 3)
    fake.unknown_contacts = {f"u{n}" for n in range(8)}
    store.add_many([event(n, "imported") for n in range(8)])

    report = deliver_pending(store, settings, concurrency=2)

    assert report.dead == 8
    assert len(report.dead_letters) == 3
    assert len(store.rows([State.DEAD])) == 8  # the outbox keeps every one


def test_a_lease_is_renewed_while_a_request_is_still_on_the_wire_after_a_stop(
    store: SqliteOutbox, settings: Settings, fake: FakeIntercom, tmp_path: Path
) -> None:
    """--max-time stops the run; the answer still on its way outlives the lease (1.5 s)."""
    store.add(event(1, "imported"))
    answer = threading.Event()
    fake.script(Reply(status=202, hold=answer))
    path = tmp_path / "outbox.sqlite3"
    taken: list[int] = []
    checked: list[bool] = []

    def another_flush() -> None:
        # Another process would take the row back if the lease had run out: it tries once
        # the first lease is over, with the request still unanswered.
        try:
            wait_for(fake.posts, what="the request on the wire")
            with SqliteOutbox.open(path) as other:
                [row] = other.rows([State.IN_FLIGHT])
                first_expiry = row.lease_expires_at
                assert first_expiry is not None
                wait_for(lambda: time.time() > first_expiry + 0.3, what="the first lease over")
                taken.extend(row.id for row in other.claim("someone-else:1:-:x", 10))
                checked.append(True)
        finally:
            answer.set()

    rival = threading.Thread(target=another_flush)
    rival.start()
    report = deliver_pending(store, settings, max_time=0.2, lease_s=1.5, poll_interval_s=0.05)
    rival.join()
    assert checked == [True]
    assert taken == []
    assert report.delivered == 1
    assert [r.state for r in store.rows(list(State))] == [State.DELIVERED]
    assert len(fake.posts()) == 1


def test_a_failing_release_never_hides_the_error_that_ended_the_run(
    tmp_path: Path, settings: Settings, fake: FakeIntercom
) -> None:
    from intercom_events_cli.errors import OutboxError

    class Locked(SqliteOutbox):
        def release(self, owner: str, ids: Any = None) -> int:
            raise OutboxError("the outbox is locked by another process")

    path = tmp_path / "locked.sqlite3"
    SqliteOutbox.open(path).close()
    locked = Locked.open(path)
    try:
        locked.add_many([event(n, "imported") for n in range(4)])
        fake.latency = 0.3

        def explode(delivery: Delivery) -> None:
            raise RuntimeError("the original error")

        with pytest.raises(RuntimeError, match="the original error"):
            deliver_pending(locked, settings, concurrency=2, on_result=explode)
    finally:
        locked.close()
