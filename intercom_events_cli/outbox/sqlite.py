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
import sqlite3
import threading
import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

from ..config.outbox_path import DEFAULT_BUSY_TIMEOUT_S
from ..errors import OutboxError, OutboxMissing
from ..event import Event
from .owner import owner_is_gone
from .rows import COLUMNS, AddResult, BulkRow, OutboxRow, State
from .sql_destinations import SqlDestinations
from .sql_parts import ClaimRequest, pending_for
from .sqlite_bulk import (
    BULK_CACHE_KIB,
    BULK_CHECKPOINT_PAGES,
    LAST_ID,
    REQUEUE,
    first_of_each_key,
    insert_new,
    json_functions,
    known_rows,
    settle_known,
)
from .sqlite_file import (
    _MIGRATIONS,
    _SCHEMA,
    SCHEMA_VERSION,
    DataVersionWaker,
    _check_header,
    _create_private_file,
    check_owned_by_us,
    check_regular_file,
    check_same_file,
    file_identity,
    moved_from,
    switch_to_wal,
    translate_error,
    unknown_version,
)


class SqliteOutbox(SqlDestinations[sqlite3.Connection]):
    """The outbox file. Open with :meth:`SqliteOutbox.open`; use as a context manager.

    Settling, inspecting, managing and the destinations are :class:`SqlStore`'s.
    """

    _NO_LIMIT = -1

    def __init__(self, path: Path, connection: sqlite3.Connection, busy_timeout_s: float) -> None:
        self.path = path
        self._db = connection
        self._busy_timeout_s = busy_timeout_s
        self._lock = threading.RLock()
        self._bulk_ready = False
        self._json_chunks = True  # SQLite's JSON functions, checked at the first bulk capture
        # Claims and reads check that the path still names this file (check_same_file).
        self._identity = file_identity(path)

    def replaced(self) -> bool:
        """Whether the path names another file now than the one opened (moved, replaced)."""
        return moved_from(self.path, self._identity)

    def waker(self, stop: threading.Event) -> DataVersionWaker:
        """Wakes on other connections' commits to the file (``PRAGMA data_version``)."""
        return DataVersionWaker(self.path, stop)

    # -- opening --------------------------------------------------------------------------

    @classmethod
    def open(
        cls,
        path: str | Path,
        *,
        busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S,
        create: bool = True,
    ) -> SqliteOutbox:
        """Open (creating when missing: folder 0700, file 0600) and check the outbox.

        Raises :class:`OutboxError` for a locked, unreadable, corrupt or foreign file,
        which is never modified; with ``create=False``, :class:`OutboxMissing` when there
        is no file (nothing is created).
        """
        path = Path(path).expanduser()
        if not create and not path.exists():
            raise OutboxMissing(f"there is no outbox file {str(path)!r}")
        check_regular_file(path)
        check_owned_by_us(path)  # before creating anything in a folder someone else controls
        _create_private_file(path)
        check_owned_by_us(path)
        _check_header(path)
        try:
            connection = sqlite3.connect(
                str(path),
                timeout=busy_timeout_s,
                isolation_level=None,  # transactions are explicit (BEGIN IMMEDIATE)
                check_same_thread=False,  # guarded by SqliteOutbox._lock
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

    @classmethod
    def open_reader(
        cls, path: str | Path, *, busy_timeout_s: float = DEFAULT_BUSY_TIMEOUT_S
    ) -> SqliteOutbox:
        """A second connection, to read, to an outbox this process has open already.

        No checks of the file: reading it outside SQLite (its header) and closing it
        would drop every SQLite lock this process holds on it (POSIX locks belong to the
        process), and another connection could then delete the WAL under the first one.
        Not ``mode=ro`` either, which behaved as badly with a WAL file: ``rw``, which
        never creates the file. The path is made absolute, as a ``file:`` URI must be:
        a relative one is taken from the current directory, as the first connection's was.
        """
        path = Path(path).expanduser().absolute()
        try:
            connection = sqlite3.connect(
                f"{path.as_uri()}?mode=rw",
                uri=True,
                timeout=busy_timeout_s,
                isolation_level=None,
                check_same_thread=False,  # guarded by SqliteOutbox._lock
            )
        except sqlite3.Error as exc:
            raise translate_error(exc, path, busy_timeout_s) from None
        return cls(path, connection, busy_timeout_s)

    def _prepare(self) -> None:
        with self._guard():
            # One statement, so one snapshot: read apart, another process creating this
            # outbox could commit in between and its tables look like a foreign file's.
            version, tables = self._db.execute(
                "SELECT (SELECT user_version FROM pragma_user_version),"
                " (SELECT count(*) FROM sqlite_master WHERE type = 'table')"
            ).fetchone()
            if not 0 <= version <= SCHEMA_VERSION:
                raise unknown_version(self.path, version)
            if version == 0 and tables:
                raise self._foreign()
            # Only now is the file known to be ours and may be changed.
            mode = switch_to_wal(self._db, self._busy_timeout_s)
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
                    self._refuse_foreign()  # the write lock is held: nobody is creating it
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
            raise self._foreign()

    def _foreign(self) -> OutboxError:
        return OutboxError(
            f"{str(self.path)!r} is a SQLite database but not an ievents outbox; it was "
            "left untouched",
            hint="point --outbox / IEVENTS_OUTBOX at another file",
        )

    def close(self) -> None:
        """Close the connection."""
        with self._lock:
            self._db.close()

    def __enter__(self) -> SqliteOutbox:
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
                # Chained: --debug shows the SQLite error an unexpected failure came from.
                raise translate_error(exc, self.path, self._busy_timeout_s) from exc

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
            try:
                # Inside the try: an interrupt just after BEGIN still rolls back.
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except BaseException:
                self._rollback()
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        """One read transaction: a consistent snapshot across several queries."""
        check_same_file(self.path, self._identity)
        with self._guard():
            try:
                self._db.execute("BEGIN")
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
            known = known_rows(db, keys)
            inserted: dict[str, int] = {}
            for index, (event, key) in enumerate(zip(events, keys, strict=True)):
                line = source_lines[index] if source_lines is not None else None
                if key in inserted:  # the same event twice in one call
                    results.append(AddResult(inserted[key], State.PENDING, False))
                    continue
                row = known.get(key)
                if row is not None:
                    if resend and row.state in (State.DELIVERED, State.DEAD):
                        db.execute(REQUEUE, (stamp, due, source, line, destination_id, row.id))
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

    def queue_rows(
        self,
        rows: Sequence[BulkRow],
        *,
        source: str | None = None,
        requeue: Collection[State] = (),
        now: float | None = None,
        destination_id: int | None = None,
    ) -> tuple[int, int]:
        """Bulk capture in one transaction (one statement for a chunk of new events; see
        :mod:`.sqlite_bulk`): (stored, skipped), as :meth:`queue_many` says."""
        if not rows:
            return 0, 0
        stamp = time.time() if now is None else now
        unique = first_of_each_key(rows)
        # A batch runs for long: a file removed or moved aside meanwhile would take every
        # chunk after it, and the run would say they were stored. Checked before (nothing
        # more goes in) and after (this chunk went into the old file, not the path's).
        check_same_file(self.path, self._identity)
        with self._write() as db:
            self._for_bulk(db)
            last_id = db.execute(LAST_ID).fetchone()
            before = last_id[0] if last_id is not None else 0
            # Stored unless its key is there, no lookup first (see insert_new).
            stored, some_known = insert_new(
                db, unique, stamp, source, destination_id, as_json=self._json_chunks
            )
            if some_known:
                stored += settle_known(db, before, stamp, requeue, unique, source, destination_id)
        check_same_file(self.path, self._identity)
        return stored, len(rows) - stored

    def _for_bulk(self, db: sqlite3.Connection) -> None:
        """Settings for bulk capture on this connection; neither weakens durability.

        A page cache big enough for the de-duplication index: its keys are random, so
        each chunk touches most of its pages, which at SQLite's default 2 MiB are read
        again from the file for every chunk (memory: pages are taken as they are used).
        Checkpoints every 40 MiB of log rather than 4 MiB: each is two waits for the
        disk, and with that index one came after nearly every chunk. Every commit still
        waits for the log to be on disk (``synchronous=FULL``).
        """
        if not self._bulk_ready:
            self._json_chunks = json_functions(db)
            db.execute(f"PRAGMA cache_size = -{BULK_CACHE_KIB}")
            db.execute(f"PRAGMA wal_autocheckpoint = {BULK_CHECKPOINT_PAGES}")
            self._bulk_ready = True

    # -- claiming -------------------------------------------------------------------------

    def _claim(self, want: ClaimRequest) -> list[OutboxRow]:
        """Claim atomically (``BEGIN IMMEDIATE``), after taking back abandoned claims."""
        destination_id = want.destination_id
        check_same_file(self.path, self._identity)
        with self._write() as db:
            stamp, lease_until, due_until = want.times(self._clock(db))
            where, args = pending_for(destination_id, "<= ?", due_until)
            self._reclaim_abandoned(db, stamp)
            query = f"SELECT id FROM events WHERE {where} ORDER BY created, id LIMIT ?"
            ids = [row[0] for row in db.execute(query, (*args, want.limit))]
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
                f"updated = ?, claim_token = ? WHERE id IN ({marks})",
                (want.owner, lease_until, stamp, want.token, *ids),
            )
            rows = db.execute(
                f"SELECT {COLUMNS} FROM events WHERE id IN ({marks}) ORDER BY created, id", ids
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
            "claim_token = NULL, updated = ? WHERE state = 'in_flight' AND "
            "(lease_expires_at IS NULL OR lease_expires_at <= ? OR owner IS NULL)",
            (now, now),
        ).rowcount
        for owner in gone:
            reclaimed += db.execute(
                "UPDATE events SET state = 'pending', owner = NULL, lease_expires_at = NULL, "
                "claim_token = NULL, updated = ? WHERE state = 'in_flight' AND owner = ?",
                (now, owner),
            ).rowcount
        return reclaimed

    # -- the hooks of SqlStore ------------------------------------------------------------

    def _q(self, sql: str) -> str:
        return sql.replace("{s}.", "")

    def _where(self) -> Path:
        return self.path

    def _schema_version(self, db: sqlite3.Connection, meta: Mapping[str, str]) -> int:
        return int(db.execute("PRAGMA user_version").fetchone()[0])


_INSERT = (
    "INSERT INTO events (dedup_key, payload, event_name, state, attempts, last_status, "
    "last_error_code, last_error_message, request_id, created, updated, next_attempt_at, "
    "source, source_line, destination_id) "
    "VALUES (?, ?, ?, 'pending', ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
)
