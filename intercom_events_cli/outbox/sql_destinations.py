"""The destinations of an outbox, for both stores (see DESTINATION.md and
:mod:`..destination`).

Each event is bound at capture to where it is to be delivered; a destination whose last
attempt failed starts the next run with a probe. The statements are the neutral ones of
:mod:`.sql_store`, so the SQLite file and the PostgreSQL schema keep them alike.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from ..destination import FINGERPRINT_KEY_BYTES, Destination
from .sql_store import H, SqlStore, pending_for

if TYPE_CHECKING:
    from ..config import Settings

_UNDELIVERED = "state IN ('pending', 'in_flight')"


class SqlDestinations(SqlStore[H]):
    """Binding, probes' bookkeeping and the counts per destination."""

    def bind(self, settings: Settings) -> int:
        """The id of the destination ``settings`` deliver to (stored when new).

        The outbox's fingerprint key is made on first use (32 random bytes in ``meta``);
        two processes binding at once agree on one key and one row.
        """
        with self._write() as db:
            self._run(
                db,
                "INSERT INTO {s}.meta (key, value) VALUES ('fingerprint_key', ?) "
                "ON CONFLICT (key) DO NOTHING",
                (os.urandom(FINGERPRINT_KEY_BYTES).hex(),),
            )
            key = self._run(
                db, "SELECT value FROM {s}.meta WHERE key = 'fingerprint_key'"
            ).fetchone()
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
                "SELECT id FROM {s}.destinations WHERE base_url = ? AND api_version = ? "
                "AND token_fingerprint = ?",
                identity,
            ).fetchone()
        return int(row[0])

    def destinations(self) -> dict[int, Destination]:
        """Every known destination by id."""
        with self._read() as db:
            found = self._run(
                db,
                "SELECT id, base_url, api_version, token_fingerprint, token_hint "
                "FROM {s}.destinations",
            ).fetchall()
        return {int(r[0]): Destination(r[1], r[2], r[3], r[4]) for r in found}

    def waiting_elsewhere(self, destination_id: int) -> list[tuple[Destination, int]]:
        """Events not delivered that are bound to other destinations, with their counts."""
        with self._read() as db:
            found = self._run(
                db,
                "SELECT d.base_url, d.api_version, d.token_fingerprint, d.token_hint, "
                "count(*) FROM {s}.events e JOIN {s}.destinations d "
                f"ON d.id = e.destination_id WHERE e.{_UNDELIVERED} "
                "AND e.destination_id <> ? GROUP BY d.id ORDER BY count(*) DESC, d.id",
                (destination_id,),
            ).fetchall()
        return [(Destination(*r[:4]), int(r[4])) for r in found]

    def count_undelivered(self, source: str) -> tuple[int, int]:
        """(pending or in flight, of which due later) among the rows of ``source``."""
        with self._read() as db:
            found = self._run(
                db,
                "SELECT count(*), coalesce(sum(CASE WHEN next_attempt_at > ? THEN 1 ELSE 0 "
                f"END), 0) FROM {{s}}.events WHERE source = ? AND {_UNDELIVERED}",
                (self._clock(db), source),
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
