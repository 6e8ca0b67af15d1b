"""A relay whose SQLite outbox is given as a relative path (``--outbox outbox.sqlite3``,
``IEVENTS_OUTBOX=./outbox.sqlite3``), as a systemd unit with ``WorkingDirectory=`` or a
shell in the right directory gives it.

The relay watches the file for other processes' commits on a read-only connection of its
own, opened by URI: it crashed with "internal error: ValueError: relative path can't be
expressed as a file URI" the first time it had nothing to do.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import Relay, scrape, wait_for


@pytest.mark.parametrize("given", ["outbox.sqlite3", "./data/../outbox.sqlite3"])
def test_a_relay_on_a_relative_outbox_path_waits_and_delivers_what_comes_later(
    run_cli: RunCli,
    fake: FakeIntercom,
    tmp_path: Path,
    start_relay: Callable[..., Relay],
    given: str,
) -> None:
    workdir = tmp_path / "work"  # the relay's working directory (start_relay)
    (workdir / "data").mkdir(parents=True)
    relay = start_relay(given)
    relay.wait_for_stderr("watching ")
    # Captured by other processes: the second after the relay has delivered the first
    # and gone back to waiting for a sign of new rows.
    env = {"IEVENTS_OUTBOX": str(workdir / "outbox.sqlite3")}
    for n in (1, 2):
        assert run_cli("send", "later", "--user-id", str(n), "--queue", env=env).code == 0
        wait_for(
            lambda n=n: len(fake.events_posted()) == n,
            what=f"delivery {n} (stderr so far: {relay.stderr!r})",
            alive=relay.process,
        )

    def recorded() -> bool:
        # The fake counts a POST when it arrives; a stop before the relay has read the
        # answer would hand that event back (correctly, but not what is tested here).
        return run_cli("outbox", "status", "--json", env=env).json()["delivered"] == 2

    wait_for(recorded, what="both deliveries recorded", alive=relay.process)
    assert relay.stop() == 0, relay.stderr
    assert "internal error" not in relay.stderr
    assert "watch stopped: 2 delivered" in relay.stdout


def test_a_relay_on_a_relative_outbox_path_serves_its_metrics(
    run_cli: RunCli,
    fake: FakeIntercom,
    tmp_path: Path,
    start_relay: Callable[..., Relay],
) -> None:
    # A scrape reads the outbox on a connection of its own, also opened by URI.
    from pg_server import free_port

    port = free_port()
    relay = start_relay("outbox.sqlite3", "--metrics-port", str(port))
    relay.wait_for_stderr("watching ")
    env = {"IEVENTS_OUTBOX": str(tmp_path / "work" / "outbox.sqlite3")}
    assert run_cli("send", "counted", "--user-id", "1", "--queue", env=env).code == 0
    wait_for(lambda: len(fake.events_posted()) == 1, what="the delivery", alive=relay.process)

    def delivered() -> float | None:
        return scrape(port).get(("ievents_outbox_events", (("state", "delivered"),)))

    wait_for(lambda: delivered() == 1, what="the delivered row in the metrics", alive=relay.process)
    assert relay.stop() == 0, relay.stderr
    assert "internal error" not in relay.stderr
