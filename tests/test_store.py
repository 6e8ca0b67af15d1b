"""Unit tests of the storage factory: which store a location opens, and safe URIs."""

from __future__ import annotations

from pathlib import Path

import pytest

from intercom_events_cli.cli.watch import parse_metrics_address
from intercom_events_cli.config.outbox_path import default_outbox_path, resolve_outbox_path
from intercom_events_cli.errors import OutboxError, UsageError
from intercom_events_cli.outbox.location import (
    PostgresLocation,
    is_postgres_uri,
    valid_schema_name,
)
from intercom_events_cli.outbox.store import redact_uri, resolve_location


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("postgresql://h/db", True),
        ("POSTGRES://u@h:5433/db?sslmode=require", True),
        ("/var/lib/ievents/outbox.sqlite3", False),
        ("postgresql.sqlite3", False),
        ("mysql://h/db", False),
    ],
)
def test_is_postgres_uri(text: str, expected: bool) -> None:
    assert is_postgres_uri(text) is expected


@pytest.mark.parametrize(
    ("uri", "shown"),
    [
        ("postgresql://ada:s3cret@db:5432/app", "postgresql://ada:***@db:5432/app"),
        ("postgresql://ada@db/app", "postgresql://ada@db/app"),
        ("postgresql://db/app?password=s3cret&sslmode=require",
         "postgresql://db/app?password=***&sslmode=require"),
        ("postgresql://a:p%40ss@h1:1,h2:2/app", "postgresql://a:***@h1:1,h2:2/app"),
    ],
)  # fmt: skip
def test_redact_uri_never_shows_a_password(uri: str, shown: str) -> None:
    assert redact_uri(uri) == shown
    assert str(PostgresLocation(uri)) == shown


def test_resolve_location_path_uri_and_schema(tmp_path: Path) -> None:
    assert resolve_location(str(tmp_path / "o.db"), {}) == tmp_path / "o.db"
    env = {"IEVENTS_OUTBOX": "postgresql://h/db", "IEVENTS_OUTBOX_SCHEMA": "relay_2"}
    location = resolve_location(None, env)
    assert location == PostgresLocation("postgresql://h/db", "relay_2")
    assert str(location) == "postgresql://h/db (schema relay_2)"
    with pytest.raises(OutboxError, match="IEVENTS_OUTBOX_SCHEMA"):
        resolve_location(None, {**env, "IEVENTS_OUTBOX_SCHEMA": "Public; drop"})


def test_outbox_path_precedence() -> None:
    env = {"HOME": "/home/ada", "XDG_STATE_HOME": "/var/state", "IEVENTS_OUTBOX": "/x/o.db"}
    assert resolve_outbox_path("/flag.db", env) == Path("/flag.db")
    assert resolve_outbox_path(None, env) == Path("/x/o.db")
    del env["IEVENTS_OUTBOX"]
    assert resolve_outbox_path(None, env) == Path("/var/state/ievents/outbox.sqlite3")
    env["XDG_STATE_HOME"] = "relative/ignored"
    assert default_outbox_path(env) == Path("/home/ada/.local/state/ievents/outbox.sqlite3")


@pytest.mark.parametrize("name", ["ievents", "_x", "a1_b2"])
def test_valid_schema_names(name: str) -> None:
    assert valid_schema_name(name)


@pytest.mark.parametrize("name", ["", "1abc", "Ievents", "a-b", "a b", "é", "x" * 49])
def test_invalid_schema_names(name: str) -> None:
    assert not valid_schema_name(name)


def test_parse_metrics_address() -> None:
    assert parse_metrics_address("9464") == ("127.0.0.1", 9464)
    assert parse_metrics_address("0.0.0.0:9464") == ("0.0.0.0", 9464)
    assert parse_metrics_address("[::1]:9464") == ("::1", 9464)
    for bad in ("", "nine", "70000", ":9464", "-1"):
        with pytest.raises(UsageError):
            parse_metrics_address(bad)
