"""``flush`` keeps within Intercom's rate-limit window: it paces by the X-RateLimit-* headers
instead of sending until a 429 (issue 22, part 5: 0 % of requests answered 429)."""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom

from intercom_events_cli.event import Event
from intercom_events_cli.outbox import SqliteOutbox


def test_flush_over_several_windows_is_never_answered_429(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    # 12 events, 4 a (1-second) window: three windows at least. Two in flight, so the
    # first answers tell the pacer the window before it could overrun it.
    fake.set_rate_limit(4, 1.0)
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        store.add_many(
            [Event.create("paid", user_id=f"w{n}", created_at=1_700_000_000 + n) for n in range(12)]
        )
    result = run_cli("flush", "-c", "2", "--json")
    assert result.code == 0, result
    assert result.json()["delivered"] == 12
    assert sum(1 for r in fake.posts() if r.status == 202) == 12
    assert fake.count_429 == 0, f"{fake.count_429} requests answered 429"
