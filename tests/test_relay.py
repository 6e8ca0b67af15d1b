"""``ievents flush --watch`` (the relay) and the Prometheus metrics, on both backends.

Real relay subprocesses, the real fake Intercom, a real PostgreSQL server.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from conftest import RunCli
from fake_intercom import FakeIntercom, Reply
from helpers import Relay, numbered_ndjson, parse_metrics, scrape, wait_for

CREATED = 1_700_000_000


def test_watch_delivers_new_events_and_sigterm_exits_0(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    relay = start_relay(outbox)
    relay.wait_until_idle()  # new rows come while it waits for a sign of them
    for n in range(3):
        assert run_cli("send", "e", "--user-id", str(n), "--queue", env=env).code == 0
    assert (
        run_cli("batch", "-", "--queue", input=numbered_ndjson(20, name="relay"), env=env).code == 0
    )
    wait_for(lambda: len(fake.events_posted()) == 23, what="23 deliveries")

    def recorded() -> bool:
        # The fake counts a POST when it arrives; a SIGTERM before the relay has read the
        # answers would hand those events back unsent (correctly, but not what is tested).
        status = run_cli("outbox", "status", "--json", env=env).json()
        return (status["delivered"], status["pending"], status["in_flight"]) == (23, 0, 0)

    wait_for(recorded, what="23 deliveries recorded in the outbox")
    assert relay.process.poll() is None  # still running, nothing left to do
    assert relay.stop() == 0, relay.stderr
    assert "watch stopped: 23 delivered" in relay.stdout
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["delivered"], status["pending"], status["in_flight"]) == (23, 0, 0)


def test_sigterm_with_a_request_in_flight_exits_0_promptly_and_releases_it(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    fake.script(Reply(status=202, delay=300))  # ended early when the fake stops
    relay = start_relay(outbox)
    assert run_cli("send", "slow", "--user-id", "1", "--queue", env=env).code == 0
    wait_for(lambda: len(fake.posts()) == 1, what="the request on the wire")
    started = time.monotonic()
    assert relay.stop(signal.SIGTERM) == 0, relay.stderr
    # Promptly: not waiting for the answer (a bound far above its idle 0.1-0.3 s).
    assert time.monotonic() - started < 300 / 10
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["in_flight"], status["pending"]) == (0, 1)
    assert "1 event handed back unsent" in relay.stdout


def test_sigint_exits_0_too(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    relay = start_relay(outbox)
    relay.wait_until_idle()  # its handlers in place: a signal during start-up is not this
    assert relay.stop(signal.SIGINT) == 0, relay.stderr
    assert "watch stopped: 0 delivered" in relay.stdout


def test_relay_carries_on_through_a_postgresql_restart(
    run_cli: RunCli,
    fake: FakeIntercom,
    pg_server: Any,
    pg_uri: str,
    start_relay: Callable[..., Relay],
) -> None:
    env = {"IEVENTS_OUTBOX": pg_uri}
    fake.latency = 0.02
    assert run_cli("flush", env=env).code == 0  # creates the schema
    relay = start_relay(pg_uri, "-c", "4")
    assert (
        run_cli("batch", "-", "--queue", input=numbered_ndjson(150, name="relay"), env=env).code
        == 0
    )
    wait_for(lambda: len(fake.stored_events()) >= 20, what="deliveries to start")
    pg_server.restart()  # cuts every connection, the relay's included
    assert (
        run_cli(
            "batch", "-", "--queue", input=numbered_ndjson(50, start=150, name="relay"), env=env
        ).code
        == 0
    )
    wait_for(
        lambda: {e["user_id"] for e in fake.stored_events()} == {f"u{n}" for n in range(200)},
        timeout=60,
        what="every event after the restart",
    )
    wait_for(
        lambda: run_cli("outbox", "status", "--json", env=env).json()["delivered"] == 200,
        what="the outbox to record every delivery",
    )
    assert relay.process.poll() is None, "the relay died with the database"
    assert relay.stop() == 0, relay.stderr
    assert "PostgreSQL outbox" in relay.stderr  # it said what happened
    # At most what the relay held at the restart was sent twice: the engine claims up to
    # twice its concurrency (4 on the wire, 4 waiting), and answers it could not record.
    assert len(fake.stored_events()) - 200 <= 2 * 4


# -- metrics ---------------------------------------------------------------------------------


def test_status_prometheus_matches_status_json(
    run_cli: RunCli, fake: FakeIntercom, outbox: str
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    empty = parse_metrics(run_cli("outbox", "status", "--format", "prometheus", env=env).stdout)
    assert empty[("ievents_outbox_events", (("state", "pending"),))] == 0
    assert empty[("ievents_outbox_last_success_timestamp_seconds", ())] == 0
    assert (
        run_cli("batch", "-", "--queue", input=numbered_ndjson(6, name="relay"), env=env).code == 0
    )
    fake.script(Reply(status=422, body={"type": "error.list", "errors": [{"code": "bad"}]}))
    fake.script_repeat(Reply(status=202), 2)
    fake.script_repeat(Reply(status=503), 3)
    assert run_cli("flush", "-c", "1", "--retries", "0", env=env).code == 65
    prometheus = run_cli("outbox", "status", "--format", "prometheus", env=env)
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert prometheus.code == 0
    samples = parse_metrics(prometheus.stdout)
    for state in ("pending", "in_flight", "dead", "delivered"):
        assert samples[("ievents_outbox_events", (("state", state),))] == status[state]
    assert (status["dead"], status["pending"], status["delivered"]) == (1, 3, 2)
    age = samples[("ievents_outbox_oldest_pending_age_seconds", ())]
    assert abs(age - status["oldest_pending_age_s"]) < 5
    assert samples[("ievents_outbox_last_flush_exit_code", ())] == status["last_flush_exit_code"]
    success = samples[("ievents_outbox_last_success_timestamp_seconds", ())]
    assert time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(success)) == status["last_success_at"]


def test_relay_serves_metrics_with_delivery_counters(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    from pg_server import free_port

    env = {"IEVENTS_OUTBOX": outbox}
    port = free_port()
    relay = start_relay(outbox, "--metrics-port", str(port))
    assert (
        run_cli("batch", "-", "--queue", input=numbered_ndjson(5, name="relay"), env=env).code == 0
    )
    wait_for(lambda: len(fake.events_posted()) == 5, what="5 deliveries")

    wait_for(
        lambda: (
            scrape(port).get(("ievents_relay_deliveries_total", (("result", "delivered"),))) == 5
        ),
        what="the counter",
    )
    samples = scrape(port)
    assert samples[("ievents_relay_delivery_latency_seconds_count", ())] == 5
    assert samples[("ievents_outbox_events", (("state", "delivered"),))] == 5
    # The relay's workspace (learned from GET /me before its first delivery) labels them too.
    labels = (("region", fake.url), ("result", "delivered"), ("workspace", "abc123xy"))
    assert samples[("ievents_relay_workspace_deliveries_total", labels)] == 5
    assert relay.stop() == 0


def test_metrics_port_needs_watch_and_a_port(run_cli: RunCli) -> None:
    assert run_cli("flush", "--metrics-port", "9464").code == 2
    bad = run_cli("flush", "--watch", "--metrics-port", "nine")
    assert bad.code == 2 and "--metrics-port" in bad.stderr
    assert run_cli("outbox", "status", "--format", "yaml").code == 2


def test_relay_started_before_the_database_waits_for_it(
    run_cli: RunCli,
    fake: FakeIntercom,
    pg_server: Any,
    pg_uri: str,
    start_relay: Callable[..., Relay],
) -> None:
    env = {"IEVENTS_OUTBOX": pg_uri}
    pg_server.stop()
    try:
        relay = start_relay(pg_uri)
        relay.wait_for_stderr("cannot reach the PostgreSQL outbox")  # and waits, running
        assert relay.process.poll() is None
    finally:
        pg_server.start()
    assert run_cli("send", "e", "--user-id", "1", "--queue", env=env).code == 0
    wait_for(lambda: len(fake.events_posted()) == 1, what="the delivery")
    assert relay.stop() == 0, relay.stderr
    assert "cannot reach the PostgreSQL outbox" in relay.stderr


def test_relay_names_events_captured_for_another_workspace(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    other = {"IEVENTS_OUTBOX": outbox, "INTERCOM_ACCESS_TOKEN": "tok_other_workspace_9f3a"}
    assert run_cli("send", "theirs", "--user-id", "1", "--queue", env=other).code == 0
    relay = start_relay(outbox)
    assert (
        run_cli("send", "ours", "--user-id", "2", "--queue", env={"IEVENTS_OUTBOX": outbox}).code
        == 0
    )
    wait_for(lambda: len(fake.events_posted()) == 1, what="our event")
    relay.wait_for_stderr("1 event waits for a workspace not yet known")

    def recorded() -> bool:
        status = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": outbox}).json()
        return bool(status["delivered"] == 1)

    wait_for(recorded, what="our delivery recorded")
    assert relay.stop() == 0
    assert [e["event_name"] for e in fake.events_posted()] == ["ours"]
    assert "1 event waits for a workspace not yet known" in relay.stderr
    assert "9f3a" not in relay.stderr and "tok_other" not in relay.stderr
    status = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": outbox}).json()
    assert (status["pending"], status["delivered"]) == (1, 1)


def test_relay_pauses_after_a_rejected_token_and_says_so(
    fake: FakeIntercom, tmp_path: Path
) -> None:
    """In process: the engine stops on a 401; the relay says so and waits before trying again."""
    import threading

    from intercom_events_cli.config.settings import Settings
    from intercom_events_cli.delivery.engine import StopReason
    from intercom_events_cli.delivery.relay import Relay as CoreRelay
    from intercom_events_cli.delivery.timings import RelayTimings
    from intercom_events_cli.event import Event
    from intercom_events_cli.outbox import SqliteOutbox, State

    path = tmp_path / "outbox.sqlite3"
    with SqliteOutbox.open(path) as store:
        store.add(Event.create("signed-up", user_id="u1", created_at=str(CREATED)))
    stop = threading.Event()
    notices: list[str] = []

    def on_notice(text: str) -> None:
        notices.append(text)
        stop.set()  # ends the pause at once

    relay = CoreRelay(
        path,
        Settings(token="not-the-token", base_url=fake.url, retries=0),
        lambda: SqliteOutbox.open(path),
        stop=stop,
        on_notice=on_notice,
        timings=RelayTimings(idle_look_s=0.05),
    )
    guard = threading.Timer(30, stop.set)  # no notice would mean a 60 s pause, looping
    guard.start()
    try:
        report = relay.run()
    finally:
        guard.cancel()
    assert notices == ["the token was rejected; every event stays pending; trying again in 60 s"]
    assert report.last_run is not None and report.last_run.stopped is StopReason.AUTH
    assert report.exit_code == 0 and report.runs == 1
    with SqliteOutbox.open(path) as store:
        assert len(store.rows([State.PENDING])) == 1
