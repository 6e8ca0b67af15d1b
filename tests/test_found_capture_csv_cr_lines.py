"""Found in the capture bug hunt: a CSV file whose lines end with a bare carriage return.

Excel's "CSV (Macintosh)" and other classic-Mac tools end lines with CR alone. The run
stopped with Python's own words: "new-line character seen in unquoted field - do you need
to open the file in universal-newline mode?", which says neither what is wrong with the
file nor how to fix it.
"""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import write


def test_a_csv_with_cr_line_endings_is_refused_saying_how_to_convert_it(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "mac.csv", "event_name,user_id\rsigned-up,u1\rinvited,u2\r")
    result = run_cli("batch", str(source))
    assert result.code == 65, result
    assert "universal-newline" not in result.stderr
    error = result.stderr.splitlines()[0]
    assert error.startswith("ievents: error: line 1:") and "carriage return" in error, error
    assert "tr '\\r' '\\n'" in error, error
    assert fake.requests == []


def test_a_bare_carriage_return_inside_a_row_is_named_on_that_row(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "mixed.csv", "event_name,user_id\nsigned-up,u1\ninvited,u2\rviewed,u3\n"
    )
    result = run_cli("batch", str(source), "--json")
    assert result.code == 65, result
    assert "universal-newline" not in result.stderr
    assert "line 3:" in result.stderr and "carriage return" in result.stderr, result.stderr
    assert [body["user_id"] for body in fake.events_posted()] == ["u1"]
