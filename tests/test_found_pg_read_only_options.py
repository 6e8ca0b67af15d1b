"""Found by the PostgreSQL hunt: an outbox URI whose options make every session read-only
(``?options=-c default_transaction_read_only=on``, or the same in PGOPTIONS) was told as
'read-only for now ... a standby or a failover in progress; try again' (75), so a relay
waited for ever and cron jobs retried a setting that never changes. It is a configuration
error (78) that names the option to remove. A database made read-only by its server (a
failover) is still temporary: that case is in test_pg_refusals.py.
"""

from __future__ import annotations

import pytest
from conftest import RunCli


@pytest.mark.parametrize("where", ["uri", "PGOPTIONS"])
def test_read_only_by_the_connections_own_options_is_a_configuration_error(
    run_cli: RunCli, pg_uri: str, where: str
) -> None:
    assert (
        run_cli("send", "a", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX": pg_uri}).code == 0
    )
    option = "-c default_transaction_read_only=on"
    env: dict[str, str | None]
    if where == "uri":
        env = {"IEVENTS_OUTBOX": pg_uri + "?options=-c%20default_transaction_read_only%3Don"}
    else:
        env = {"IEVENTS_OUTBOX": pg_uri, "PGOPTIONS": option}
    for args in (("send", "b", "--user-id", "2", "--queue"), ("flush",)):
        result = run_cli(*args, env=env)
        assert result.code == 78, result
        assert "options set default_transaction_read_only" in result.stderr, result
        assert "remove default_transaction_read_only" in result.stderr, result
        assert "for now" not in result.stderr
