"""Two delivering batches on one outbox (overlapping cron jobs): the first to end said
"26 events not delivered yet (26 not sent: not due yet (an earlier attempt failed) or
waiting for another workspace)" with the hint "deliver them later with: ievents flush",
while no attempt had failed: the other batch had taken those events and was sending them
(all were delivered). It now says they are claimed by another ievents process, counts
them apart in ``--json`` (``in_flight_elsewhere``), and points at ``outbox status``. The
exit code stays 75: they are not delivered when the run ends.

The other process is stood for by a claim on the batch's events (an owner of another
host, a long lease), so what the batch finds at its end does not depend on timing.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import numbered_ndjson, write

from intercom_events_cli.outbox.store import open_store


@contextmanager
def _held_by_another_process(
    outbox: str, tmp_path: Path, run_cli: RunCli, held: int
) -> Iterator[Path]:
    """A 5-line NDJSON file whose first ``held`` events another process holds (its
    connection open: PostgreSQL takes back at once what a closed session held)."""
    source = write(tmp_path / "in.ndjson", numbered_ndjson(5, name="paid"))
    first = write(tmp_path / "first.ndjson", numbered_ndjson(held, name="paid"))
    assert run_cli("batch", str(first), "--queue", env={"IEVENTS_OUTBOX": outbox}).code == 0
    with open_store(outbox, {}) as store:
        taken = store.claim("other-host:4242:relay", held, lease_s=3600)
        assert len(taken) == held
        yield source


def test_events_another_process_is_sending_are_said_so(
    tmp_path: Path, run_cli: RunCli, fake: FakeIntercom, outbox: str
) -> None:
    with _held_by_another_process(outbox, tmp_path, run_cli, held=2) as source:
        result = run_cli("batch", str(source), env={"IEVENTS_OUTBOX": outbox})
        again = run_cli("batch", str(source), "--json", env={"IEVENTS_OUTBOX": outbox})
    assert result.code == 75, result
    assert len(fake.events_posted()) == 3  # its own three; the two held are not sent twice
    assert "2 events not delivered yet (2 claimed by another ievents process)" in (result.stderr), (
        result.stderr
    )
    assert "an earlier attempt failed" not in result.stderr
    assert "see where they are with: ievents outbox status" in result.stderr
    assert "deliver them later with: ievents flush" not in result.stderr
    body = json.loads(again.stdout)
    assert (body["pending"], body["in_flight_elsewhere"], body["failed"], body["not_due"]) == (
        2,
        2,
        0,
        0,
    ), body
    assert body["ok"] is False and body["exit_code"] == 75


def test_held_and_failed_events_are_counted_apart(
    tmp_path: Path, run_cli: RunCli, fake: FakeIntercom, outbox: str
) -> None:
    from fake_intercom import Reply

    # One event's two attempts fail.
    fake.script(Reply(status=503, path="/events"), Reply(status=503, path="/events"))
    env = {"IEVENTS_OUTBOX": outbox}
    with _held_by_another_process(outbox, tmp_path, run_cli, held=1) as source:
        result = run_cli("batch", str(source), "--retries", "1", "-c", "1", "--json", env=env)
        text = run_cli("batch", str(source), "--retries", "0", env=env).stderr
    body = json.loads(result.stdout)
    assert (body["pending"], body["in_flight_elsewhere"], body["failed"]) == (2, 1, 1), body
    assert result.code == 75
    # The failed one waits for its next attempt; the other is the other process's.
    assert "1 not sent: not due yet" in text and "1 claimed by another ievents process" in text
    assert "deliver them later with: ievents flush" in text  # one of them is its to flush
