"""Where the run's temporary files go (tests/scratch.py): memory when there is room,
never against an explicit ``TMPDIR``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
import scratch


@pytest.fixture
def restored_tempdir(monkeypatch: pytest.MonkeyPatch) -> None:
    """Whatever the test does to ``tempfile.tempdir`` and TMPDIR is undone after it."""
    monkeypatch.setattr(tempfile, "tempdir", tempfile.tempdir)
    monkeypatch.setenv("TMPDIR", os.environ.get("TMPDIR", ""))


def test_an_explicit_tmpdir_is_kept(
    restored_tempdir: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(scratch, "memory_folder", lambda: Path("/nowhere"))
    assert scratch.use_memory_for_temporary_files() is None
    assert os.environ["TMPDIR"] == str(tmp_path)


def test_without_tmpdir_the_memory_folder_takes_the_files(
    restored_tempdir: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(scratch, "memory_folder", lambda: tmp_path)
    assert scratch.use_memory_for_temporary_files() == tmp_path
    assert os.environ["TMPDIR"] == str(tmp_path)
    assert tempfile.gettempdir() == str(tmp_path)  # this process too, not only children


def test_no_room_in_memory_leaves_the_default(
    restored_tempdir: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TMPDIR")
    monkeypatch.setattr(scratch, "memory_folder", lambda: None)
    before = tempfile.gettempdir()
    assert scratch.use_memory_for_temporary_files() is None
    assert "TMPDIR" not in os.environ and tempfile.gettempdir() == before


def test_only_a_roomy_tmpfs_mount_counts(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(scratch, "MEMORY_FOLDER", tmp_path)  # a folder, not a mount
    assert scratch.memory_folder() is None
    monkeypatch.setattr(scratch, "MEMORY_FOLDER", Path("/no/such/folder"))
    assert scratch.memory_folder() is None
    shm = Path("/dev/shm")
    if not scratch._is_tmpfs(shm):
        pytest.skip("no tmpfs at /dev/shm here")
    monkeypatch.setattr(scratch, "MEMORY_FOLDER", shm)
    monkeypatch.setattr(scratch, "NEEDED_BYTES", 1 << 62)  # more than any machine has
    assert scratch.memory_folder() is None
    monkeypatch.setattr(scratch, "NEEDED_BYTES", 1)
    assert scratch.memory_folder() == shm
