"""``outbox status`` said "relay alive" with the time of the last heartbeat whatever had
happened since: after a clean stop ("relay alive ... (3 s ago)" for a relay that had
just exited) and hours after a relay was killed or froze. Now it says stopped, alive or
silent (no beat for a minute, where the monitoring page's alert fires)."""

from __future__ import annotations

import time

from conftest import RunCli

from intercom_events_cli.outbox.store import open_store


def status_lines(run_cli: RunCli, outbox: str) -> list[str]:
    result = run_cli("outbox", "status", env={"IEVENTS_OUTBOX": outbox})
    assert result.code == 0, result
    return [line for line in result.stdout.splitlines() if line.startswith("relay")]


def test_status_tells_a_relay_alive_stopped_or_silent(run_cli: RunCli, outbox: str) -> None:
    now = time.time()
    with open_store(outbox, {}) as store:
        store.note_flush(0, now=now - 300, relay=True)  # a beat five minutes ago, no stop
    (silent,) = status_lines(run_cli, outbox)
    assert silent.startswith("relay silent  no heartbeat since "), silent
    assert "check that it runs" in silent
    with open_store(outbox, {}) as store:
        store.note_flush(0, now=now - 2, relay=True)
    (alive,) = status_lines(run_cli, outbox)
    assert alive.startswith("relay alive   "), alive
    with open_store(outbox, {}) as store:
        store.note_flush(0, now=now - 1, relay_stopped=True)  # its clean stop
    (stopped,) = status_lines(run_cli, outbox)
    assert stopped.startswith("relay stopped "), stopped
    json_status = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": outbox}).json()
    assert json_status["relay_stopped_at"] is not None
    # A relay started again beats after that stop: alive again.
    with open_store(outbox, {}) as store:
        store.note_flush(0, now=now, relay=True)
    (again,) = status_lines(run_cli, outbox)
    assert again.startswith("relay alive   "), again
    json_status = run_cli("outbox", "status", "--json", env={"IEVENTS_OUTBOX": outbox}).json()
    assert json_status["relay_stopped_at"] is None


def test_status_without_any_relay_has_no_relay_line(run_cli: RunCli, outbox: str) -> None:
    with open_store(outbox, {}) as store:
        store.note_flush(0)  # a one-shot flush
    assert status_lines(run_cli, outbox) == []
