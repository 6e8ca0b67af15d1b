"""The run's temporary files in memory (``/dev/shm``) where the machine has room for them.

Most of what the suite writes is scratch: outbox files, PostgreSQL clusters and their
databases, the quick start's virtual environments. On the disk of the machines this
project runs on (ext4 mounted with ``discard``) the kernel spends much of the run on
them: a ``CREATE DATABASE`` took 190 ms of kernel time on disk and 18 ms on tmpfs, and
the whole suite used 23 s of kernel time against 15 s. SQLite, PostgreSQL and the CLI see
the same files, modes and locks on tmpfs; a test never depends on surviving a power cut,
which is all a disk would add.

Only when ``TMPDIR`` is unset (set it to choose the place, e.g. ``TMPDIR=/tmp pytest``),
``/dev/shm`` is a writable tmpfs that allows programs to run from it (Docker mounts its
``noexec``; the quick start test runs ``scripts/dev`` from a copy there), and both it and
the machine's available memory have 2 GiB to spare (a container's is often 64 MiB). The
workers, and the servers and helpers they start, inherit the variable; the CLI runs get
the test's own environment, with their files under ``tmp_path`` all the same.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

MEMORY_FOLDER = Path("/dev/shm")
NEEDED_BYTES = 2 * 1024**3


def is_usable_tmpfs(folder: Path, mounts: str) -> bool:
    """Whether ``mounts`` (``/proc/self/mounts``) says ``folder`` is a tmpfs that may run
    programs; the last line for it wins, as a later mount covers an earlier one."""
    usable = False
    for fields in (line.split() for line in mounts.splitlines()):
        if len(fields) >= 4 and fields[1] == str(folder):
            usable = fields[2] == "tmpfs" and "noexec" not in fields[3].split(",")
    return usable


def available_memory_bytes() -> int:
    """``MemAvailable`` from ``/proc/meminfo`` (0 where it cannot be read)."""
    try:
        for line in Path("/proc/meminfo").read_text(encoding="ascii").splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return 0


def memory_folder() -> Path | None:
    """``/dev/shm`` when it can hold the run's scratch files, else None."""
    folder = MEMORY_FOLDER
    if not folder.is_dir() or not os.access(folder, os.W_OK | os.X_OK):
        return None
    try:
        mounts = Path("/proc/self/mounts").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    if not is_usable_tmpfs(folder, mounts):
        return None
    stat = os.statvfs(folder)
    room = min(stat.f_bavail * stat.f_frsize, available_memory_bytes())
    return folder if room >= NEEDED_BYTES else None


def use_memory_for_temporary_files() -> Path | None:
    """Point ``TMPDIR`` (and this process's :mod:`tempfile`) at :func:`memory_folder`.

    Returns the folder, or None where nothing changed: ``TMPDIR`` already set, or no room.
    """
    if os.environ.get("TMPDIR"):
        return None
    folder = memory_folder()
    if folder is None:
        return None
    os.environ["TMPDIR"] = str(folder)
    tempfile.tempdir = None  # computed again from TMPDIR on next use
    return folder
