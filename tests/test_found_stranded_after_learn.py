"""Found by a suite run (test_token_file_rotation timed out, now and then, with one of the
two events captured after a rotation never sent): a capture binds its event to its token's
destination, then stores it, in two steps. A relay that learns that token's workspace in
between moves the token's events to the workspace's destination, but not the one stored
just after: it stayed bound to the token's own destination, which no flush or relay of
the workspace claims (they deliver to the workspace's), for ever. A long ``batch``,
which binds once at its start, left every event it stored after such a learn that way.

Made certain here, through the store's own steps in that order, then the real CLI (each
backend, a fake Intercom on loopback where both tokens belong to one workspace).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunCli, cli_env
from fake_intercom import FakeIntercom
from helpers import Relay, event, wait_for

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.outbox import State
from intercom_events_cli.outbox.store import open_store

OLD = "tok_STRAND_old_token_of_ws_s1"
NEW = "tok_STRAND_new_token_of_ws_s1"


def strand_one(store_location: str, base_url: str) -> None:
    """The old token's workspace known; a capture with the new token binds its event, the
    relay learns the new token's workspace, then the capture stores the event."""
    old, new = Settings(token=OLD, base_url=base_url), Settings(token=NEW, base_url=base_url)
    with open_store(store_location) as capture, open_store(store_location) as relay:
        relay.learn(old, "ws_s1")
        relay.add(event(1), destination_id=relay.bind(old))
        bound_to = capture.bind(new)  # the capture's first step: the token's own row
        relay.learn(new, "ws_s1")  # the relay, in between: GET /me answered for NEW
        capture.add(event(2), destination_id=bound_to)  # the capture's second step


@pytest.mark.parametrize("token", [NEW, OLD], ids=["new-token", "old-token"])
def test_an_event_stored_just_after_its_tokens_workspace_was_learned_is_delivered(
    tmp_path: Path, store_location: str, run_cli: RunCli, fake: FakeIntercom, token: str
) -> None:
    """A flush with either token of the workspace delivers it."""
    fake.expected_token, fake.workspaces = None, {OLD: "ws_s1", NEW: "ws_s1"}
    strand_one(store_location, fake.url)

    flushed = run_cli(
        "flush", env={"IEVENTS_OUTBOX": store_location, "INTERCOM_ACCESS_TOKEN": token}
    )

    assert flushed.code == 0, flushed
    assert sorted(body["user_id"] for body in fake.events_posted()) == ["u1", "u2"]
    with open_store(store_location) as store:
        assert {row.state for row in store.rows(list(State))} == {State.DELIVERED}


def test_a_running_relay_delivers_an_event_stored_after_it_learned_the_workspace(
    tmp_path: Path, store_location: str, fake: FakeIntercom
) -> None:
    """The moment the suite met: the relay learns the new token's workspace between the
    capture's two steps. A real relay process; it binds such events again while idle."""
    fake.expected_token, fake.workspaces = None, {OLD: "ws_s1", NEW: "ws_s1"}
    old, new = Settings(token=OLD, base_url=fake.url), Settings(token=NEW, base_url=fake.url)
    with open_store(store_location) as capture:
        capture.learn(old, "ws_s1")  # the workspace's destination: the old token's row
        bound_to = capture.bind(new)  # the capture's first step, before the relay starts
    env = cli_env(
        tmp_path,
        fake.url,
        {
            "IEVENTS_OUTBOX": store_location,
            "INTERCOM_ACCESS_TOKEN": NEW,
            "IEVENTS_RELAY_TIMINGS": "heartbeat_s=0.2",
        },
    )
    relay = Relay(env, tmp_path, store_location)
    try:
        relay.wait_until_idle()  # it has learned ws_s1 for NEW (GET /me)
        with open_store(store_location) as capture:
            capture.add(event(2), destination_id=bound_to)  # the capture's second step
        wait_for(lambda: fake.events_posted(), what="the event", alive=relay.process)
    finally:
        code = relay.stop()
    assert code == 0, relay.stderr
    assert [body["user_id"] for body in fake.events_posted()] == ["u2"]
