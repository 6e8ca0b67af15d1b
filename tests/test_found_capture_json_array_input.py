"""Found in the capture bug hunt: ``batch export.json`` where the file is a JSON array.

``.json`` is read as NDJSON (one object per line). An export that is one JSON array, on
one line or pretty-printed, got "line 1: a record must be a JSON object, got [...]" or
"line 1: not valid JSON: Expecting value at column 2": what is wrong, but not that the
file is an array nor how to turn it into what batch reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import write

RECORDS = [
    {"event_name": "signed-up", "user_id": "u1", "created_at": 1700000000},
    {"event_name": "invited", "user_id": "u2", "created_at": 1700000001},
]


@pytest.mark.parametrize("indent", [None, 2], ids=["one-line", "pretty"])
def test_a_json_array_file_says_it_is_an_array_and_how_to_convert_it(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path, indent: int | None
) -> None:
    source = write(tmp_path / "export.json", json.dumps(RECORDS, indent=indent) + "\n")
    result = run_cli("batch", str(source))
    assert result.code == 65, result
    first = result.stderr.splitlines()[0]
    assert first.startswith("ievents: error: line 1:") and "JSON array" in first, first
    assert "jq -c '.[]'" in first, first
    assert fake.events_posted() == []
