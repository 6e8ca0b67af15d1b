"""The outbox commands behave the same on SQLite and PostgreSQL (real CLI subprocesses).

Each test runs once per backend of ``store_location`` (conftest.py): a SQLite file, and a
fresh database on the test PostgreSQL server. What the stores themselves do alike is
``test_store_conformance.py``'s.
"""

from __future__ import annotations

import json

from conftest import RunCli
from fake_intercom import FakeIntercom, Reply, api_error
from helpers import numbered_ndjson

CREATED = 1_700_000_000


def test_queue_flush_and_status_on_both_backends(
    run_cli: RunCli, fake: FakeIntercom, outbox: str
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    first = run_cli(
        "send",
        "signed-up",
        "--user-id",
        "7",
        "--created-at",
        str(CREATED),
        "--queue",
        "--json",
        env=env,
    )
    assert first.code == 0, first
    again = run_cli(
        "send",
        "signed-up",
        "--user-id",
        "7",
        "--created-at",
        str(CREATED),
        "--queue",
        "--json",
        env=env,
    )
    assert again.code == 0 and again.json()["duplicate"] is True
    assert again.json()["outbox_id"] == first.json()["outbox_id"]
    bulk = run_cli("batch", "-", "--queue", input=numbered_ndjson(50, name="bulk"), env=env)
    assert bulk.code == 0, bulk
    assert fake.posts() == []  # capture never touches the network

    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["pending"], status["delivered"], status["exists"]) == (51, 0, True)
    assert status["path"] == (outbox if outbox.startswith("postgresql") else outbox)

    flushed = run_cli("flush", "--json", env=env)
    assert flushed.code == 0, flushed
    assert flushed.json()["delivered"] == 51
    posted = fake.events_posted()
    assert len(posted) == 51
    assert {e["user_id"] for e in posted} == {"7"} | {f"u{n}" for n in range(50)}

    # The same batch again: everything is already delivered, nothing is sent.
    rerun = run_cli("batch", "-", "--queue", input=numbered_ndjson(50, name="bulk"), env=env)
    assert rerun.code == 0 and "50 already in the outbox" in rerun.stderr
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["pending"], status["delivered"]) == (0, 51)
    assert status["last_flush_exit_code"] == 0 and status["last_success_at"] is not None


def test_dead_letters_list_export_retry_purge(
    run_cli: RunCli, fake: FakeIntercom, outbox: str
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    assert (
        run_cli("batch", "-", "--queue", input=numbered_ndjson(3, name="bulk"), env=env).code == 0
    )
    fake.script(api_error(422, "parameter_invalid", "bad metadata"))
    fake.script_repeat(Reply(status=202), 2)
    flushed = run_cli("flush", "-c", "1", env=env)
    assert flushed.code == 65, flushed
    dead = run_cli("outbox", "list", "--dead", "--json", env=env).json_lines()
    assert len(dead) == 1 and dead[0]["error"]["message"] == "bad metadata"
    exported = run_cli("outbox", "export", "--dead", env=env)
    assert json.loads(exported.stdout)["user_id"] == dead[0]["event"]["user_id"]

    retried = run_cli("outbox", "retry", str(dead[0]["id"]), "--json", env=env)
    assert retried.json() == {
        "ok": True,
        "exit_code": 0,
        "retried": [dead[0]["id"]],
        "not_dead": [],
    }
    missing = run_cli("outbox", "retry", "999999", env=env)
    assert missing.code == 2
    assert run_cli("flush", env=env).code == 0
    purged = run_cli("outbox", "purge", "--delivered", "-y", "--json", env=env)
    assert purged.json() == {"ok": True, "purged": 3, "state": "delivered"}
    assert run_cli("outbox", "status", "--json", env=env).json()["delivered"] == 0


def test_temporary_failure_is_kept_and_the_next_flush_probes(
    run_cli: RunCli, fake: FakeIntercom, outbox: str
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    fake.script_repeat(Reply(status=503), 3)
    sent = run_cli(
        "send", "boom", "--user-id", "1", "--queue-on-failure", "--retries", "2", env=env
    )
    assert sent.code == 0 and "queued, NOT delivered" in sent.stdout, sent
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert status["pending"] == 1 and status["next_attempt_at"] is not None
    # Not due yet, but its destination is marked failing: the flush starts with a probe.
    done = run_cli("flush", "--json", env=env)
    assert done.code == 0 and done.json()["delivered"] == 1, done
    assert fake.events_posted()[0]["event_name"] == "boom"


def test_batch_delivers_while_it_stores(run_cli: RunCli, fake: FakeIntercom, outbox: str) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    fake.script(Reply(status=503), api_error(422, "parameter_invalid", "no such thing"))
    done = run_cli("batch", "-", "--json", input=numbered_ndjson(300, name="piped"), env=env)
    assert done.code == 65, done
    summary = done.json()
    assert summary["delivered"] == 299 and summary["dead"] == 1
    assert len(fake.events_posted()) == 299
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["delivered"], status["dead"], status["pending"]) == (299, 1, 0)
