"""The SQLite outbox file: creating it privately, refusing a foreign or corrupt one, the
schema and its migrations, SQLite errors turned into messages that name the path (a busy
file: :class:`~intercom_events_cli.errors.OutboxBusy`), and watching it for other
connections' commits (:class:`DataVersionWaker`).

The file never gets deleted or rewritten here: anything unexpected raises
:class:`~intercom_events_cli.errors.OutboxError` naming the path.
"""

from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from pathlib import Path

from ..config.outbox_path import BUSY_TIMEOUT_ENV
from ..errors import OutboxBusy, OutboxError, OutboxUnavailable

# How often a relay reads the file's data_version while it waits for new rows.
DATA_VERSION_POLL_S = 0.1

SCHEMA_VERSION = 5
SQLITE_HEADER = b"SQLite format 3\x00"

# Where each event is to be delivered (see delivery/destination.py). ``failing_since`` set: the last
# delivery attempt for it failed temporarily, so the next flush starts with one probe.
_DESTINATIONS = [
    """CREATE TABLE destinations (
    id INTEGER PRIMARY KEY,
    base_url TEXT NOT NULL,
    api_version TEXT NOT NULL,
    token_fingerprint TEXT NOT NULL,
    token_hint TEXT NOT NULL,
    failing_since REAL,
    last_failure_at REAL,
    last_success_at REAL,
    UNIQUE (base_url, api_version, token_fingerprint)
)""",
]
# 5: the workspace each token belongs to, learned with GET /me (NULL until then).
_WORKSPACE = [
    "ALTER TABLE destinations ADD COLUMN workspace_id TEXT",
    "ALTER TABLE events ADD COLUMN workspace TEXT",
    "CREATE TABLE workspace_names (name TEXT PRIMARY KEY, workspace_id TEXT NOT NULL)",
]
_SCHEMA = """
CREATE TABLE events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    dedup_key TEXT NOT NULL UNIQUE,
    payload TEXT NOT NULL,
    event_name TEXT NOT NULL,
    state TEXT NOT NULL
        CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead')),
    attempts INTEGER NOT NULL DEFAULT 0,
    last_status INTEGER,
    last_error_code TEXT,
    last_error_message TEXT,
    request_id TEXT,
    created REAL NOT NULL,
    updated REAL NOT NULL,
    next_attempt_at REAL NOT NULL,
    owner TEXT,
    lease_expires_at REAL,
    source TEXT,
    source_line INTEGER,
    destination_id INTEGER REFERENCES destinations (id),
    claim_token INTEGER
);
CREATE INDEX events_by_state ON events (state, created);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + "".join(f"{statement};" for statement in [*_DESTINATIONS, *_WORKSPACE])
# Each step takes a file from the version before it to the next one.
_MIGRATIONS = {
    # 2: where a row came from (a batch run and its input line), for its rejects file.
    2: [
        "ALTER TABLE events ADD COLUMN source TEXT",
        "ALTER TABLE events ADD COLUMN source_line INTEGER",
    ],
    # 3: the destination each event is bound to. Older rows stay unbound (NULL): the first
    # configuration that flushes them delivers them and binds them.
    3: [
        *_DESTINATIONS,
        "ALTER TABLE events ADD COLUMN destination_id INTEGER REFERENCES destinations (id)",
    ],
    # 4: each claim's fencing token: a sender's results count only while its row still
    # carries the token of its claim. Rows in flight keep none: their lease still holds.
    4: ["ALTER TABLE events ADD COLUMN claim_token INTEGER"],
    # 5: a token's workspace, learned by the first flush, relay or check that uses it;
    # rows bound to a token whose workspace is never learned stay bound to it (named).
    5: _WORKSPACE,
}


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def translate_error(exc: sqlite3.Error, path: Path, busy_timeout_s: float) -> OutboxError:
    """Turn a SQLite error into a message for humans that names the file; a file another
    process holds past the busy timeout is :class:`OutboxBusy` (try again)."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return OutboxBusy(
            f"the outbox {str(path)!r} is locked by another process (waited {busy_timeout_s:g} s)",
            hint="another ievents (or a SQLite tool) is holding it; try again, or raise "
            f"{BUSY_TIMEOUT_ENV}",
        )
    if "not a database" in text or "malformed" in text or "corrupt" in text:
        return OutboxError(
            f"the outbox {str(path)!r} is not a readable ievents outbox ({exc}); "
            "it was left untouched",
            hint="move it aside (it may still hold undelivered events) and run again to "
            "start a new outbox, or point --outbox / IEVENTS_OUTBOX elsewhere",
        )
    if "readonly" in text or "read-only" in text:
        return OutboxError(
            f"the outbox {str(path)!r} is read-only ({exc})",
            hint="check the permissions of the file and its folder",
        )
    if "disk is full" in text or "disk i/o" in text:
        # A full file system, the file-size limit (ulimit -f), a failing disk: not a
        # question of permissions, and temporary (75): nothing was committed by the failed
        # statement, and a relay waits and tries again rather than end.
        return OutboxUnavailable(
            f"the outbox {str(path)!r} could not be written ({exc})",
            hint=f"free space on the file system of {str(path.absolute().parent)!r} (and "
            "check its disk and the file-size limit), then run again",
        )
    if "unable to open" in text or "permission" in text:
        return OutboxError(
            f"cannot open the outbox {str(path)!r} ({exc})",
            hint="check the permissions of the file and its folder",
        )
    return OutboxError(f"the outbox {str(path)!r} failed: {exc}")


def make_private_folders(folder: Path) -> None:
    """Create ``folder`` and every missing parent with mode 0700 (whatever the umask).

    ``mkdir(parents=True)`` gives the parents the umask's mode: every folder ievents
    creates is private, since they hold captured contacts.
    """
    missing: list[Path] = []
    while not folder.exists():
        missing.append(folder)
        if folder.parent == folder:
            break
        folder = folder.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:
            continue  # another process made it just now
        os.chmod(created, 0o700)  # mkdir's mode is filtered by the umask


def check_regular_file(path: Path) -> None:
    """Refuse a location that exists but is not a regular file (a folder, a FIFO, a device).

    Reading a FIFO's header would wait for ever, and a device's mode is no advice to act
    on (``chmod 600 /dev/null`` breaks every other program of the machine).
    """
    try:
        mode = path.stat().st_mode
    except OSError:
        return  # missing (created later) or unreadable (opening says so)
    if stat.S_ISDIR(mode):
        raise OutboxError(f"the outbox {str(path)!r} is a folder, not a file")
    if not stat.S_ISREG(mode):
        kind = "a FIFO" if stat.S_ISFIFO(mode) else "a device or special file"
        raise OutboxError(
            f"the outbox {str(path)!r} is not a regular file ({kind})",
            hint="point --outbox / IEVENTS_OUTBOX at a file (it is created when missing)",
        )


def check_owned_by_us(path: Path) -> None:
    """Refuse an outbox whose file, journal or folder another user owns or can write.

    With IEVENTS_OUTBOX in a shared folder, a file planted there by another user would be
    used as is: that user could read the captured contacts and add events that the
    victim's flush sends with the victim's token.
    """
    me = os.geteuid()
    for candidate, is_folder in (
        (path.parent, True),
        (path, False),
        (Path(f"{path}-wal"), False),
        (Path(f"{path}-shm"), False),
    ):
        try:
            info = candidate.stat()
        except FileNotFoundError:
            continue
        except OSError:
            continue  # unreadable: opening says so, with its own message
        what = "folder of the outbox" if is_folder else "outbox file"
        if info.st_uid != me:
            raise OutboxError(
                f"the {what} {str(candidate)!r} belongs to another user (uid {info.st_uid}); "
                "ievents will not use an outbox someone else controls",
                hint="point --outbox / IEVENTS_OUTBOX at a folder of your own (the default "
                "~/.local/state/ievents is); do not trust events in that file",
            )
        if info.st_mode & 0o022:
            fix = "chmod 700" if is_folder else "chmod 600"
            raise OutboxError(
                f"the {what} {str(candidate)!r} is writable by other users "
                f"(mode {stat.S_IMODE(info.st_mode):04o}); they could change its events",
                hint=f"run `{fix} {candidate}` if it is yours, or point --outbox / "
                "IEVENTS_OUTBOX at a folder of your own",
            )


def _create_private_file(path: Path) -> None:
    """Create the folder (0700) and an empty file (0600) when missing; never truncate.
    What is there already was checked to be a file (:func:`check_regular_file`)."""
    if path.exists():
        return
    if path.is_symlink():  # exists() followed it: a link to nothing
        raise OutboxError(
            f"the outbox {str(path)!r} is a symbolic link to {os.readlink(path)!r}, which "
            "does not exist; ievents creates no outbox through a link",
            hint="point --outbox / IEVENTS_OUTBOX at the target itself (created there), or "
            "remove the link",
        )
    folder = path.parent
    try:
        make_private_folders(folder)
    except OSError as exc:
        raise OutboxError(
            f"cannot create the outbox folder {str(folder)!r}: {_reason(exc)}",
            hint="point --outbox / IEVENTS_OUTBOX at a writable place",
        ) from None
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another process created it just now
    except OSError as exc:
        raise OutboxError(
            f"cannot create the outbox {str(path)!r}: {_reason(exc)}",
            hint="point --outbox / IEVENTS_OUTBOX at a writable place",
        ) from None
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)


def _check_header(path: Path) -> None:
    """Refuse a file that is unreadable or not SQLite, before SQLite touches it."""
    try:
        with path.open("rb") as handle:
            header = handle.read(len(SQLITE_HEADER))
    except OSError as exc:
        raise OutboxError(
            f"cannot read the outbox {str(path)!r}: {_reason(exc)}",
            hint="check the permissions of the file and its folder",
        ) from None
    if header and header != SQLITE_HEADER:
        raise OutboxError(
            f"the outbox {str(path)!r} is not a SQLite database (corrupt, or another kind "
            "of file); it was left untouched",
            hint="move it aside (it may still hold undelivered events) and run again to "
            "start a new outbox, or point --outbox / IEVENTS_OUTBOX elsewhere",
        )


def switch_to_wal(db: sqlite3.Connection, busy_timeout_s: float) -> str:
    """``PRAGMA journal_mode=WAL``, tried again while another process opens the file.

    Changing the journal mode needs the file to itself, and SQLite answers "database
    is locked" at once rather than waiting (its busy timeout does not apply): two
    ``send --queue`` starting together on a new outbox would fail one of them.
    """
    deadline = time.monotonic() + busy_timeout_s
    while True:
        try:
            return str(db.execute("PRAGMA journal_mode=WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= deadline:
                raise
            time.sleep(0.01)


FileIdentity = tuple[int, int]


def file_identity(path: Path) -> FileIdentity | None:
    """The file at ``path`` now (device, inode), or None when it cannot be told."""
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_dev, info.st_ino


def moved_from(path: Path, opened: FileIdentity | None) -> bool:
    """Whether ``path`` names no file now, or another one than ``opened``; False when it
    cannot be told (a folder made unreadable: the file in hand is kept)."""
    if opened is None:
        return False
    try:
        info = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return True
    except OSError:
        return False
    return (info.st_dev, info.st_ino) != opened


def check_same_file(path: Path, opened: FileIdentity | None) -> None:
    """Raise :class:`OutboxUnavailable` when ``path`` no longer names the file opened.

    SQLite keeps using the file it opened: one moved aside, deleted or replaced (a
    restore) under a running relay would be watched for ever, while every new capture
    went into the new file at the path. Unavailable, so that the relay opens it again.
    """
    if moved_from(path, opened):
        raise OutboxUnavailable(
            f"the outbox {str(path)!r} was moved, removed or replaced while in use; what "
            "the old file held stays in it",
            hint="run again: the outbox now at that path is used",
        )


class DataVersionWaker:
    """Watches the file's ``PRAGMA data_version``, which changes whenever another connection
    commits, every :data:`DATA_VERSION_POLL_S`, on a read-only connection of its own. See
    :class:`~.store.Waker`."""

    def __init__(self, path: Path, stop: threading.Event) -> None:
        # Absolute, as a file: URI must be (``--outbox outbox.sqlite3`` is relative to the
        # directory the store was opened in, which is this one).
        self.path = path.absolute()
        self.stop = stop
        self._db: sqlite3.Connection | None = None
        self._identity: FileIdentity | None = None  # the file self._db has open
        self._version: int | None = None

    def _read(self) -> int | None:
        if self._db is not None and moved_from(self.path, self._identity):
            self.close()  # another file at the path now (see check_same_file): watch it
        try:
            if self._db is None:
                self._identity = file_identity(self.path)
                self._db = sqlite3.connect(f"{self.path.as_uri()}?mode=ro", uri=True, timeout=1)
            value = self._db.execute("PRAGMA data_version").fetchone()[0]
            return int(value)
        except sqlite3.Error:
            self.close()
            return None

    def wait(self, timeout: float) -> bool:
        """Poll until the version changes, a stop, or ``timeout``."""
        if self._version is None:
            self._version = self._read()
        deadline = time.monotonic() + timeout
        while not self.stop.wait(min(DATA_VERSION_POLL_S, max(0.0, deadline - time.monotonic()))):
            current = self._read()
            if current != self._version:
                self._version = current
                return True
            if time.monotonic() >= deadline:
                return False
        return True

    def close(self) -> None:
        """Close the watching connection."""
        if self._db is not None:
            self._db.close()
        self._db = None


def unknown_version(path: Path, version: int) -> OutboxError:
    """The error for a file whose schema version this ievents cannot open: a newer one's,
    or a negative one (set by hand or another program: no version ievents ever wrote)."""
    if version > SCHEMA_VERSION:
        return OutboxError(
            f"the outbox {str(path)!r} has schema version {version}, made by a newer "
            f"ievents (this one knows version {SCHEMA_VERSION}); it was left untouched",
            hint="upgrade ievents, or point --outbox / IEVENTS_OUTBOX elsewhere",
        )
    return OutboxError(
        f"the outbox {str(path)!r} has an unreadable schema version ({version}); it was "
        "left untouched",
        hint="put back the version the ievents that made it wrote, or point --outbox / "
        "IEVENTS_OUTBOX elsewhere",
    )
