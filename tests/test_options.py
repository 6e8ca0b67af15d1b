"""One name and one meaning per option across commands (issue 12, consistent options)."""

from __future__ import annotations

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import seed_fake


def test_list_takes_id_and_limit_zero_means_all(run_cli: RunCli, fake: FakeIntercom) -> None:
    seed_fake(fake, 3)
    every = run_cli("list", "--user-id", "u-1", "--limit", "0", "--json")
    assert every.code == 0, every
    assert len(every.json_lines()) == 3
    by_id = run_cli("list", "--id", "abc", "--json")
    assert by_id.code == 0, by_id
    old_name = run_cli("list", "--intercom-user-id", "abc")
    assert old_name.code == 2


def test_list_quiet_prints_nothing_and_the_exit_code_tells(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    seed_fake(fake, 2)
    found = run_cli("list", "--user-id", "u-1", "-q")
    assert (found.code, found.stdout, found.stderr) == (0, "", "")
    fake.script()  # nothing scripted: the fake answers normally
    missing = run_cli("list", "--user-id", "u-1", "-q", "--base-url", fake.url + "/nope")
    assert missing.code != 0 and missing.stdout == ""


@pytest.mark.parametrize(
    "args",
    [
        ("outbox", "status", "-q"),
        ("outbox", "export", "-q"),
        ("outbox", "list", "-q"),
        ("config", "-q"),
        ("check", "-q"),
    ],
)
def test_every_command_takes_quiet(run_cli: RunCli, args: tuple[str, ...]) -> None:
    result = run_cli(*args)
    assert result.code == 0, result
    assert result.stdout == "" and result.stderr == ""


def test_region_and_format_offer_their_choices_to_completion(run_cli: RunCli) -> None:
    completion = run_cli(
        env={
            "_IEVENTS_COMPLETE": "complete_bash",
            "COMP_WORDS": "ievents send x --region ",
            "COMP_CWORD": "4",
        },
    )
    assert {"us", "eu", "au"} <= set(completion.stdout.split()), completion
