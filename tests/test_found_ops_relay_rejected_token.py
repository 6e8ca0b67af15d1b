"""A relay whose own token is rejected (mistyped in its env file, or revoked) while the
queued events were captured by the application with a good one.

The relay asks GET /me which workspace its token belongs to; a 401 there was swallowed
("the delivery that follows reports it"), but no delivery followed: none of the rows is
its token's. It said only "1 event waits for a workspace not yet known ... no flush or
check used its token", recorded exit 0 in every heartbeat (so the last_flush_exit_code
alert stayed quiet), and delivered nothing, for ever.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import Relay, wait_for

WRONG = "tok_WRONG_relay_token_7c1e"


def test_a_relay_whose_token_is_rejected_says_so_and_records_77(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path, start_relay: Callable[..., Relay]
) -> None:
    assert run_cli("send", "queued", "--user-id", "1", "--queue").code == 0
    relay = start_relay(str(tmp_path / "outbox.sqlite3"), INTERCOM_ACCESS_TOKEN=WRONG)
    relay.wait_for_stderr("rejected")
    assert "401" in relay.stderr

    def recorded() -> object:
        status = run_cli("outbox", "status", "--json").json()
        return status["last_flush_exit_code"] == 77 and status["relay_heartbeat_at"]

    wait_for(recorded, what="the relay's heartbeat recording 77", alive=relay.process)
    assert relay.stop() == 0, relay.stderr
    assert relay.stderr.count("rejected") == 1, relay.stderr  # said once, not every retry
    assert WRONG not in relay.stderr + relay.stdout
    assert run_cli("outbox", "status", "--json").json()["last_flush_exit_code"] == 77
    assert fake.events_posted() == []


@pytest.mark.parametrize("json_output", [False, True])
def test_a_flush_whose_token_is_rejected_exits_77_not_nothing_to_flush(
    run_cli: RunCli, fake: FakeIntercom, json_output: bool
) -> None:
    # The cron-timer variant: "nothing to flush", exit 0, every run, for ever.
    assert run_cli("send", "queued", "--user-id", "1", "--queue").code == 0
    extra = ("--json",) if json_output else ()
    result = run_cli("flush", *extra, env={"INTERCOM_ACCESS_TOKEN": WRONG})
    assert result.code == 77, result
    assert "rejected" in result.stderr
    assert WRONG not in result.stdout + result.stderr
    if json_output:
        assert result.json()["exit_code"] == 77 and result.json()["ok"] is False
    assert run_cli("outbox", "status", "--json").json()["last_flush_exit_code"] == 77
    assert fake.events_posted() == []
