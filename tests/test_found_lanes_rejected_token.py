"""A one-shot ``flush --all-profiles`` (or ``--profile`` repeated) in which one profile's
token is rejected (mistyped in the timer's env file, revoked) while every queued event of
its workspace was captured by the application with a good one.

The lane asks GET /me which workspace its token belongs to; the 401 was swallowed ("the
delivery that follows reports it"), but none of the rows was that token's, so no
delivery followed: exit 0, no word about the rejected token, last_flush_exit_code 0,
run after run, while the workspace's events wait. The one-profile flush says it and
exits 77 (tests/test_found_ops_relay_rejected_token.py); several profiles now do too.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import RunCli, make_runner
from fake_intercom import FakeIntercom

GOOD = {"eu": "tok_FOUND_lanes_eu_good_4q1z", "us": "tok_FOUND_lanes_us_good_8w2x"}
WRONG = "tok_FOUND_lanes_eu_WRONG_3k9v"


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeIntercom]]:
    """One fake Intercom per workspace, each knowing only its good token."""
    servers = {name: FakeIntercom().start() for name in GOOD}
    try:
        for name, server in servers.items():
            server.workspaces = {GOOD[name]: f"ws_{name}"}
        yield servers
    finally:
        for server in servers.values():
            server.stop()


@pytest.fixture
def cli(tmp_path: Path, fakes: dict[str, FakeIntercom]) -> RunCli:
    """The CLI with profiles eu and us, each token in its own variable."""
    config = tmp_path / "config.toml"
    config.write_text(
        "".join(
            f'[profiles.{name}]\nbase_url = "{fakes[name].url}"\ntoken_env = "TOKEN_{name}"\n\n'
            for name in GOOD
        )
    )
    run = make_runner(tmp_path, None)
    base = {
        "IEVENTS_CONFIG": str(config),
        "INTERCOM_ACCESS_TOKEN": None,
        "INTERCOM_BASE_URL": None,
        **{f"TOKEN_{name}": token for name, token in GOOD.items()},
    }

    def on_profiles(*args: str, env: dict[str, str | None] | None = None) -> object:
        return run(*args, env={**base, **(env or {})})

    return on_profiles


@pytest.mark.parametrize("json_output", [False, True])
@pytest.mark.parametrize("which", ["--all-profiles", "--profile"])
def test_a_flush_of_several_profiles_whose_token_is_rejected_exits_77(
    cli: RunCli, fakes: dict[str, FakeIntercom], json_output: bool, which: str
) -> None:
    # The application captured with the good token (and learned its workspace).
    assert cli("check", "--profile", "eu").code == 0
    for profile in GOOD:
        sent = cli("send", f"{profile}-1", "--user-id", "1", "--queue", "--profile", profile)
        assert sent.code == 0, sent
    chosen = (
        ("--all-profiles",) if which == "--all-profiles" else ("--profile", "eu", "--profile", "us")
    )
    extra = ("--json",) if json_output else ()
    for _ in range(2):  # run after run (a timer): each says it
        result = cli("flush", *chosen, *extra, env={"TOKEN_eu": WRONG})
        assert result.code == 77, result
        assert "rejected" in result.stderr and "profile eu" in result.stderr, result.stderr
        assert WRONG not in result.stdout + result.stderr
        assert "Traceback" not in result.stderr
        if json_output:
            body = result.json()
            assert body["exit_code"] == 77 and body["ok"] is False
            lanes = {lane["profile"]: lane for lane in body["workspaces"]}
            assert lanes["eu"]["exit_code"] == 77 and "rejected" in lanes["eu"]["why"]
            assert lanes["us"]["exit_code"] == 0
        status = cli("outbox", "status", "--json").json()
        assert status["last_flush_exit_code"] == 77
    # The good workspace was delivered; the other's event waits for a good token.
    assert [e["event_name"] for e in fakes["us"].events_posted()] == ["us-1"]
    assert fakes["eu"].events_posted() == []
    assert cli("flush", *chosen).code == 0
    assert [e["event_name"] for e in fakes["eu"].events_posted()] == ["eu-1"]
