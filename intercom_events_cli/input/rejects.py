"""The rejects file of ``batch``: invalid or refused records, as NDJSON, for fixing and
replay."""

from __future__ import annotations

import json
import os
import stat
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, UsageError
from ..event import as_json
from .records import Record


def _same_file(one: Path, other: str | Path) -> bool:
    try:
        return os.path.samefile(one, Path(other).expanduser())
    except OSError:
        return False  # one of them does not exist (yet): not the same file


def _is_stdin(path: Path) -> bool:
    """True when ``path`` is the file standard input reads (same device and inode)."""
    try:
        ours, theirs = os.fstat(0), os.stat(path)
    except OSError:
        return False  # no stdin, or the path does not exist yet
    return stat.S_ISREG(ours.st_mode) and (ours.st_dev, ours.st_ino) == (
        theirs.st_dev,
        theirs.st_ino,
    )


def _reject_line(entry: dict[str, Any]) -> bytes:
    """One rejects line as UTF-8 bytes, whatever the record holds.

    A lone surrogate (from a ``\\ud800`` escape) cannot be encoded as UTF-8: such a line is
    written with ASCII escapes instead, which read back as the same text. Anything else
    that cannot be written keeps what can: the line, the error, the record as text.
    """
    try:
        return (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(entry, default=str) + "\n").encode("ascii")
    except (ValueError, TypeError, RecursionError):
        fallback = {"_raw": as_json(entry), "_line": entry["_line"], "_error": entry["_error"]}
        return (json.dumps(fallback) + "\n").encode("ascii")


class RejectsWriter:
    """Writes invalid or permanently rejected records as NDJSON, for fixing and replay.

    Each line is the original record plus ``"_line"`` (1-based input line) and ``"_error"``
    (why); a line that was not a JSON object is kept as ``{"_raw": TEXT, ...}``. Keys
    starting with ``_`` are ignored when the file is read back, so once fixed it replays as
    it is. The file is created (or truncated) with mode 0600, since records may hold
    e-mail addresses, and flushed after every line so that a crash loses little.
    Thread-safe.

    ``input_path``: the file being read, which the rejects file must not be (replaying a
    rejects file with ``--rejects`` pointing at itself would truncate it before reading).
    """

    def __init__(self, path: str | Path, *, input_path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser()
        self.count = 0
        self._failed = False
        self._lock = threading.Lock()
        same = _is_stdin(self.path) if input_path == "-" else False
        if input_path is not None and input_path != "-":
            same = _same_file(self.path, input_path)
        if same:
            raise UsageError(
                f"the rejects file {str(path)!r} is the input file; writing it would destroy "
                "the input, so choose another --rejects path"
            )
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(f"cannot write the rejects file {str(path)!r}: {reason}") from None
        # An existing file keeps its mode on open: tighten it. A regular file's only: a
        # device or pipe (--rejects /dev/null, run as root) is everybody's.
        try:
            if stat.S_ISREG(os.fstat(descriptor).st_mode):
                os.fchmod(descriptor, 0o600)
        except OSError:  # pragma: no cover - e.g. a file owned by someone else
            pass
        # Binary: UTF-8 bytes whatever the locale (a rejects file is data, not terminal text).
        self._file = os.fdopen(descriptor, "wb")

    def write(self, line: int, original: Mapping[str, Any] | str, error: str) -> None:
        """Append one rejected record with its line number and the reason."""
        if isinstance(original, Mapping):
            entry = {k: v for k, v in original.items() if k not in ("_line", "_error")}
        else:
            entry = {"_raw": original}
        entry["_line"] = line
        entry["_error"] = error
        data = _reject_line(entry)
        with self._lock:
            try:
                self._file.write(data)
                self._file.flush()
            except OSError as exc:  # a full disk, say: the run stops, with a clear reason
                self._failed = True
                raise self._write_error(exc) from None
            self.count += 1

    def _write_error(self, exc: OSError) -> ConfigError:
        return ConfigError(
            f"cannot write the rejects file {str(self.path)!r}: "
            f"{exc.strerror or type(exc).__name__}",
            hint="free some space or choose another --rejects path, then run the same batch "
            "again (what is already in the outbox is skipped)",
        )

    def write_record(self, record: Record) -> None:
        """Append an invalid :class:`Record` (its error message is the reason)."""
        error = record.error.message if record.error is not None else "rejected"
        self.write(record.line, record.original, error)

    def close(self) -> None:
        """Flush and close the file."""
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.close()
                except OSError as exc:
                    if not self._failed:  # else write() has said so already
                        raise self._write_error(exc) from None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
