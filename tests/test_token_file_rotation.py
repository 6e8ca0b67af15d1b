"""A relay whose token comes from a file reads the file again (a rotation): a secret
manager writes the new token, Intercom revokes the old one, and the relay goes on with the
new token, without a restart. Before, it said "the token was rejected" every minute until
someone restarted it, every event pending meanwhile.

Real relay processes (``flush --watch --token-file``, and ``--all-profiles`` with a
profile's ``token_file``), a fake Intercom on loopback where both tokens belong to one
workspace, each outbox backend."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import RunCli, cli_env
from fake_intercom import FakeIntercom
from helpers import Relay, wait_for

OLD = "tok_ROTATE_old_token_of_ws_r1_qzxa"
NEW = "tok_ROTATE_new_token_of_ws_r1_qzxb"


@pytest.fixture
def workspace() -> Iterator[FakeIntercom]:
    with FakeIntercom() as server:
        server.workspaces = {OLD: "ws_r1", NEW: "ws_r1"}
        yield server


def rotate(token_file: Path, token: str) -> None:
    """As a secret manager does: the new file written beside, then renamed over."""
    fresh = token_file.with_name(token_file.name + ".new")
    fresh.write_text(token + "\n")
    fresh.chmod(0o600)
    os.replace(fresh, token_file)


def tokens_used(server: FakeIntercom) -> list[str]:
    """The bearer token of each accepted event, in order."""
    return [
        r.headers.get("authorization", "").removeprefix("Bearer ")
        for r in server.posts()
        if r.status == 202
    ]


def no_token(*texts: str) -> None:
    for text in texts:
        for token in (OLD, NEW):
            assert token not in text and token[-6:] not in text, text


def run_rotation(
    tmp_path: Path,
    workspace: FakeIntercom,
    store_location: str,
    relay_args: tuple[str, ...],
    token_file: Path,
    env_extra: dict[str, str | None],
) -> Relay:
    from conftest import make_runner

    run: Callable[..., Any] = make_runner(tmp_path, workspace.url)
    capture_env = {"IEVENTS_OUTBOX": store_location, "INTERCOM_ACCESS_TOKEN": OLD}
    sent = run("send", "before", "--user-id", "u1", "--queue", env=capture_env)
    assert sent.code == 0, sent
    env = cli_env(tmp_path, workspace.url, {"INTERCOM_ACCESS_TOKEN": None, **env_extra})
    relay = Relay(env, tmp_path, store_location, *relay_args)
    try:
        rotate_under(relay, run, workspace, token_file, capture_env)
    except AssertionError as exc:
        relay.kill()
        names = {f"Bearer {OLD}": "old", f"Bearer {NEW}": "new"}
        seen = [
            (r.method, r.path, r.status, names.get(r.headers.get("authorization", ""), "?"))
            for r in workspace.requests
        ]
        raise AssertionError(f"{exc}\nthe relay said:\n{relay.stderr}\nrequests: {seen}") from None
    except BaseException:
        relay.kill()
        raise
    return relay


def rotate_under(
    relay: Relay,
    run: Callable[..., Any],
    workspace: FakeIntercom,
    token_file: Path,
    capture_env: dict[str, str],
) -> None:
    relay.wait_until_idle()
    wait_for(lambda: tokens_used(workspace) == [OLD], what="the first event, with the old token")
    # The rotation: the new token in the file, the old one revoked at once.
    rotate(token_file, NEW)
    workspace.revoked.add(OLD)
    # Captured by an app still holding the old token, and by one given the new token.
    for name, token in (("after-old", OLD), ("after-new", NEW)):
        queued = run(
            "send",
            name,
            "--user-id",
            "u2",
            "--queue",
            env={**capture_env, "INTERCOM_ACCESS_TOKEN": token},
        )
        assert queued.code == 0, queued
    wait_for(lambda: len(tokens_used(workspace)) == 3, timeout=120, what="both later events")


def test_a_relay_reads_its_token_file_again_after_a_rotation(
    tmp_path: Path, workspace: FakeIntercom, store_location: str, run_cli: RunCli
) -> None:
    token_file = tmp_path / "intercom.token"
    token_file.write_text(OLD + "\n")
    token_file.chmod(0o600)
    relay = run_rotation(
        tmp_path, workspace, store_location, ("--token-file", str(token_file)), token_file, {}
    )
    code = relay.stop()
    assert code == 0, relay.stderr
    assert tokens_used(workspace) == [OLD, NEW, NEW]
    assert f"the token file {token_file} holds a new token" in relay.stderr
    no_token(relay.stdout, relay.stderr)


def test_a_relay_for_every_profile_reads_a_profiles_token_file_again(
    tmp_path: Path, workspace: FakeIntercom, store_location: str
) -> None:
    token_file = tmp_path / "r1.token"
    token_file.write_text(OLD + "\n")
    token_file.chmod(0o600)
    config = tmp_path / "config.toml"
    config.write_text(f'[profiles.r1]\nbase_url = "{workspace.url}"\ntoken_file = "{token_file}"\n')
    relay = run_rotation(
        tmp_path,
        workspace,
        store_location,
        ("--all-profiles",),
        token_file,
        {"IEVENTS_CONFIG": str(config), "INTERCOM_BASE_URL": None},
    )
    code = relay.stop()
    assert code == 0, relay.stderr
    assert tokens_used(workspace) == [OLD, NEW, NEW]
    assert "holds a new token" in relay.stderr
    no_token(relay.stdout, relay.stderr)
