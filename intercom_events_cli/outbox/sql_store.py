"""What both outbox stores do alike, written once: settling claimed rows, inspecting the
outbox and managing it.

The SQLite file (:mod:`.sqlite`) and the PostgreSQL schema (:mod:`.pg_outbox`) hold the
same tables with the same columns, so most of their statements are the same text. Those
are written here once, in a neutral form (tables as ``{s}.events``, parameters as ``?``);
each store turns it into its dialect (:meth:`SqlStore._q`) and runs it in its own
transactions (:meth:`SqlStore._write`, :meth:`SqlStore._read`). What truly differs
(opening, capture, claims, taking back abandoned claims) stays in each store; the
destinations are :mod:`.sql_destinations`'.
"""

from __future__ import annotations

import time
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Generic, cast

from ..delivery.destination import Destination
from .owner import DEFAULT_LEASE_S
from .rows import (
    COLUMNS,
    BulkRow,
    OutboxRow,
    OutboxSummary,
    RowResult,
    State,
    bulk_rows,
    iter_pages,
)
from .sql_parts import (
    ClaimRequest,
    H,
    Rows,
    chunks,
    marks,
    meta_number,
    new_claim_token,
    pending_for,
)

if TYPE_CHECKING:
    from ..event import Event
    from .store import OutboxLocation

# How every statement that records a delivery begins (its first parameter: the time).
_DELIVERED = "UPDATE {s}.events SET updated = ?, state = 'delivered', "


class SqlStore(Generic[H]):
    """The statements both stores share; a store supplies the hooks below."""

    # The columns that say who holds a row, as cleared when the row is let go.
    _CLEAR_CLAIM = "owner = NULL, lease_expires_at = NULL, claim_token = NULL"
    # LIMIT's "no limit".
    _NO_LIMIT: int | None = None
    # What a SELECT adds to lock the rows it reads until the end of the transaction.
    _LOCK_ROWS = ""

    def replaced(self) -> bool:
        """Whether the location names another outbox now (a database stays the same one)."""
        return False

    # -- hooks ------------------------------------------------------------------------------

    def _q(self, sql: str) -> str:
        """The neutral ``sql`` in this store's dialect."""
        raise NotImplementedError

    def _write(self) -> AbstractContextManager[H]:
        """One write transaction."""
        raise NotImplementedError

    def _read(self) -> AbstractContextManager[H]:
        """One read transaction."""
        raise NotImplementedError

    def _where(self) -> OutboxLocation:
        """Where the outbox is, for :class:`OutboxSummary`."""
        raise NotImplementedError

    def _schema_version(self, db: H, meta: Mapping[str, str]) -> int:
        """The version of the tables."""
        raise NotImplementedError

    def _snapshot(self, db: H) -> None:
        """Make the read transaction just begun one consistent snapshot."""

    def _notify(self, db: H) -> None:
        """Tell waiting flushers that rows became due (at commit); nothing by default."""

    def _claim(self, want: ClaimRequest) -> list[OutboxRow]:
        """Claim the rows ``want`` asks for (see :meth:`claim`), in one transaction."""
        raise NotImplementedError

    def _claim_marks(self) -> tuple[str, tuple[Any, ...]]:
        """Columns (and values) a renewed claim sets beside its lease; none by default."""
        return "", ()

    def _clock(self, db: H) -> float:
        """Now, in Unix seconds, by the clock every claimer of this outbox shares.

        One file on one host: the host's clock. A shared database overrides this with its own.
        """
        return time.time()

    def now(self) -> float:
        """This store's idea of now (the clock of :meth:`_clock`), without a round trip."""
        return time.time()

    # -- plumbing ---------------------------------------------------------------------------

    def _run(self, db: H, sql: str, args: Sequence[Any] = ()) -> Rows:
        return db.execute(self._q(sql), tuple(args))

    def _changed(self, db: H, sql: str, args: Sequence[Any] = ()) -> int:
        return max(self._run(db, sql, args).rowcount, 0)

    def _set_meta(self, db: H, values: Mapping[str, str]) -> None:
        for key, value in values.items():
            self._run(
                db,
                "INSERT INTO {s}.meta (key, value) VALUES (?, ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (key, value),
            )

    # -- capture ----------------------------------------------------------------------------

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
        """Bulk capture in one transaction: (stored, skipped), no row ids.

        An event already here is skipped unless its state is in ``requeue`` (then made
        pending again, for ``destination_id``). One already pending or in flight is adopted
        by ``source``: its row names this source and line, so that the run answers for it.
        The same event twice in ``events`` is stored once (its first line).
        """
        return self.queue_rows(
            bulk_rows(events, source_lines),
            source=source,
            requeue=requeue,
            now=now,
            destination_id=destination_id,
        )

    def queue_rows(
        self,
        rows: Sequence[BulkRow],
        *,
        source: str | None = None,
        requeue: Collection[State] = (),
        now: float | None = None,
        destination_id: int | None = None,
    ) -> tuple[int, int]:
        """:meth:`queue_many` of rows already made (each store writes its own)."""
        raise NotImplementedError

    # -- delivery ---------------------------------------------------------------------------

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
        """Claim up to ``limit`` due pending rows, oldest capture first.

        Claims left by a process that is gone (or whose lease expired) are taken back
        first. With ``destination_id`` only rows bound to it and unbound rows are claimed,
        and the unbound ones are bound to it; those come back with ``destination_id`` None,
        so that a row Intercom never answered (a rejected token, a stop) can be unbound
        again (``RowResult.unbind``). ``due_or_not`` also claims rows whose next attempt is
        later (the probe after an outage).
        """
        return self._claim(
            ClaimRequest(owner, limit, now, lease_s, due_or_not, destination_id, new_claim_token())
        )

    def make_all_due(self, *, now: float | None = None, destination_id: int | None = None) -> int:
        """Bring pending rows' next attempt forward to now (``flush --now``, a probe's success).

        With ``destination_id``: only its rows and unbound ones.
        """
        with self._write() as db:
            stamp = self._clock(db) if now is None else now
            where, args = pending_for(destination_id, "> ?", stamp)
            count = self._changed(
                db, f"UPDATE {{s}}.events SET next_attempt_at = ? WHERE {where}", (stamp, *args)
            )
            if count:
                self._notify(db)
            return count

    def renew(self, owner: str, *, lease_s: float = DEFAULT_LEASE_S) -> list[int]:
        """Extend the lease of every row ``owner`` still holds; returns their ids.

        A row missing from the answer was taken back (its lease ran out while the owner
        was stopped or cut off): the owner must not send it.
        """
        more, args = self._claim_marks()
        with self._write() as db:
            stamp = self._clock(db)
            found = self._run(
                db,
                f"UPDATE {{s}}.events SET lease_expires_at = ?{more} "
                "WHERE state = 'in_flight' AND owner = ? RETURNING id",
                (stamp + lease_s, *args, owner),
            ).fetchall()
        return [int(row[0]) for row in found]

    def release(self, owner: str, ids: Sequence[int] | None = None) -> int:
        """Hand rows claimed by ``owner`` back to pending, unsent (all, or ``ids``)."""
        query = (
            f"UPDATE {{s}}.events SET state = 'pending', {self._CLEAR_CLAIM}, updated = ? "
            "WHERE state = 'in_flight' AND owner = ?"
        )
        with self._write() as db:
            stamp = self._clock(db)
            if ids is None:
                count = self._changed(db, query, (stamp, owner))
            else:
                count = sum(
                    self._changed(db, f"{query} AND id IN ({marks(part)})", (stamp, owner, *part))
                    for part in chunks(list(ids))
                )
            if count:
                self._notify(db)
            return count

    def record(self, owner: str, results: Sequence[RowResult], *, now: float | None = None) -> int:
        """Write the results of delivery attempts in one transaction; returns rows changed.

        A result that names its claim (``claim_token``) is written only while the row still
        carries that claim: a stale sender's results are ignored. A delivery is also
        recorded on a row that is pending again (nobody else holds it, and it happened);
        any other result only while ``owner`` still holds the row.
        """
        if not results:
            return 0
        # One statement per kind of result, run once for all its rows (executemany): a
        # flush settles hundreds of rows a second, and a statement per row cost most of
        # the engine's own time. The fence stays per row (each row's own claim_token).
        batches: dict[str, list[tuple[Any, ...]]] = {}
        for result in results:
            sql, params = self._settle(owner, result)
            batches.setdefault(sql, []).append(params)
        changed = 0
        delivered = False
        with self._write() as db:
            stamp = self._clock(db) if now is None else now
            for sql, rows in batches.items():
                count = self._changed_many(db, sql, [(stamp, *row) for row in rows])
                changed += count
                delivered = delivered or (sql.startswith(_DELIVERED) and count > 0)
            if delivered:
                self._set_meta(db, {"last_success_at": repr(stamp)})
        return changed

    def _changed_many(self, db: H, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """Run ``sql`` once per row of parameters; returns the rows changed in all."""
        if len(rows) == 1:
            return self._changed(db, sql, rows[0])
        cursor = db.executemany(self._q(sql), rows)
        # sqlite3 hands back a cursor; a psycopg cursor returns None and counts itself.
        counted = cast("Rows", db) if cursor is None else cursor
        return max(counted.rowcount, 0)

    def _settle(self, owner: str, result: RowResult) -> tuple[str, tuple[Any, ...]]:
        """The statement that writes one result, and its parameters without the time.

        The time (the transaction's clock) goes in first, before these parameters.
        """
        clear = self._CLEAR_CLAIM
        token = result.claim_token
        fence, fenced = ("", ()) if token is None else (" AND claim_token = ?", (token,))
        if result.state is State.DELIVERED:
            where = (
                "(state = 'pending' OR (state = 'in_flight' AND claim_token = ?))"
                if token is not None
                else "state IN ('in_flight', 'pending')"
            )
            return (
                f"{_DELIVERED}last_status = ?, "
                "attempts = attempts + ?, last_error_code = NULL, last_error_message = NULL, "
                f"request_id = ?, {clear} WHERE id = ? AND {where}",
                (
                    result.status,
                    1 if result.counts_attempt else 0,
                    result.request_id,
                    result.row_id,
                    *fenced,
                ),
            )
        held = (result.next_attempt_at, result.unbind, result.row_id, owner, *fenced)
        tail = (
            "next_attempt_at = COALESCE(?, next_attempt_at), "
            "destination_id = CASE WHEN ? THEN NULL ELSE destination_id END "
            f"WHERE id = ? AND state = 'in_flight' AND owner = ?{fence}"
        )
        if not result.counts_attempt:
            return (
                f"UPDATE {{s}}.events SET updated = ?, state = ?, {clear}, {tail}",
                (result.state.value, *held),
            )
        return (
            "UPDATE {s}.events SET updated = ?, state = ?, attempts = attempts + 1, "
            "last_status = ?, last_error_code = ?, last_error_message = ?, request_id = ?, "
            f"{clear}, {tail}",
            (
                result.state.value,
                result.status,
                result.error_code,
                result.error_message,
                result.request_id,
                *held,
            ),
        )

    def note_flush(
        self,
        exit_code: int,
        *,
        now: float | None = None,
        relay: bool = False,
        relay_stopped: bool = False,
    ) -> None:
        """Remember when a flush last finished and how (the heartbeat of ``status``).

        ``relay``: a running relay's heartbeat (``flush --watch``), also kept on its own;
        ``relay_stopped``: a relay's clean stop, so that ``status`` does not call it alive.
        """
        with self._write() as db:
            stamp = self._clock(db) if now is None else now
            values = {"last_flush_at": repr(stamp), "last_flush_exit_code": str(exit_code)}
            if relay:
                values["relay_heartbeat_at"] = repr(stamp)
            if relay_stopped:
                values["relay_stopped_at"] = repr(stamp)
            self._set_meta(db, values)

    def take_refused(self) -> list[OutboxRow]:
        """The rows claims made dead letters since the last call, without sending them
        (rows enqueued from SQL that failed validation), as they now are."""
        refused: list[OutboxRow] = self.__dict__.pop("_refused_rows", [])
        return refused

    def _note_refused(self, rows: Sequence[OutboxRow]) -> None:
        """Keep rows a committed claim refused, for :meth:`take_refused`."""
        if rows:
            self.__dict__.setdefault("_refused_rows", []).extend(rows)

    # -- inspecting -------------------------------------------------------------------------

    def summary(self) -> OutboxSummary:
        """Counts per state, the oldest pending capture and the heartbeat times."""
        with self._read() as db:
            self._snapshot(db)
            counts = {state: 0 for state in State}
            for state, count in self._run(
                db, "SELECT state, count(*) FROM {s}.events GROUP BY state"
            ).fetchall():
                counts[State(state)] = int(count)
            found = self._run(
                db,
                "SELECT min(created), min(next_attempt_at) FROM {s}.events "
                "WHERE state IN ('pending', 'in_flight')",
            ).fetchone()
            oldest, next_at = found if found else (None, None)
            meta = dict(self._run(db, "SELECT key, value FROM {s}.meta").fetchall())
            version = self._schema_version(db, meta)
            per_destination = tuple(
                (Destination(*row[:5]) if row[0] is not None else None, int(row[5]))
                for row in self._run(
                    db,
                    "SELECT d.base_url, d.api_version, d.token_fingerprint, d.token_hint, "
                    "d.workspace_id, count(*) FROM {s}.events e LEFT JOIN {s}.destinations d "
                    "ON d.id = e.destination_id WHERE e.state IN ('pending', 'in_flight') "
                    "GROUP BY e.destination_id, d.id ORDER BY count(*) DESC, e.destination_id",
                ).fetchall()
            )
        exit_code = meta_number(meta, "last_flush_exit_code")
        return OutboxSummary(
            path=self._where(),
            schema_version=version,
            counts=counts,
            oldest_pending_created=oldest,
            next_attempt_at=next_at,
            last_flush_at=meta_number(meta, "last_flush_at"),
            last_flush_exit_code=None if exit_code is None else int(exit_code),
            last_success_at=meta_number(meta, "last_success_at"),
            pending_by_destination=per_destination,
            relay_heartbeat_at=meta_number(meta, "relay_heartbeat_at"),
            relay_stopped_at=meta_number(meta, "relay_stopped_at"),
        )

    def rows(
        self, states: Iterable[State], *, limit: int | None = None, after_id: int = 0
    ) -> list[OutboxRow]:
        """Rows in ``states``, by id (capture order), from ``after_id`` on."""
        wanted = [state.value for state in states]
        if not wanted:
            return []
        with self._read() as db:
            found = self._run(
                db,
                f"SELECT {COLUMNS} FROM {{s}}.events WHERE state IN ({marks(wanted)}) "
                "AND id > ? ORDER BY id LIMIT ?",
                (*wanted, after_id, self._NO_LIMIT if limit is None else limit),
            ).fetchall()
        return [OutboxRow.from_db(values) for values in found]

    def iter_rows(self, states: Iterable[State], *, page: int = 500) -> Iterator[OutboxRow]:
        """Every row in ``states`` by id, read page by page (no lock held in between)."""
        return iter_pages(
            lambda wanted, limit, after: self.rows(wanted, limit=limit, after_id=after),
            states,
            page,
        )

    # -- managing ---------------------------------------------------------------------------

    def retry_dead(self, ids: Sequence[int] | None = None) -> tuple[list[int], list[int]]:
        """Move dead rows back to pending, due now: all, or ``ids``.

        Returns (ids moved, ids named that are not dead letters).
        """
        dead = "SELECT id FROM {s}.events WHERE state = 'dead'"
        with self._write() as db:
            stamp = self._clock(db)
            if ids is None:
                found = self._run(db, dead + self._LOCK_ROWS).fetchall()
                moved = sorted(int(r[0]) for r in found)
                missing: list[int] = []
            else:
                wanted = list(dict.fromkeys(ids))
                named = {
                    int(r[0])
                    for part in chunks(wanted)
                    for r in self._run(
                        db, f"{dead} AND id IN ({marks(part)}){self._LOCK_ROWS}", part
                    ).fetchall()
                }
                moved = [i for i in wanted if i in named]
                missing = [i for i in wanted if i not in named]
            for part in chunks(moved):
                self._run(
                    db,
                    "UPDATE {s}.events SET state = 'pending', next_attempt_at = ?, updated = ? "
                    f"WHERE id IN ({marks(part)})",
                    (stamp, stamp, *part),
                )
            if moved:
                self._notify(db)
        return moved, missing

    def purge_plan(
        self, state: State, *, older_than_s: float | None = None, now: float | None = None
    ) -> tuple[int, int, float]:
        """(how many rows :meth:`purge` would delete, the id bound, the time cutoff)."""
        if state is State.IN_FLIGHT:
            raise ValueError("in-flight rows are never purged")
        with self._read() as db:
            stamp = self._clock(db) if now is None else now
            cutoff = stamp - older_than_s if older_than_s is not None else float("inf")
            found = self._run(
                db,
                "SELECT count(*), coalesce(max(id), 0) FROM {s}.events WHERE state = ? "
                "AND updated <= ?",
                (state.value, cutoff),
            ).fetchone()
        return int(found[0]), int(found[1]), cutoff

    def purge(self, state: State, *, max_id: int, cutoff: float) -> int:
        """Delete rows in ``state`` last changed at or before ``cutoff``, with id <= max_id.

        The bounds come from :meth:`purge_plan`, so rows that arrive while the user
        confirms are never deleted.
        """
        if state is State.IN_FLIGHT:
            raise ValueError("in-flight rows are never purged")
        with self._write() as db:
            return self._changed(
                db,
                "DELETE FROM {s}.events WHERE state = ? AND updated <= ? AND id <= ?",
                (state.value, cutoff, max_id),
            )
