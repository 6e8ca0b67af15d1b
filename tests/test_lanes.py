"""One flush or relay for every workspace (issue 22, part 4): ``--all-profiles`` and a
repeated ``--profile``. Each workspace is a fake Intercom of its own on loopback; the
outbox is each backend in turn; the relays run as real processes, the other commands
in-process (``run_in_process``: a fresh environment, working folder and module state
for each run)."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import CliResult, RunCli, cli_env, make_runner
from fake_intercom import FakeIntercom, Reply
from helpers import Relay, parse_metrics, wait_for

TOKENS = {
    "a": "tok_LANE_a_workspace_up_qzxa",
    "b": "tok_LANE_b_workspace_down_qzxb",
    "c": "tok_LANE_c_workspace_revoked_qzxc",
    "a2": "tok_LANE_a2_second_token_of_a_qzxd",
}
WORKSPACES = {"a": "ws_a", "b": "ws_b", "c": "ws_c", "a2": "ws_a"}


def no_token(*texts: str, endings: bool = True) -> None:
    """No token, nor (but for ``check``, which says which token it checked) its last four
    characters, in any output."""
    for text in texts:
        for token in TOKENS.values():
            assert token not in text, text
            assert not endings or token[-4:] not in text, text


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeIntercom]]:
    """One fake Intercom per workspace (``a2`` is a second token of ``a``'s workspace)."""
    servers = {name: FakeIntercom().start() for name in ("a", "b", "c")}
    try:
        for name, server in servers.items():
            server.workspaces = {TOKENS[name]: WORKSPACES[name]}
        servers["a"].workspaces[TOKENS["a2"]] = "ws_a"
        yield servers
    finally:
        for server in servers.values():
            server.stop()


def write_profiles(tmp_path: Path, fakes: dict[str, FakeIntercom], names: tuple[str, ...]) -> Path:
    """config.toml with one profile per name, each with its fake and its token variable."""
    path = tmp_path / "config" / "config.toml"
    path.parent.mkdir(exist_ok=True)
    text = "".join(
        f'[profiles.{name}]\nbase_url = "{fakes[name[0]].url}"\n'
        f'token_env = "TOKEN_{name.upper()}"\n\n'
        for name in names
    )
    path.write_text(text)
    return path


def lane_env(tmp_path: Path, outbox: str, config: Path) -> dict[str, str | None]:
    """Every token in its own variable; none, nor a base URL, from the environment (which
    would beat every profile's)."""
    return {
        "IEVENTS_OUTBOX": outbox,
        "IEVENTS_CONFIG": str(config),
        "INTERCOM_ACCESS_TOKEN": None,
        "INTERCOM_BASE_URL": None,
        **{f"TOKEN_{name.upper()}": token for name, token in TOKENS.items()},
    }


@pytest.fixture
def cli(tmp_path: Path, fakes: dict[str, FakeIntercom], store_location: str) -> RunCli:
    """The CLI (in-process) on ``store_location`` with profiles a, b, c (and a2)."""
    config = write_profiles(tmp_path, fakes, ("a", "b", "c", "a2"))
    run = make_runner(tmp_path, None)

    def on_outbox(*args: str, **kw: Any) -> CliResult:
        result = run(*args, env=lane_env(tmp_path, store_location, config), **kw)
        no_token(result.stdout, result.stderr, endings=args[0] != "check")
        return result

    return on_outbox


def queue(cli: RunCli, profile: str, count: int) -> None:
    for n in range(count):
        sent = cli("send", f"{profile}-{n}", "--user-id", "u1", "--queue", "--profile", profile)
        assert sent.code == 0, sent


def learn(cli: RunCli, *profiles: str) -> None:
    for profile in profiles:
        checked = cli("check", "--profile", profile)
        assert checked.code == 0, checked


def test_all_profiles_with_profile_is_a_usage_error(cli: RunCli) -> None:
    result = cli("flush", "--all-profiles", "--profile", "a")
    assert result.code == 2, result
    assert "--all-profiles and --profile cannot be combined" in result.stderr
    assert "Traceback" not in result.stderr


def test_all_profiles_without_profiles_is_a_configuration_error(
    tmp_path: Path, store_location: str
) -> None:
    empty = tmp_path / "empty.toml"
    empty.write_text("# no profiles yet\n")
    run = make_runner(tmp_path, None)
    for config in (empty, tmp_path / "missing.toml"):
        result = run("flush", "--all-profiles", env={"IEVENTS_CONFIG": str(config)})
        assert result.code == 78, result
        assert f"--all-profiles found no profiles in {config}" in result.stderr
        assert "[profiles.NAME]" in result.stderr
        assert len(result.stderr.strip().splitlines()) <= 2, result.stderr
        assert "Traceback" not in result.stderr


def test_token_file_with_several_profiles_is_a_usage_error(cli: RunCli, tmp_path: Path) -> None:
    secret = tmp_path / "token"
    secret.write_text("tok_LANE_file_0000\n")
    result = cli("flush", "--profile", "a", "--profile", "b", "--token-file", str(secret))
    assert result.code == 2, result
    assert "--token-file names one token" in result.stderr


def test_repeated_profile_delivers_each_workspace_with_its_own_token(
    cli: RunCli, fakes: dict[str, FakeIntercom]
) -> None:
    queue(cli, "a", 3)
    queue(cli, "b", 2)
    queue(cli, "c", 2)  # a workspace none of the profiles of this flush serves
    learn(cli, "a", "b", "c")
    flushed = cli("flush", "--json", "--profile", "a", "--profile", "b")
    assert flushed.code == 0, flushed
    body = json.loads(flushed.stdout)
    assert body["delivered"] == 5
    assert sorted(e["event_name"] for e in fakes["a"].events_posted()) == ["a-0", "a-1", "a-2"]
    assert sorted(e["event_name"] for e in fakes["b"].events_posted()) == ["b-0", "b-1"]
    for request in fakes["a"].posts() + fakes["b"].posts():
        name = request.json()["event_name"]
        token = TOKENS[name[0]]
        headers = {k.lower(): v for k, v in request.headers.items()}
        assert headers["authorization"] == f"Bearer {token}"
    lanes = {lane["workspace_id"]: lane for lane in body["workspaces"]}
    assert lanes["ws_a"]["delivered"] == 3 and lanes["ws_b"]["delivered"] == 2
    assert lanes["ws_a"]["profile"] == "a" and lanes["ws_a"]["pending"] == 0
    waiting = [(w["workspace_id"], w["events"]) for w in body["waiting_elsewhere"]]
    assert waiting == [("ws_c", 2)]


def test_two_profiles_of_one_workspace_share_one_lane(
    cli: RunCli, fakes: dict[str, FakeIntercom]
) -> None:
    queue(cli, "a", 4)
    learn(cli, "a", "a2")
    flushed = cli("flush", "--json", "--profile", "a", "--profile", "a2")
    assert flushed.code == 0, flushed
    body = json.loads(flushed.stdout)
    assert body["delivered"] == 4
    assert len(fakes["a"].posts()) == 4  # each event once
    served = [lane for lane in body["workspaces"] if lane["served_by"] is not None]
    assert len(served) == 1 and served[0]["workspace_id"] == "ws_a"


def test_one_shot_exit_code_is_the_most_severe_and_each_workspace_says_why(
    cli: RunCli, fakes: dict[str, FakeIntercom]
) -> None:
    queue(cli, "a", 2)
    queue(cli, "b", 2)
    queue(cli, "c", 2)
    learn(cli, "a", "b", "c")
    fakes["b"].script_repeat(Reply(503), 1000)
    fakes["c"].revoked.add(TOKENS["c"])
    flushed = cli("flush", "--all-profiles", "--retries", "0")
    assert flushed.code == 77, flushed  # 77 (c) is more severe than 75 (b)
    assert sorted(e["event_name"] for e in fakes["a"].events_posted()) == ["a-0", "a-1"]
    assert re.search(
        r"workspace ws_c \(http://127\.0\.0\.1:\d+\): .*the token was rejected", flushed.stderr
    )
    assert re.search(
        r"workspace ws_b \(http://127\.0\.0\.1:\d+\): .*not delivered \(503", flushed.stderr
    )
    assert "workspace ws_a" in flushed.stdout


def metrics_of(url: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(url, timeout=30) as answer:
        return parse_metrics(answer.read().decode())


def test_a_relay_for_three_workspaces_delivers_one_while_the_others_fail(
    tmp_path: Path, cli: RunCli, fakes: dict[str, FakeIntercom], store_location: str
) -> None:
    queue(cli, "a", 1)
    queue(cli, "b", 1)
    queue(cli, "c", 1)
    learn(cli, "a", "b", "c")  # each token's workspace, so each lane starts knowing it
    fakes["b"].script_repeat(Reply(503), 100_000)  # down
    fakes["c"].revoked.add(TOKENS["c"])  # rejects its token
    config = tmp_path / "config" / "config.toml"
    write_profiles(tmp_path, fakes, ("a", "b", "c"))
    env = cli_env(tmp_path, None, lane_env(tmp_path, store_location, config))
    # The metrics' figures and the heartbeat every half second (5 s by default); the
    # pauses after b's and c's failures stay 15 s and 60 s (the order checked below).
    env["IEVENTS_RELAY_TIMINGS"] = "summary_refresh_s=0.5,heartbeat_s=0.5"
    # One retry: b's first answers (503) are told after ~0.5 s of backoff, not ~8 s of
    # three; a's capture below comes after that either way.
    relay = Relay(
        env, tmp_path, store_location, "--all-profiles", "--metrics-port", "0", "--retries", "1"
    )
    try:
        relay.wait_until_idle()
        # The first run's rows: a delivers its own while b and c fail.
        wait_for(lambda: len(fakes["a"].events_posted()) == 1, what="a's first event")
        relay.wait_for_stderr("the token was rejected")
        relay.wait_for_stderr("ws_b")
        # Captured while b is down and c rejected: a delivers them at once, b and c keep
        # failing (their next attempts are 15 s and 60 s away).
        first_b = min(r.time for r in fakes["b"].posts())
        queue(cli, "a", 5)
        captured = time.monotonic()  # a's last capture; the fakes' clock (one process)
        queue(cli, "b", 2)
        wait_for(lambda: len(fakes["a"].events_posted()) == 6, what="a's events")
        last_a = max(r.time for r in fakes["a"].posts())
        # From a's last capture to its fake: under 0.1 s here (the issue asks for a second);
        # the bound is 10x that second, so a loaded machine passes and a stall does not.
        assert last_a - captured < 10, last_a - captured
        # The down workspace's failures did not hold a's events back until its next
        # attempt (15 s after its first): a retry of b's first event after a's capture
        # comes after a's last delivery. Compared by order, not by the 15 s: a loaded
        # machine may take longer than that to capture a's events (seen: 16.5 s). A
        # retry is a POST of that event again (b's events captured later have their
        # first attempts at once, whenever the capture is quick).
        first_body = min(fakes["b"].posts(), key=lambda r: r.time).body
        b_retries = [
            r.time for r in fakes["b"].posts() if r.body == first_body and r.time > first_b
        ]
        after_capture = [t for t in b_retries if t > captured]
        assert not after_capture or last_a < min(after_capture), (last_a, b_retries)
        assert all(r.status == 503 for r in fakes["b"].posts())
        # A revoked token is not hammered: one 401, then a pause.
        assert [r.status for r in fakes["c"].posts()] == [401]

        def pending() -> dict[str, int]:
            status = cli("outbox", "status", "--json")
            return {
                d["destination"]["workspace_id"]: d["events"]
                for d in json.loads(status.stdout)["pending_by_destination"]
            }

        # The fake counts a POST before the relay has read its answer and recorded it:
        # a's rows leave the pending count a moment after the fake has them.
        wait_for(lambda: pending() == {"ws_b": 3, "ws_c": 1}, what="b's and c's rows alone pending")
        address = re.search(r"metrics on (http://\S+/metrics)", relay.stderr)
        assert address is not None, relay.stderr

        def delivered_by_workspace() -> bool:
            samples = metrics_of(address.group(1))
            key = (
                "ievents_relay_workspace_deliveries_total",
                (("region", fakes["a"].url), ("result", "delivered"), ("workspace", "ws_a")),
            )
            waiting = (
                "ievents_outbox_workspace_undelivered_events",
                (("region", fakes["b"].url), ("workspace", "ws_b")),
            )
            return samples.get(key) == 6 and samples.get(waiting) == 3

        wait_for(delivered_by_workspace, what="the deliveries and backlog by workspace")
        text = urllib.request.urlopen(address.group(1), timeout=30).read().decode()
        no_token(text)
    finally:
        code = relay.stop()
    assert code == 0, relay.stderr
    no_token(relay.stdout, relay.stderr)
    assert re.search(r"workspace ws_c \([^)]*\): the token was rejected", relay.stderr)
    assert re.search(r"workspace ws_b \([^)]*\): not delivered \(503", relay.stderr)
    assert len(fakes["a"].events_posted()) == 6  # none twice
    status = cli("outbox", "status", "--json")
    assert json.loads(status.stdout)["last_flush_exit_code"] == 77, status
    text_status = cli("outbox", "status")
    assert "3 not delivered for workspace ws_b" in text_status.stdout
    assert "1 not delivered for workspace ws_c" in text_status.stdout


def test_a_workspace_whose_token_cannot_be_learned_at_start_is_asked_again_and_blocks_nobody(
    tmp_path: Path, cli: RunCli, fakes: dict[str, FakeIntercom], store_location: str
) -> None:
    from intercom_events_cli.outbox.store import open_store

    queue(cli, "b", 2)  # b's token never used by a flush or check: its workspace unknown
    # Intercom down for b's GET /me from the start until a's events are out: a's lane does
    # not wait for b's workspace (it would wait for ever).
    fakes["b"].script_repeat(Reply(503, path="/me"), 10_000)
    config = tmp_path / "config" / "config.toml"
    env = cli_env(tmp_path, None, lane_env(tmp_path, store_location, config))
    env["IEVENTS_RELAY_TIMINGS"] = "learn_retry_s=0.5"  # asked again after 0.5 s, not 5
    relay = Relay(env, tmp_path, store_location, "--profile", "a", "--profile", "b")
    try:
        relay.wait_until_idle()
        queue(cli, "a", 3)
        wait_for(lambda: len(fakes["a"].events_posted()) == 3, what="a's events")
        # b's rows, bound to its token, go with it meanwhile; its workspace is asked again.
        wait_for(lambda: len(fakes["b"].events_posted()) == 2, what="b's events")
        fakes["b"].clear_script()  # Intercom answers b's GET /me again

        def b_learned() -> bool:
            with open_store(store_location, {}) as store:
                known = {d.workspace_id for d in store.destinations().values()}
            return "ws_b" in known

        # Asked again within its back-off (doubling to 60 s while GET /me failed).
        wait_for(b_learned, timeout=150, what="b's workspace, learned on a later GET /me")
        statuses = [r.status for r in fakes["b"].requests if r.path == "/me"]
        assert statuses[-1] == 200 and set(statuses[:-1]) == {503}, statuses
    finally:
        code = relay.stop()
    assert code == 0, relay.stderr
    no_token(relay.stdout, relay.stderr)
