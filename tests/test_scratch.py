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
    saved = os.environ.get("TMPDIR")
    monkeypatch.setenv("TMPDIR", saved or "")  # recorded, so undone even if it was unset
    if saved is None:
        monkeypatch.delenv("TMPDIR")


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
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(scratch, "memory_folder", lambda: tmp_path)
    assert scratch.use_memory_for_temporary_files() == tmp_path
    assert os.environ["TMPDIR"] == str(tmp_path)
    assert tempfile.gettempdir() == str(tmp_path)  # this process too, not only children


def test_no_room_in_memory_leaves_the_default(
    restored_tempdir: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("TMPDIR", raising=False)
    monkeypatch.setattr(scratch, "memory_folder", lambda: None)
    before = tempfile.gettempdir()
    assert scratch.use_memory_for_temporary_files() is None
    assert "TMPDIR" not in os.environ and tempfile.gettempdir() == before


MOUNTS = """\
/dev/vda / ext4 rw,relatime,discard 0 0
tmpfs /dev/shm tmpfs rw,nosuid,nodev,noexec,relatime 0 0
shm /dev/shm tmpfs rw,nosuid,nodev,relatime,size=2097152k 0 0
tmpfs /run/noexec tmpfs rw,nosuid,nodev,noexec 0 0
/dev/vdb /srv ext4 rw,relatime 0 0
"""


def test_only_a_tmpfs_that_may_run_programs_counts() -> None:
    assert scratch.is_usable_tmpfs(Path("/dev/shm"), MOUNTS)  # the later mount wins
    assert not scratch.is_usable_tmpfs(Path("/dev/shm"), MOUNTS.split("shm /dev/shm")[0])
    assert not scratch.is_usable_tmpfs(Path("/run/noexec"), MOUNTS)
    assert not scratch.is_usable_tmpfs(Path("/srv"), MOUNTS)  # a disk
    assert not scratch.is_usable_tmpfs(Path("/dev"), MOUNTS)  # not a mount point here


def test_room_is_needed_on_the_tmpfs_and_in_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    shm = Path("/dev/shm")
    monkeypatch.setattr(scratch, "MEMORY_FOLDER", Path("/no/such/folder"))
    assert scratch.memory_folder() is None
    monkeypatch.setattr(scratch, "MEMORY_FOLDER", shm)
    monkeypatch.setattr(scratch, "NEEDED_BYTES", 1)
    if scratch.memory_folder() is None:
        pytest.skip("no usable tmpfs at /dev/shm here")
    monkeypatch.setattr(scratch, "NEEDED_BYTES", 1 << 62)  # more than any tmpfs holds
    assert scratch.memory_folder() is None
    monkeypatch.setattr(scratch, "NEEDED_BYTES", 1024)
    monkeypatch.setattr(scratch, "available_memory_bytes", lambda: 1023)  # memory is short
    assert scratch.memory_folder() is None
    monkeypatch.undo()
    assert scratch.available_memory_bytes() > 0  # this machine's /proc/meminfo reads
