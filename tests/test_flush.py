"""``ievents flush`` as real subprocesses against the fake Intercom and real SQLite files."""

from __future__ import annotations

import json
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path

from conftest import TOKEN, RunCli, assert_no_token, base_env
from fake_intercom import FakeIntercom, Reply, api_error
from helpers import (
    accepted_bodies,
    launch,
    outbox_file,
    outbox_rows,
    run_process,
    seed_outbox,
    store_states,
    wait_for,
)

from intercom_events_cli.event import Event
from intercom_events_cli.outbox import SqliteOutbox, State


def start_flush(tmp_path: Path, fake: FakeIntercom, *args: str) -> subprocess.Popen[bytes]:
    return launch(
        ["flush", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=base_env(tmp_path, fake.url),
        cwd=tmp_path,
    )


def wait_for_posts(fake: FakeIntercom, count: int, flush: subprocess.Popen[bytes]) -> None:
    wait_for(
        lambda: len(fake.posts()) >= count, what=f"{count} requests from the flush", alive=flush
    )


# -- the simple cases ---------------------------------------------------------------------------


def test_nothing_to_flush(run_cli: RunCli, tmp_path: Path) -> None:
    missing = run_cli("flush", "--json")
    assert missing.code == 0, missing
    assert missing.json()["claimed"] == 0 and missing.json()["ok"] is True
    assert not outbox_file(tmp_path).exists()  # not created just to be found empty
    seed_outbox(outbox_file(tmp_path), 0)
    empty = run_cli("flush")
    assert empty.code == 0 and "nothing to flush" in empty.stdout
    assert run_cli("flush", "-q").stdout == ""


def test_flush_delivers_the_exact_stored_bodies_oldest_first(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = outbox_file(tmp_path)
    events = seed_outbox(path, 5)
    with SqliteOutbox.open(path) as store:
        store.add(Event.create("früh", email="é@example.org", created_at=5), now=0.0)
    result = run_cli("flush", "-c", "1", "--json")
    assert result.code == 0, result
    body = result.json()
    assert (body["claimed"], body["delivered"], body["dead"], body["deferred"]) == (6, 6, 0, 0)
    assert body["remaining"] == {"pending": 0, "in_flight": 0, "delivered": 6, "dead": 0}
    sent = [r.body for r in fake.posts()]
    assert sent[0] == Event.create("früh", email="é@example.org", created_at=5).body()
    assert sent[1:] == [e.body() for e in events]
    assert all(r.headers["authorization"] == f"Bearer {TOKEN}" for r in fake.posts())
    assert store_states(path) == Counter(delivered=6)


def test_flush_output_verbose_and_quiet(run_cli: RunCli, tmp_path: Path) -> None:
    seed_outbox(outbox_file(tmp_path), 2)
    verbose = run_cli("flush", "-v")
    assert verbose.code == 0, verbose
    assert "flush: 2 delivered" in verbose.stdout
    assert verbose.stderr.count("POST http://127.0.0.1") == 2
    assert "-> 202 Accepted" in verbose.stderr and "delivered (202 Accepted)" in verbose.stderr
    assert "Bearer" not in verbose.stderr
    seed_outbox(outbox_file(tmp_path), 2, start=10)
    quiet = run_cli("flush", "-q")
    assert quiet.code == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_flush_verbose_names_what_became_of_each_event(
    run_cli: RunCli, tmp_path: Path, fake: FakeIntercom
) -> None:
    seed_outbox(outbox_file(tmp_path), 2)
    fake.script(
        api_error(404, "not_found", "User Not Found"),
        Reply(status=503),
    )
    result = run_cli("flush", "-v", "-c", "1", "--retries", "0")
    assert "#1 signed-up for " in result.stderr
    assert ": dead letter (404 Not Found)" in result.stderr
    assert ": pending again (503 Service Unavailable)" in result.stderr
    # Intercom answered the other event: the 503 got another round in this run.
    assert ": delivered (202 Accepted)" in result.stderr
    assert result.code == 67, result


# -- outage, then recovery ----------------------------------------------------------------------


def test_outage_then_recovery_delivers_everything_exactly_once(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = outbox_file(tmp_path)
    events = seed_outbox(path, 3)
    # Each event gets 2 attempts (--retries 1): 503s and dropped connections only.
    fake.script(*[Reply(status=503), Reply(drop=True)] * 3)
    down = run_cli("flush", "--retries", "1", "--timeout", "2")
    assert down.code == 75, down
    assert "3 events not delivered" in down.stderr and "stay in the outbox" in down.stderr
    assert fake.events_posted() == []
    after_outage = outbox_rows(path)
    assert [r.state for r in after_outage] == [State.PENDING] * 3
    assert all(r.attempts == 1 and r.next_attempt_at > time.time() for r in after_outage)
    assert all(r.last_status in (503, None) and r.error() is not None for r in after_outage)
    # Still down: the next flush sends one probe (the oldest event, with its retries) and
    # stops, exit 75; the rest is not touched.
    fake.script(Reply(status=503), Reply(drop=True))
    probe = run_cli("flush", "--retries", "1", "--timeout", "2", "--json")
    assert probe.code == 75, probe
    assert len(fake.posts()) == 6 + 2
    assert probe.json()["claimed"] == 1 and probe.json()["probed"] is True
    assert fake.pending_script() == []
    # Intercom is back: the first flush delivers everything at once, backoff or not.
    back = run_cli("flush", "--json")
    assert back.code == 0, back
    assert back.json()["delivered"] == 3
    assert accepted_bodies(fake) == Counter(e.body() for e in events)
    assert store_states(path) == Counter(delivered=3)
    again = run_cli("flush", "--now")
    assert again.code == 0 and len(fake.events_posted()) == 3


def test_a_long_outage_stops_the_run_early(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 40)
    fake.script_repeat(Reply(status=503), 40)
    result = run_cli("flush", "-c", "2", "--retries", "0", "--json")
    assert result.code == 75, result
    body = result.json()
    assert body["stopped"] == "unavailable"
    assert body["deferred"] < 40  # did not try all 40 against a dead server
    assert body["remaining"]["pending"] == 40 and body["remaining"]["in_flight"] == 0


# -- dead letters ------------------------------------------------------------------------------


def test_dead_letters_are_kept_listed_exported_and_retried(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = outbox_file(tmp_path)
    events = seed_outbox(path, 4)
    # -c 1: events go out oldest first, so each scripted reply meets a known event.
    fake.script(
        Reply(status=202),
        api_error(404, "not_found", "User Not Found"),
        api_error(422, "parameter_invalid", "bad"),
    )
    result = run_cli("flush", "-c", "1")
    assert result.code == 65, result  # 65 (invalid) outranks 67 (no contact)
    assert "2 rejected" in result.stdout
    assert "User Not Found" in result.stderr and "parameter_invalid: bad" in result.stderr
    assert "ievents outbox list --dead" in result.stderr
    assert store_states(path) == Counter(delivered=2, dead=2)

    listed = run_cli("outbox", "list", "--dead", "--json").json_lines()
    assert [(d["event"]["user_id"], d["last_status"]) for d in listed] == [
        ("u1", 404),
        ("u2", 422),
    ]
    assert listed[0]["error"]["message"] == "User Not Found"
    exported = run_cli("outbox", "export", "--dead").stdout.splitlines()
    assert [line.encode() for line in exported] == [events[1].body(), events[2].body()]

    assert run_cli("outbox", "retry").code == 0
    assert run_cli("flush").code == 0
    assert store_states(path) == Counter(delivered=4)
    assert set(accepted_bodies(fake)) == {e.body() for e in events}


# -- the token is rejected --------------------------------------------------------------------


def test_rejected_token_stops_at_once_and_keeps_everything_pending(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 20)
    wrong = run_cli("flush", "-c", "1", env={"INTERCOM_ACCESS_TOKEN": "tok_wrong_123"})
    assert wrong.code == 77, wrong
    assert "token was rejected" in wrong.stderr and "every event stays pending" in wrong.stderr
    assert len(fake.posts()) == 1  # stopped at the first 401
    assert "tok_wrong_123" not in wrong.stdout + wrong.stderr
    assert store_states(path) == Counter(pending=20)
    # Fixing the token is enough: nothing waits for a backoff.
    fixed = run_cli("flush")
    assert fixed.code == 0, fixed
    assert store_states(path) == Counter(delivered=20)


def test_403_is_treated_like_401(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 3)
    fake.script(api_error(403, "forbidden", "missing scope"))
    result = run_cli("flush", "-c", "1", "--json")
    assert result.code == 77, result
    assert result.json()["stopped"] == "auth"
    assert store_states(path) == Counter(pending=3)


def test_flush_without_token_is_a_configuration_error(run_cli: RunCli, tmp_path: Path) -> None:
    seed_outbox(outbox_file(tmp_path), 1)
    result = run_cli("flush", env={"INTERCOM_ACCESS_TOKEN": None})
    assert result.code == 78, result
    assert store_states(outbox_file(tmp_path)) == Counter(pending=1)


# -- concurrency, crashes and interrupts ----------------------------------------------------------


def test_two_flushes_at_once_never_send_an_event_twice(fake: FakeIntercom, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    events = seed_outbox(path, 200)
    fake.latency = 0.01
    first = start_flush(tmp_path, fake, "-c", "8", "--json")
    second = start_flush(tmp_path, fake, "-c", "8", "--json")
    results = [process.communicate(timeout=120) for process in (first, second)]
    assert first.returncode == 0 and second.returncode == 0, results
    for out, err in results:
        assert_no_token(out.decode(), err.decode())
    reports = [json.loads(out) for out, _ in results]
    assert sum(r["delivered"] for r in reports) == 200
    bodies = Counter(r.body for r in fake.posts())
    assert len(fake.posts()) == 200
    assert set(bodies.values()) == {1}
    assert set(bodies) == {e.body() for e in events}
    assert store_states(path) == Counter(delivered=200)


def test_flush_killed_mid_run_loses_nothing(fake: FakeIntercom, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    events = seed_outbox(path, 30)
    fake.latency = 1.0
    victim = start_flush(tmp_path, fake, "-c", "4")
    wait_for_posts(fake, 4, victim)
    victim.send_signal(signal.SIGKILL)
    victim.wait(timeout=30)
    claimed_by_the_dead = sum(1 for r in outbox_rows(path) if r.state is State.IN_FLIGHT)
    assert claimed_by_the_dead > 0  # the kill did leave claims behind
    fake.latency = 0.0

    env = base_env(tmp_path, fake.url)
    survivor = run_process(["flush", "--json"], env=env, cwd=tmp_path)
    assert survivor.returncode == 0, survivor
    # Nothing was left for a lease to expire: all 30 delivered by this one run.
    assert store_states(path) == Counter(delivered=30)
    bodies = accepted_bodies(fake)
    assert set(bodies) == {e.body() for e in events}
    # At most the requests that were on the wire at the kill went out twice.
    assert sum(bodies.values()) - 30 <= 4


def test_ctrl_c_puts_in_flight_events_back_and_exits_130(
    fake: FakeIntercom, tmp_path: Path, run_cli: RunCli
) -> None:
    path = outbox_file(tmp_path)
    events = seed_outbox(path, 6)
    fake.latency = 60.0  # no answer before the signal (the fake's stop ends the wait)
    process = start_flush(tmp_path, fake, "-c", "2")
    wait_for_posts(fake, 1, process)
    process.send_signal(signal.SIGINT)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, (out, err)
    assert b"interrupted" in err and b"Traceback" not in err
    assert store_states(path) == Counter(pending=6)
    assert all(r.owner is None for r in outbox_rows(path))
    fake.latency = 0.0
    assert run_cli("flush").code == 0
    assert set(accepted_bodies(fake)) == {e.body() for e in events}


def test_max_time_bounds_a_run(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 20)
    # 10 s of work, stopped at 3 s: the first answer comes after 0.5 s, even under load.
    fake.latency = 0.5
    result = run_cli("flush", "-c", "1", "--max-time", "3", "--json")
    assert result.code == 0, result
    body = result.json()
    assert body["stopped"] == "max_time"
    assert 0 < body["delivered"] < 20
    assert body["remaining"]["in_flight"] == 0
    assert body["remaining"]["pending"] == 20 - body["delivered"]
    counts = store_states(path)
    assert counts["delivered"] == body["delivered"] and counts["in_flight"] == 0


def test_sigterm_stops_like_ctrl_c(fake: FakeIntercom, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 4)
    fake.latency = 60.0  # no answer before the signal (the fake's stop ends the wait)
    process = start_flush(tmp_path, fake, "-c", "2")
    wait_for_posts(fake, 1, process)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=30)
    assert process.returncode == 130, (out, err)
    assert store_states(path) == Counter(pending=4)
