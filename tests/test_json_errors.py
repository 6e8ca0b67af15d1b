"""Every ``--json`` error document carries ``exit_code``, in one shape (issue 21, finding 15).

``{"ok": false, "exit_code": N, ..., "error": {"code", "message", "hint"}}`` where N is
the process's exit status, for every command that has ``--json``, with the outbox a
SQLite file that cannot be used, a PostgreSQL database with a wrong password (78), or one
that cannot be reached (75).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, RunCli
from fake_intercom import FakeIntercom, Reply
from pg_server import APP_USER, free_port

ONE_EVENT = '{"event_name": "e", "user_id": "1"}\n'

OUTBOX_COMMANDS = [
    ("send", "e", "--user-id", "1", "--queue", "--json"),
    ("batch", "-", "--queue", "--json"),
    ("flush", "--json"),
    ("outbox", "status", "--json"),
    ("outbox", "status", "--format", "json"),
    ("outbox", "list", "--json"),
    ("outbox", "retry", "--json"),
    ("outbox", "purge", "--dead", "--yes", "--json"),
]


def error_document(result: CliResult) -> dict[str, Any]:
    """The one JSON error document (the last line for NDJSON output), checked for shape."""
    lines = [line for line in result.stdout.splitlines() if line.strip()]
    assert len(lines) == 1, result
    document: dict[str, Any] = json.loads(lines[-1])
    assert document["ok"] is False, result
    assert document["exit_code"] == result.code, result
    assert {"code", "message", "hint"} <= set(document["error"]), result
    assert document["error"]["message"] and document["error"]["code"], result
    assert "Traceback" not in result.stderr
    return document


@pytest.fixture
def broken_sqlite(tmp_path: Path) -> str:
    path = tmp_path / "not-sqlite.sqlite3"
    path.write_bytes(b"this is not a database, and never was one" * 4)
    path.chmod(0o600)
    return str(path)


@pytest.mark.parametrize("args", OUTBOX_COMMANDS, ids=" ".join)
def test_outbox_errors_carry_exit_code_sqlite(
    run_cli: RunCli, broken_sqlite: str, args: tuple[str, ...]
) -> None:
    result = run_cli(*args, input=ONE_EVENT, env={"IEVENTS_OUTBOX": broken_sqlite})
    assert result.code == 78, result
    assert error_document(result)["error"]["code"] == "outbox_error"


@pytest.mark.parametrize("args", OUTBOX_COMMANDS, ids=" ".join)
def test_outbox_errors_carry_exit_code_postgres(
    run_cli: RunCli, pg_uri: str, args: tuple[str, ...]
) -> None:
    wrong_password = pg_uri.replace("ievents_test@", f"{APP_USER}:wrong-pw-15@")
    unreachable = f"postgresql://someone:pw-15@127.0.0.1:{free_port()}/events"

    refused = run_cli(*args, input=ONE_EVENT, env={"IEVENTS_OUTBOX": wrong_password})
    down = run_cli(*args, input=ONE_EVENT, env={"IEVENTS_OUTBOX": unreachable})

    assert (refused.code, down.code) == (78, 75), (refused, down)
    assert error_document(refused)["error"]["code"] == "outbox_error"
    assert error_document(down)["error"]["code"] == "outbox_unavailable"


@pytest.mark.parametrize(
    "args",
    [
        ("send", "e", "--user-id", "1", "--json"),
        ("check", "--json"),
        ("list", "--user-id", "1", "--json"),
        ("config", "--json", "--outbox", "jdbc:postgresql://h/db"),
        ("flush", "--json"),
        ("batch", "-", "--json"),
    ],
    ids=" ".join,
)
def test_configuration_errors_carry_exit_code(run_cli: RunCli, args: tuple[str, ...]) -> None:
    env = {} if args[0] == "config" else {"INTERCOM_ACCESS_TOKEN": None}
    result = run_cli(*args, input=ONE_EVENT, env=env)
    assert result.code == 78, result
    error_document(result)


def test_queue_on_failure_that_cannot_queue_carries_exit_code(
    run_cli: RunCli, fake: FakeIntercom, pg_uri: str
) -> None:
    fake.script_repeat(Reply(status=503), 3)
    wrong_password = pg_uri.replace("ievents_test@", f"{APP_USER}:wrong-pw-15@")
    result = run_cli(
        "send",
        "e",
        "--user-id",
        "1",
        "--queue-on-failure",
        "--retries",
        "0",
        "--json",
        env={"IEVENTS_OUTBOX": wrong_password},
    )
    assert result.code == 78, result
    document = error_document(result)
    assert document["error"]["delivery_error"] is not None


def test_delivery_failures_carry_exit_code(run_cli: RunCli, fake: FakeIntercom) -> None:
    fake.script(Reply(status=404, body={"errors": [{"code": "not_found", "message": "no"}]}))
    result = run_cli("send", "e", "--user-id", "1", "--json", "--retries", "0")
    assert result.code == 67, result
    assert result.json()["exit_code"] == 67 and result.json()["ok"] is False
