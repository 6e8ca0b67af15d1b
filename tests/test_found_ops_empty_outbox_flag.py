"""``--outbox ""``: a script's ``--outbox "$OUTBOX"`` with the variable unset or misspelt.

The empty value was taken as no flag at all: ``send --queue`` queued into the default
outbox (where no relay of that script's set-up looks) and ``flush`` flushed the default
one, both exit 0; a blank one (``"  "``) became a file named by spaces. What the user
names explicitly is never silently replaced by a default: it is a usage error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import RunCli


@pytest.mark.parametrize("value", ["", "   "])
@pytest.mark.parametrize(
    "args", [("send", "x", "--user-id", "1", "--queue"), ("flush",), ("outbox", "status")]
)
def test_an_empty_outbox_flag_is_a_usage_error(
    run_cli: RunCli, tmp_path: Path, value: str, args: tuple[str, ...]
) -> None:
    default = tmp_path / "state" / "ievents" / "outbox.sqlite3"
    result = run_cli(*args, "--outbox", value, env={"IEVENTS_OUTBOX": None})
    assert result.code == 2, result
    assert "--outbox" in result.stderr and "empty" in result.stderr
    assert not default.exists()
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []


def test_a_blank_outbox_variable_is_refused(run_cli: RunCli, tmp_path: Path) -> None:
    result = run_cli("send", "x", "--user-id", "1", "--queue", env={"IEVENTS_OUTBOX": "  "})
    assert result.code == 78, result
    assert "IEVENTS_OUTBOX" in result.stderr and "blank" in result.stderr
    assert sorted(p.name for p in (tmp_path / "work").iterdir()) == []
