"""Claims between real relays on one outbox, where relays disagree or stall:

- a relay whose host clock is 300 s ahead (or behind) beside a normal one: leases and due
  times are the database's clock, so no duplicates and both deliver;
- a relay frozen (SIGSTOP) past its lease while another takes its rows over: on SIGCONT
  it sends nothing more (its claims' fencing tokens are stale), so only the requests that
  were already on the wire can go out twice (both backends);
- a relay killed (kill -9) while another role holds the advisory-lock key its rows carry:
  the rows come back at once, not after the lease.

Real ``flush --watch`` processes, the fake Intercom, the real test server (PostgreSQL) or
a real SQLite file. Every wait is
for something observable (rows, lines, requests), with a generous deadline.
"""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import threading
from collections import Counter
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from fake_intercom import FakeIntercom
from helpers import Relay, app_uri, sql, wait_for

from intercom_events_cli.event import Event
from intercom_events_cli.outbox.store import open_store

psycopg = pytest.importorskip("psycopg")

CREATED = 1_700_000_000
# Shifts the child's time.time / time.time_ns by IEVENTS_TEST_CLOCK_SHIFT seconds (a host
# whose clock is wrong); time.monotonic stays true, as it does on such a host.
SKEWED_CLOCK = """
import os
import time

_shift = float(os.environ.get("IEVENTS_TEST_CLOCK_SHIFT") or 0)
if _shift:
    _time, _time_ns = time.time, time.time_ns
    time.time = lambda: _time() + _shift
    time.time_ns = lambda: _time_ns() + int(_shift * 1e9)
"""


def query(outbox: str, statement: str) -> list[Any]:
    """A statement on ``{events}`` of either backend."""
    if outbox.startswith("postgresql://"):
        return sql(outbox, statement.format(events="ievents.events"))
    with closing(sqlite3.connect(outbox)) as db:
        return db.execute(statement.format(events="events")).fetchall()


def queue(outbox: str, count: int) -> None:
    events = [Event.create("e", user_id=str(n), created_at=CREATED) for n in range(count)]
    with open_store(outbox, {}) as store:
        assert store.queue_many(events) == (count, 0)


def delivered(outbox: str) -> int:
    return int(query(outbox, "SELECT count(*) FROM {events} WHERE state = 'delivered'")[0][0])


def duplicates(fake: FakeIntercom) -> int:
    """Requests beyond the first for each event (what Intercom would have to de-duplicate)."""
    sent = Counter(json.dumps(rec.json(), sort_keys=True) for rec in fake.posts())
    return sum(n - 1 for n in sent.values())


@pytest.fixture
def relays(tmp_path: Path, start_relay: Callable[..., Relay]) -> Callable[..., Relay]:
    """Start ``flush --watch -v -c 4`` on an outbox, its clock shifted by
    IEVENTS_TEST_CLOCK_SHIFT when ``env`` sets it; returns once it watches. ``name`` only
    says, where it is started, which relay of the test it is."""
    skew = tmp_path / "skewed-clock"
    skew.mkdir(exist_ok=True)
    (skew / "sitecustomize.py").write_text(SKEWED_CLOCK)
    python_path = os.pathsep.join(filter(None, [str(skew), os.environ.get("PYTHONPATH")]))

    def start(outbox: str, name: str, **env: str) -> Relay:
        relay = start_relay(outbox, "-v", "-c", "4", PYTHONPATH=python_path, **env)
        relay.wait_for_stderr("watching", timeout=90)  # fails early should it exit
        return relay

    return start


def stop(relay: Relay) -> int:
    """SIGTERM; the number of events it says it delivered."""
    assert relay.stop() == 0, relay.stderr
    found = re.search(r"watch stopped: (\d+) delivered", relay.stdout)
    assert found, relay.stdout
    return int(found.group(1))


def owned_by(outbox: str, pid: int) -> list[int]:
    """Ids of the rows in flight under a claim of the process ``pid`` (owner host:pid:...)."""
    found = query(outbox, "SELECT id, owner FROM {events} WHERE state = 'in_flight' ORDER BY id")
    return [int(row_id) for row_id, owner in found if owner.rsplit(":", 3)[1] == str(pid)]


def freeze_holding_rows(outbox: str, relay: Relay) -> None:
    """SIGSTOP the relay while it holds eight rows (four senders: four requests on the wire,
    four rows waiting for a sender), and not in the middle of a SQLite write."""
    for _ in range(50):
        wait_for(
            lambda: len(owned_by(outbox, relay.process.pid)) == 8,
            what="the relay to hold 8 rows",
            timeout=90,
        )
        relay.process.send_signal(signal.SIGSTOP)
        if outbox.startswith("postgresql://") or not sqlite_write_locked(outbox):
            return
        relay.process.send_signal(signal.SIGCONT)  # frozen holding the file: once more
    raise AssertionError("could not freeze the relay outside a write")


def sqlite_write_locked(path: str) -> bool:
    with closing(sqlite3.connect(path, timeout=0, isolation_level=None)) as db:
        try:
            db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError:
            return True
        db.execute("ROLLBACK")
        return False


@pytest.mark.parametrize("shift", [300, -300])
def test_a_relay_with_a_skewed_clock_beside_a_normal_one_sends_no_duplicate(
    fake: FakeIntercom, pg_uri: str, relays: Callable[..., Relay], shift: int
) -> None:
    """Before: 300 s ahead took the normal relay's live claims; 300 s behind sent nothing."""
    fake.latency = 0.02  # both relays hold claims at once
    open_store(pg_uri, {}).close()  # the schema, before both start
    normal = relays(pg_uri, "normal")
    skewed = relays(pg_uri, "skewed", IEVENTS_TEST_CLOCK_SHIFT=str(shift))
    queue(pg_uri, 600)
    wait_for(lambda: delivered(pg_uri) == 600, what="600 events delivered", timeout=240)
    by_normal, by_skewed = stop(normal), stop(skewed)
    dups = duplicates(fake)
    print(f"clock shift {shift:+d} s: {dups} duplicates; delivered {by_normal} + {by_skewed}")
    assert dups == 0
    assert by_normal > 0 and by_skewed > 0
    assert len(fake.posts()) == 600


def test_a_frozen_relay_sends_nothing_another_took_over(
    fake: FakeIntercom, outbox: str, relays: Callable[..., Relay]
) -> None:
    """Before: on SIGCONT the frozen relay sent the rows it had queued (delivered by then)."""
    fake.latency = 0.5  # requests take a while: the relay holds rows on the wire and queued
    frozen = relays(outbox, "frozen", IEVENTS_LEASE_S="3")
    queue(outbox, 40)
    freeze_holding_rows(outbox, frozen)
    held = owned_by(outbox, frozen.process.pid)
    fake.latency = 0.0
    other = relays(outbox, "other")
    # Its lease (3 s, by the database's clock) runs out; the other relay takes over.
    wait_for(
        lambda: delivered(outbox) == 40, what="the other relay to deliver everything", timeout=90
    )
    posts_before_waking = len(fake.posts())
    frozen.process.send_signal(signal.SIGCONT)
    # It wakes, finds its claims stale, and says what became of each row it held.
    wait_for(
        lambda: all(f"#{row_id} " in frozen.stderr for row_id in held),
        what="the woken relay to settle the rows it held",
        timeout=90,
    )
    sent_after_waking = len(fake.posts()) - posts_before_waking
    dups = duplicates(fake)
    print(f"frozen relay: {sent_after_waking} sent after SIGCONT, {dups} duplicates")
    assert len(held) == 8
    # Woken, a sender finishes at most the request it had begun (one per sender: 4); the
    # rows waiting for a sender when it froze are handed back unsent, never sent: each
    # says so (the senders' claim check removed, every row goes out and none says so).
    not_sent = [i for i in held if re.search(rf"#{i} e: not sent", frozen.stderr)]
    assert sent_after_waking <= 4 and not_sent, frozen.stderr
    # A duplicate is only ever a row it held: on the wire when it froze, begun, or
    # answered before the freeze but not yet recorded (on a loaded machine the recording
    # lags behind the senders: 6 of 8 were seen, none sent after SIGCONT).
    assert dups <= len(held) - len(not_sent)
    assert delivered(outbox) == 40
    stop(other)
    stop(frozen)


def test_another_role_holding_the_key_does_not_delay_taking_back_a_dead_relays_rows(
    fake: FakeIntercom, pg_uri: str, relays: Callable[..., Relay]
) -> None:
    """Before: the app role's advisory lock on the key kept the rows for the whole lease."""
    fake.latency = 60.0  # the first relay's requests hang: its rows stay in flight
    doomed = relays(pg_uri, "doomed")  # the default lease: 120 s
    queue(pg_uri, 10)
    wait_for(
        lambda: len(owned_by(pg_uri, doomed.process.pid)) == 8,
        what="the relay to hold 8 rows",
        timeout=90,
    )
    [(session,)] = sql(
        pg_uri, "SELECT DISTINCT claim_session FROM ievents.events WHERE state = 'in_flight'"
    )
    with psycopg.connect(app_uri(pg_uri), autocommit=True) as app:
        # What any role that can connect could do under schema version 1: wait for the
        # relay's key (held by the relay then), and hold it once the relay is gone.
        locking = threading.Thread(
            target=lambda: app.execute("SELECT pg_advisory_lock(%s)", (session,)), daemon=True
        )
        locking.start()
        wait_for(
            lambda: not locking.is_alive() or waiting_for_a_lock(pg_uri),
            what="the app role's lock",
            timeout=90,
        )
        doomed.process.kill()
        doomed.process.wait()
        locking.join(timeout=60)
        assert not locking.is_alive(), "the app role never got the key"
        fake.latency = 0.0
        survivor = relays(pg_uri, "survivor")
        # Far sooner than the 120 s lease: the deadline only bounds a failure.
        wait_for(
            lambda: delivered(pg_uri) == 10, what="the rows taken back and delivered", timeout=60
        )
        assert stop(survivor) == 10


def waiting_for_a_lock(pg_uri: str) -> bool:
    found = sql(pg_uri, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted")
    return bool(found[0][0])
