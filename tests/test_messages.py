"""Messages and options made consistent (issue 23, part 6): each fix with its test."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import TOKEN, RunCli
from fake_intercom import FakeIntercom, Reply, api_error

ONE_TRY = ("--retries", "0", "--timeout", "5")


def test_a_postgres_error_names_the_uris_host_and_port_not_libpqs_defaults(
    run_cli: RunCli,
) -> None:
    pytest.importorskip("psycopg")
    # libpq refuses the URI (an unknown parameter) before connecting: no server needed.
    uri = "postgresql://app:s3cret-pw@127.0.0.1:55432/events?bogus=1"
    result = run_cli("outbox", "status", "--outbox", uri)
    assert result.code == 78, result
    assert "the PostgreSQL outbox at 127.0.0.1:55432/events" in result.stderr
    assert "localhost" not in result.stderr and "5432/" not in result.stderr.replace("55432", "")
    assert "s3cret-pw" not in result.stdout + result.stderr


def test_the_401_hint_names_the_token_in_use_then_the_one_it_hides(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    dotenv = tmp_path / "work" / ".env"
    dotenv.write_text("INTERCOM_ACCESS_TOKEN=tok_from_dotenv_0000\n")
    dotenv.chmod(0o600)
    fake.script(api_error(401, "unauthorized", "Access Token Invalid"))
    result = run_cli("send", "x", "--user-id", "1", *ONE_TRY)
    assert result.code == 77, result
    hint = result.stderr.split("hint: ", 1)[1]
    assert hint.startswith(
        "the token was rejected: check that the token from variable INTERCOM_ACCESS_TOKEN "
        "is current and has the 'write events' permission (it overrides the token from "
        f"INTERCOM_ACCESS_TOKEN in {dotenv}: is that the one to use?);"
    ), hint
    assert ", overriding" not in hint


def test_one_dead_letter_and_one_waiting_event_read_in_the_singular(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    assert run_cli("send", "bad", "--user-id", "1", "--queue").code == 0
    fake.script(api_error(422, "parameter_invalid", "Bad metadata"))
    flushed = run_cli("flush", *ONE_TRY)
    assert flushed.code == 65, flushed
    assert "1 event rejected by Intercom, kept as a dead letter" in flushed.stderr
    assert "dead letters" not in flushed.stderr.split("hint:")[0]

    retried = run_cli("outbox", "retry")
    assert "1 dead letter back to pending; ievents flush sends it" in retried.stdout


def test_no_rate_from_a_zero_duration() -> None:
    from intercom_events_cli.cli.render import timing

    assert timing(0.0, 99.0, "records") == "under 0.1 s"
    assert timing(0.04, 2500.0, "events") == "under 0.1 s"
    assert timing(2.5, 400.0, "events") == "2.5 s, 400 events/s"


def test_a_fast_queue_batch_shows_no_made_up_rate(run_cli: RunCli) -> None:
    result = run_cli("batch", "-", "--queue", input='{"event_name": "x", "user_id": "1"}\n')
    assert result.code == 0, result
    summary = next(line for line in result.stderr.splitlines() if "batch --queue" in line)
    if "under 0.1 s" not in summary:  # a slow machine: then a real duration and rate
        assert " s, " in summary and "records/s" in summary
    assert "(0.0 s" not in summary


def test_a_fast_dry_run_shows_no_zero_duration(run_cli: RunCli) -> None:
    result = run_cli("batch", "-", "--dry-run", input='{"event_name": "x", "user_id": "1"}\n')
    assert result.code == 0, result
    summary = next(line for line in result.stderr.splitlines() if "batch --dry-run" in line)
    assert "(0.0 s)" not in summary
    assert "(under 0.1 s)" in summary or re.search(r"\(\d+\.\d s\)", summary), summary


@pytest.mark.parametrize(
    ("args", "choices"),
    [
        (("batch", "--format", "xml", "f.ndjson"), "'ndjson', 'csv'"),
        (("outbox", "status", "--format", "xml"), "'text', 'json', 'prometheus'"),
    ],
)
def test_format_errors_have_one_style(run_cli: RunCli, args: tuple[str, ...], choices: str) -> None:
    result = run_cli(*args)
    assert result.code == 2, result
    lines = result.stderr.splitlines()
    expected = f"invalid value for '--format': 'xml' is not one of {choices}."
    assert lines[0] == f"ievents: error: {expected}"
    assert lines[1].startswith("  hint: see 'ievents ") and len(lines) == 2


def test_limit_and_concurrency_defaults_agree(run_cli: RunCli) -> None:
    """--limit: 50 and 0 for all in list and outbox list; -c: 32 in flush and batch."""
    helps = {name: run_cli(*name.split(), "--help").stdout for name in ("list", "outbox list")}
    for name, text in helps.items():
        line = next(line for line in text.splitlines() if line.lstrip().startswith("--limit"))
        assert "0: all" in line and "[default: 50]" in line, (name, line)
    for name in ("flush", "batch"):
        text = run_cli(name, "--help").stdout
        line = next(line for line in text.splitlines() if "--concurrency" in line)
        assert "[default: 32]" in line, (name, line)


def test_list_stops_at_the_default_limit_and_says_how_to_see_all(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    events = "".join(f'{{"event_name": "e{n}", "user_id": "7"}}\n' for n in range(51))
    assert run_cli("batch", "-", input=events).code == 0
    shown = run_cli("list", "--user-id", "7")
    assert shown.code == 0, shown
    assert len(shown.stdout.splitlines()) == 50
    assert "showing the first 50 events; there are more (--limit 0 lists all)" in shown.stderr
    everything = run_cli("list", "--user-id", "7", "--limit", "0")
    assert len(everything.stdout.splitlines()) == 51 and "there are more" not in everything.stderr


def test_token_endings_have_one_style(run_cli: RunCli, fake: FakeIntercom) -> None:
    assert run_cli("send", "x", "--user-id", "1", "--queue").code == 0
    listed = run_cli("outbox", "list")
    checked = run_cli("check")
    # check names the token it checked by its ending; the outbox names workspaces, never
    # a token, not even by its ending (issue 22).
    assert f"...{TOKEN[-4:]}" in checked.stdout and TOKEN[-4:] not in listed.stdout
    assert "…" not in listed.stdout + checked.stdout


def test_an_unknown_option_suggests_only_a_close_one(run_cli: RunCli) -> None:
    far = run_cli("check", "--bogus")
    assert far.code == 2
    assert "did you mean" not in far.stderr and "--verbose" not in far.stderr
    near = run_cli("check", "--verbos")
    assert "did you mean --verbose?" in near.stderr


def test_list_summary_of_an_answer_without_summaries_is_an_error(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    fake.script(
        Reply(
            status=200,
            body={"type": "event.list", "events": [{"event_name": "x", "created_at": 1}]},
            path="/events",
            method="GET",
        )
    )
    result = run_cli("list", "--user-id", "1", "--summary", *ONE_TRY)
    assert result.code == 78, result
    assert result.stdout == ""
    assert "has no event summaries (no name and count), only events" in result.stderr
    assert "without --summary" in result.stderr


def test_outbox_status_names_the_backend_beside_its_schema_version(
    run_cli: RunCli, pg_uri: str, tmp_path: Path
) -> None:
    file = tmp_path / "o.sqlite3"
    assert run_cli("send", "x", "--user-id", "1", "--queue", "--outbox", str(file)).code == 0
    assert run_cli("send", "x", "--user-id", "1", "--queue", "--outbox", pg_uri).code == 0
    on_file = run_cli("outbox", "status", "--outbox", str(file)).stdout.splitlines()[0]
    on_pg = run_cli("outbox", "status", "--outbox", pg_uri).stdout.splitlines()[0]
    assert re.search(r"\(SQLite, schema version \d+\)$", on_file), on_file
    assert re.search(r"\(PostgreSQL, schema version \d+\)$", on_pg), on_pg
