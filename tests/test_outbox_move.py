"""``ievents outbox move`` (issue 22, part 2): events of another workspace to the one in
use, with ``--dry-run``, a prompt on a terminal (a real pty), ``--yes``, and a refusal
without a terminal. The prompt in a real process on a pty, the other runs in-process; a
fake Intercom with two workspaces, each backend."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, RunCli, base_env, make_runner
from fake_intercom import FakeIntercom

TEST = "tok_test_workspace_token_7777"
PROD = "tok_prod_workspace_token_8888"


@pytest.fixture
def workspaces() -> Iterator[FakeIntercom]:
    with FakeIntercom() as server:
        server.workspaces = {TEST: "ws_test", PROD: "ws_prod"}
        yield server


@pytest.fixture
def env_of(tmp_path: Path, workspaces: FakeIntercom, store_location: str) -> Any:
    def env(token: str) -> dict[str, str]:
        return {
            **base_env(tmp_path, workspaces.url),
            "IEVENTS_OUTBOX": store_location,
            "INTERCOM_ACCESS_TOKEN": token,
        }

    return env


@pytest.fixture
def cli(tmp_path: Path, workspaces: FakeIntercom, store_location: str) -> RunCli:
    run = make_runner(tmp_path, workspaces.url)

    def on_outbox(*args: str, token: str = PROD, **kw: Any) -> CliResult:
        result = run(
            *args, env={"IEVENTS_OUTBOX": store_location, "INTERCOM_ACCESS_TOKEN": token}, **kw
        )
        for secret in (TEST, PROD):
            assert secret not in result.stdout + result.stderr, result
            if args[0] != "check":  # check names its token by its ending, nothing else does
                assert secret[-4:] not in result.stdout + result.stderr, result
        return result

    return on_outbox


def on_a_terminal(args: list[str], env: dict[str, str], answer: str, cwd: Path) -> str:
    """Run ievents with stdin and stderr on a pty; answer its question; all it said."""
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "intercom_events_cli", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=cwd,
    )
    os.close(follower)
    said = b""
    deadline = time.monotonic() + 60
    answered = False
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([leader], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(leader, 4096)
                except OSError:  # the process ended and closed the pty
                    break
                if not chunk:
                    break
                said += chunk
            if not answered and b"[y/N]" in said:
                os.write(leader, answer.encode() + b"\n")
                answered = True
            if process.poll() is not None and not ready:
                break
        assert process.wait(timeout=60) is not None
    finally:
        os.close(leader)
        if process.poll() is None:
            process.kill()
    assert answered, said
    return said.decode("utf-8", "replace")


def test_move_with_dry_run_prompt_and_yes(
    cli: RunCli, workspaces: FakeIntercom, env_of: Any, tmp_path: Path
) -> None:
    for n in range(3):
        assert cli("send", f"test-{n}", "--user-id", "1", "--queue", token=TEST).code == 0
    assert cli("check", token=TEST).code == 0  # the test token's workspace is known
    assert cli("flush", "--json", token=PROD).json()["delivered"] == 0  # not prod's

    dry = cli("outbox", "move", "--from", "ws_test", "--dry-run")
    assert dry.code == 0, dry
    assert "would move 3 pending events from workspace ws_test" in dry.stdout, dry
    assert "to workspace ws_prod" in dry.stdout
    refused = cli("outbox", "move", "--from", "ws_test")  # no terminal, no --yes
    assert refused.code == 2 and "add --yes" in refused.stderr, refused
    unknown = cli("outbox", "move", "--from", "ws_nowhere", "--yes")
    assert unknown.code == 2 and "no other destination is 'ws_nowhere'" in unknown.stderr

    said = on_a_terminal(
        ["outbox", "move", "--from", "ws_test"], env_of(PROD), "n", tmp_path / "work"
    )
    assert "move 3 pending events from workspace ws_test" in said and "nothing moved" in said
    assert cli("flush", "--json", token=PROD).json()["delivered"] == 0

    said = on_a_terminal(
        ["outbox", "move", "--from", "ws_test"], env_of(PROD), "y", tmp_path / "work"
    )
    assert "moved 3 pending events from workspace ws_test" in said, said
    assert cli("send", "test-3", "--user-id", "1", "--queue", token=TEST).code == 0
    moved = cli("outbox", "move", "--from", "ws_test", "--yes", "--json")
    assert moved.code == 0 and moved.json()["moved"] == 1, moved

    flushed = cli("flush", "--json", token=PROD)
    assert flushed.json()["delivered"] == 4 and flushed.json()["waiting_elsewhere"] == []
    assert sorted(b["event_name"] for b in workspaces.events_for("ws_prod")) == [
        "test-0",
        "test-1",
        "test-2",
        "test-3",
    ]
    assert workspaces.events_for("ws_test") == []
