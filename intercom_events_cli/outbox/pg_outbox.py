"""The outbox in PostgreSQL: shared by every host that can reach the database.

The same rows, states and rules as the SQLite file (:mod:`.sqlite`), in a schema of
its own (:mod:`.pg_schema`). What differs:

- Claims are ``SELECT ... FOR UPDATE SKIP LOCKED``: any number of flushers on any number
  of hosts take disjoint rows without waiting for each other.
- A dead claimer is recognised by its **backend**: the rows a connection claims carry its
  backend key (pid and start time, ``claim_session``), and a claimer whose backend is no
  longer in ``pg_stat_activity`` is gone (``kill -9``, a database restart): its rows are
  handed back at once. No other role can keep a backend listed. The lease
  (``lease_expires_at``, renewed by live flushers) stays as a second line (a lost host).
- Every time here is the database's clock (``clock_timestamp()``): hosts whose clocks
  disagree still agree on whose lease has ended and which row is due.
- Each claim carries a fencing token (``claim_token``): a result is written only while
  its row still carries the token of the claim it came from.
- New rows are announced with ``NOTIFY <schema>_events`` (sent on commit), which wakes
  ``ievents flush --watch``.
- Rows enqueued from SQL (``<schema>.enqueue(jsonb)``) arrive unvalidated: the claim
  validates them, turns a valid one into the canonical event (or drops it as a
  duplicate) and an invalid one into a dead letter with the reason.

A lost connection raises :class:`~.errors.OutboxUnavailable` (75); the next call
connects again (with a new session lock: rows held under the old one are free for
anyone to take back). Connecting, errors and the schema are :mod:`.pg_session`'s;
what both stores do alike is :mod:`.sql_store`'s.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Collection, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any

from ..errors import ValidationError
from ..event import Event, event_from_record
from .location import PostgresLocation
from .pg_session import (  # psycopg is imported there, with a clear error when missing
    ALIVE_CTE,
    BACKEND_ALIVE_SQL,
    PgSession,
    pg_errors,
)
from .rows import COLUMNS, AddResult, BulkRow, OutboxRow, State
from .sql_destinations import SqlDestinations
from .sql_parts import ANYONES, ClaimRequest

if TYPE_CHECKING:
    from psycopg import Cursor

# How often a claim looks for rows held by dead sessions or expired leases (each look
# costs a query per distinct foreign session).
RECLAIM_EVERY_S = 1.0
_COPY_COLUMNS = "(ord, dedup_key, payload, event_name, source_line)"
_RETURNING = ", ".join(f"e.{name.strip()}" for name in COLUMNS.split(","))


class PostgresOutbox(PgSession, SqlDestinations["Cursor[Any]"]):
    """The outbox in a PostgreSQL schema. Open with :meth:`open`; use as a context manager.

    Settling, inspecting, managing and the destinations are :class:`SqlStore`'s.
    """

    _CLEAR_CLAIM = "owner = NULL, lease_expires_at = NULL, claim_session = NULL, claim_token = NULL"
    _LOCK_ROWS = " FOR UPDATE"

    # -- connecting -------------------------------------------------------------------------

    @classmethod
    def open(cls, location: PostgresLocation, *, create: bool = True) -> PostgresOutbox:
        """Connect, create or migrate the schema, and take this session's claim lock.

        Raises :class:`OutboxUnavailable` (75) when the server cannot be reached now and
        :class:`OutboxError` (78) for anything that needs fixing (credentials, database,
        privileges, a schema made by a newer ievents or by someone else). With
        ``create=False`` a missing outbox is not created: :class:`OutboxMissing`.
        """
        store = cls(location)
        store.create_missing = create
        with store._lock:
            store._connection()
        with store._read() as cur:
            store._clock(cur)  # now() is the database's clock from the start
        return store

    def __enter__(self) -> PostgresOutbox:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # -- capturing --------------------------------------------------------------------------

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
        """Store one event as pending, unless the same event (dedup key) is already here.

        ``destination_id`` (from :meth:`bind`) is where it is to be delivered.
        """
        key = event.dedup_key()
        with self._tx() as cur:
            stamp = self._clock(cur) if now is None else now
            # Given on this store's clock (now()), as record() takes it: stored as is.
            due = stamp if next_attempt_at is None else next_attempt_at
            cur.execute(
                self._t(
                    "INSERT INTO {s}.events (dedup_key, payload, event_name, state, attempts, "
                    "last_status, last_error_code, last_error_message, request_id, created, "
                    "updated, next_attempt_at, destination_id) VALUES (%s, %s, %s, 'pending', %s, "
                    "%s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT (dedup_key) DO NOTHING "
                    "RETURNING id"
                ),
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
                    destination_id,
                ),
            )
            inserted = cur.fetchone()
            if inserted is not None:
                self._notify(cur)
                return AddResult(int(inserted[0]), State.PENDING, True)
            cur.execute(self._t(f"SELECT {COLUMNS} FROM {{s}}.events WHERE dedup_key = %s"), (key,))
            found = cur.fetchone()
        assert found is not None
        row = OutboxRow.from_db(found)
        return AddResult(row.id, row.state, False, row)

    def add_many(self, events: Iterable[Event], **options: Any) -> list[AddResult]:
        """Store several events as pending in one transaction (see :meth:`add`)."""
        with self._tx():  # each add nests in it (a savepoint)
            return [self.add(event, **options) for event in events]

    def queue_rows(
        self,
        rows: Sequence[BulkRow],
        *,
        source: str | None = None,
        requeue: Collection[State] = (),
        now: float | None = None,
        destination_id: int | None = None,
    ) -> tuple[int, int]:
        """Bulk capture with COPY in one transaction: (stored, skipped), as
        :meth:`queue_many` says."""
        if not rows:
            return 0, 0
        with self._tx() as cur:
            stamp = self._clock(cur) if now is None else now
            if not self._temp_ready:
                cur.execute(
                    "CREATE TEMP TABLE IF NOT EXISTS ievents_incoming (ord integer, "
                    "dedup_key text, payload text, event_name text, source_line bigint) "
                    "ON COMMIT DELETE ROWS"
                )
                self._temp_ready = True
            seen: set[str] = set()
            with cur.copy(f"COPY ievents_incoming {_COPY_COLUMNS} FROM STDIN") as copy:
                for index, (key, body, name, line) in enumerate(rows):
                    if key in seen:
                        continue
                    seen.add(key)
                    copy.write_row((index, key, body, name, line))
            stored = 0
            if requeue:
                cur.execute(
                    self._t(
                        "UPDATE {s}.events AS e SET state = 'pending', attempts = 0, "
                        "last_status = NULL, last_error_code = NULL, last_error_message = NULL, "
                        "request_id = NULL, updated = %s, next_attempt_at = %s, source = %s, "
                        "source_line = i.source_line, destination_id = %s "
                        "FROM ievents_incoming AS i "
                        "WHERE e.dedup_key = i.dedup_key AND e.state = ANY(%s)"
                    ),
                    (stamp, stamp, source, destination_id, [state.value for state in requeue]),
                )
                stored += max(cur.rowcount, 0)
            if source is not None:
                cur.execute(
                    self._t(
                        "UPDATE {s}.events AS e SET source = %s, source_line = i.source_line "
                        "FROM ievents_incoming AS i WHERE e.dedup_key = i.dedup_key "
                        "AND e.state IN ('pending', 'in_flight') "
                        "AND e.source IS DISTINCT FROM %s"
                    ),
                    (source, source),
                )
            cur.execute(
                self._t(
                    "INSERT INTO {s}.events (dedup_key, payload, event_name, state, created, "
                    "updated, next_attempt_at, source, source_line, destination_id) SELECT "
                    "dedup_key, payload, event_name, 'pending', %s, %s, %s, %s, source_line, %s "
                    "FROM ievents_incoming ORDER BY ord ON CONFLICT (dedup_key) DO NOTHING"
                ),
                (stamp, stamp, stamp, source, destination_id),
            )
            stored += max(cur.rowcount, 0)
            if stored:
                self._notify(cur)
        return stored, len(rows) - stored

    # -- claiming ---------------------------------------------------------------------------

    def _claim(self, want: ClaimRequest) -> list[OutboxRow]:
        """Claim skipping rows other claimers hold; rows enqueued from SQL are validated
        on the way (bound by this claim: said so, as the SQLite store does)."""
        only = (
            "" if want.destination_id is None else f"AND (destination_id = %(dest)s OR {ANYONES}) "
        )
        claimed: list[OutboxRow] = []
        refused: list[OutboxRow] = []
        with self._tx() as cur:
            stamp, lease_until, due_until = want.times(self._clock(cur))
            if time.monotonic() - self._last_reclaim >= RECLAIM_EVERY_S:
                self._reclaim_abandoned(cur, stamp)
                self._last_reclaim = time.monotonic()
            # Rows dropped by validation (invalid, duplicate) leave room: look again.
            for _ in range(10):
                wanted = want.limit - len(claimed)
                if wanted <= 0:
                    break
                cur.execute(
                    self._t(
                        "WITH picked AS (SELECT id, destination_id AS was FROM {s}.events "
                        "WHERE state = 'pending' AND next_attempt_at <= %(due)s "
                        + only
                        + "ORDER BY created, id LIMIT %(limit)s FOR UPDATE SKIP LOCKED) "
                        "UPDATE {s}.events AS e SET state = 'in_flight', owner = %(owner)s, "
                        "lease_expires_at = %(lease)s, updated = %(now)s, "
                        "claim_session = %(session)s, claim_token = %(token)s, "
                        "destination_id = coalesce(e.destination_id, %(dest)s) "
                        "FROM picked WHERE e.id = picked.id "
                        "RETURNING picked.was IS NULL, e.validated, " + _RETURNING
                    ),
                    {
                        "due": due_until,
                        "limit": wanted,
                        "owner": want.owner,
                        "token": want.token,
                        "lease": lease_until,
                        "now": stamp,
                        "session": self._session,
                        "dest": want.destination_id,
                    },
                )
                found = cur.fetchall()
                if not found:
                    break
                dropped = False
                for values in found:
                    row = OutboxRow.from_db(values[2:])
                    if values[0]:
                        row = dataclasses.replace(row, destination_id=None)
                    if not values[1]:
                        checked = self._validate(cur, row, stamp, refused)
                        if checked is None:
                            dropped = True
                            continue
                        row = checked
                    claimed.append(row)
                if not dropped:
                    break
        # Committed: the engine reports them (a run that makes dead letters says so).
        self._note_refused(refused)
        claimed.sort(key=lambda r: (r.created, r.id))
        return claimed

    def _validate(
        self, cur: Cursor[Any], row: OutboxRow, now: float, refused: list[OutboxRow]
    ) -> OutboxRow | None:
        """A row enqueued from SQL: the canonical event, or None (dead letter / duplicate);
        a dead letter is added to ``refused``."""
        try:
            data = json.loads(row.payload_text)
            event = event_from_record(data)
        except (ValueError, ValidationError) as exc:
            message = exc.message if isinstance(exc, ValidationError) else f"not JSON: {exc}"
            reason = f"refused before delivery: {message}"
            refused.append(
                dataclasses.replace(
                    row,
                    state=State.DEAD,
                    owner=None,
                    lease_expires_at=None,
                    last_status=None,
                    last_error_code="invalid_event",
                    last_error_message=reason,
                    updated=now,
                )
            )
            cur.execute(
                self._t(
                    "UPDATE {s}.events SET state = 'dead', validated = true, owner = NULL, "
                    "lease_expires_at = NULL, claim_session = NULL, claim_token = NULL, "
                    "last_status = NULL, "
                    "last_error_code = 'invalid_event', last_error_message = %s, updated = %s "
                    "WHERE id = %s"
                ),
                (reason, now, row.id),
            )
            return None
        key = event.dedup_key()
        body = event.body().decode()
        try:
            with cur.connection.transaction():  # a savepoint: a duplicate undoes only this
                cur.execute(
                    self._t(
                        "UPDATE {s}.events SET dedup_key = %s, payload = %s, event_name = %s, "
                        "validated = true WHERE id = %s"
                    ),
                    (key, body, event.event_name, row.id),
                )
        except pg_errors.UniqueViolation:
            # The same event is already in the outbox: one row per event, as on capture.
            cur.execute(self._t("DELETE FROM {s}.events WHERE id = %s"), (row.id,))
            return None
        return OutboxRow(
            **{
                **row.__dict__,
                "dedup_key": key,
                "payload_text": body,
                "event_name": event.event_name,
            }
        )

    def _reclaim_abandoned(self, cur: Cursor[Any], now: float) -> int:
        """Rows of expired leases, and of claimers whose backend is gone (see pg_session)."""
        cur.execute(
            self._t(
                ALIVE_CTE + f"UPDATE {{s}}.events AS e SET state = 'pending', {self._CLEAR_CLAIM}, "
                "updated = %s WHERE state = 'in_flight' AND (lease_expires_at IS NULL "
                "OR lease_expires_at <= %s OR owner IS NULL OR (claim_session IS NOT NULL "
                "AND claim_session IS DISTINCT FROM %s AND NOT "
                + BACKEND_ALIVE_SQL.format(k="e.claim_session")
                + "))"
            ),
            (now, now, self._session),
        )
        return max(cur.rowcount, 0)

    # -- the hooks of SqlStore ------------------------------------------------------------

    def _q(self, sql: str) -> str:
        return sql.replace("{s}", self.schema).replace("?", "%s")

    def _write(self) -> AbstractContextManager[Cursor[Any]]:
        return self._tx()

    def _read(self) -> AbstractContextManager[Cursor[Any]]:
        return self._tx()

    def _where(self) -> PostgresLocation:
        return self._location

    def _schema_version(self, db: Cursor[Any], meta: Mapping[str, str]) -> int:
        return int(meta.get("schema_version", 0))

    def _snapshot(self, db: Cursor[Any]) -> None:
        db.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")

    def _clock(self, db: Cursor[Any]) -> float:
        # The database's clock, shared by every relay; this host's offset from it is kept
        # for now(), so that the engine's own times (backoffs) are on the same clock.
        before = time.time()
        db.execute("SELECT extract(epoch FROM clock_timestamp())::double precision")
        found = db.fetchone()
        after = time.time()
        assert found is not None
        stamp = float(found[0])
        self._offset = stamp - (before + after) / 2
        return stamp

    def now(self) -> float:
        """The database's clock, as last measured against this host's (no round trip).

        Never earlier than a reading it gave before: each measure of the offset is off by
        up to half a round trip, which must not move the engine's clock backwards.
        """
        reading = max(time.time() + self._offset, self._last_now)
        self._last_now = reading
        return reading

    def _claim_marks(self) -> tuple[str, tuple[Any, ...]]:
        # A renewed claim is stamped with this connection's lock, which may be new.
        return ", claim_session = ?", (self._session,)
