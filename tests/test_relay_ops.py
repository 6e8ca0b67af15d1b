"""A relay under operations (issue 21, findings 3, 8 and 14), on SQLite and PostgreSQL.

- Scrapes of ``--metrics-port`` read a snapshot kept on a connection of its own: they
  answer while the relay's connection (or the whole table) is held up, and the figures
  they give are the outbox's.
- Rows made dead letters without a request (invalid rows enqueued from SQL, or stored
  around ievents) are reported: counted, with the reason and where to see them, exit 65;
  a relay counts them as dead.
- A relay's totals span reconnects; a clean stop is recorded as exit 0; a running relay
  keeps a heartbeat (last flush, relay_heartbeat_at) that ``status`` and metrics show.

Real relay subprocesses, the fake Intercom, real SQLite files and a real PostgreSQL.
"""

from __future__ import annotations

import functools
import json
import re
import signal
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import RunCli
from fake_intercom import FakeIntercom, Reply
from helpers import Relay, numbered_ndjson, parse_metrics, scrape, wait_for
from pg_server import free_port

CREATED = 1_700_000_000
# NDJSON of the events this module queues (helpers.record, named "ops").
ops_ndjson = functools.partial(numbered_ndjson, name="ops")
DEAD = ("ievents_relay_deliveries_total", (("result", "dead"),))


def try_scrape(port: int) -> dict[Any, float]:
    """A scrape, or nothing while the relay is not serving yet (for ``wait_for``)."""
    try:
        return scrape(port)
    except OSError:  # URLError included: refused before the relay listens
        return {}


def events(samples: dict[Any, float], state: str) -> float | None:
    return samples.get(("ievents_outbox_events", (("state", state),)))


def status(run_cli: RunCli, outbox: str) -> dict[str, Any]:
    result = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": outbox})
    assert result.code == 0, result.stderr
    data: dict[str, Any] = result.json()
    return data


# -- finding 3: scrapes never use the relay's connection -----------------------------------


def test_metrics_are_the_outboxs_figures_after_deliveries(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    port = free_port()
    relay = start_relay(
        outbox, "--metrics-port", str(port), IEVENTS_RELAY_TIMINGS="summary_refresh_s=0.5"
    )
    fake.script(Reply(status=422, body={"type": "error.list", "errors": [{"code": "bad"}]}))
    assert run_cli("batch", "-", "--queue", input=ops_ndjson(30), env=env).code == 0
    wait_for(lambda: status(run_cli, outbox)["delivered"] == 29, what="29 deliveries recorded")
    truth = status(run_cli, outbox)

    def agrees() -> bool:
        samples = try_scrape(port)
        return all(
            events(samples, state) == truth[state]
            for state in ("pending", "in_flight", "dead", "delivered")
        )

    wait_for(agrees, what="the scraped counts to be the outbox's")
    samples = scrape(port)
    assert (truth["delivered"], truth["dead"], truth["pending"]) == (29, 1, 0)
    assert samples[DEAD] == 1
    assert samples[("ievents_outbox_last_success_timestamp_seconds", ())] > 0
    assert samples[("ievents_relay_outbox_summary_age_seconds", ())] >= 0
    # More events later: the figures follow.
    assert run_cli("batch", "-", "--queue", input=ops_ndjson(5, start=100), env=env).code == 0
    wait_for(
        lambda: events(try_scrape(port), "delivered") == 34, what="34 delivered in the metrics"
    )
    assert relay.stop() == 0, relay.stderr


def test_a_scrape_answers_while_postgresql_holds_the_outbox_table(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str, start_relay: Callable[..., Relay]
) -> None:
    """Before: the scrape ran the summary on the relay's connection and waited for the lock."""
    import psycopg

    env = {"IEVENTS_OUTBOX": pg_uri}
    port = free_port()
    relay = start_relay(pg_uri, "--metrics-port", str(port))
    assert run_cli("batch", "-", "--queue", input=ops_ndjson(5), env=env).code == 0
    wait_for(lambda: events(try_scrape(port), "delivered") == 5, what="5 delivered in the metrics")
    with psycopg.connect(pg_uri) as db:
        db.execute("LOCK TABLE ievents.events IN ACCESS EXCLUSIVE MODE")
        # Every query on the table waits now, the relay's and a summary's alike.
        samples = scrape(port, timeout=20)
        db.rollback()
    assert events(samples, "delivered") == 5
    assert relay.process.poll() is None
    assert relay.stop() == 0, relay.stderr


def test_a_scrape_answers_while_the_relays_sqlite_connection_waits_for_a_lock(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path, start_relay: Callable[..., Relay]
) -> None:
    """Before: the scrape waited for the relay's connection, itself waiting for the file."""
    outbox = str(tmp_path / "outbox.sqlite3")
    env = {"IEVENTS_OUTBOX": outbox}
    port = free_port()
    fake.latency = 0.05
    assert run_cli("batch", "-", "--queue", input=ops_ndjson(200), env=env).code == 0
    relay = start_relay(
        outbox, "-c", "2", "--metrics-port", str(port), IEVENTS_OUTBOX_BUSY_TIMEOUT="600"
    )
    wait_for(lambda: status(run_cli, outbox)["delivered"] >= 2, what="deliveries to start")
    wait_for(lambda: events(try_scrape(port), "delivered") is not None, what="a first snapshot")
    holder = sqlite3.connect(outbox, timeout=60, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # the relay's next write waits (its busy timeout)
    try:
        sent = len(fake.posts())
        # An answer comes back that the relay must write: its connection waits for the
        # file now (if it was not waiting already, to claim more).
        wait_for(lambda: len(fake.posts()) >= sent + 1, what="an answer to record")
        samples = scrape(port, timeout=20)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert events(samples, "delivered") is not None
    wait_for(lambda: status(run_cli, outbox)["delivered"] == 200, what="every delivery")
    assert relay.stop() == 0, relay.stderr


def test_scrapes_read_the_summary_at_most_once_per_refresh(tmp_path: Path) -> None:
    """Unit: any number of scrapes, one read per refresh period, on a store of its own."""
    from intercom_events_cli.delivery.summary_cache import SummaryCache
    from intercom_events_cli.outbox import State
    from intercom_events_cli.outbox.store import open_store

    path = tmp_path / "outbox.sqlite3"
    opened: list[Any] = []

    def opener() -> Any:
        store = open_store(path, {})
        opened.append(store)
        return store

    cache = SummaryCache(opener, refresh_s=3600)
    cache.start()
    wait_for(lambda: cache.get() is not None, what="the first snapshot")
    for _ in range(200):
        summary = cache.get()
        assert summary is not None and summary.counts[State.PENDING] == 0
    cache.close()
    assert cache.refreshes == 1
    assert len(opened) == 1


# -- finding 8: dead letters made without a request are reported ---------------------------


def enqueue(uri: str, *bodies: object) -> None:
    import psycopg

    with psycopg.connect(uri, autocommit=True) as db:
        for body in bodies:
            db.execute("SELECT ievents.enqueue(%s::jsonb, 'abc123xy')", (json.dumps(body),))


INVALID = [
    {"event_name": "", "user_id": "1", "created_at": CREATED},
    {"event_name": "no-contact", "created_at": CREATED},
    {"event_name": "bad-time", "user_id": "2", "created_at": "yesterday"},
]


def test_flush_reports_rows_refused_as_invalid_on_postgresql(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    """Before: "nothing to flush", exit 0, though 3 rows became dead letters."""
    env = {"IEVENTS_OUTBOX": pg_uri}
    assert run_cli("flush", env=env).code == 0  # creates the schema
    enqueue(pg_uri, *INVALID)
    result = run_cli("flush", env=env)
    assert result.code == 65, result.stderr
    assert "nothing to flush" not in result.stdout
    assert "3 refused as invalid" in result.stdout
    assert "3 events refused as invalid before delivery" in result.stderr
    assert "ievents outbox list --dead" in result.stderr
    assert "no contact given" in result.stderr  # why, per row
    assert "Traceback" not in result.stderr
    assert fake.events_posted() == []
    # --json says it too, with each row's reason.
    enqueue(
        pg_uri,
        {"event_name": "", "user_id": "9", "created_at": CREATED},
        INVALID[0] | {"user_id": "8"},
    )
    enqueue(pg_uri, {"event_name": "fine", "user_id": "7", "created_at": CREATED})
    data = run_cli("flush", "--json", env=env)
    assert data.code == 65
    body = data.json()
    assert (body["delivered"], body["dead"], body["refused"]) == (1, 2, 2)
    assert all(d["error"]["code"] == "invalid_event" for d in body["dead_letters"])
    assert status(run_cli, pg_uri)["dead"] == 5


def test_flush_refuses_a_stored_row_that_is_not_a_valid_event_on_sqlite(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    """Before: the row was sent as stored, then the run stopped on an internal error."""
    outbox = str(tmp_path / "outbox.sqlite3")
    env = {"IEVENTS_OUTBOX": outbox}
    assert run_cli("send", "fine", "--user-id", "1", "--queue", env=env).code == 0
    with sqlite3.connect(outbox) as db:  # written around ievents
        for key, payload in (("k1", '{"event_name": "x"}'), ("k2", "not json")):
            db.execute(
                "INSERT INTO events (dedup_key, payload, event_name, state, attempts, created, "
                "updated, next_attempt_at) VALUES (?, ?, 'x', 'pending', 0, 1, 1, 1)",
                (key, payload),
            )
    db.close()
    result = run_cli("flush", env=env)
    assert result.code == 65, result.stderr
    assert "1 delivered, 2 refused as invalid" in result.stdout
    assert "2 events refused as invalid before delivery" in result.stderr
    assert "not JSON" in result.stderr
    assert [e["event_name"] for e in fake.events_posted()] == ["fine"]
    after = status(run_cli, outbox)
    assert (after["dead"], after["pending"], after["delivered"]) == (2, 0, 1)


def test_a_relay_counts_rows_refused_as_invalid_as_dead(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str, start_relay: Callable[..., Relay]
) -> None:
    """Before: the relay's dead counter stayed 0 and it said nothing."""
    assert run_cli("flush", env={"IEVENTS_OUTBOX": pg_uri}).code == 0
    port = free_port()
    relay = start_relay(pg_uri, "--metrics-port", str(port))
    wait_for(lambda: try_scrape(port).get(DEAD) == 0, what="the relay's metrics")
    enqueue(pg_uri, *INVALID)
    wait_for(lambda: try_scrape(port).get(DEAD) == 3, what="3 dead in the relay's counter")
    wait_for(lambda: events(try_scrape(port), "dead") == 3, what="3 dead in the outbox metrics")
    assert relay.stop() == 0
    assert "0 delivered, 3 refused as invalid" in relay.stdout
    assert relay.stderr.count("refused as invalid, kept as a dead letter") == 3


# -- finding 14: totals, a clean stop, the heartbeat -----------------------------------------


def stopped_count(stdout: str) -> int:
    found = re.search(r"watch stopped: (\d+) delivered", stdout)
    assert found, stdout
    return int(found.group(1))


def test_relay_totals_span_reconnects(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str, start_relay: Callable[..., Relay]
) -> None:
    """Before: the totals lost every run the database cut short ("900 of 3,480")."""
    import psycopg

    env = {"IEVENTS_OUTBOX": pg_uri}
    fake.latency = 0.01
    assert run_cli("flush", env=env).code == 0
    port = free_port()
    # A beat, a reconnect and the metrics' figures every half second, not every 5-10 s.
    quick = "heartbeat_s=0.5,idle_look_s=0.5,reconnect_max_s=1,summary_refresh_s=0.5"
    relay = start_relay(pg_uri, "-c", "4", "--metrics-port", str(port), IEVENTS_RELAY_TIMINGS=quick)
    assert run_cli("batch", "-", "--queue", input=ops_ndjson(300), env=env).code == 0
    database = pg_uri.rsplit("/", 1)[1].split("?")[0]
    beat = None
    for already in (60, 150):
        if already == 150:
            beat = wait_for(lambda: status(run_cli, pg_uri)["relay_heartbeat_at"], what="a beat")
        wait_for(lambda n=already: status(run_cli, pg_uri)["delivered"] >= n, what="deliveries")
        with psycopg.connect(pg_uri, autocommit=True) as db:
            cut = db.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE "
                "application_name = 'ievents' AND datname = %s AND pid <> pg_backend_pid()",
                (database,),
            ).fetchone()
        assert cut is not None and cut[0] >= 1
    wait_for(lambda: status(run_cli, pg_uri)["delivered"] == 300, what="every delivery")
    # Recovered: the heartbeat goes on, and the metrics (their connection was cut too).
    wait_for(lambda: status(run_cli, pg_uri)["relay_heartbeat_at"] != beat, what="a new beat")
    wait_for(lambda: events(try_scrape(port), "delivered") == 300, what="300 in the metrics")
    assert relay.stop() == 0, relay.stderr
    # The cut is said, then the reconnect: PostgreSQL's own words for the cut depend on
    # when it lands ("terminating connection ..." or "server closed the connection ...").
    assert "the PostgreSQL outbox at" in relay.stderr, relay.stderr
    assert "trying again" in relay.stderr, relay.stderr
    # Each is counted once it is recorded; an answer whose commit the cut lost (its
    # acknowledgement, not the row) may go uncounted: at most what was in hand (2 x 4).
    assert 300 - 2 * 4 <= stopped_count(relay.stdout) <= 300


def test_a_running_relay_keeps_a_heartbeat_and_a_clean_stop_is_recorded_as_0(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    """Before: "last flush: never" while it ran, and exit 130 recorded after a SIGTERM."""
    env = {"IEVENTS_OUTBOX": outbox}
    port = free_port()
    # A beat and the metrics' figures every half second (5 s by default).
    quick = "heartbeat_s=0.5,idle_look_s=0.5,summary_refresh_s=0.5"
    relay = start_relay(outbox, "--metrics-port", str(port), IEVENTS_RELAY_TIMINGS=quick)
    assert run_cli("batch", "-", "--queue", input=ops_ndjson(3), env=env).code == 0
    wait_for(lambda: status(run_cli, outbox)["delivered"] == 3, what="3 deliveries")
    wait_for(lambda: status(run_cli, outbox)["last_flush_at"], what="a last flush, running")
    running = status(run_cli, outbox)
    assert running["last_flush_exit_code"] == 0 and running["last_success_at"] is not None
    first = running["relay_heartbeat_at"]
    assert first is not None
    # It keeps beating, and the metrics show it.
    wait_for(lambda: status(run_cli, outbox)["relay_heartbeat_at"] != first, what="the next beat")
    samples = wait_for(
        lambda: (
            (s := try_scrape(port)).get(("ievents_outbox_relay_heartbeat_timestamp_seconds", ()))
            and s
        ),
        what="the heartbeat in the metrics",
    )
    assert samples[("ievents_outbox_last_flush_exit_code", ())] == 0
    assert samples[("ievents_outbox_last_success_timestamp_seconds", ())] > 0
    text = run_cli("outbox", "status", env=env).stdout
    assert "relay alive" in text and "last flush    never" not in text
    assert relay.stop(signal.SIGTERM) == 0
    after = status(run_cli, outbox)
    assert after["last_flush_exit_code"] == 0
    # Stopped, and said so: not "alive" with the time of its last beat.
    assert after["relay_stopped_at"] is not None
    stopped_text = run_cli("outbox", "status", env=env).stdout
    assert "relay stopped " in stopped_text and "relay alive" not in stopped_text
    prometheus = parse_metrics(
        run_cli("outbox", "status", "--format", "prometheus", env=env).stdout
    )
    assert prometheus[("ievents_outbox_last_flush_exit_code", ())] == 0


def test_the_metrics_text_is_rendered_once_for_many_scrapes() -> None:
    """Unit: a storm of scrapes gets the same rendered bytes, not a render each."""
    from intercom_events_cli.delivery.metrics_server import ThrottledMetrics

    renders: list[int] = []

    def render() -> bytes:
        renders.append(1)
        return f"render {len(renders)}\n".encode()

    text = ThrottledMetrics(render, render_every_s=3600, min_interval_s=0)
    assert {text.body() for _ in range(50)} == {b"render 1\n"}
    assert len(renders) == 1


def test_one_row_refused_as_invalid_reads_in_the_singular(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    outbox = str(tmp_path / "outbox.sqlite3")
    env = {"IEVENTS_OUTBOX": outbox}
    assert run_cli("send", "fine", "--user-id", "1", "--queue", env=env).code == 0
    with sqlite3.connect(outbox) as db:  # written around ievents
        db.execute(
            "INSERT INTO events (dedup_key, payload, event_name, state, attempts, created, "
            "updated, next_attempt_at) VALUES ('k1', 'not json', 'x', 'pending', 0, 1, 1, 1)"
        )
    db.close()
    result = run_cli("flush", env=env)
    assert result.code == 65, result.stderr
    assert (
        "1 event refused as invalid before delivery (never sent), kept as a dead letter"
        in result.stderr
    )
