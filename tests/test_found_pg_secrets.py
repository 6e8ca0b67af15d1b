"""Found by the PostgreSQL hunt: the database password never shows, whatever it holds.

A password given in a libpq keyword string (which ievents refuses, asking for a URI) may
hold ``&`` or ``;``: in a keyword string those are part of the value, which runs to the
next blank, so every character of it must be hidden, not only the part before them.
"""

from __future__ import annotations

import pytest
from conftest import RunCli

from intercom_events_cli.outbox.location import redact_uri


@pytest.mark.parametrize("password", ["Sx9#p@ss:w/rd%20?q&zTAIL", "abc;defTAIL", "a&b;cTAIL"])
def test_a_keyword_string_password_with_and_or_semicolon_is_hidden_whole(
    run_cli: RunCli, password: str
) -> None:
    location = f"host=127.0.0.1 port=5432 user=app password={password} dbname=events"
    for args in (("outbox", "status"), ("send", "x", "--user-id", "a", "--queue")):
        result = run_cli(*args, env={"IEVENTS_OUTBOX": location})
        assert result.code == 78, result
        assert "libpq keyword string" in result.stderr
        assert "password=***" in result.stderr
        assert "TAIL" not in result.stdout + result.stderr, result
        assert "dbname=events" in result.stderr  # what follows the password is still shown


def test_a_uri_query_password_still_ends_at_the_next_parameter() -> None:
    shown = redact_uri("postgresql://h/db?password=secret&sslmode=require")
    assert shown == "postgresql://h/db?password=***&sslmode=require"
