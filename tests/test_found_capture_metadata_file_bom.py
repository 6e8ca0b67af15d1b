"""Found in the capture bug hunt: ``--metadata-json @FILE`` saved with a byte-order mark.

Windows editors (Notepad, PowerShell's ``Out-File``) start UTF-8 files with a BOM. NDJSON
and CSV input accept it; ``send --metadata-json @meta.json`` refused the same file with
Python's words: "Unexpected UTF-8 BOM (decode using utf-8-sig)".
"""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli
from fake_intercom import FakeIntercom


def test_a_metadata_file_starting_with_a_bom_is_read(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    meta = tmp_path / "meta.json"
    meta.write_bytes(b'\xef\xbb\xbf{"plan": "pro", "seats": 3}\r\n')

    result = run_cli(
        "send", "upgraded", "--user-id", "u1", "--created-at", "1700000000",
        "--metadata-json", f"@{meta}",
    )  # fmt: skip

    assert result.code == 0, result
    assert fake.events_posted() == [
        {
            "event_name": "upgraded",
            "user_id": "u1",
            "created_at": 1700000000,
            "metadata": {"plan": "pro", "seats": 3},
        }
    ]
