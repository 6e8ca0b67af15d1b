"""The outbox: one SQLite file that keeps every event until Intercom has accepted it.

A row per event moves through these states::

    pending ──claim──► in_flight ──202──► delivered   (kept as a ledger)
       ▲                   │ ├──400/404/422──► dead   (kept with the API error)
       └───────────────────┘ └──temporary, 401/403, released──► pending again

Claims are atomic (``BEGIN IMMEDIATE``): a claimed row carries its owner
(``host:pid:process-start:nonce``) and a lease expiry. A claim whose process is gone from
this host, or whose lease has expired, is taken back at the next claim, so ``kill -9``
loses nothing and delays nothing.

The file never gets deleted or rewritten here: anything unexpected (locked, unreadable,
corrupt, made by a newer ievents) raises :class:`~intercom_events_cli.errors.OutboxError`
naming the path. Everything here is thread-safe (one lock around the connection).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .config import OUTBOX_ENV
from .destination import FINGERPRINT_KEY_BYTES, Destination
from .errors import OutboxError
from .event import Event

if TYPE_CHECKING:
    from .config import Settings
    from .store import OutboxLocation

SCHEMA_VERSION = 3
BUSY_TIMEOUT_ENV = "IEVENTS_OUTBOX_BUSY_TIMEOUT"
OWNER_HOST_ENV = "IEVENTS_OWNER_HOST"
DEFAULT_BUSY_TIMEOUT_S = 5.0
DEFAULT_LEASE_S = 120.0
# Temporary failures wait 30 s, 1 min, 2 min, ... up to an hour before the next try.
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0
SQLITE_HEADER = b"SQLite format 3\x00"
# Keys looked up per query (SQLite allows at least 999 parameters).
_KEYS_PER_QUERY = 500

# Where each event is to be delivered (see destination.py). ``failing_since`` set: the last
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
    destination_id INTEGER REFERENCES destinations (id)
);
CREATE INDEX events_by_state ON events (state, created);
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
""" + "".join(f"{statement};" for statement in _DESTINATIONS)
_COLUMNS = (
    "id, dedup_key, payload, event_name, state, attempts, last_status, last_error_code, "
    "last_error_message, request_id, created, updated, next_attempt_at, owner, lease_expires_at, "
    "source, source_line, destination_id"
)
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
}


class State(str, Enum):
    """Where an event is in its life."""

    PENDING = "pending"
    IN_FLIGHT = "in_flight"
    DELIVERED = "delivered"
    DEAD = "dead"


def default_outbox_path(env: Mapping[str, str]) -> Path:
    """``$XDG_STATE_HOME/ievents/outbox.sqlite3``, else ``~/.local/state/ievents/...``."""
    state_home = env.get("XDG_STATE_HOME", "")
    # The XDG spec says a relative value is invalid and must be ignored.
    if state_home and os.path.isabs(state_home):
        base = Path(state_home)
    else:
        home = env.get("HOME") or str(Path.home())
        base = Path(home) / ".local" / "state"
    return base / "ievents" / "outbox.sqlite3"


def resolve_outbox_path(option: str | None, env: Mapping[str, str]) -> Path:
    """``--outbox`` > ``IEVENTS_OUTBOX`` (environment or .env) > the XDG default."""
    if option:
        return Path(option).expanduser()
    if env.get(OUTBOX_ENV):
        return Path(env[OUTBOX_ENV]).expanduser()
    return default_outbox_path(env)


def busy_timeout_from_env(env: Mapping[str, str]) -> float:
    """How long to wait for a locked outbox: ``IEVENTS_OUTBOX_BUSY_TIMEOUT`` seconds or 5."""
    text = env.get(BUSY_TIMEOUT_ENV, "").strip()
    if not text:
        return DEFAULT_BUSY_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not 0 <= value <= 3600:
        raise OutboxError(f"{BUSY_TIMEOUT_ENV}={text!r} is not a number of seconds (0-3600)")
    return value


def retry_delay_s(attempts: int, retry_after_s: float | None = None) -> float:
    """How long a temporarily failed event waits before its next try.

    30 s after the first failed try, doubling, capped at an hour; never less than what the
    server asked for (``Retry-After`` or the rate-limit reset).
    """
    exponent = min(max(attempts, 1) - 1, 16)
    delay: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * float(2**exponent))
    return max(delay, min(retry_after_s or 0.0, 24 * 3600.0))


# -- claim owners ---------------------------------------------------------------------------


def _process_start(pid: int) -> str:
    """The start time of a process (clock ticks since boot), or ``-`` when unknown.

    With the pid it tells a live claimer from an unrelated process that reused its pid.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            stat = handle.read().decode("ascii", "replace")
    except OSError:
        return "-"
    # The command name (field 2) is in parentheses and may hold spaces: split after it.
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else "-"


def _hostname() -> str:
    import socket  # only claims need it: keeps ``send --queue`` lean

    # IEVENTS_OWNER_HOST names this host in claims where the host name is not unique
    # (containers), and lets tests stand for another host.
    return os.environ.get(OWNER_HOST_ENV) or socket.gethostname()


def new_owner() -> str:
    """A claim owner for this process: ``host:pid:start:nonce`` (nonce: per engine)."""
    pid = os.getpid()
    return f"{_hostname()}:{pid}:{_process_start(pid)}:{os.urandom(4).hex()}"


def owner_is_gone(owner: str, host: str | None = None) -> bool:
    """True when ``owner`` was a process on this host that no longer runs."""
    host = _hostname() if host is None else host
    # The host name may contain ':' in theory: take the last three fields from the right.
    parts = owner.rsplit(":", 3)
    if len(parts) != 4 or parts[0] != host:
        return False
    _, pid_text, start, _nonce = parts
    try:
        pid = int(pid_text)
    except ValueError:
        return False
    if pid <= 0:
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        pass  # alive, owned by another user
    except OSError:
        return False
    current = _process_start(pid)
    return start != "-" and current != "-" and current != start


# -- rows and results -----------------------------------------------------------------------


@dataclass(frozen=True)
class OutboxRow:
    """One event in the outbox, as stored."""

    id: int
    dedup_key: str
    payload_text: str
    event_name: str
    state: State
    attempts: int
    last_status: int | None
    last_error_code: str | None
    last_error_message: str | None
    request_id: str | None
    created: float
    updated: float
    next_attempt_at: float
    owner: str | None
    lease_expires_at: float | None
    source: str | None = None  # e.g. the batch run that captured it
    source_line: int | None = None  # its line in that run's input
    destination_id: int | None = None  # None: unbound (captured by an older ievents)

    @classmethod
    def from_db(cls, values: Sequence[Any]) -> OutboxRow:
        """Build a row from a ``SELECT`` of :data:`_COLUMNS`."""
        return cls(
            id=values[0],
            dedup_key=values[1],
            payload_text=values[2],
            event_name=values[3],
            state=State(values[4]),
            attempts=values[5],
            last_status=values[6],
            last_error_code=values[7],
            last_error_message=values[8],
            request_id=values[9],
            created=values[10],
            updated=values[11],
            next_attempt_at=values[12],
            owner=values[13],
            lease_expires_at=values[14],
            source=values[15],
            source_line=values[16],
            destination_id=values[17],
        )

    @property
    def payload(self) -> dict[str, Any]:
        """The event's JSON body (API field names)."""
        value: dict[str, Any] = json.loads(self.payload_text)
        return value

    def event(self) -> Event:
        """The stored event (``created_at`` exactly as captured)."""
        return Event.from_payload(self.payload)

    def error(self) -> dict[str, Any] | None:
        """``{"code", "message"}`` of the last failure, or None."""
        if self.last_error_code is None and self.last_error_message is None:
            return None
        return {"code": self.last_error_code, "message": self.last_error_message}


@dataclass(frozen=True)
class AddResult:
    """What :meth:`Outbox.add` did with one event."""

    id: int
    state: State
    added: bool  # False: the same event (same dedup key) was already in the outbox
    row: OutboxRow | None = None  # the existing row, when ``added`` is False


@dataclass(frozen=True)
class RowResult:
    """The new state of one claimed row, written back by :meth:`Outbox.record`.

    ``counts_attempt`` is False for a row handed back without being sent.
    ``next_attempt_at`` None keeps the row's current value.
    """

    row_id: int
    state: State
    status: int | None = None
    error_code: str | None = None
    error_message: str | None = None
    request_id: str | None = None
    next_attempt_at: float | None = None
    counts_attempt: bool = True
    unbind: bool = False  # bound by its claim and never answered: unbound again


@dataclass(frozen=True)
class OutboxSummary:
    """Counts and heartbeat times, for ``outbox status``."""

    path: Path | OutboxLocation
    schema_version: int
    counts: dict[State, int]
    oldest_pending_created: float | None
    next_attempt_at: float | None
    last_flush_at: float | None
    last_flush_exit_code: int | None
    last_success_at: float | None
    # Pending and in-flight events per destination (None: unbound), most first.
    pending_by_destination: tuple[tuple[Destination | None, int], ...] = ()


# -- the outbox ------------------------------------------------------------------------------


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror.lower()
    return str(exc) or type(exc).__name__


def translate_error(exc: sqlite3.Error, path: Path, busy_timeout_s: float) -> OutboxError:
    """Turn a SQLite error into a message for humans that names the file."""
    text = str(exc).lower()
    if "locked" in text or "busy" in text:
        return OutboxError(
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
    if "unable to open" in text or "disk i/o" in text or "permission" in text:
        return OutboxError(
            f"cannot open the outbox {str(path)!r} ({exc})",
            hint="check the permissions of the file and its folder",
        )
    return OutboxError(f"the outbox {str(path)!r} failed: {exc}")


class Outbox:
    """The outbox file. Open with :meth:`Outbox.open`; use as a context manager."""

    def __init__(self, path: Path, connection: sqlite3.Connection, busy_timeout_s: float) -> None:
        self.path = path
        self._db = connection
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S) -> Outbox:
        """Open (creating when missing: folder 0700, file 0600) and check the outbox.

        Raises :class:`OutboxError` for a locked, unreadable, corrupt or foreign file,
        which is never modified.
        """
        path = Path(path).expanduser()
        check_owned_by_us(path)  # before creating anything in a folder someone else controls
        _create_private_file(path)
        check_owned_by_us(path)
        _check_header(path)
        try:
            connection = sqlite3.connect(
                str(path),
                timeout=busy_timeout_s,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # guarded by Outbox._lock
            )
        except sqlite3.Error as exc:
            raise translate_error(exc, path, busy_timeout_s) from None
        outbox = cls(path, connection, busy_timeout_s)
        try:
            outbox._prepare()
        except BaseException:
            connection.close()
            raise
        return outbox

    def _prepare(self) -> None:
        with self._guard():
            version = self._db.execute("PRAGMA user_version").fetchone()[0]
            if version > SCHEMA_VERSION:
                raise OutboxError(
                    f"the outbox {str(self.path)!r} has schema version {version}, made by a "
                    f"newer ievents (this one knows version {SCHEMA_VERSION}); it was left "
                    "untouched",
                    hint="upgrade ievents, or point --outbox / IEVENTS_OUTBOX elsewhere",
                )
            if version == 0:
                self._refuse_foreign()
            # Only now is the file known to be ours and may be changed.
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if str(mode).lower() != "wal":
                raise OutboxError(
                    f"the outbox {str(self.path)!r} cannot use a WAL journal (got {mode!r})",
                    hint="put the outbox on a local file system",
                )
            # FULL: a delivered or queued event survives a power cut, not only a crash.
            self._db.execute("PRAGMA synchronous=FULL")
            if version == SCHEMA_VERSION:
                return
            self._db.execute("BEGIN IMMEDIATE")
            try:
                version = self._db.execute("PRAGMA user_version").fetchone()[0]
                if version == 0:
                    self._refuse_foreign()
                    for statement in _SCHEMA.split(";"):
                        if statement.strip():
                            self._db.execute(statement)
                    version = SCHEMA_VERSION
                # An older file is migrated step by step, in the same transaction.
                for step in range(version + 1, SCHEMA_VERSION + 1):
                    for statement in _MIGRATIONS[step]:
                        self._db.execute(statement)
                self._db.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    def _refuse_foreign(self) -> None:
        tables = self._db.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table'"
        ).fetchone()[0]
        if tables:
            raise OutboxError(
                f"{str(self.path)!r} is a SQLite database but not an ievents outbox; it was "
                "left untouched",
                hint="point --outbox / IEVENTS_OUTBOX at another file",
            )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> Outbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- transactions ---------------------------------------------------------------------

    @contextmanager
    def _guard(self) -> Iterator[None]:
        with self._lock:
            try:
                yield
            except sqlite3.Error as exc:
                raise translate_error(exc, self.path, self._busy_timeout_s) from None

    def _rollback(self) -> None:
        try:
            if self._db.in_transaction:
                self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction, taken at once (``BEGIN IMMEDIATE``): no upgrade deadlocks."""
        with self._guard():
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several queries."""
        with self._guard():
            self._db.execute("BEGIN")
            try:
                yield self._db
            finally:
                self._rollback()

    # -- capturing ------------------------------------------------------------------------

    def add(
        self,
        event: Event,
        *,
        now: float | None = None,
        attempts: int = 0,
        last_status: int | None = None,
        last_error_code: str | None = None,
        last_error_message: str | None = None,
        request_id: str | None = None,
        next_attempt_at: float | None = None,
        destination_id: int | None = None,
    ) -> AddResult:
        """Store one event as pending, unless the same event is already here.

        The same event (same dedup key) captured again is not stored twice: the result
        says ``added=False`` and carries the existing row (pending, delivered or dead).
        """
        return self.add_many(
            [event],
            now=now,
            attempts=attempts,
            last_status=last_status,
            last_error_code=last_error_code,
            last_error_message=last_error_message,
            request_id=request_id,
            next_attempt_at=next_attempt_at,
            destination_id=destination_id,
        )[0]

    def add_many(
        self,
        events: Iterable[Event],
        *,
        now: float | None = None,
        attempts: int = 0,
        last_status: int | None = None,
        last_error_code: str | None = None,
        last_error_message: str | None = None,
        request_id: str | None = None,
        next_attempt_at: float | None = None,
        source: str | None = None,
        source_lines: Sequence[int] | None = None,
        resend: bool = False,
        destination_id: int | None = None,
    ) -> list[AddResult]:
        """Store several events as pending in one transaction (see :meth:`add`).

        ``source`` and ``source_lines`` (one per event) say where each came from.
        ``resend``: an event already delivered or dead is made pending again (its row is
        reused, so the ledger keeps one row per event); one already pending is left as is.
        ``destination_id`` (from :meth:`bind`) is where new rows are to be delivered.
        """
        stamp = time.time() if now is None else now
        due = stamp if next_attempt_at is None else next_attempt_at
        results: list[AddResult] = []
        events = list(events)
        keys = [event.dedup_key() for event in events]
        with self._write() as db:
            known = _known_rows(db, keys)
            inserted: dict[str, int] = {}
            for index, (event, key) in enumerate(zip(events, keys, strict=True)):
                line = source_lines[index] if source_lines is not None else None
                if key in inserted:  # the same event twice in one call
                    results.append(AddResult(inserted[key], State.PENDING, False))
                    continue
                row = known.get(key)
                if row is not None:
                    if resend and row.state in (State.DELIVERED, State.DEAD):
                        db.execute(_REQUEUE, (stamp, due, source, line, destination_id, row.id))
                        results.append(AddResult(row.id, State.PENDING, True))
                        inserted[key] = row.id
                        continue
                    results.append(AddResult(row.id, row.state, False, row))
                    continue
                cursor = db.execute(
                    _INSERT,
                    (
                        key,
                        event.body().decode(),
                        event.event_name,
                        attempts,
                        last_status,
                        last_error_code,
                        last_error_message,
                        request_id,
                        stamp,
                        stamp,
                        due,
                        source,
                        line,
                        destination_id,
                    ),
                )
                assert cursor.lastrowid is not None
                inserted[key] = cursor.lastrowid
                results.append(AddResult(cursor.lastrowid, State.PENDING, True))
        return results

    def queue_many(
        self,
        events: Sequence[Event],
        *,
        source: str | None = None,
        source_lines: Sequence[int] | None = None,
        requeue: Collection[State] = (),
        now: float | None = None,
        destination_id: int | None = None,
    ) -> tuple[int, int]:
        """Bulk capture in one transaction: returns (stored, skipped), no row ids.

        Like :meth:`add_many` for pending events, but with one ``executemany`` for the
        new rows, which is what makes a big batch fast. An event already here is skipped,
        unless its state is in ``requeue``: then its row is made pending again. One already
        pending (or in flight) is adopted by ``source``: its row now names this source and
        line, so that the run answers for it (see :meth:`count_undelivered`).
        """
        stamp = time.time() if now is None else now
        keys = [event.dedup_key() for event in events]
        stored = 0
        with self._write() as db:
            known = _known_rows(db, keys)
            seen: set[str] = set()
            new_rows: list[tuple[Any, ...]] = []
            for index, (event, key) in enumerate(zip(events, keys, strict=True)):
                if key in seen:
                    continue
                seen.add(key)
                line = source_lines[index] if source_lines is not None else None
                row = known.get(key)
                if row is None:
                    new_rows.append(
                        (key, event.body().decode(), event.event_name, 0, None, None, None, None)
                        + (stamp, stamp, stamp, source, line, destination_id)
                    )
                elif row.state in requeue:
                    db.execute(_REQUEUE, (stamp, stamp, source, line, destination_id, row.id))
                    stored += 1
                elif source is not None and row.state in (State.PENDING, State.IN_FLIGHT):
                    db.execute(
                        "UPDATE events SET source = ?, source_line = ? WHERE id = ?",
                        (source, line, row.id),
                    )
            db.executemany(_INSERT, new_rows)
            stored += len(new_rows)
        return stored, len(events) - stored

    # -- claiming -------------------------------------------------------------------------

    def claim(
        self,
        owner: str,
        limit: int,
        *,
        lease_s: float = DEFAULT_LEASE_S,
        now: float | None = None,
        destination_id: int | None = None,
        due_or_not: bool = False,
    ) -> list[OutboxRow]:
        """Atomically claim up to ``limit`` due pending rows, oldest capture first.

        Claims left by a process that is gone (or whose lease expired) are taken back
        first, in the same transaction. With ``destination_id`` only rows bound to it and
        unbound rows are claimed, and the unbound ones are bound to it. ``due_or_not``
        also claims rows whose next attempt is later (the probe after an outage).
        """
        stamp = time.time() if now is None else now
        due_until = float("inf") if due_or_not else stamp
        with self._write() as db:
            self._reclaim_abandoned(db, stamp)
            if destination_id is None:
                query = (
                    "SELECT id FROM events WHERE state = 'pending' AND next_attempt_at <= ? "
                    "ORDER BY created, id LIMIT ?"
                )
                args: tuple[Any, ...] = (due_until, limit)
            else:
                query = (
                    "SELECT id FROM events WHERE state = 'pending' AND next_attempt_at <= ? "
                    "AND (destination_id = ? OR destination_id IS NULL) "
                    "ORDER BY created, id LIMIT ?"
                )
                args = (due_until, destination_id, limit)
            ids = [row[0] for row in db.execute(query, args)]
            if not ids:
                return []
            marks = ",".join("?" * len(ids))
            unbound: set[int] = set()
            if destination_id is not None:
                unbound = {
                    row[0]
                    for row in db.execute(
                        f"SELECT id FROM events WHERE destination_id IS NULL AND id IN ({marks})",
                        ids,
                    )
                }
                db.execute(
                    f"UPDATE events SET destination_id = ? WHERE destination_id IS NULL "
                    f"AND id IN ({marks})",
                    (destination_id, *ids),
                )
            db.execute(
                f"UPDATE events SET state = 'in_flight', owner = ?, lease_expires_at = ?, "
                f"updated = ? WHERE id IN ({marks})",
                (owner, stamp + lease_s, stamp, *ids),
            )
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE id IN ({marks}) ORDER BY created, id", ids
            ).fetchall()
        claimed = [OutboxRow.from_db(row) for row in rows]
        # A row bound by this claim says so (destination_id None): should its delivery get no
        # answer from Intercom (a rejected token, a stop), RowResult.unbind hands it back.
        return [
            dataclasses.replace(row, destination_id=None) if row.id in unbound else row
            for row in claimed
        ]

    def _reclaim_abandoned(self, db: sqlite3.Connection, now: float) -> int:
        owners = [
            row[0]
            for row in db.execute(
                "SELECT DISTINCT owner FROM events WHERE state = 'in_flight' AND owner IS NOT NULL"
            )
        ]
        gone = [owner for owner in owners if owner_is_gone(owner)]
        reclaimed = db.execute(
            "UPDATE events SET state = 'pending', owner = NULL, lease_expires_at = NULL, "
            "updated = ? WHERE state = 'in_flight' AND (lease_expires_at IS NULL OR "
            "lease_expires_at <= ? OR owner IS NULL)",
            (now, now),
        ).rowcount
        for owner in gone:
            reclaimed += db.execute(
                "UPDATE events SET state = 'pending', owner = NULL, lease_expires_at = NULL, "
                "updated = ? WHERE state = 'in_flight' AND owner = ?",
                (now, owner),
            ).rowcount
        return reclaimed

    def make_all_due(self, *, now: float | None = None, destination_id: int | None = None) -> int:
        """Bring pending rows' next attempt forward to now (``flush --now``, a probe's success).

        With ``destination_id``: only its rows and unbound ones.
        """
        stamp = time.time() if now is None else now
        query = (
            "UPDATE events SET next_attempt_at = ? WHERE state = 'pending' AND next_attempt_at > ?"
        )
        args: tuple[Any, ...] = (stamp, stamp)
        if destination_id is not None:
            query += " AND (destination_id = ? OR destination_id IS NULL)"
            args += (destination_id,)
        with self._write() as db:
            return db.execute(query, args).rowcount

    # -- destinations ---------------------------------------------------------------------

    def bind(self, settings: Settings) -> int:
        """The id of the destination ``settings`` deliver to (stored when new).

        The outbox's fingerprint key is made on first use (32 random bytes in ``meta``).
        """
        with self._write() as db:
            found = db.execute("SELECT value FROM meta WHERE key = 'fingerprint_key'").fetchone()
            if found is None:
                key = os.urandom(FINGERPRINT_KEY_BYTES)
                _set_meta(db, {"fingerprint_key": key.hex()})
            else:
                key = bytes.fromhex(found[0])
            target = Destination.of(settings, key)
            db.execute(
                "INSERT INTO destinations (base_url, api_version, token_fingerprint, token_hint) "
                "VALUES (?, ?, ?, ?) ON CONFLICT (base_url, api_version, token_fingerprint) "
                "DO NOTHING",
                (target.base_url, target.api_version, target.token_fingerprint, target.token_hint),
            )
            row = db.execute(
                "SELECT id FROM destinations WHERE base_url = ? AND api_version = ? "
                "AND token_fingerprint = ?",
                (target.base_url, target.api_version, target.token_fingerprint),
            ).fetchone()
        return int(row[0])

    def destinations(self) -> dict[int, Destination]:
        """Every known destination by id."""
        with self._read() as db:
            return {
                row[0]: Destination(row[1], row[2], row[3], row[4])
                for row in db.execute(
                    "SELECT id, base_url, api_version, token_fingerprint, token_hint "
                    "FROM destinations"
                )
            }

    def waiting_elsewhere(self, destination_id: int) -> list[tuple[Destination, int]]:
        """Events not delivered that are bound to other destinations, with their counts."""
        with self._read() as db:
            found = db.execute(
                "SELECT d.base_url, d.api_version, d.token_fingerprint, d.token_hint, count(*) "
                "FROM events e JOIN destinations d ON d.id = e.destination_id "
                "WHERE e.state IN ('pending', 'in_flight') AND e.destination_id != ? "
                "GROUP BY d.id ORDER BY count(*) DESC, d.id",
                (destination_id,),
            ).fetchall()
        return [(Destination(*row[:4]), row[4]) for row in found]

    def count_undelivered(self, source: str) -> tuple[int, int]:
        """(pending or in flight, of which due later) among the rows of ``source``."""
        with self._read() as db:
            total, later = db.execute(
                "SELECT count(*), coalesce(sum(next_attempt_at > ?), 0) FROM events "
                "WHERE source = ? AND state IN ('pending', 'in_flight')",
                (time.time(), source),
            ).fetchone()
        return int(total), int(later)

    def count_due(self, destination_id: int | None, *, now: float | None = None) -> int:
        """Pending events due now for this destination (and unbound ones)."""
        stamp = time.time() if now is None else now
        query = "SELECT count(*) FROM events WHERE state = 'pending' AND next_attempt_at <= ?"
        args: tuple[Any, ...] = (stamp,)
        if destination_id is not None:
            query += " AND (destination_id = ? OR destination_id IS NULL)"
            args += (destination_id,)
        with self._read() as db:
            return int(db.execute(query, args).fetchone()[0])

    def is_failing(self, destination_id: int) -> bool:
        """True when the last delivery attempt for this destination failed temporarily."""
        with self._read() as db:
            row = db.execute(
                "SELECT failing_since FROM destinations WHERE id = ?", (destination_id,)
            ).fetchone()
        return row is not None and row[0] is not None

    def note_destination(self, destination_id: int, *, up: bool, now: float | None = None) -> None:
        """Remember whether Intercom answered (``up``) or failed temporarily for it."""
        stamp = time.time() if now is None else now
        with self._write() as db:
            if up:
                db.execute(
                    "UPDATE destinations SET failing_since = NULL, last_success_at = ? "
                    "WHERE id = ?",
                    (stamp, destination_id),
                )
            else:
                db.execute(
                    "UPDATE destinations SET failing_since = coalesce(failing_since, ?), "
                    "last_failure_at = ? WHERE id = ?",
                    (stamp, stamp, destination_id),
                )

    def renew(self, owner: str, *, lease_s: float = DEFAULT_LEASE_S) -> int:
        """Extend the lease of every row ``owner`` holds; returns how many."""
        stamp = time.time()
        with self._write() as db:
            return db.execute(
                "UPDATE events SET lease_expires_at = ? WHERE state = 'in_flight' AND owner = ?",
                (stamp + lease_s, owner),
            ).rowcount

    def release(self, owner: str, ids: Sequence[int] | None = None) -> int:
        """Hand rows claimed by ``owner`` back to pending, unsent (all, or ``ids``)."""
        stamp = time.time()
        with self._write() as db:
            query = (
                "UPDATE events SET state = 'pending', owner = NULL, lease_expires_at = NULL, "
                "updated = ? WHERE state = 'in_flight' AND owner = ?"
            )
            if ids is None:
                return db.execute(query, (stamp, owner)).rowcount
            count = 0
            for row_id in ids:
                count += db.execute(query + " AND id = ?", (stamp, owner, row_id)).rowcount
            return count

    def record(self, owner: str, results: Sequence[RowResult], *, now: float | None = None) -> int:
        """Write the results of delivery attempts in one transaction; returns rows changed.

        A delivery is recorded even if the claim was lost meanwhile (it happened); any
        other result only while ``owner`` still holds the row.
        """
        if not results:
            return 0
        stamp = time.time() if now is None else now
        changed = 0
        delivered = False
        with self._write() as db:
            for result in results:
                add = 1 if result.counts_attempt else 0
                if result.state is State.DELIVERED:
                    count = db.execute(
                        "UPDATE events SET state = 'delivered', attempts = attempts + ?, "
                        "last_status = ?, last_error_code = NULL, last_error_message = NULL, "
                        "request_id = ?, updated = ?, owner = NULL, lease_expires_at = NULL "
                        "WHERE id = ? AND state IN ('in_flight', 'pending')",
                        (add, result.status, result.request_id, stamp, result.row_id),
                    ).rowcount
                    delivered = delivered or count > 0
                elif not result.counts_attempt:
                    count = db.execute(
                        "UPDATE events SET state = ?, owner = NULL, lease_expires_at = NULL, "
                        "updated = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
                        "destination_id = CASE WHEN ? THEN NULL ELSE destination_id END "
                        "WHERE id = ? AND state = 'in_flight' AND owner = ?",
                        (
                            result.state.value,
                            stamp,
                            result.next_attempt_at,
                            result.unbind,
                            result.row_id,
                            owner,
                        ),
                    ).rowcount
                else:
                    count = db.execute(
                        "UPDATE events SET state = ?, attempts = attempts + 1, last_status = ?, "
                        "last_error_code = ?, last_error_message = ?, request_id = ?, "
                        "updated = ?, next_attempt_at = COALESCE(?, next_attempt_at), "
                        "owner = NULL, lease_expires_at = NULL, "
                        "destination_id = CASE WHEN ? THEN NULL ELSE destination_id END "
                        "WHERE id = ? AND state = 'in_flight' AND owner = ?",
                        (
                            result.state.value,
                            result.status,
                            result.error_code,
                            result.error_message,
                            result.request_id,
                            stamp,
                            result.next_attempt_at,
                            result.unbind,
                            result.row_id,
                            owner,
                        ),
                    ).rowcount
                changed += count
            if delivered:
                _set_meta(db, {"last_success_at": repr(stamp)})
        return changed

    def note_flush(self, exit_code: int, *, now: float | None = None) -> None:
        """Remember when a flush last finished and how (the heartbeat of ``status``)."""
        stamp = time.time() if now is None else now
        with self._write() as db:
            _set_meta(db, {"last_flush_at": repr(stamp), "last_flush_exit_code": str(exit_code)})

    # -- inspecting -----------------------------------------------------------------------

    def summary(self) -> OutboxSummary:
        """Counts per state, the oldest pending capture and the heartbeat times."""
        with self._read() as db:
            counts = {state: 0 for state in State}
            for state, count in db.execute("SELECT state, count(*) FROM events GROUP BY state"):
                counts[State(state)] = count
            oldest, next_at = db.execute(
                "SELECT min(created), min(next_attempt_at) FROM events "
                "WHERE state IN ('pending', 'in_flight')"
            ).fetchone()
            meta = dict(db.execute("SELECT key, value FROM meta").fetchall())
            version = db.execute("PRAGMA user_version").fetchone()[0]
            per_destination = tuple(
                (Destination(*row[:4]) if row[0] is not None else None, row[4])
                for row in db.execute(
                    "SELECT d.base_url, d.api_version, d.token_fingerprint, d.token_hint, "
                    "count(*) FROM events e LEFT JOIN destinations d ON d.id = e.destination_id "
                    "WHERE e.state IN ('pending', 'in_flight') GROUP BY e.destination_id "
                    "ORDER BY count(*) DESC, e.destination_id"
                )
            )

        def number(key: str) -> float | None:
            try:
                return float(meta[key]) if key in meta else None
            except ValueError:
                return None

        exit_code = number("last_flush_exit_code")
        return OutboxSummary(
            path=self.path,
            schema_version=version,
            counts=counts,
            oldest_pending_created=oldest,
            next_attempt_at=next_at,
            last_flush_at=number("last_flush_at"),
            last_flush_exit_code=None if exit_code is None else int(exit_code),
            last_success_at=number("last_success_at"),
            pending_by_destination=per_destination,
        )

    def rows(
        self, states: Iterable[State], *, limit: int | None = None, after_id: int = 0
    ) -> list[OutboxRow]:
        """Rows in ``states``, by id (capture order), from ``after_id`` on."""
        wanted = [state.value for state in states]
        marks = ",".join("?" * len(wanted))
        with self._read() as db:
            found = db.execute(
                f"SELECT {_COLUMNS} FROM events WHERE state IN ({marks}) AND id > ? "
                "ORDER BY id LIMIT ?",
                (*wanted, after_id, -1 if limit is None else limit),
            ).fetchall()
        return [OutboxRow.from_db(row) for row in found]

    def iter_rows(self, states: Iterable[State], *, page: int = 500) -> Iterator[OutboxRow]:
        """Every row in ``states`` by id, read page by page (no lock held in between)."""
        wanted = list(states)
        after = 0
        while True:
            chunk = self.rows(wanted, limit=page, after_id=after)
            yield from chunk
            if len(chunk) < page:
                return
            after = chunk[-1].id

    # -- managing -------------------------------------------------------------------------

    def retry_dead(self, ids: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """Move dead rows back to pending, due now: all, or ``ids``.

        Returns (ids moved, ids named that are not dead letters).
        """
        stamp = time.time()
        with self._write() as db:
            if ids is None:
                targets = [r[0] for r in db.execute("SELECT id FROM events WHERE state = 'dead'")]
                missing: list[int] = []
            else:
                targets, missing = [], []
                for row_id in dict.fromkeys(ids):
                    found = db.execute(
                        "SELECT 1 FROM events WHERE id = ? AND state = 'dead'", (row_id,)
                    ).fetchone()
                    (targets if found else missing).append(row_id)
            for row_id in targets:
                db.execute(
                    "UPDATE events SET state = 'pending', next_attempt_at = ?, updated = ? "
                    "WHERE id = ?",
                    (stamp, stamp, row_id),
                )
        return targets, missing

    def purge_plan(
        self, state: State, *, older_than_s: float | None = None, now: float | None = None
    ) -> tuple[int, int, float]:
        """(how many rows :meth:`purge` would delete, the id bound, the time cutoff)."""
        if state is State.IN_FLIGHT:
            raise ValueError("in-flight rows are never purged")
        stamp = time.time() if now is None else now
        cutoff = stamp - (older_than_s or 0.0) if older_than_s is not None else float("inf")
        with self._read() as db:
            count, max_id = db.execute(
                "SELECT count(*), coalesce(max(id), 0) FROM events WHERE state = ? "
                "AND updated <= ?",
                (state.value, cutoff),
            ).fetchone()
        return count, max_id, cutoff

    def purge(self, state: State, *, max_id: int, cutoff: float) -> int:
        """Delete rows in ``state`` last changed at or before ``cutoff``, with id <= max_id.

        The bounds come from :meth:`purge_plan`, so rows that arrive while the user
        confirms are never deleted.
        """
        if state is State.IN_FLIGHT:
            raise ValueError("in-flight rows are never purged")
        with self._write() as db:
            return db.execute(
                "DELETE FROM events WHERE state = ? AND updated <= ? AND id <= ?",
                (state.value, cutoff, max_id),
            ).rowcount


_INSERT = (
    "INSERT INTO events (dedup_key, payload, event_name, state, attempts, last_status, "
    "last_error_code, last_error_message, request_id, created, updated, next_attempt_at, "
    "source, source_line, destination_id) "
    "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
_REQUEUE = (
    "UPDATE events SET state = 'pending', attempts = 0, last_status = NULL, "
    "last_error_code = NULL, last_error_message = NULL, request_id = NULL, updated = ?, "
    "next_attempt_at = ?, source = ?, source_line = ?, destination_id = ? WHERE id = ?"
)


def _known_rows(db: sqlite3.Connection, keys: Sequence[str]) -> dict[str, OutboxRow]:
    """The rows already stored for these keys, by key.

    Looked up first, a chunk of keys per query: a refused INSERT would still use up an id
    (AUTOINCREMENT), and one query per chunk is much cheaper than one per event.
    """
    known: dict[str, OutboxRow] = {}
    for start in range(0, len(keys), _KEYS_PER_QUERY):
        part = keys[start : start + _KEYS_PER_QUERY]
        marks = ",".join("?" * len(part))
        for values in db.execute(
            f"SELECT {_COLUMNS} FROM events WHERE dedup_key IN ({marks})", part
        ):
            found = OutboxRow.from_db(values)
            known[found.dedup_key] = found
    return known


def _set_meta(db: sqlite3.Connection, values: Mapping[str, str]) -> None:
    for key, value in values.items():
        db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?) "
            "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            (key, value),
        )


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
    """Create the folder (0700) and an empty file (0600) when missing; never truncate."""
    if path.exists():
        if path.is_dir():
            raise OutboxError(f"the outbox {str(path)!r} is a folder, not a file")
        return
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
