"""Where the outbox is, as every command shows and uses it (issue 21, findings 1, 7, 11).

- A PostgreSQL URI is shown redacted everywhere (config, status, errors, --json): the
  password never appears, raw or percent-decoded.
- A location that looks like a URI or a connection string but is not a ``postgresql://``
  (or ``postgres://``) URI is refused (78, one line and a hint, no password); no file is
  ever created from it.
- Commands that only look (status, list, export, retry, purge, config) never create an
  outbox: no SQLite file or folder, no PostgreSQL schema; they say there is none there.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from conftest import CliResult, RunCli
from helpers import Relay, wait_for

# A password with a percent-escape of its own and the characters a URI must escape.
SECRET_MARK = "Sekr3t"
PASSWORD = f"{SECRET_MARK}%40:p@ss/w#rd?&=x"


def assert_no_password(*results: CliResult) -> None:
    """Neither the password nor any part of it, in any encoding, in any output."""
    for result in results:
        for text in (result.stdout, result.stderr):
            assert SECRET_MARK not in text, result
            assert quote(PASSWORD, safe="") not in text


@pytest.fixture
def secret_uri(pg_server: Any, pg_uri: str) -> str:
    """A URI for a role whose password needs percent-encoding, on a fresh database.

    The test server trusts this role on loopback: the password is in the URI, not checked.
    """
    role = f"role_{uuid.uuid4().hex[:8]}"
    escaped = PASSWORD.replace("'", "''")
    pg_server.admin(f"CREATE ROLE {role} LOGIN PASSWORD '{escaped}'")
    database = pg_uri.rsplit("/", 1)[1]
    pg_server.admin(f"GRANT CREATE ON DATABASE {database} TO {role}")
    return f"postgresql://{role}:{quote(PASSWORD, safe='')}@127.0.0.1:{pg_server.port}/{database}"


def redacted(uri: str) -> str:
    role = uri.split("://", 1)[1].split(":", 1)[0]
    return f"postgresql://{role}:***@" + uri.rsplit("@", 1)[1]


# -- finding 1: the redacted URI everywhere ---------------------------------------------------


def test_config_shows_the_outbox_uri_redacted(run_cli: RunCli, secret_uri: str) -> None:
    env = {"IEVENTS_OUTBOX": secret_uri}
    text = run_cli("config", env=env)
    as_json = run_cli("config", "--json", env=env)
    flag = run_cli("config", "--outbox", secret_uri, env={"IEVENTS_OUTBOX": None})

    assert (text.code, as_json.code, flag.code) == (0, 0, 0), (text, as_json, flag)
    assert_no_password(text, as_json, flag)
    assert as_json.json()["settings"]["outbox"]["value"] == redacted(secret_uri)
    assert f"outbox       {redacted(secret_uri)}" in text.stdout
    assert redacted(secret_uri) in flag.stdout


def test_every_command_shows_the_uri_redacted(run_cli: RunCli, secret_uri: str) -> None:
    env = {"IEVENTS_OUTBOX": secret_uri}
    runs = [
        run_cli("send", "signed-up", "--user-id", "1", "--queue", "--json", env=env),
        run_cli("outbox", "status", env=env),
        run_cli("outbox", "status", "--json", env=env),
        run_cli("outbox", "status", "--format", "prometheus", env=env),
        run_cli("outbox", "list", "--json", env=env),
        run_cli("flush", "--json", "-v", env=env),
        run_cli("outbox", "status", env=env),
    ]
    assert [run.code for run in runs] == [0] * len(runs), runs
    assert_no_password(*runs)
    assert redacted(secret_uri) in runs[1].stdout
    assert runs[2].json()["path"] == redacted(secret_uri)
    assert runs[5].json()["outbox"] == redacted(secret_uri)
    assert runs[5].json()["delivered"] == 1


@pytest.mark.parametrize("problem", ["wrong password", "unreachable", "unknown database"])
def test_errors_show_the_uri_redacted(
    run_cli: RunCli, secret_uri: str, pg_server: Any, problem: str
) -> None:
    head, _, rest = secret_uri.rpartition("@")
    host_port, _, database = rest.partition("/")
    if problem == "wrong password":
        # The test server trusts every role on loopback but the app role (pg_server.py).
        uri = f"postgresql://ievents_app:{quote(PASSWORD, safe='')}@{rest}"
    elif problem == "unreachable":
        uri = f"{head}@127.0.0.1:1/{database}"
    else:
        uri = f"{head}@{host_port}/nodb_{uuid.uuid4().hex[:6]}"
    env = {"IEVENTS_OUTBOX": uri}

    runs = [
        run_cli("outbox", "status", env=env),
        run_cli("outbox", "status", "--json", env=env),
        run_cli("send", "e", "--user-id", "1", "--queue", env=env),
        run_cli("flush", "--json", env=env),
    ]

    expected = 75 if problem == "unreachable" else 78
    assert [run.code for run in runs] == [expected] * 4, runs
    assert_no_password(*runs)
    for run in runs:
        assert "Traceback" not in run.stderr and run.stderr.count("error:") == 1


# -- finding 7: URI-looking locations are understood or refused --------------------------------


def spellings(secret_uri: str) -> dict[str, str]:
    """Ways people write a PostgreSQL location that are not a libpq URI."""
    after = secret_uri.split("://", 1)[1]
    role_password, _, rest = after.rpartition("@")
    role = role_password.split(":", 1)[0]
    host_port, _, database = rest.partition("/")
    host, _, port = host_port.partition(":")
    return {
        "driver": f"postgresql+psycopg://{after}",
        "psycopg2 driver": f"postgres+psycopg2://{after}",
        "one slash": f"postgresql:/{after}",
        "no slash": f"postgresql:{after}",
        "jdbc": f"jdbc:postgresql://{host_port}/{database}?user={role}&password="
        f"{quote(PASSWORD, safe='')}",
        "libpq keywords": f"host={host} port={port} dbname={database} user={role} "
        f"password='{PASSWORD}'",
        "libpq keywords, password first": f"password={quote(PASSWORD)} host={host}",
        "another scheme": f"mysql://{role_password}@{host_port}/{database}",
        "sqlite url": "sqlite:///tmp/outbox.sqlite3",
    }


SPELLINGS = [
    "driver",
    "psycopg2 driver",
    "one slash",
    "no slash",
    "jdbc",
    "libpq keywords",
    "libpq keywords, password first",
    "another scheme",
    "sqlite url",
]


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_uri_looking_locations_are_refused_and_create_nothing(
    run_cli: RunCli, secret_uri: str, tmp_path: Path, spelling: str
) -> None:
    location = spellings(secret_uri)[spelling]
    work = tmp_path / "work"
    env = {"IEVENTS_OUTBOX": location}

    runs = [
        run_cli("send", "signed-up", "--user-id", "1", "--queue", env=env),
        run_cli("send", "signed-up", "--user-id", "1", "--queue", "--outbox", location),
        run_cli("batch", "--queue", input='{"event_name": "e", "user_id": "1"}\n', env=env),
        run_cli("flush", env=env),
        run_cli("outbox", "status", env=env),
        run_cli("config", env=env),
    ]

    for run in runs:
        assert run.code == 78, run
        lines = run.stderr.splitlines()
        assert len(lines) == 2 and "error:" in lines[0] and "hint:" in lines[1], run
        assert "Traceback" not in run.stderr
    assert "(from --outbox)" in runs[1].stderr
    assert_no_password(*runs)
    # No file (nor folder) from it: not in the working directory, not anywhere under tmp.
    assert sorted(p.name for p in work.iterdir()) == []
    made = [p for p in tmp_path.rglob("*") if SECRET_MARK in p.name or "@" in p.name]
    assert made == []


def test_postgres_scheme_is_understood(run_cli: RunCli, secret_uri: str) -> None:
    uri = "postgres://" + secret_uri.split("://", 1)[1]
    env = {"IEVENTS_OUTBOX": uri}
    queued = run_cli("send", "signed-up", "--user-id", "1", "--queue", env=env)
    status = run_cli("outbox", "status", "--json", env=env)
    assert (queued.code, status.code) == (0, 0), (queued, status)
    assert status.json()["pending"] == 1
    assert status.json()["path"].startswith("postgres://") and "***" in status.json()["path"]
    assert_no_password(queued, status)


def test_a_file_name_with_a_colon_is_written_as_a_path(run_cli: RunCli, tmp_path: Path) -> None:
    queued = run_cli("send", "e", "--user-id", "1", "--queue", "--outbox", "./out:box.sqlite3")
    assert queued.code == 0, queued
    assert (tmp_path / "work" / "out:box.sqlite3").is_file()


# -- finding 11: commands that only look create nothing ----------------------------------------

LOOKING = [
    ("outbox", "status"),
    ("outbox", "status", "--json"),
    ("outbox", "status", "--format", "prometheus"),
    ("outbox", "status", "-q"),
    ("outbox", "list"),
    ("outbox", "list", "--json", "--limit", "0"),
    ("outbox", "export"),
    ("outbox", "retry"),
    ("outbox", "purge", "--dead", "--yes"),
    ("config",),
    ("config", "--json"),
]


def schema_exists(pg_server: Any, uri: str, schema: str) -> bool:
    import psycopg

    database = uri.rsplit("/", 1)[1]
    with psycopg.connect(pg_server.uri(database)) as db:
        row = db.execute("SELECT count(*) FROM pg_namespace WHERE nspname = %s", (schema,))
        found = row.fetchone()
    return bool(found and found[0])


def check_says_none_there(runs: list[CliResult], shown: str) -> None:
    for run in runs:
        assert run.code == 0, run
        assert "Traceback" not in run.stderr
    by_args = {run.args: run for run in runs}
    status = by_args[("outbox", "status")]
    assert f"no outbox at {shown} yet" in status.stdout and "creates it" in status.stdout
    status_json = by_args[("outbox", "status", "--json")].json()
    assert status_json["exists"] is False and status_json["path"] == shown
    for command in ("list", "export"):
        run = by_args[("outbox", command)]
        assert run.stdout == "" and f"no outbox at {shown} yet" in run.stderr, run


def test_looking_at_a_mistyped_schema_creates_nothing(
    run_cli: RunCli, pg_server: Any, secret_uri: str
) -> None:
    env = {"IEVENTS_OUTBOX": secret_uri, "IEVENTS_OUTBOX_SCHEMA": "ieventsx"}
    # A real outbox beside it, in the default schema.
    assert (
        run_cli(
            "send", "e", "--user-id", "1", "--queue", env={**env, "IEVENTS_OUTBOX_SCHEMA": None}
        ).code
        == 0
    )

    runs = [run_cli(*args, env=env) for args in LOOKING]

    check_says_none_there(runs, f"{redacted(secret_uri)} (schema ieventsx)")
    assert_no_password(*runs)
    assert not schema_exists(pg_server, secret_uri, "ieventsx")
    assert schema_exists(pg_server, secret_uri, "ievents")


def test_looking_at_an_empty_database_creates_nothing(
    run_cli: RunCli, pg_server: Any, pg_uri: str
) -> None:
    runs = [run_cli(*args, env={"IEVENTS_OUTBOX": pg_uri}) for args in LOOKING]
    check_says_none_there(runs, pg_uri)
    assert not schema_exists(pg_server, pg_uri, "ievents")


def test_looking_at_a_missing_file_creates_nothing(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "state" / "nested" / "outbox.sqlite3"
    runs = [run_cli(*args, env={"IEVENTS_OUTBOX": str(path)}) for args in LOOKING]
    check_says_none_there(runs, str(path))
    assert not path.parent.exists() and not path.parent.parent.exists()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []


def test_status_json_names_the_missing_location_in_one_object(run_cli: RunCli, pg_uri: str) -> None:
    result = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": pg_uri})
    assert result.code == 0, result
    document = json.loads(result.stdout)
    assert document["exists"] is False and document["pending"] == 0


@pytest.mark.parametrize("reachable", [True, False], ids=["running", "database down"])
def test_the_relay_logs_and_metrics_show_the_uri_redacted(
    secret_uri: str, start_relay: Callable[..., Relay], reachable: bool
) -> None:
    """flush --watch: its stderr lines (watching, reconnect notices) and its metrics page."""
    import re
    import urllib.request

    from conftest import REPO_ROOT

    uri = secret_uri if reachable else secret_uri.rsplit("@", 1)[0] + "@127.0.0.1:1/db"
    relay = start_relay(uri, "-v", "--metrics-port", "127.0.0.1:0", PYTHONPATH=str(REPO_ROOT))
    wanted = "watching" if reachable else "trying again"
    try:
        relay.wait_for_stderr(wanted)  # fails at once should the relay exit
        found = wait_for(
            lambda: re.search(r"metrics on (http://\S+)", relay.stderr),
            what="the metrics address on the relay's stderr",
        )
        with urllib.request.urlopen(found.group(1), timeout=30) as answer:
            page = answer.read().decode()
    finally:
        code = relay.stop()
    text = relay.stderr + relay.stdout
    assert code == 0, text
    assert wanted in text and "# TYPE" in page, (text, page)
    assert redacted(uri) in text
    assert SECRET_MARK not in text + page and quote(PASSWORD, safe="") not in text + page
