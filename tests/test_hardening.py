"""Regression tests from an adversarial review: token leaks, odd inputs, lost events.

Each test drives the real CLI against the fake Intercom (or none) and pins one finding.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import TOKEN, RunCli
from fake_intercom import FakeIntercom, Reply

from intercom_events_cli.config.redaction import redact, register_secret
from intercom_events_cli.event import Event
from intercom_events_cli.outbox import SqliteOutbox, State


def echoing_error(status: int, token: str) -> Reply:
    """An error answer that echoes the token in every field a server controls."""
    return Reply(
        status=status,
        body={
            "type": "error.list",
            "request_id": f"req-{token}",
            "errors": [{"code": f"code-{token}", "message": f"message-{token}"}],
        },
        headers={"X-Request-Id": f"hdr-{token}"},
    )


def test_an_echoed_token_is_never_stored_in_the_outbox_or_the_rejects_file(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    # The outbox and the rejects file outlive the run; `outbox list` reads them later
    # without loading the token, so nothing there could be redacted on the way out.
    outbox = tmp_path / "outbox.sqlite3"
    with SqliteOutbox.open(outbox) as store:
        store.add(Event.create("signed-up", user_id="u1", created_at=1_700_000_000))
    fake.script(echoing_error(422, TOKEN))
    assert run_cli("flush", "--retries", "0").code == 65

    fake.script(echoing_error(422, TOKEN))
    source = tmp_path / "in.ndjson"
    source.write_text('{"event_name": "e", "user_id": "u2", "created_at": 1700000001}\n')
    rejects = tmp_path / "rejects.ndjson"
    result = run_cli("batch", str(source), "--rejects", str(rejects), "--retries", "0")
    assert result.code == 65, result

    listed = run_cli("outbox", "list", "--json", env={"INTERCOM_ACCESS_TOKEN": None})
    assert listed.code == 0 and "code-***" in listed.stdout, listed
    assert "req-***" in listed.stdout
    stored = b"".join(p.read_bytes() for p in tmp_path.glob("outbox.sqlite3*"))
    assert TOKEN.encode() not in stored
    assert "code-***" in rejects.read_text() and TOKEN not in rejects.read_text()
    assert json.loads(rejects.read_text())["_line"] == 1


def test_a_token_with_quotes_and_backslashes_is_redacted_in_json_and_tables(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    # JSON output escapes '"' and '\', so the raw token no longer matches what is written.
    token = 'tok_"quoted"_back\\slash_0123456789'
    forms = (token, json.dumps(token)[1:-1], repr(token)[1:-1])
    env = {"INTERCOM_ACCESS_TOKEN": token}
    fake.script(
        Reply(
            status=200, body={"type": "admin", "name": token, "app": {"name": token}}, path="/me"
        ),
        echoing_error(422, token),
        Reply(
            status=200,
            body={"type": "event.list", "events": [{"event_name": "e", "metadata": {"k": token}}]},
        ),
    )
    results = [
        run_cli("check", "--json", env=env),
        run_cli("send", "e", "--user-id", "1", "--json", "--retries", "0", env=env),
        run_cli("list", "--user-id", "1", env=env),
    ]
    assert [r.code for r in results] == [0, 65, 0], results
    assert results[0].json()["admin"]["name"] == "***"
    assert results[1].json()["error"]["code"] == "code-***"
    assert '{"k":"***"}' in results[2].stdout
    for result in results:
        for form in forms:
            assert form not in result.stdout + result.stderr, result


def test_redacting_an_escaped_token_keeps_json_valid() -> None:
    # The raw token (ending in a backslash) is a prefix of its JSON form: replacing the raw
    # form first would leave a lone backslash that breaks the document.
    token = "tok_ends_in_backslash\\"
    register_secret(token)
    text = redact(json.dumps({"echo": f"x{token}y"}))
    assert json.loads(text) == {"echo": "x***y"}


def test_numbers_out_of_range_are_usage_errors_not_internal_errors(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # nan passes typer's min/max checks (every comparison is false); huge values overflowed
    # a time_t or a SQLite integer. Each was an internal error (exit 1).
    source = tmp_path / "in.ndjson"
    source.write_text('{"event_name": "e", "user_id": "1", "created_at": 1700000000}\n')
    huge = "99999999999999999999999"
    commands = [
        ("send", "e", "--user-id", "1", "--timeout", "nan"),
        ("send", "e", "--user-id", "1", "--timeout", "1e308"),
        ("check", "--timeout", "inf"),
        ("flush", "--max-time", "nan"),
        ("batch", str(source), "--max-rate", "nan"),
        ("batch", str(source), "--max-time", "nan"),
        ("outbox", "list", "--limit", huge),
        ("outbox", "retry", huge),
    ]
    for args in commands:
        result = run_cli(*args)
        assert result.code == 2, result
        assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_bytes_that_are_not_utf8_in_argv_or_environment_get_a_one_line_error(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    # Python hands such bytes over as lone surrogates, which httpx cannot encode: exit 1.
    not_utf8 = "\udcff"  # the byte 0xff, as the subprocess module passes it on
    for flag in ("--user-id", "--email"):
        result = run_cli("list", flag, f"a{not_utf8}")
        assert result.code == 2, result
        assert f"{flag} is not valid UTF-8" in result.stderr
    for command in (("send", "e", "--user-id", "1"), ("check",)):
        result = run_cli(*command, env={"INTERCOM_BASE_URL": f"{fake.url}/{not_utf8}"})
        assert result.code == 78, result
        assert "base URL (from INTERCOM_BASE_URL) is not valid UTF-8" in result.stderr
    assert fake.requests == []


def test_a_rejects_file_that_cannot_be_written_stops_the_batch_and_keeps_what_was_read(
    run_cli: RunCli, tmp_path: Path
) -> None:
    # /dev/full fails every write with ENOSPC, like a full disk. It was an internal error
    # (exit 1), and the valid records read from the pipe before it were never stored.
    valid = [
        json.dumps({"event_name": "e", "user_id": str(n), "created_at": 1_700_000_000 + n})
        for n in range(3)
    ]
    piped = "\n".join([*valid, "not json", *valid[:1]]) + "\n"
    for mode in ("--queue", "--dry-run"):
        result = run_cli("batch", "-", "--rejects", "/dev/full", mode, input=piped)
        assert result.code == 78, result
        assert "cannot write the rejects file '/dev/full': No space left on device" in (
            result.stderr
        )
        assert "internal error" not in result.stderr
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        assert store.summary().counts[State.PENDING] == 3


def test_an_env_file_that_is_a_folder_is_named_as_such(run_cli: RunCli, tmp_path: Path) -> None:
    folder = tmp_path / "settings"
    folder.mkdir()
    result = run_cli("send", "e", "--user-id", "1", "--env-file", str(folder))
    assert result.code == 78, result
    assert "is a folder, not a file" in result.stderr
    missing = run_cli("send", "e", "--user-id", "1", "--env-file", str(tmp_path / "nope"))
    assert missing.code == 78 and "does not exist" in missing.stderr
