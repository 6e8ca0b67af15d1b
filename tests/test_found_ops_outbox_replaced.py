"""A relay whose SQLite outbox file is moved aside, deleted or replaced while it runs.

An operator moves a full outbox aside to look at it (``mv outbox.sqlite3 old.sqlite3``),
deletes a test outbox, or restores one from a backup: the next ``send --queue`` creates
(or finds) a new file at the path. The relay kept its connections to the old file and
waited on it for ever: every event captured after that stayed pending in the new file,
with the relay running, saying nothing, and "relay alive" missing from ``outbox status``.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import Relay, scrape, wait_for


def _move_aside(outbox: Path, to: Path) -> None:
    """What an operator's ``mv`` does, with the WAL files that go with the database."""
    for suffix in ("", "-wal", "-shm"):
        source = Path(f"{outbox}{suffix}")
        if source.exists():
            source.rename(Path(f"{to}{suffix}"))


@pytest.mark.parametrize("how", ["moved aside", "deleted", "replaced by a copy"])
def test_a_relay_delivers_what_is_captured_into_a_new_file_at_its_path(
    run_cli: RunCli,
    fake: FakeIntercom,
    tmp_path: Path,
    start_relay: Callable[..., Relay],
    how: str,
) -> None:
    outbox = tmp_path / "work" / "outbox.sqlite3"
    env = {"IEVENTS_OUTBOX": str(outbox)}
    relay = start_relay(str(outbox))
    relay.wait_for_stderr("watching ")
    assert run_cli("send", "before", "--user-id", "1", "--queue", env=env).code == 0
    wait_for(lambda: len(fake.events_posted()) == 1, what="the first delivery", alive=relay.process)

    aside = tmp_path / "aside.sqlite3"
    if how == "replaced by a copy":
        # A restore from a backup: another outbox file (another inode) put in its place.
        other = {"IEVENTS_OUTBOX": str(aside)}
        assert run_cli("send", "x", "--user-id", "9", "--queue", env=other).code == 0
        assert run_cli("outbox", "purge", "--pending", "--yes", env=other).code == 0
        _move_aside(outbox, tmp_path / "old.sqlite3")
        _move_aside(aside, outbox)
    elif how == "deleted":
        for suffix in ("", "-wal", "-shm"):
            Path(f"{outbox}{suffix}").unlink(missing_ok=True)
    else:
        _move_aside(outbox, aside)

    assert run_cli("send", "after", "--user-id", "2", "--queue", env=env).code == 0
    wait_for(
        lambda: [e["event_name"] for e in fake.events_posted()] == ["before", "after"],
        what=f"the event captured into the new file (relay stderr: {relay.stderr!r})",
        alive=relay.process,
    )
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert status["pending"] == 0
    assert relay.stop() == 0, relay.stderr
    assert "internal error" not in relay.stderr
    # Said, not silent: the relay tells why it opened the outbox again.
    assert "removed or replaced" in relay.stderr


def test_the_metrics_count_the_new_file(
    run_cli: RunCli,
    fake: FakeIntercom,
    tmp_path: Path,
    start_relay: Callable[..., Relay],
) -> None:
    from pg_server import free_port

    port = free_port()
    outbox = tmp_path / "work" / "outbox.sqlite3"
    env = {"IEVENTS_OUTBOX": str(outbox)}
    # The outbox's figures read again every half second (5 s by default).
    relay = start_relay(
        str(outbox), "--metrics-port", str(port), IEVENTS_RELAY_TIMINGS="summary_refresh_s=0.5"
    )
    relay.wait_for_stderr("watching ")
    for n in (1, 2):
        assert run_cli("send", "old", "--user-id", str(n), "--queue", env=env).code == 0
    wait_for(lambda: len(fake.events_posted()) == 2, what="the deliveries", alive=relay.process)

    def delivered() -> float | None:
        return scrape(port).get(("ievents_outbox_events", (("state", "delivered"),)))

    wait_for(
        lambda: delivered() == 2, what="the old file's rows in the metrics", alive=relay.process
    )
    _move_aside(outbox, tmp_path / "aside.sqlite3")
    assert run_cli("send", "new", "--user-id", "3", "--queue", env=env).code == 0
    wait_for(lambda: len(fake.events_posted()) == 3, what="the new delivery", alive=relay.process)
    # The new file holds one delivered row; the old one's two are not counted any more.
    wait_for(
        lambda: delivered() == 1,
        timeout=90,
        what="the new file in the metrics",
        alive=relay.process,
    )
    assert relay.stop() == 0, relay.stderr


def test_a_relay_for_several_profiles_follows_the_new_file(
    run_cli: RunCli,
    fake: FakeIntercom,
    tmp_path: Path,
    start_relay: Callable[..., Relay],
) -> None:
    # Its profiles share one connection to a SQLite outbox (lanes.py): reopened once, for
    # all of them, rather than each lane reconnecting to the old file for ever.
    from conftest import TOKEN

    config = tmp_path / "config.toml"
    config.write_text(
        "".join(
            f'[profiles.{name}]\nbase_url = "{fake.url}"\ntoken_env = "LANE_TOKEN"\n\n'
            for name in ("a", "b")
        )
    )
    outbox = tmp_path / "work" / "outbox.sqlite3"
    env: dict[str, str | None] = {
        "IEVENTS_OUTBOX": str(outbox),
        "IEVENTS_CONFIG": str(config),
        "INTERCOM_ACCESS_TOKEN": None,
        "INTERCOM_BASE_URL": None,
        "LANE_TOKEN": TOKEN,
    }
    relay = start_relay(str(outbox), "--all-profiles", **env)
    relay.wait_for_stderr("watching ")
    assert (
        run_cli("send", "before", "--user-id", "1", "--queue", "--profile", "a", env=env).code == 0
    )
    wait_for(lambda: len(fake.events_posted()) == 1, what="the first delivery", alive=relay.process)
    _move_aside(outbox, tmp_path / "aside.sqlite3")
    assert (
        run_cli("send", "after", "--user-id", "2", "--queue", "--profile", "b", env=env).code == 0
    )
    wait_for(
        lambda: [e["event_name"] for e in fake.events_posted()] == ["before", "after"],
        what=f"the event captured into the new file (relay stderr: {relay.stderr!r})",
        alive=relay.process,
    )
    assert relay.stop() == 0, relay.stderr
    assert "internal error" not in relay.stderr
