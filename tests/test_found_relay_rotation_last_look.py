"""Found by a suite run (test_token_file_rotation timed out once in ten runs): a relay that
noticed its token file's new token while idle ended its engine run, but the engine went
on a little with the old token: one more look for new rows, or another round for a row
a 503 had put back. Those events went out with the revoked token, came back 401, and the
relay paused for a minute saying "the token was rejected", although the token it now
held had never been tried.

Made certain here, in process (the moment is a few microseconds wide in a real relay):
the token file is read again at every idle moment. Each outbox backend, a real fake
Intercom on loopback, the relay's own engine and HTTP client.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fake_intercom import FakeIntercom, Reply
from helpers import event, run_guarded

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.delivery.engine import Deliverer, Delivery
from intercom_events_cli.delivery.relay import Relay, RelayReport
from intercom_events_cli.delivery.timings import RelayTimings
from intercom_events_cli.outbox import State
from intercom_events_cli.outbox.store import OutboxStore, open_store

OLD = "tok_LASTLOOK_old_token_of_ws_l1"
NEW = "tok_LASTLOOK_new_token_of_ws_l1"


@pytest.fixture
def fake() -> Iterator[FakeIntercom]:
    """A fake Intercom where both tokens belong to one workspace."""
    with FakeIntercom() as server:
        server.workspaces = {OLD: "ws_l1", NEW: "ws_l1"}
        yield server


@pytest.fixture
def capture(store_location: str) -> Iterator[OutboxStore]:
    """The outbox, as the apps that capture events open it."""
    with open_store(store_location) as store:
        yield store


def rotate(token_file: Path, fake: FakeIntercom) -> None:
    """The new token in the file, and the old one revoked at once."""
    token_file.write_text(NEW + "\n")
    fake.revoked.add(OLD)


def run_relay(
    tmp_path: Path,
    store_location: str,
    fake: FakeIntercom,
    *,
    on_reload: Callable[[str], None] = lambda token: None,
    on_attempt: Callable[[Any], None] | None = None,
    on_notice_extra: Callable[[str], None] = lambda text: None,
    accepted: int,
    timings: dict[str, float] | None = None,
    **engine_options: Any,
) -> tuple[RelayReport, list[str], int]:
    """A relay with OLD in its token file, until the fake accepted ``accepted`` events (or
    it paused on a rejected token); its report, its notices, and how many requests the
    fake had seen when it took the new token."""
    token_file = tmp_path / "intercom.token"
    token_file.write_text(OLD + "\n")
    stop = threading.Event()
    notices: list[str] = []
    switched_at: list[int] = []

    def on_notice(text: str) -> None:
        notices.append(text)
        on_notice_extra(text)
        if "holds a new token" in text:
            switched_at.append(len(fake.requests))
        if "rejected" in text:
            stop.set()  # the relay pauses now: what the test is about has happened

    def settings(token: str) -> Settings:
        return Settings(token=token, base_url=fake.url, retries=0, token_file=str(token_file))

    def reload_settings() -> Settings:
        token = token_file.read_text().strip()
        on_reload(token)
        return settings(token)

    delivered: list[Delivery] = []

    def on_result(delivery: Delivery) -> None:
        if delivery.state is State.DELIVERED:
            delivered.append(delivery)
        if len(delivered) == accepted:
            stop.set()

    relay = Relay(
        store_location,
        settings(OLD),
        lambda: open_store(store_location),
        stop=stop,
        on_notice=on_notice,
        on_result=on_result,
        on_attempt=on_attempt if on_attempt is not None else (lambda attempt: None),
        reload_settings=reload_settings,
        # The file read at every idle moment; a rejected token would pause 10 minutes.
        timings=RelayTimings(
            **{"idle_look_s": 0.05, "token_look_s": 0.001, "pause_auth_s": 600, **(timings or {})}
        ),
        **engine_options,
    )
    report = run_guarded(relay.run, stop)  # a relay that never delivered: ends
    assert switched_at, notices
    return report, notices, switched_at[0]


def check_only_the_new_token_after(
    fake: FakeIntercom, switched_at: int, notices: list[str], accepted: int
) -> None:
    carried = [r.headers.get("authorization") for r in fake.requests[switched_at:]]
    assert carried and set(carried) == {f"Bearer {NEW}"}, (carried, notices)
    assert not any("rejected" in text for text in notices), notices
    assert sum(r.status == 202 for r in fake.posts()) == accepted


def test_events_captured_as_the_relay_takes_the_new_token_go_with_it(
    tmp_path: Path, store_location: str, fake: FakeIntercom, capture: OutboxStore
) -> None:
    """Its last look for new rows, after the run was ended for the new token."""
    capture.add(event(1))
    arrived: list[OutboxStore] = []

    def on_reload(token: str) -> None:
        if token == NEW and not arrived:
            # Captured by apps just as the relay looks at its file again.
            capture.add(event(2))
            capture.add(event(3))
            arrived.append(capture)

    def on_attempt(attempt: Any) -> None:
        if attempt.status == 202 and len(fake.posts()) == 1:  # the first, with OLD
            rotate(tmp_path / "intercom.token", fake)

    report, notices, switched_at = run_relay(
        tmp_path, store_location, fake, on_reload=on_reload, on_attempt=on_attempt, accepted=3
    )
    check_only_the_new_token_after(fake, switched_at, notices, accepted=3)
    assert report.delivered == 3


def test_an_event_put_back_for_another_round_goes_with_the_new_token(
    tmp_path: Path, store_location: str, fake: FakeIntercom, capture: OutboxStore
) -> None:
    """Another round for an event a 503 put back, in the run ended for the new token."""
    capture.add(event(1))
    capture.add(event(2))
    # One at a time: 1 accepted (Intercom answers), 2 put back for a round by a 503.
    fake.script(Reply(202), Reply(503))

    def on_attempt(attempt: Any) -> None:
        if attempt.status == 503:
            rotate(tmp_path / "intercom.token", fake)

    report, notices, switched_at = run_relay(
        tmp_path, store_location, fake, on_attempt=on_attempt, accepted=2, concurrency=1
    )
    check_only_the_new_token_after(fake, switched_at, notices, accepted=2)
    assert report.delivered == 2


def test_a_busy_relay_takes_the_new_token_within_its_run(
    tmp_path: Path, store_location: str, fake: FakeIntercom, capture: OutboxStore
) -> None:
    """A relay that always has rows in hand never idles: it looks at its token file
    between steps too, and sends the rest with the new token (the old one not revoked:
    before, it went on with the old token until it ran dry)."""
    for n in range(1, 31):
        capture.add(event(n))
    fake.script_repeat(Reply(202, delay=0.01), 30)  # a little time in hand for each

    def on_attempt(attempt: Any) -> None:
        if attempt.status == 202 and len(fake.posts()) == 1:
            (tmp_path / "intercom.token").write_text(NEW + "\n")  # rotated, not revoked

    report, notices, switched_at = run_relay(
        tmp_path, store_location, fake, on_attempt=on_attempt, accepted=30, concurrency=1
    )
    carried = [r.headers.get("authorization") for r in fake.requests[switched_at:]]
    # One at a time: the request on the wire as the relay took the new token, at most.
    assert carried.count(f"Bearer {OLD}") <= 1, (carried, notices)
    assert carried.count(f"Bearer {NEW}") >= 20, (carried, notices)
    assert sorted(body["user_id"] for body in fake.events_posted()) == sorted(
        f"u{n}" for n in range(1, 31)
    )
    assert report.delivered == 30


def test_a_token_rotated_during_a_pause_is_the_one_the_next_run_starts_with(
    tmp_path: Path, store_location: str, fake: FakeIntercom, capture: OutboxStore
) -> None:
    """Intercom unavailable, the relay pauses; meanwhile the token rotates and an event
    is captured: the next run sends it with the new token."""
    for n in (1, 2, 3):
        capture.add(event(n))
    fake.script_repeat(Reply(503), 3)  # three in a row: the run stops, unavailable
    rotated_at: list[int] = []

    def on_notice_extra(text: str) -> None:
        if "delivery paused" in text and not rotated_at:
            rotated_at.append(len(fake.requests))
            rotate(tmp_path / "intercom.token", fake)
            capture.add(event(4))  # due at once, whatever becomes of 1-3

    report, notices, _ = run_relay(
        tmp_path,
        store_location,
        fake,
        accepted=1,
        concurrency=1,
        on_notice_extra=on_notice_extra,
        timings={"pause_unavailable_s": 0.05},
    )
    carried = [r.headers.get("authorization") for r in fake.requests[rotated_at[0] :]]
    assert carried and set(carried) == {f"Bearer {NEW}"}, (carried, notices)
    assert report.delivered == 1


def test_finish_ends_a_run_without_another_claim_or_question(
    tmp_path: Path, store_location: str
) -> None:
    """The engine's side: after finish(), called from keep_going, nothing is claimed (a
    row stored at that moment stays pending) and keep_going is not asked again (the
    relay's asking waits for a sign, and may end a run for another reason)."""
    with FakeIntercom() as fake, open_store(store_location) as store:
        store.add(event(1))
        asked: list[int] = []
        engine: list[Deliverer] = []

        def keep_going() -> bool:
            asked.append(1)
            if len(asked) == 1:
                store.add(event(2))  # arrives as the caller decides to end the run
                engine[0].finish()
            return False

        engine.append(
            Deliverer(store, Settings(token=OLD, base_url=fake.url), keep_going=keep_going)
        )
        report = engine[0].run()
        assert (len(asked), report.delivered) == (1, 1)
        assert [body["user_id"] for body in fake.events_posted()] == ["u1"]
        assert [row.state for row in store.rows(list(State))] == [State.DELIVERED, State.PENDING]
