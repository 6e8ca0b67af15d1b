"""The destinations of an outbox, for both stores (see
:mod:`..delivery.destination`).

Each event is bound at capture to where it is to be delivered; a destination whose last
attempt failed starts the next run with a probe. The statements are the neutral ones of
:mod:`.sql_store`, so the SQLite file and the PostgreSQL schema keep them alike.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import TYPE_CHECKING

from ..delivery.destination import FINGERPRINT_KEY_BYTES, Destination
from .rows import State
from .sql_parts import ANYONES, H, pending_for
from .sql_store import SqlStore

if TYPE_CHECKING:
    from ..config.settings import Settings

_UNDELIVERED = "state IN ('pending', 'in_flight')"


class SqlDestinations(SqlStore[H]):
    """Binding, probes' bookkeeping and the counts per destination."""

    def bind(self, settings: Settings) -> int:
        """The id of the destination ``settings`` deliver to (stored when new).

        Once the token's workspace is known (:meth:`learn`), that is the workspace's
        destination, shared by every token of it; before, the token's own row. The
        outbox's fingerprint key is made on first use (32 random bytes in ``meta``); two
        processes binding at once agree on one key and one row.
        """
        with self._write() as db:
            token_id, workspace = self._token_row(db, settings)
            if workspace is None:
                return token_id
            return self._workspace_row(db, token_id, workspace)

    def token_workspace(self, settings: Settings) -> str | None:
        """The workspace id learned for the token of ``settings``, or None (not yet)."""
        with self._write() as db:
            return self._token_row(db, settings)[1]

    def learn(self, settings: Settings, workspace_id: str, name: str | None = None) -> int:
        """Remember that the token of ``settings`` belongs to ``workspace_id`` (from GET
        /me); returns the workspace's destination id.

        Every event bound to another token of the same workspace (same API host) is
        bound to the workspace's destination: a rotated token delivers what the old one
        captured, with no command.
        """
        with self._write() as db:
            token_id, _ = self._token_row(db, settings)
            self._run(
                db,
                "UPDATE {s}.destinations SET workspace_id = ? WHERE id = ?",
                (workspace_id, token_id),
            )
            target = self._workspace_row(db, token_id, workspace_id)
            if name:
                self._run(
                    db,
                    "INSERT INTO {s}.workspace_names (name, workspace_id) VALUES (?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET workspace_id = excluded.workspace_id",
                    (name, workspace_id),
                )
            # Rows enqueued from SQL for this workspace (by id or by this name) waited.
            self._changed(
                db,
                "UPDATE {s}.events SET destination_id = ?, workspace = ? WHERE "
                "destination_id IS NULL AND (workspace = ? OR workspace = ?)",
                (target, workspace_id, workspace_id, name or workspace_id),
            )
            moved = self._changed(
                db,
                "UPDATE {s}.events SET destination_id = ? WHERE destination_id IN "
                "(SELECT d.id FROM {s}.destinations d, {s}.destinations w WHERE w.id = ? "
                "AND d.base_url = w.base_url AND d.workspace_id = w.workspace_id "
                "AND d.id <> ?)",
                (target, target, target),
            )
            if moved:
                self._notify(db)
        return target

    def set_default_workspace(self, workspace_id: str) -> int:
        """Make ``workspace_id`` the schema's default: SQL-enqueued rows that name no
        workspace go there (those waiting too); returns how many waiting rows it took."""
        with self._write() as db:
            self._run(
                db,
                "INSERT INTO {s}.meta (key, value) VALUES ('default_workspace', ?) "
                "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (workspace_id,),
            )
            target = self._run(
                db, "SELECT min(id) FROM {s}.destinations WHERE workspace_id = ?", (workspace_id,)
            ).fetchone()[0]
            taken = self._changed(
                db,
                "UPDATE {s}.events SET workspace = ?, destination_id = ? WHERE "
                "destination_id IS NULL AND workspace IS NULL AND source = 'sql'",
                (workspace_id, target),
            )
            if taken:
                self._notify(db)
        return taken

    def move(
        self, from_ids: Sequence[int], to_id: int, state: State, *, dry_run: bool = False
    ) -> int:
        """Bind the rows in ``state`` of the destinations ``from_ids`` to ``to_id``
        (``dry_run``: only count them); returns how many."""
        ids = [i for i in from_ids if i != to_id]
        if not ids:
            return 0
        marks = ", ".join("?" for _ in ids)
        where = f"destination_id IN ({marks}) AND state = ?"
        with self._write() as db:
            if dry_run:
                found = self._run(
                    db, f"SELECT count(*) FROM {{s}}.events WHERE {where}", (*ids, state.value)
                ).fetchone()
                return int(found[0])
            moved = self._changed(
                db,
                f"UPDATE {{s}}.events SET destination_id = ? WHERE {where}",
                (to_id, *ids, state.value),
            )
            if moved:
                self._notify(db)
        return moved

    def default_workspace(self) -> str | None:
        """The schema's default workspace for SQL-enqueued rows, or None."""
        with self._read() as db:
            row = self._run(
                db, "SELECT value FROM {s}.meta WHERE key = 'default_workspace'"
            ).fetchone()
        return str(row[0]) if row else None

    def waiting_for_workspace(self) -> list[tuple[str | None, int]]:
        """Undelivered rows no token can take yet: by the workspace they name (None: none
        named and no default set), with their counts."""
        with self._read() as db:
            found = self._run(
                db,
                "SELECT workspace, count(*) FROM {s}.events WHERE destination_id IS NULL "
                f"AND {_UNDELIVERED} AND NOT {ANYONES} GROUP BY workspace "
                "ORDER BY count(*) DESC, workspace",
            ).fetchall()
        return [(r[0], int(r[1])) for r in found]

    def _token_row(self, db: H, settings: Settings) -> tuple[int, str | None]:
        """(id, workspace id or None) of the token's destination row, made when new."""
        self._run(
            db,
            "INSERT INTO {s}.meta (key, value) VALUES ('fingerprint_key', ?) "
            "ON CONFLICT (key) DO NOTHING",
            (os.urandom(FINGERPRINT_KEY_BYTES).hex(),),
        )
        key = self._run(db, "SELECT value FROM {s}.meta WHERE key = 'fingerprint_key'").fetchone()
        target = Destination.of(settings, bytes.fromhex(key[0]))
        identity = (target.base_url, target.api_version, target.token_fingerprint)
        self._run(
            db,
            "INSERT INTO {s}.destinations (base_url, api_version, token_fingerprint, "
            "token_hint) VALUES (?, ?, ?, ?) ON CONFLICT (base_url, api_version, "
            "token_fingerprint) DO NOTHING",
            (*identity, target.token_hint),
        )
        row = self._run(
            db,
            "SELECT id, workspace_id FROM {s}.destinations WHERE base_url = ? "
            "AND api_version = ? AND token_fingerprint = ?",
            identity,
        ).fetchone()
        return int(row[0]), row[1]

    def _workspace_row(self, db: H, token_id: int, workspace_id: str) -> int:
        """The workspace's destination: its first token row on the same API host."""
        row = self._run(
            db,
            "SELECT min(d.id) FROM {s}.destinations d, {s}.destinations t WHERE t.id = ? "
            "AND d.base_url = t.base_url AND d.workspace_id = ?",
            (token_id, workspace_id),
        ).fetchone()
        return int(row[0]) if row and row[0] is not None else token_id

    def destinations(self) -> dict[int, Destination]:
        """Every known destination by id."""
        with self._read() as db:
            found = self._run(
                db,
                "SELECT id, base_url, api_version, token_fingerprint, token_hint, workspace_id "
                "FROM {s}.destinations",
            ).fetchall()
        return {int(r[0]): Destination(*r[1:6]) for r in found}

    def waiting_elsewhere(self, destination_id: int) -> list[tuple[Destination, int]]:
        """Events not delivered that are bound to other destinations, with their counts."""
        with self._read() as db:
            found = self._run(
                db,
                "SELECT d.base_url, d.api_version, d.token_fingerprint, d.token_hint, "
                "d.workspace_id, count(*) FROM {s}.events e JOIN {s}.destinations d "
                f"ON d.id = e.destination_id WHERE e.{_UNDELIVERED} "
                "AND e.destination_id <> ? GROUP BY d.id ORDER BY count(*) DESC, d.id",
                (destination_id,),
            ).fetchall()
        return [(Destination(*r[:5]), int(r[5])) for r in found]

    def count_undelivered(self, source: str) -> tuple[int, int]:
        """(pending or in flight, of which in flight) among the rows of ``source``."""
        with self._read() as db:
            found = self._run(
                db,
                "SELECT count(*), coalesce(sum(CASE WHEN state = 'in_flight' THEN 1 ELSE 0 "
                f"END), 0) FROM {{s}}.events WHERE source = ? AND {_UNDELIVERED}",
                (source,),
            ).fetchone()
        return int(found[0]), int(found[1])

    def count_due(self, destination_id: int | None, *, now: float | None = None) -> int:
        """Pending events due now for this destination (and unbound ones)."""
        with self._read() as db:
            stamp = self._clock(db) if now is None else now
            where, args = pending_for(destination_id, "<= ?", stamp)
            found = self._run(
                db, f"SELECT count(*) FROM {{s}}.events WHERE {where}", args
            ).fetchone()
        return int(found[0]) if found else 0

    def is_failing(self, destination_id: int) -> bool:
        """True when the last delivery attempt for this destination failed temporarily."""
        with self._read() as db:
            row = self._run(
                db, "SELECT failing_since FROM {s}.destinations WHERE id = ?", (destination_id,)
            ).fetchone()
        return row is not None and row[0] is not None

    def note_destination(self, destination_id: int, *, up: bool, now: float | None = None) -> None:
        """Remember whether Intercom answered (``up``) or failed temporarily for it."""
        with self._write() as db:
            stamp = self._clock(db) if now is None else now
            if up:
                self._run(
                    db,
                    "UPDATE {s}.destinations SET failing_since = NULL, last_success_at = ? "
                    "WHERE id = ?",
                    (stamp, destination_id),
                )
            else:
                self._run(
                    db,
                    "UPDATE {s}.destinations SET failing_since = coalesce(failing_since, ?), "
                    "last_failure_at = ? WHERE id = ?",
                    (stamp, stamp, destination_id),
                )
