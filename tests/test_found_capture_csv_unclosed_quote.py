"""Found in the capture bug hunt: a stray quote in a CSV row's last column.

``c,3,"unterminated`` opens a quoted cell that no later quote closes. When the cell is
the row's last, the row still had as many cells as the header, so the stray-quote check
(a wrong cell count) did not see it: every later row became part of that one cell, was
sent as its metadata, and the run said "2 valid, 0 invalid", exit 0. The rows after it
were lost without a word.
"""

from __future__ import annotations

import json
from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import write

CSV_TEXT = (
    "event_name,user_id,created_at,metadata.note\n"
    "signed-up,u1,1700000000,ok\n"
    'invited,u2,1700000001,"stray quote\n'
    "viewed,u3,1700000002,ok\n"
    "ordered,u4,1700000003,ok\n"
)


def test_a_quote_never_closed_is_refused_and_the_rows_after_it_are_sent(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "stray.csv", CSV_TEXT)
    rejects = tmp_path / "rejects.ndjson"

    result = run_cli("batch", str(source), "--rejects", str(rejects), "--json")

    assert result.code == 65, result
    summary = result.json()
    assert (summary["read"], summary["valid"], summary["invalid"]) == (4, 3, 1), summary
    assert sorted(body["user_id"] for body in fake.events_posted()) == ["u1", "u3", "u4"]
    [reject] = [json.loads(line) for line in rejects.read_text().splitlines()]
    assert reject["_line"] == 3 and "never closed" in reject["_error"], reject


def test_a_stray_quote_closed_by_a_later_rows_quote_is_refused_too(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    # The stray quote is "closed" by the opening quote of row 5's cell; the cell count
    # comes out right, and rows 4 and 5 were inside row 3's last cell.
    text = CSV_TEXT.replace("ordered,u4,1700000003,ok", 'ordered,u4,1700000003,"ok"')
    text += "paid,u5,1700000004,ok\n"
    result = run_cli("batch", str(write(tmp_path / "stray.csv", text)), "--json")
    assert result.code == 65, result
    assert sorted(body["user_id"] for body in fake.events_posted()) == ["u1", "u3", "u4", "u5"]
    assert "line 3:" in result.stderr, result.stderr


def test_a_quoted_cell_closed_on_a_later_line_is_still_one_cell(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    text = 'event_name,user_id,created_at,metadata.note\nnoted,u1,1700000000, "say ""one""\ntwo"\n'
    result = run_cli("batch", str(write(tmp_path / "multi.csv", text)))
    assert result.code == 0, result
    assert fake.events_posted()[0]["metadata"] == {"note": 'say "one"\ntwo'}
