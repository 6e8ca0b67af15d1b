"""A CSV of blank lines (a report with no rows, an export padded by its tool) exited 65,
"line 1: the CSV header has no event_name column", where an empty file reads 0 records;
and blank lines before the header made a good file fail the same way. Blank lines before
the header are now skipped, as blank lines between rows always were; the header's
problems name the line it is on."""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from helpers import write


def test_a_csv_of_blank_lines_holds_no_record(run_cli: RunCli, tmp_path: Path) -> None:
    source = write(tmp_path / "blank.csv", "\n\n\r\n")
    result = run_cli("batch", str(source), "--dry-run")
    assert result.code == 0, result
    assert "read 0 records" in result.stderr + result.stdout


def test_blank_lines_before_the_header_are_skipped_and_lines_keep_their_numbers(
    run_cli: RunCli, tmp_path: Path
) -> None:
    source = write(
        tmp_path / "padded.csv",
        "\n\nevent_name,user_id,created_at\nsigned-up,u1,1700000000\n,u2,1700000000\n",
    )
    result = run_cli("batch", str(source), "--dry-run")
    assert result.code == 65, result  # the second row has no event name
    said = result.stderr + result.stdout
    assert "read 2 records: 1 valid, 1 invalid" in said, said
    assert "line 5:" in said and "line 4:" not in said, said


def test_a_header_after_blank_lines_is_named_by_its_line(run_cli: RunCli, tmp_path: Path) -> None:
    source = write(tmp_path / "typo.csv", "\n\nevent_nme,user_id\nsigned-up,u1\n")
    result = run_cli("batch", str(source), "--dry-run")
    assert result.code == 65, result
    assert 'line 3: unknown CSV column "event_nme" (did you mean "event_name"?)' in result.stderr
