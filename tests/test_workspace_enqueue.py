"""SQL enqueue names its workspace (issue 22, part 3): ``ievents.enqueue(event,
workspace)``, the one-argument form, and the schema's default set by ``ievents outbox
default-workspace``. Two workspaces in one PostgreSQL schema: every event reaches its own
workspace only; an event naming none waits for the default and is reported meanwhile.
Relays as real processes, the other commands in-process; a fake Intercom with one token
per workspace, real PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, RunCli, cli_env, make_runner
from fake_intercom import FakeIntercom
from helpers import Relay, wait_for

TA = "tok_workspace_a_token_aaaa1"
TB = "tok_workspace_b_token_bbbb2"
TC = "tok_workspace_c_token_cccc3"


@pytest.fixture
def workspaces() -> Iterator[FakeIntercom]:
    with FakeIntercom() as server:
        server.workspaces = {TA: "ws_a", TB: "ws_b", TC: "ws_c"}
        yield server


@pytest.fixture
def cli(tmp_path: Path, workspaces: FakeIntercom, pg_uri: str) -> RunCli:
    run = make_runner(tmp_path, workspaces.url)

    def on_outbox(*args: str, token: str = TA, **kw: Any) -> CliResult:
        result = run(*args, env={"IEVENTS_OUTBOX": pg_uri, "INTERCOM_ACCESS_TOKEN": token}, **kw)
        for secret in (TA, TB, TC):
            assert secret[-5:] not in result.stdout + result.stderr, result
        return result

    return on_outbox


def enqueue(pg_uri: str, name: str, workspace: str | None = None, *, one_arg: bool = False) -> None:
    import psycopg

    event = json.dumps({"event_name": name, "user_id": "u1", "created_at": 1_700_000_000})
    with psycopg.connect(pg_uri, autocommit=True) as db:
        if one_arg:
            db.execute("SELECT ievents.enqueue(%s::jsonb)", (event,))
        else:
            db.execute("SELECT ievents.enqueue(%s::jsonb, %s)", (event, workspace))


def names(fake: FakeIntercom, workspace: str) -> list[str]:
    return sorted(body["event_name"] for body in fake.events_for(workspace))


def test_every_enqueued_event_reaches_its_own_workspace_only(
    cli: RunCli, workspaces: FakeIntercom, pg_uri: str
) -> None:
    for token in (TA, TB):  # makes the schema; each token's workspace is learned
        assert cli("flush", token=token).code == 0
    for n in range(3):
        enqueue(pg_uri, f"a{n}", "ws_a")
        enqueue(pg_uri, f"b{n}", "ws_b")
    enqueue(pg_uri, "nobody-1", one_arg=True)  # no workspace, no default: waits
    enqueue(pg_uri, "nobody-2", None)
    enqueue(pg_uri, "c0", "ws_c")  # a workspace no token of which was seen yet

    a = cli("flush", "--json", token=TA)
    assert a.code == 0, a
    assert a.json()["delivered"] == 3
    assert sorted(
        (w["workspace"] or "", w["events"]) for w in a.json()["waiting_for_workspace"]
    ) == [("", 2), ("ws_c", 1)]
    text = cli("flush", token=TA)
    assert "2 events enqueued from SQL name no workspace" in text.stderr, text
    assert "1 event waits for workspace ws_c" in text.stderr, text
    assert cli("flush", "--json", token=TB).json()["delivered"] == 3
    status = cli("outbox", "status", "--json", token=TA).json()
    assert {(w["workspace"], w["events"]) for w in status["waiting_for_workspace"]} == {
        (None, 2),
        ("ws_c", 1),
    }

    chosen = cli("outbox", "default-workspace", "ws_b", token=TA)
    assert chosen.code == 0, chosen
    assert "default workspace: ws_b; 2 waiting events go there" in chosen.stdout
    enqueue(pg_uri, "nobody-3", one_arg=True)  # now: the default's
    assert cli("flush", "--json", token=TA).json()["delivered"] == 0
    assert cli("flush", "--json", token=TB).json()["delivered"] == 3
    assert cli("flush", "--json", token=TC).json()["delivered"] == 1  # ws_c learned

    assert names(workspaces, "ws_a") == ["a0", "a1", "a2"]
    assert names(workspaces, "ws_b") == ["b0", "b1", "b2", "nobody-1", "nobody-2", "nobody-3"]
    assert names(workspaces, "ws_c") == ["c0"]
    status = cli("outbox", "status", "--json", token=TA).json()
    assert status["pending"] == 0 and status["waiting_for_workspace"] == []


def test_default_workspace_refuses_a_missing_or_bad_workspace(cli: RunCli) -> None:
    none = cli("outbox", "default-workspace")
    assert none.code == 2 and "a workspace id, or --profile NAME" in none.stderr, none
    bad = cli("outbox", "default-workspace", "not an id!")
    assert bad.code == 2 and "is not a workspace id" in bad.stderr, bad


def test_two_relays_of_two_workspaces_on_one_schema_never_split_the_rows(
    cli: RunCli, workspaces: FakeIntercom, pg_uri: str, tmp_path: Path
) -> None:
    for token in (TA, TB):
        assert cli("flush", token=token).code == 0
    enqueue(pg_uri, "nobody", one_arg=True)  # waits: no default
    (tmp_path / "work").mkdir(exist_ok=True)
    relays = [
        Relay(
            cli_env(tmp_path, workspaces.url, {"INTERCOM_ACCESS_TOKEN": token}),
            tmp_path / "work",
            pg_uri,
        )
        for token in (TA, TB)
    ]
    try:
        for n in range(20):
            enqueue(pg_uri, f"a{n}", "ws_a")
            enqueue(pg_uri, f"b{n}", "ws_b")
        wait_for(
            lambda: len(workspaces.events_for("ws_a")) + len(workspaces.events_for("ws_b")) >= 40,
            what="40 events at their workspaces",
        )
    finally:
        for relay in relays:
            relay.stop()
    assert names(workspaces, "ws_a") == sorted(f"a{n}" for n in range(20))
    assert names(workspaces, "ws_b") == sorted(f"b{n}" for n in range(20))
    for stderr in (relay.stderr for relay in relays):
        assert "1 event waits enqueued from SQL with no workspace and no default" in stderr
    status = cli("outbox", "status", "--json").json()
    assert status["waiting_for_workspace"] == [{"workspace": None, "events": 1}]
