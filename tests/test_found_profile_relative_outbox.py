"""A profile's relative ``outbox = "outbox.sqlite3"`` was resolved against each command's
own working directory: a relay started by systemd (``WorkingDirectory=/`` or another)
and the application capturing from its own folder used two files, and the captured
events waited in one that no relay read. A relative path in the config file is now
relative to that file's folder; ``--outbox`` and ``IEVENTS_OUTBOX`` stay relative to the
working directory, as paths given on a command line or in the environment are."""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom


def test_one_profile_reaches_one_outbox_from_any_working_directory(
    tmp_path: Path, run_cli_process: RunCli, fake: FakeIntercom
) -> None:
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text('[profiles.eu]\noutbox = "outbox.sqlite3"\n')
    app, relay = tmp_path / "app", tmp_path / "service"
    app.mkdir()
    relay.mkdir()
    env: dict[str, str | None] = {"IEVENTS_CONFIG": str(config), "IEVENTS_OUTBOX": None}
    expected = config.parent / "outbox.sqlite3"

    for cwd in (app, relay):
        shown = run_cli_process("config", "--profile", "eu", "--json", env=env, cwd=cwd)
        assert shown.code == 0, shown
        assert shown.json()["settings"]["outbox"]["value"] == str(expected), shown.stdout

    sent = run_cli_process(
        "send", "captured", "--user-id", "1", "--queue", "--profile", "eu", env=env, cwd=app
    )
    assert sent.code == 0, sent
    assert expected.is_file()
    flushed = run_cli_process("flush", "--profile", "eu", "--json", env=env, cwd=relay)
    assert flushed.code == 0, flushed
    assert flushed.json()["delivered"] == 1, flushed.stdout
    assert [e["event_name"] for e in fake.events_posted()] == ["captured"]
    assert not (app / "outbox.sqlite3").exists() and not (relay / "outbox.sqlite3").exists()


def test_outbox_variable_stays_relative_to_the_working_directory(
    tmp_path: Path, run_cli_process: RunCli
) -> None:
    config = tmp_path / "etc" / "config.toml"
    config.parent.mkdir()
    config.write_text('[profiles.eu]\noutbox = "outbox.sqlite3"\n')
    here = tmp_path / "here"
    here.mkdir()
    env: dict[str, str | None] = {"IEVENTS_CONFIG": str(config), "IEVENTS_OUTBOX": "mine.db"}
    shown = run_cli_process("config", "--profile", "eu", "--json", env=env, cwd=here)
    assert shown.code == 0, shown
    assert shown.json()["settings"]["outbox"]["value"] in ("mine.db", str(here / "mine.db"))
