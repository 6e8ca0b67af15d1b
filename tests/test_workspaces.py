"""A destination is a workspace, not a token (issue 22, part 1): a rotated token delivers
what the old one captured; rows of a token whose workspace was never learned wait and are
named by workspace and region, never by token; the migrations from the previous schema
version keep every row. The CLI in-process, fake workspaces on loopback, each backend."""

from __future__ import annotations

import sqlite3
from collections import Counter
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, RunCli, make_runner
from fake_intercom import FakeIntercom

from intercom_events_cli.outbox import State
from intercom_events_cli.outbox.store import open_store

A1 = "tok_A1_old_token_of_workspace_a_1111"
A2 = "tok_A2_new_token_of_workspace_a_2222"
Z = "tok_Z_revoked_before_anyone_checked_it_9999"
TOKENS = (A1, A2, Z)


@pytest.fixture
def workspaces() -> Iterator[FakeIntercom]:
    """One fake Intercom with two tokens of workspace ``ws_a`` and one of ``ws_z``."""
    with FakeIntercom() as server:
        server.workspaces = {A1: "ws_a", A2: "ws_a", Z: "ws_z"}
        yield server


@pytest.fixture
def cli(tmp_path: Path, workspaces: FakeIntercom, store_location: str) -> RunCli:
    """The real CLI (in-process), on ``store_location``; ``token=`` picks the token."""
    run = make_runner(tmp_path, workspaces.url)

    def on_outbox(*args: str, token: str, **kw: Any) -> CliResult:
        result = run(
            *args,
            env={"IEVENTS_OUTBOX": store_location, "INTERCOM_ACCESS_TOKEN": token},
            **kw,
        )
        for secret in TOKENS:
            assert secret not in result.stdout + result.stderr, result
            # check shows the token's last four, to say which one it checked; nothing else
            # names a token, even that way.
            if args[0] != "check":
                assert secret[-4:] not in result.stdout + result.stderr, result
        return result

    return on_outbox


def states(location: str) -> Counter[str]:
    with open_store(location, {}) as store:
        return Counter(row.state.value for row in store.rows(list(State)))


def queue(cli: RunCli, token: str, names: list[str]) -> None:
    for name in names:
        result = cli("send", name, "--user-id", "u1", "--queue", token=token)
        assert result.code == 0, result


def test_a_new_token_of_the_workspace_delivers_what_the_old_one_captured(
    cli: RunCli, workspaces: FakeIntercom, store_location: str
) -> None:
    names = [f"before-rotation-{n}" for n in range(5)]
    queue(cli, A1, names[:2])
    checked = cli("check", token=A1)  # the first use of A1: its workspace is learned
    assert checked.code == 0, checked
    queue(cli, A1, names[2:])
    workspaces.revoked.add(A1)

    flushed = cli("flush", "--json", token=A2)
    assert flushed.code == 0, flushed
    assert flushed.json()["delivered"] == 5
    assert flushed.json()["waiting_elsewhere"] == []
    bodies = [body["event_name"] for body in workspaces.events_for("ws_a")]
    assert sorted(bodies) == sorted(names)  # every row, none twice
    assert states(store_location) == Counter(delivered=5)
    me_calls = [r for r in workspaces.requests if r.path == "/me"]
    assert len(me_calls) == 2  # one GET /me per new token (check with A1, flush with A2)
    again = cli("flush", "--json", token=A2)
    assert again.json()["delivered"] == 0
    assert len([r for r in workspaces.requests if r.path == "/me"]) == 2


def test_rows_of_a_token_never_learned_wait_and_are_named_by_region_not_token(
    cli: RunCli, workspaces: FakeIntercom, store_location: str
) -> None:
    queue(cli, Z, ["stranded"])
    queue(cli, A1, ["ours"])
    workspaces.revoked.add(Z)  # Z's workspace can no longer be learned

    flushed = cli("flush", "--json", token=A2)
    assert flushed.code == 0, flushed
    body = flushed.json()
    assert body["delivered"] == 0  # A1 was never used by flush or check: not yet ws_a's
    waiting = sorted(body["waiting_elsewhere"], key=lambda w: w["events"])
    assert [(w["workspace_id"], w["region"], w["events"]) for w in waiting] == [
        (None, workspaces.url, 1),
        (None, workspaces.url, 1),
    ]
    learned = cli("flush", "--json", token=A1)  # A1 learned now: its row is ws_a's
    assert learned.json()["delivered"] == 1
    text = cli("flush", token=A2)
    assert "1 event waits for a workspace not yet known" in text.stderr, text
    assert [b["event_name"] for b in workspaces.events_for("ws_a")] == ["ours"]
    assert states(store_location) == Counter(delivered=1, pending=1)


def test_other_workspaces_rows_are_named_by_workspace_id(
    cli: RunCli, workspaces: FakeIntercom, store_location: str
) -> None:
    queue(cli, Z, ["z-event"])
    assert cli("check", token=Z).code == 0
    text = cli("flush", token=A1)
    assert text.code == 0, text
    host = workspaces.url
    assert f"1 event waits for workspace ws_z ({host})" in text.stderr, text
    status = cli("outbox", "status", "--json", token=A1).json()
    [entry] = status["pending_by_destination"]
    assert entry["destination"]["workspace_id"] == "ws_z"
    assert states(store_location) == Counter(pending=1)


# -- the migrations: PostgreSQL 2 -> 3, SQLite 4 -> 5, with existing rows ---------------------


def downgrade(location: str) -> None:
    """Make the outbox what the previous schema version was: no ``workspace_id``."""
    if location.startswith("postgresql"):
        import psycopg

        with psycopg.connect(location, autocommit=True) as db:
            db.execute("DROP FUNCTION ievents.enqueue(jsonb, text) CASCADE")
            db.execute("DROP TABLE ievents.workspace_names")
            db.execute("ALTER TABLE ievents.events DROP COLUMN workspace")
            db.execute("ALTER TABLE ievents.destinations DROP COLUMN workspace_id")
            db.execute("UPDATE ievents.meta SET value = '2' WHERE key = 'schema_version'")
        return
    with closing(sqlite3.connect(location)) as raw:
        raw.execute("DROP TABLE workspace_names")
        raw.execute("ALTER TABLE events DROP COLUMN workspace")
        raw.execute("ALTER TABLE destinations DROP COLUMN workspace_id")
        raw.execute("PRAGMA user_version = 4")
        raw.commit()


def schema_version(location: str) -> int:
    with open_store(location, {}) as store:
        return store.summary().schema_version


def test_the_migration_keeps_rows_and_binds_them_once_their_workspace_is_learned(
    cli: RunCli, workspaces: FakeIntercom, store_location: str
) -> None:
    queue(cli, A1, ["old-a-1", "old-a-2"])
    queue(cli, Z, ["old-z"])
    downgrade(store_location)
    with open_store(store_location, {}) as store:  # opening migrates
        assert store.summary().schema_version == (3 if "postgresql" in store_location else 5)
        assert all(d.workspace_id is None for d in store.destinations().values())
        assert sum(store.summary().counts.values()) == 3
    assert cli("check", token=A1).code == 0
    workspaces.revoked.update({A1, Z})

    flushed = cli("flush", "--json", token=A2)
    assert flushed.code == 0, flushed
    assert flushed.json()["delivered"] == 2
    [left] = flushed.json()["waiting_elsewhere"]
    assert (left["workspace_id"], left["events"]) == (None, 1)
    assert sorted(b["event_name"] for b in workspaces.events_for("ws_a")) == ["old-a-1", "old-a-2"]
    assert states(store_location) == Counter(delivered=2, pending=1)
