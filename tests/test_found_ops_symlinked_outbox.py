"""An outbox path that is a symbolic link whose target does not exist yet (a link into a
volume made before the first capture, or re-pointed with ``ln -sfn`` to a new file).

Every command failed with "cannot read the outbox 'outbox.sqlite3': no such file or
directory" and the hint "check the permissions of the file and its folder": nothing
about the link, and nothing to check there. A link to an existing outbox works as a file.
"""

from __future__ import annotations

from pathlib import Path

from conftest import RunCli


def test_a_link_to_a_missing_file_is_named_as_such(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "volume" / "outbox.sqlite3"
    link = tmp_path / "work" / "outbox.sqlite3"
    link.symlink_to(target)
    result = run_cli("send", "x", "--user-id", "1", "--queue", "--outbox", str(link))
    assert result.code == 78, result
    assert "symbolic link" in result.stderr
    assert str(target) in result.stderr
    assert "permissions" not in result.stderr
    assert not target.exists()  # nothing created through the link


def test_a_link_to_an_outbox_works_as_the_file(run_cli: RunCli, tmp_path: Path) -> None:
    target = tmp_path / "volume" / "outbox.sqlite3"
    assert run_cli("send", "x", "--user-id", "1", "--queue", "--outbox", str(target)).code == 0
    link = tmp_path / "work" / "outbox.sqlite3"
    link.symlink_to(target)
    status = run_cli("outbox", "status", "--json", "--outbox", str(link))
    assert status.code == 0, status
    assert status.json()["pending"] == 1
