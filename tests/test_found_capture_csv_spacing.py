"""Found in the capture bug hunt: CSV written with a space after each comma.

Many exporters and hand-written files put a space after the delimiter (``a, "b"``). The
header already tolerated it; the cells did not: ``signed-up, "u1"`` sent the user id
``' "u1"'``, quote characters and all, to Intercom (a 404 for a contact that does exist,
or an event for the wrong one).
"""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import write


def test_a_space_after_the_comma_is_not_part_of_the_cell(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "spaced.csv",
        "event_name, user_id, created_at, metadata.plan\n"
        'signed-up, "u1", 1700000000, "pro, annual"\n'
        "invited, u2, 1700000001, basic\n",
    )
    result = run_cli("batch", str(source), "--json")
    assert result.code == 0, result
    assert sorted(fake.events_posted(), key=lambda body: body["user_id"]) == [
        {
            "event_name": "signed-up",
            "user_id": "u1",
            "created_at": 1700000000,
            "metadata": {"plan": "pro, annual"},
        },
        {
            "event_name": "invited",
            "user_id": "u2",
            "created_at": 1700000001,
            "metadata": {"plan": "basic"},
        },
    ]
