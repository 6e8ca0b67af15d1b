"""The outbox's promise (issue 9): the right workspace, drained at once after an outage,
delivered once through faults and kill -9. Real subprocesses, the fake server, and each
outbox backend: the tests that use the outbox run once per backend of ``store_location``
(conftest.py), through the ``outbox`` and ``cli`` fixtures below."""

from __future__ import annotations

import os
import random
import signal
import subprocess
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import TOKEN, CliResult, RunCli, base_env, make_runner
from fake_intercom import FakeIntercom, Reply
from helpers import accepted_bodies, launch, numbered_ndjson, store_states, wait_for

from intercom_events_cli.event import Event
from intercom_events_cli.outbox import State
from intercom_events_cli.outbox.store import open_store

EU_TOKEN = "tok_EU_other_workspace_f3a2"


@pytest.fixture
def outbox(store_location: str, tmp_path: Path) -> Iterator[str]:
    """The outbox of the test's CLI runs and its own look inside, each backend in turn.

    Afterwards: the runs really used it (its rows are there) and made no other outbox
    (the default file) beside it.
    """
    yield store_location
    default = tmp_path / "outbox.sqlite3"
    assert default.exists() == (str(default) == store_location)
    with open_store(store_location, {}) as store:
        assert sum(store.summary().counts.values()) > 0


@pytest.fixture
def cli(tmp_path: Path, fake: FakeIntercom, outbox: str) -> RunCli:
    """``run_cli`` with every run on ``outbox`` (IEVENTS_OUTBOX)."""
    run = make_runner(tmp_path, fake.url)

    def on_outbox(*args: str, env: dict[str, str | None] | None = None, **kw: Any) -> CliResult:
        return run(*args, env={"IEVENTS_OUTBOX": outbox, **(env or {})}, **kw)

    return on_outbox


def test_events_go_only_to_the_workspace_they_were_captured_for(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli, outbox: str
) -> None:
    us = cli
    with FakeIntercom(expected_token=EU_TOKEN) as eu_fake:
        eu_env = {"INTERCOM_ACCESS_TOKEN": EU_TOKEN, "INTERCOM_BASE_URL": eu_fake.url}
        queued = us("send", "eu-event", "--user-id", "1", "--queue", env=eu_env)
        assert queued.code == 0, queued
        assert us("send", "us-event", "--user-id", "2", "--queue").code == 0

        # flush and batch run for US: the EU event is left alone and reported, no secret.
        flushed = us("flush", "--json")
        assert flushed.code == 0, flushed
        body = flushed.json()
        assert body["delivered"] == 1
        eu_host = eu_fake.url
        assert body["waiting_elsewhere"] == [
            {
                "base_url": eu_fake.url,
                "api_version": "2.14",
                "workspace_id": None,  # EU's token was never used by flush or check
                "region": eu_host,
                "events": 1,
            }
        ]
        text = us("flush")
        assert f"1 event waits for a workspace not yet known ({eu_host}:" in text.stderr, text
        assert EU_TOKEN not in text.stdout + text.stderr and "f3a2" not in text.stderr
        batch = us("batch", "-", input=numbered_ndjson(2, name="paid"))
        assert batch.code == 0, batch
        assert [e["event_name"] for e in fake.events_posted()] == ["us-event", "paid", "paid"]
        assert eu_fake.posts() == []

        status = us("outbox", "status", "--json").json()
        assert status["pending_by_destination"] == [
            {
                "destination": {
                    "base_url": eu_fake.url,
                    "api_version": "2.14",
                    "workspace_id": None,
                    "region": eu_host,
                },
                "events": 1,
            }
        ]
        listed = us("outbox", "list", "--pending", "--json").json_lines()
        assert [row["destination"]["base_url"] for row in listed] == [eu_fake.url]

        # EU's own flush delivers it there, with EU's token.
        eu_flush = us("flush", env=eu_env)
        assert eu_flush.code == 0, eu_flush
        assert [e["event_name"] for e in eu_fake.events_posted()] == ["eu-event"]
        assert all(r.headers["authorization"] == f"Bearer {EU_TOKEN}" for r in eu_fake.posts())
    assert store_states(outbox) == Counter(delivered=4)


def test_rows_of_an_older_outbox_go_to_the_first_configuration_that_flushes(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli, outbox: str
) -> None:
    with open_store(outbox, {}) as store:  # unbound, as migrated rows are
        store.add(Event.create("old", user_id="1", created_at=1_700_000_000))
    # A rejected token does not keep them: they stay unbound.
    wrong = cli("flush", env={"INTERCOM_ACCESS_TOKEN": "tok_wrong_workspace_0000"})
    assert wrong.code == 77, wrong
    with open_store(outbox, {}) as store:
        assert [r.destination_id for r in store.rows([State.PENDING])] == [None]
    assert cli("flush").code == 0
    assert [e["event_name"] for e in fake.events_posted()] == ["old"]


# -- outage, then recovery -----------------------------------------------------------------


def test_after_an_outage_the_first_flush_delivers_everything_and_during_it_one_probe(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli, outbox: str
) -> None:
    # Retry-After: 0 on the failures, so the test is not mostly the backoff's waits.
    now = {"Retry-After": "0"}
    fake.script_repeat(Reply(status=503, headers=now), 6)
    for n in range(3):
        kept = cli("send", "x", "--user-id", str(n), "--queue-on-failure", "--retries", "1")
        assert kept.code == 0 and "queued, NOT delivered" in kept.stdout, kept
    assert len(fake.posts()) == 6
    # Still down: each flush sends one probe (with its retries) and exits 75.
    for _ in range(2):
        before = len(fake.posts())
        fake.script(Reply(status=502, headers=now), Reply(drop=True))
        down = cli("flush", "--retries", "1", "--json")
        assert down.code == 75, down
        assert len(fake.posts()) - before == 2  # one event, two attempts
        assert down.json()["probed"] is True and down.json()["claimed"] == 1
    assert fake.events_posted() == []
    # Back: the first flush delivers all three at once, whatever their backoff says.
    back = cli("flush", "--json")
    assert back.code == 0, back
    assert back.json()["delivered"] == 3
    assert store_states(outbox) == Counter(delivered=3)
    assert sorted(e["user_id"] for e in fake.events_posted()) == ["0", "1", "2"]


def test_rerunning_a_batch_whose_events_are_still_pending_is_not_ok(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli
) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text(numbered_ndjson(2, name="paid"))
    fake.script_repeat(Reply(status=503), 100)
    first = cli("batch", str(source), "--retries", "0", "--json")
    assert first.code == 75 and first.json()["ok"] is False, first
    again = cli("batch", str(source), "--retries", "0", "--json")
    assert again.code == 75, again
    body = again.json()
    assert body["ok"] is False and body["pending"] == 2 and body["skipped"] == 2
    # Intercom failed last time: one probe, which fails; the other was not due (not sent).
    assert body["failed"] == 1 and body["not_due"] == 1, body
    assert "1 failed in this run" in again.stderr and "1 not sent" in again.stderr


# -- faults while Intercom is up -----------------------------------------------------------


def test_3000_events_through_5xx_and_dropped_connections_are_all_delivered_once(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli, outbox: str
) -> None:
    # The 5xx say Retry-After: 0, so the run is not mostly the client's backoff waits (those
    # still follow every dropped connection); what is checked is that nothing is lost or
    # doubled, and the faults' timing has its own tests (test_retry.py, test_client.py).
    fake.set_faults(error_rate=0.15, drop_rate=0.05, seed=9, retry_after="0")
    source = tmp_path / "in.ndjson"
    source.write_text(numbered_ndjson(3000, name="paid"))
    result = cli("batch", str(source), "--json", timeout=600)
    assert result.code == 0, result
    body = result.json()
    assert body["ok"] is True and body["delivered"] == 3000 and body["pending"] == 0
    counts = accepted_bodies(fake)
    assert len(counts) == 3000 and set(counts.values()) == {1}
    assert fake.stats()["posts"] > 3000  # the faults did happen
    assert store_states(outbox) == Counter(delivered=3000)


def test_retry_rounds_bring_an_event_back_within_the_same_run(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli
) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text(numbered_ndjson(1, name="paid") + numbered_ndjson(5, start=1, name="paid"))
    # Intercom answers the first event; the next two fail all their attempts (retries 0)
    # while the others succeed: they come back in the same run, not in the next flush.
    fake.script(Reply(status=202), Reply(status=503), Reply(status=500))
    result = cli("batch", str(source), "--retries", "0", "-c", "1", "--json")
    assert result.code == 0, result
    assert result.json()["delivered"] == 6 and result.json()["pending"] == 0
    assert len(accepted_bodies(fake)) == 6 and len(fake.posts()) == 8


def test_chaos_flush_killed_with_sigkill_then_one_flush_delivers_everything(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli, outbox: str
) -> None:
    draw = random.Random(1234)
    events = [
        Event.create("chaos", user_id=f"c{n}", created_at=1_700_000_000 + n) for n in range(300)
    ]
    with open_store(outbox, {}) as store:
        store.queue_many(events)
    fake.latency = 0.05
    concurrency, kills = 8, 0
    for _ in range(5):
        flush = launch(
            ["flush", "-c", str(concurrency)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env={**base_env(tmp_path, fake.url), "IEVENTS_OUTBOX": outbox},
            cwd=tmp_path,
        )
        # Killed mid-run, after a random share of the work: 5 to 40 more requests.
        target = len(fake.posts()) + draw.randint(5, 40)
        wait_for(
            lambda: len(fake.posts()) >= target or flush.poll() is not None,  # noqa: B023
            what=f"{target} requests",
        )
        if flush.poll() is None:
            os.kill(flush.pid, signal.SIGKILL)
            kills += 1
        flush.wait(30)
    assert kills >= 3  # the test killed flushes mid-run, it did not just watch them end
    fake.latency = 0.0
    final = cli("flush", "--json")
    assert final.code == 0, final
    assert store_states(outbox) == Counter(delivered=300)
    counts = accepted_bodies(fake)
    assert set(counts) == {e.body() for e in events}
    # A re-send only for what was on the wire when a flush was killed.
    resent = sum(counts.values()) - 300
    assert resent <= kills * 2 * concurrency


# -- one classification --------------------------------------------------------------------


def test_every_5xx_is_retried(run_cli: RunCli, fake: FakeIntercom) -> None:
    # Retry-After: 0, so that the test is about which statuses are retried, not 3.5 s of
    # backoff (the backoff has its own tests in test_retry.py).
    now = {"Retry-After": "0"}
    fake.script(
        Reply(status=501, headers=now),
        Reply(status=505, headers=now),
        Reply(status=507, headers=now),
    )
    result = run_cli("send", "x", "--user-id", "1", "--retries", "3", "--json")
    assert result.code == 0, result
    assert result.json()["attempts"] == 4
    # Past the retries: temporary (75), kept by --queue-on-failure.
    fake.script(Reply(status=501, headers=now), Reply(status=501, headers=now))
    failed = run_cli("send", "y", "--user-id", "1", "--retries", "1")
    assert failed.code == 75 and "501 Not Implemented" in failed.stderr, failed


def test_a_202_with_a_body_that_cannot_be_decoded_is_delivered(
    cli: RunCli, outbox: str, fake: FakeIntercom, tmp_path: Path
) -> None:
    broken = Reply(status=202, body=b"\x00not gzip at all", headers={"Content-Encoding": "gzip"})
    fake.script(broken)
    sent = cli("send", "x", "--user-id", "1", "--json")
    assert sent.code == 0 and sent.json()["delivered"] is True, sent
    assert len(fake.posts()) == 1  # not sent again
    with open_store(outbox, {}) as store:
        store.add(Event.create("y", user_id="1", created_at=1_700_000_000))
    fake.script(broken)
    flushed = cli("flush", "--json")
    assert flushed.code == 0 and flushed.json()["delivered"] == 1, flushed
    assert store_states(outbox) == Counter(delivered=1)


def test_another_2xx_for_an_event_is_not_a_delivery(
    cli: RunCli, outbox: str, fake: FakeIntercom, tmp_path: Path
) -> None:
    portal = Reply(status=200, body="<html>Welcome to the hotel wifi</html>")
    fake.script(portal, portal)
    result = cli("send", "x", "--user-id", "1", "--retries", "1", "--json")
    assert result.code == 75, result
    body = result.json()
    assert body["delivered"] is False and body["status"] == 200
    assert body["error"]["code"] == "unexpected_response"
    assert "proxy" in result.stderr and "--base-url" in result.stderr
    # In the outbox: kept pending, 75.
    with open_store(outbox, {}) as store:
        store.add(Event.create("y", user_id="1", created_at=1_700_000_000))
    fake.script(portal)
    flushed = cli("flush", "--retries", "0")
    assert flushed.code == 75, flushed
    assert store_states(outbox) == Counter(pending=1)
    # check (GET /me) still takes 200 as success.
    assert cli("check").code == 0


def test_queue_on_failure_of_a_dead_letter_says_so(
    cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    fake.unknown_contacts.add("ghost")
    assert cli("send", "x", "--user-id", "ghost", "--created-at", "1700000000", "--queue").code == 0
    assert cli("flush").code == 67
    fake.script(Reply(status=503))
    again = cli(
        "send",
        "x",
        "--user-id",
        "ghost",
        "--created-at",
        "1700000000",
        "--queue-on-failure",
        "--retries",
        "0",
        "--json",
    )
    assert again.code == 67, again
    body = again.json()
    assert body["ok"] is False and body["queued"] is False
    assert "ievents outbox retry" in again.stderr


def test_queue_on_failure_reports_the_real_attempts_when_the_outbox_fails(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    not_a_db = tmp_path / "garbage.sqlite3"
    not_a_db.write_bytes(b"this is not sqlite")
    fake.script(Reply(status=503), Reply(status=503))
    result = run_cli(
        "send",
        "x",
        "--user-id",
        "1",
        "--queue-on-failure",
        "--retries",
        "1",
        "--json",
        env={"IEVENTS_OUTBOX": str(not_a_db)},
    )
    assert result.code == 78, result
    body = result.json()  # exactly one JSON object
    assert body["attempts"] == 2 and body["status"] == 503 and body["ok"] is False
    assert body["error"]["code"] == "outbox_error"
    assert body["error"]["delivery_error"]["code"] == "http_503"


def test_settings_built_by_hand_redact_their_token() -> None:
    from intercom_events_cli.config.redaction import redact
    from intercom_events_cli.config.settings import Settings

    secret = "tok_library_user_built_this_1234"
    Settings(token=secret)
    assert redact(f"oops {secret}") == "oops ***"


def test_server_error_codes_share_one_vocabulary(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(drop=True))
    dropped = run_cli("send", "x", "--user-id", "1", "--retries", "0", "--json")
    assert dropped.code == 75 and dropped.json()["error"]["code"] == "connection_error"
    refused = run_cli(
        "send",
        "x",
        "--user-id",
        "1",
        "--retries",
        "0",
        "--json",
        env={"INTERCOM_BASE_URL": "http://127.0.0.1:9"},
    )
    assert refused.code == 75 and refused.json()["error"]["code"] == "connection_error"
    fake.script(Reply(status=202, delay=3))
    slow = run_cli("send", "x", "--user-id", "1", "--retries", "0", "--timeout", "0.5", "--json")
    assert slow.code == 75 and slow.json()["error"]["code"] == "timeout", slow
    assert TOKEN not in slow.stdout


def test_max_time_while_deliveries_succeed_exits_0_and_says_what_is_left(
    tmp_path: Path, fake: FakeIntercom, cli: RunCli, outbox: str
) -> None:
    with open_store(outbox, {}) as store:
        store.queue_many(
            [Event.create("e", user_id=f"u{n}", created_at=1_700_000_000 + n) for n in range(40)]
        )
    fake.latency = 0.1
    result = cli("flush", "-c", "1", "--max-time", "0.5", "--json")
    assert result.code == 0, result
    body = result.json()
    assert body["stopped"] == "max_time"
    assert body["due_remaining"] == 40 - body["delivered"] > 0
