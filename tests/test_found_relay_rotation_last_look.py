"""Found by a suite run (test_token_file_rotation timed out once in ten runs): a relay that
noticed its token file's new token while idle ended its engine run, but the engine first
took one more look, with the old token: events captured at that moment went out with the
revoked token, came back 401, and the relay paused for a minute saying "the token was
rejected", although the token it now held had never been tried.

Made certain here, in process (the moment is a few microseconds wide in a real relay):
the token file is read again at every idle moment, and reading it is when the new events
arrive. Each outbox backend, a real fake Intercom on loopback.
"""

from __future__ import annotations

import threading
from pathlib import Path

from fake_intercom import FakeIntercom
from helpers import event

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.delivery.relay import Relay
from intercom_events_cli.delivery.timings import RelayTimings
from intercom_events_cli.outbox.store import open_store

OLD = "tok_LASTLOOK_old_token_of_ws_l1"
NEW = "tok_LASTLOOK_new_token_of_ws_l1"


def test_a_token_rotated_while_idle_is_the_one_every_later_request_carries(
    tmp_path: Path, store_location: str
) -> None:
    token_file = tmp_path / "intercom.token"
    token_file.write_text(OLD + "\n")
    stop = threading.Event()
    notices: list[str] = []

    def on_notice(text: str) -> None:
        notices.append(text)
        if "rejected" in text:
            stop.set()  # the relay pauses now: what the test is about has happened

    switched_at: list[int] = []  # how many requests the fake had seen at the switch

    with FakeIntercom() as fake, open_store(store_location) as capture:
        fake.workspaces = {OLD: "ws_l1", NEW: "ws_l1"}
        capture.add(event(1))

        def settings(token: str) -> Settings:
            return Settings(token=token, base_url=fake.url, retries=0, token_file=str(token_file))

        def reload_settings() -> Settings:
            token = token_file.read_text().strip()
            if token == NEW and not switched_at:
                # Captured by apps just as the relay looks at its file again.
                capture.add(event(2))
                capture.add(event(3))
                switched_at.append(len(fake.requests))
            return settings(token)

        def on_result(delivery: object) -> None:
            if len(fake.events_posted()) == 1:  # the first event, with the old token
                token_file.write_text(NEW + "\n")  # the rotation...
                fake.revoked.add(OLD)  # ...and the old token revoked at once
            if sum(r.status == 202 for r in fake.posts()) == 3:
                stop.set()

        relay = Relay(
            store_location,
            settings(OLD),
            lambda: open_store(store_location),
            stop=stop,
            on_notice=on_notice,
            on_result=on_result,
            reload_settings=reload_settings,
            # The file read at every idle moment; a rejected token would pause 10 minutes.
            timings=RelayTimings(idle_look_s=0.05, token_look_s=0.001, pause_auth_s=600),
        )
        guard = threading.Timer(120, stop.set)  # a relay that never delivered: end the test
        guard.start()
        try:
            report = relay.run()
        finally:
            guard.cancel()
        requests = list(fake.requests)

    assert switched_at, notices
    carried = [r.headers.get("authorization") for r in requests[switched_at[0] :]]
    assert carried and set(carried) == {f"Bearer {NEW}"}, (carried, notices)
    assert not any("rejected" in text for text in notices), notices
    assert report.delivered == 3
