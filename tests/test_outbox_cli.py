"""``send --queue`` / ``--queue-on-failure`` and ``ievents outbox ...``, as real subprocesses."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TOKEN, CliResult, RunCli, base_env
from fake_intercom import FakeIntercom, Reply, api_error
from helpers import (
    finish,
    launch,
    outbox_file,
    outbox_rows,
    run_on_terminal,
    run_process,
    seed_outbox,
)

from intercom_events_cli.event import event_from_record
from intercom_events_cli.outbox import RowResult, SqliteOutbox, State

CREATED = "1700000000"


def make_dead(path: Path, status: int = 422) -> None:
    """Turn every pending row into a dead letter, as a flush would."""
    with SqliteOutbox.open(path) as store:
        claimed = store.claim("test-owner", 1000)
        store.record(
            "test-owner",
            [
                RowResult(r.id, State.DEAD, status=status, error_code="bad", error_message="no")
                for r in claimed
            ],
        )


def queue(run_cli: RunCli, *extra: str, user: str = "314159") -> CliResult:
    return run_cli(
        "send", "signed-up", "--user-id", user, "--created-at", CREATED, "--queue", *extra
    )


# -- send --queue --------------------------------------------------------------------------------


def test_queue_stores_the_event_without_sending(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    result = run_cli(
        "send", "signed-up", "--user-id", "314159", "-m", "plan=pro", "--queue", "--json"
    )
    assert result.code == 0, result
    body = result.json()
    assert body["ok"] is True and body["queued"] is True and body["delivered"] is False
    assert body["duplicate"] is False and body["error"] is None
    assert fake.requests == []
    (row,) = outbox_rows(outbox_file(tmp_path))
    assert row.state is State.PENDING and row.id == body["outbox_id"]
    assert row.payload == body["event"]
    assert row.payload["metadata"] == {"plan": "pro"}
    # created_at is fixed at capture, and kept as captured
    assert abs(row.payload["created_at"] - time.time()) < 60


def test_queue_human_output(run_cli: RunCli, tmp_path: Path) -> None:
    result = queue(run_cli)
    assert result.code == 0, result
    assert result.stdout.startswith("queued signed-up for user_id 314159")
    assert "outbox id 1" in result.stdout


def test_queue_needs_a_token_but_no_network(run_cli: RunCli, tmp_path: Path) -> None:
    # The event is bound to the token's workspace at capture: without one, nothing is kept.
    result = run_cli("send", "x", "--user-id", "1", "--queue", env={"INTERCOM_ACCESS_TOKEN": None})
    assert result.code == 78, result
    assert "no access token" in result.stderr
    assert not outbox_file(tmp_path).exists() or outbox_rows(outbox_file(tmp_path)) == []
    # With a token and an unreachable base URL: queued, nothing sent.
    kept = run_cli(
        "send", "x", "--user-id", "1", "--queue", env={"INTERCOM_BASE_URL": "http://127.0.0.1:9"}
    )
    assert kept.code == 0, kept
    assert len(outbox_rows(outbox_file(tmp_path))) == 1


def test_queue_path_does_not_import_httpx(fake: FakeIntercom, tmp_path: Path) -> None:
    env = base_env(tmp_path, fake.url)

    def imported(*args: str) -> str:
        completed = run_process(args, env=env, cwd=tmp_path, python_flags=("-X", "importtime"))
        assert completed.returncode == 0, completed
        return completed.stderr.decode()

    modules = {
        line.rsplit("|", 1)[-1].strip()
        for line in imported("send", "x", "--user-id", "1", "--queue").splitlines()
        if "|" in line
    }
    assert "sqlite3" in modules
    assert not any(m == "httpx" or m.startswith("httpx.") for m in modules)
    # The check itself works: sending for real does import httpx.
    sent = imported("send", "x", "--user-id", "1")
    assert any(line.rsplit("|", 1)[-1].strip() == "httpx" for line in sent.splitlines())


def test_same_event_queued_twice_is_stored_once(run_cli: RunCli, tmp_path: Path) -> None:
    assert queue(run_cli).code == 0
    again = queue(run_cli, "--json")
    assert again.code == 0, again
    body = again.json()
    assert body["duplicate"] is True and body["queued"] is True and body["outbox_id"] == 1
    assert "already queued" in queue(run_cli).stdout
    assert len(outbox_rows(outbox_file(tmp_path))) == 1


def test_event_already_delivered_is_recognised(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    assert queue(run_cli).code == 0
    assert run_cli("flush").code == 0
    again = queue(run_cli)
    assert again.code == 0, again
    assert "already delivered" in again.stdout
    as_json = queue(run_cli, "--json").json()
    assert as_json["delivered"] is True and as_json["queued"] is False
    assert as_json["duplicate"] is True
    assert run_cli("flush").code == 0
    assert len(fake.events_posted()) == 1


def test_event_that_is_a_dead_letter_is_not_queued_again(run_cli: RunCli, tmp_path: Path) -> None:
    assert queue(run_cli).code == 0
    make_dead(outbox_file(tmp_path), status=404)
    again = queue(run_cli)
    assert again.code == 67, again
    assert "dead letter" in again.stderr and "ievents outbox retry 1" in again.stderr
    assert [r.state for r in outbox_rows(outbox_file(tmp_path))] == [State.DEAD]


def test_outbox_option_wins_and_dotenv_is_read(run_cli: RunCli, tmp_path: Path) -> None:
    chosen = tmp_path / "chosen" / "o.sqlite3"
    assert queue(run_cli, "--outbox", str(chosen)).code == 0
    assert len(outbox_rows(chosen)) == 1
    assert not outbox_file(tmp_path).exists()
    workdir = tmp_path / "work"
    from_dotenv = tmp_path / "dotenv.sqlite3"
    (workdir / ".env").write_text(f"IEVENTS_OUTBOX={from_dotenv}\n")
    result = run_cli("send", "x", "--user-id", "2", "--queue", env={"IEVENTS_OUTBOX": None})
    assert result.code == 0, result
    assert len(outbox_rows(from_dotenv)) == 1


def test_default_outbox_is_private_under_xdg_state(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("send", "x", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX": None})
    assert result.code == 0, result
    path = tmp_path / "state" / "ievents" / "outbox.sqlite3"
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for side in (Path(f"{path}-wal"), Path(f"{path}-shm")):
        if side.exists():
            assert stat.S_IMODE(side.stat().st_mode) == 0o600
    raw = sqlite3.connect(path)
    assert raw.execute("PRAGMA user_version").fetchone()[0] == 5
    raw.close()
    home = run_cli(
        "send",
        "x",
        "--user-id",
        "2",
        "--queue",
        env={"IEVENTS_OUTBOX": None, "XDG_STATE_HOME": None},
    )
    assert home.code == 0, home
    assert (tmp_path / "home" / ".local" / "state" / "ievents" / "outbox.sqlite3").exists()


def test_queue_option_combinations_are_usage_errors(run_cli: RunCli, tmp_path: Path) -> None:
    both = run_cli("send", "x", "--user-id", "1", "--queue", "--queue-on-failure")
    assert both.code == 2 and "choose one" in both.stderr
    dry = run_cli("send", "x", "--user-id", "1", "--queue", "--dry-run")
    assert dry.code == 2
    stray = run_cli("send", "x", "--user-id", "1", "--outbox", str(tmp_path / "o"))
    assert stray.code == 2 and "--outbox" in stray.stderr
    assert not outbox_file(tmp_path).exists()


# -- send --queue-on-failure -------------------------------------------------------------------


def test_queue_on_failure_keeps_a_temporary_failure(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    fake.script(Reply(status=503), Reply(status=503))
    result = run_cli(
        "send", "x", "--user-id", "1", "--queue-on-failure", "--retries", "1", "--json"
    )
    assert result.code == 0, result
    body = result.json()
    assert body["ok"] is True and body["delivered"] is False and body["queued"] is True
    assert body["status"] == 503 and body["attempts"] == 2
    assert body["error"]["code"] == "http_503"
    (row,) = outbox_rows(outbox_file(tmp_path))
    assert row.id == body["outbox_id"] and row.payload == body["event"]
    assert row.state is State.PENDING and row.attempts == 1 and row.last_status == 503
    assert row.next_attempt_at > time.time()  # not hammered again at once
    assert fake.events_posted() == []
    # Intercom is back: the next flush probes with it at once (no waiting for its backoff).
    back = run_cli("flush", "--json")
    assert back.code == 0 and back.json()["probed"] is True, back
    assert fake.events_posted() == [body["event"]]


def test_queue_on_failure_says_queued_not_delivered(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    fake.script(Reply(drop=True))
    result = run_cli("send", "x", "--user-id", "1", "--queue-on-failure", "--retries", "0")
    assert result.code == 0, result
    assert "queued, NOT delivered" in result.stdout
    assert len(outbox_rows(outbox_file(tmp_path))) == 1


def test_queue_on_failure_does_not_queue_permanent_failures(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    fake.script(api_error(422, "parameter_invalid", "bad metadata"))
    result = run_cli("send", "x", "--user-id", "1", "--queue-on-failure", "--json")
    assert result.code == 65, result
    assert result.json()["queued"] is False
    fake.unknown_contacts.add("nobody")
    missing = run_cli("send", "x", "--user-id", "nobody", "--queue-on-failure")
    assert missing.code == 67
    assert not outbox_file(tmp_path).exists()


def test_queue_on_failure_delivers_when_it_can(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    result = run_cli("send", "x", "--user-id", "1", "--queue-on-failure", "--json")
    assert result.code == 0, result
    assert result.json()["delivered"] is True and result.json()["queued"] is False
    assert not outbox_file(tmp_path).exists()


# -- unusable outbox files ---------------------------------------------------------------------


def test_corrupt_outbox_is_a_clear_error_and_left_alone(run_cli: RunCli, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    garbage = os.urandom(4096)
    path.write_bytes(garbage)
    for args in (
        ("send", "x", "--user-id", "1", "--queue"),
        ("flush",),
        ("outbox", "status"),
        ("outbox", "list"),
    ):
        result = run_cli(*args)
        assert result.code == 78, result
        assert str(path) in result.stderr
        assert "Traceback" not in result.stderr
    assert path.read_bytes() == garbage


def test_locked_outbox_is_a_clear_error_and_left_intact(run_cli: RunCli, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 2)
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        result = run_cli(
            "send", "x", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX_BUSY_TIMEOUT": "0.3"}
        )
        flushed = run_cli("flush", env={"IEVENTS_OUTBOX_BUSY_TIMEOUT": "0.3"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    for outcome in (result, flushed):
        assert outcome.code == 75, outcome  # a temporary failure: try again later
        assert "locked" in outcome.stderr and str(path) in outcome.stderr
        assert "Traceback" not in outcome.stderr
    assert [r.state for r in outbox_rows(path)] == [State.PENDING, State.PENDING]


# -- outbox status ------------------------------------------------------------------------------


def test_status_of_a_missing_outbox_creates_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("outbox", "status", "--json")
    assert result.code == 0, result
    body = result.json()
    assert body["exists"] is False and body["pending"] == 0
    assert body["path"] == str(outbox_file(tmp_path))
    assert not outbox_file(tmp_path).exists()


def test_status_counts_and_heartbeat(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 3)
    before = run_cli("outbox", "status", "--json").json()
    assert before["pending"] == 3 and before["last_flush_at"] is None
    assert before["oldest_pending_age_s"] >= 0 and before["schema_version"] == 5
    fake.unknown_contacts.add("u2")
    assert run_cli("flush").code == 67
    after = run_cli("outbox", "status", "--json").json()
    assert (after["pending"], after["dead"], after["delivered"]) == (0, 1, 2)
    assert after["last_flush_exit_code"] == 67
    assert after["last_flush_at"] is not None and after["last_success_at"] is not None
    assert after["oldest_pending_at"] is None
    human = run_cli("outbox", "status")
    assert human.code == 0 and str(path) in human.stdout
    assert "dead          1" in human.stdout


# -- outbox list / export / retry ---------------------------------------------------------------


def test_list_pending_and_dead(run_cli: RunCli, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 2, name="old")
    make_dead(path)
    seed_outbox(path, 3, name="new")
    everything = run_cli("outbox", "list", "--json").json_lines()
    assert [line["state"] for line in everything] == ["dead"] * 2 + ["pending"] * 3
    dead = run_cli("outbox", "list", "--dead", "--json").json_lines()
    assert len(dead) == 2
    assert dead[0]["event"]["event_name"] == "old"
    assert dead[0]["error"] == {"code": "bad", "message": "no"} and dead[0]["last_status"] == 422
    pending = run_cli("outbox", "list", "--pending", "--limit", "2", "--json").json_lines()
    assert [line["event"]["event_name"] for line in pending] == ["new", "new"]
    plain = run_cli("outbox", "list", "--dead")
    assert plain.code == 0
    fields = plain.stdout.splitlines()[0].split("\t")
    assert fields[:4] == ["1", "dead", "old", "user_id u0"]
    assert "422" in fields[6] and fields[7] == "unbound"  # seeded without a destination
    both = run_cli("outbox", "list", "--dead", "--pending")
    assert both.code == 2


def test_list_draws_a_table_on_a_terminal(tmp_path: Path, fake: FakeIntercom) -> None:
    pytest.importorskip("pty")
    seed_outbox(outbox_file(tmp_path), 2)
    env = base_env(tmp_path, fake.url)
    env.update({"COLUMNS": "160", "TERM": "xterm"})
    ran = run_on_terminal(["outbox", "list"], env=env, cwd=tmp_path, stderr_on_terminal=False)
    assert ran.code == 0
    screen = ran.screen
    assert "captured" in screen and "signed-up" in screen
    assert "\t" not in screen  # a table, not the tab-separated form
    assert TOKEN not in screen


def test_export_is_replayable_ndjson(run_cli: RunCli, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    events = seed_outbox(path, 2)
    make_dead(path)
    pending = seed_outbox(path, 1, name="later")
    dead_export = run_cli("outbox", "export", "--dead")
    assert dead_export.code == 0, dead_export
    lines = dead_export.stdout.splitlines()
    assert [line.encode() for line in lines] == [e.body() for e in events]
    for line in lines:
        replayed = event_from_record(json.loads(line))
        assert replayed.body() == line.encode()  # same created_at: de-duplicated by Intercom
    everything = run_cli("outbox", "export").stdout.splitlines()
    assert len(everything) == 3
    assert run_cli("outbox", "export", "--pending").stdout.encode() == pending[0].body() + b"\n"


def test_retry_moves_dead_letters_back(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 3)
    make_dead(path)
    one = run_cli("outbox", "retry", "2")
    assert one.code == 0, one
    assert "1 dead letter back to pending" in one.stdout
    assert [r.state for r in outbox_rows(path)] == [State.DEAD, State.PENDING, State.DEAD]
    wrong = run_cli("outbox", "retry", "2", "99", "--json")
    assert wrong.code == 2
    assert wrong.json() == {"ok": False, "exit_code": 2, "retried": [], "not_dead": [2, 99]}
    rest = run_cli("outbox", "retry")
    assert rest.code == 0 and "2 dead letters" in rest.stdout
    assert run_cli("flush").code == 0
    assert len(fake.events_posted()) == 3


# -- outbox purge -------------------------------------------------------------------------------


def test_purge_needs_yes_without_a_terminal(run_cli: RunCli, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 2)
    make_dead(path)
    refused = run_cli("outbox", "purge", "--dead", input="")
    assert refused.code == 2, refused
    assert "--yes" in refused.stderr
    assert len(outbox_rows(path)) == 2
    done = run_cli("outbox", "purge", "--dead", "--yes", "--json", input="")
    assert done.code == 0 and done.json()["purged"] == 2
    assert outbox_rows(path) == []


def test_purge_delivered_older_than(run_cli: RunCli, tmp_path: Path) -> None:
    path = outbox_file(tmp_path)
    seed_outbox(path, 3)
    now = time.time()
    with SqliteOutbox.open(path) as store:
        claimed = store.claim("t", 10)
        store.record(
            "t", [RowResult(claimed[0].id, State.DELIVERED, status=202)], now=now - 40 * 86400
        )
        store.record("t", [RowResult(r.id, State.DELIVERED, status=202) for r in claimed[1:]])
    result = run_cli("outbox", "purge", "--delivered", "--older-than", "30d", "--yes")
    assert result.code == 0, result
    assert "purged 1 delivered event" in result.stdout
    assert len(outbox_rows(path)) == 2
    assert run_cli("outbox", "purge", "--delivered", "--older-than", "soon", "--yes").code == 2
    assert run_cli("outbox", "purge", "--yes").code == 2
    assert run_cli("outbox", "purge", "--dead", "--pending", "--yes").code == 2


def test_purge_asks_on_a_terminal(tmp_path: Path, fake: FakeIntercom) -> None:
    pty = pytest.importorskip("pty")
    path = outbox_file(tmp_path)
    seed_outbox(path, 2)
    env = base_env(tmp_path, fake.url)

    def purge_answering(answer: bytes) -> tuple[int, str]:
        leader, follower = pty.openpty()
        process = launch(
            ["outbox", "purge", "--pending"],
            stdin=follower,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            cwd=tmp_path,
        )
        os.close(follower)
        os.write(leader, answer)
        code, _, err = finish(process)
        os.close(leader)
        return code, err

    code, question = purge_answering(b"n\n")
    assert code == 0 and "never delivered" in question
    assert len(outbox_rows(path)) == 2
    code, _ = purge_answering(b"y\n")
    assert code == 0
    assert outbox_rows(path) == []


def test_queue_on_failure_with_an_unusable_outbox_says_the_event_is_lost(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    path = outbox_file(tmp_path)
    path.write_bytes(b"not sqlite at all")
    fake.script(Reply(status=503))
    result = run_cli(
        "send", "x", "--user-id", "1", "--queue-on-failure", "--retries", "0", "--json"
    )
    assert result.code == 78, result
    assert result.json()["ok"] is False and result.json()["queued"] is False
    assert "not delivered" in result.stderr and "could not be queued" in result.stderr
    assert str(path) in result.stderr
    assert path.read_bytes() == b"not sqlite at all"
