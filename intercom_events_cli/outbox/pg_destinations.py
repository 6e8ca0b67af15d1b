"""The destinations of a PostgreSQL outbox (see DESTINATION.md and :mod:`.destination`).

The same table and rules as the SQLite file: each event is bound at capture to where it
is to be delivered; a destination whose last attempt failed starts the next run with a
probe.
"""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, Any

from ..destination import FINGERPRINT_KEY_BYTES, Destination
from .pg_session import PgSession

if TYPE_CHECKING:
    from ..config import Settings


class PgDestinations(PgSession):
    """Binding, probes' bookkeeping and the counts per destination."""

    def bind(self, settings: Settings) -> int:
        """The id of the destination ``settings`` deliver to (stored when new).

        The outbox's fingerprint key is made on first use (32 random bytes in ``meta``);
        two processes binding at once agree on one key and one row.
        """
        with self._tx() as cur:
            cur.execute(
                self._t(
                    "INSERT INTO {s}.meta (key, value) VALUES ('fingerprint_key', %s) "
                    "ON CONFLICT (key) DO NOTHING"
                ),
                (os.urandom(FINGERPRINT_KEY_BYTES).hex(),),
            )
            cur.execute(self._t("SELECT value FROM {s}.meta WHERE key = 'fingerprint_key'"))
            found = cur.fetchone()
            assert found is not None
            target = Destination.of(settings, bytes.fromhex(found[0]))
            identity = (target.base_url, target.api_version, target.token_fingerprint)
            cur.execute(
                self._t(
                    "INSERT INTO {s}.destinations (base_url, api_version, token_fingerprint, "
                    "token_hint) VALUES (%s, %s, %s, %s) ON CONFLICT (base_url, api_version, "
                    "token_fingerprint) DO NOTHING"
                ),
                (*identity, target.token_hint),
            )
            cur.execute(
                self._t(
                    "SELECT id FROM {s}.destinations WHERE base_url = %s AND api_version = %s "
                    "AND token_fingerprint = %s"
                ),
                identity,
            )
            row = cur.fetchone()
        assert row is not None
        return int(row[0])

    def destinations(self) -> dict[int, Destination]:
        """Every known destination by id."""
        with self._tx() as cur:
            cur.execute(
                self._t(
                    "SELECT id, base_url, api_version, token_fingerprint, token_hint "
                    "FROM {s}.destinations"
                )
            )
            return {int(r[0]): Destination(r[1], r[2], r[3], r[4]) for r in cur.fetchall()}

    def waiting_elsewhere(self, destination_id: int) -> list[tuple[Destination, int]]:
        """Events not delivered that are bound to other destinations, with their counts."""
        with self._tx() as cur:
            cur.execute(
                self._t(
                    "SELECT d.base_url, d.api_version, d.token_fingerprint, d.token_hint, "
                    "count(*) FROM {s}.events e JOIN {s}.destinations d "
                    "ON d.id = e.destination_id WHERE e.state IN ('pending', 'in_flight') "
                    "AND e.destination_id <> %s GROUP BY d.id ORDER BY count(*) DESC, d.id"
                ),
                (destination_id,),
            )
            return [(Destination(*r[:4]), int(r[4])) for r in cur.fetchall()]

    def count_undelivered(self, source: str) -> tuple[int, int]:
        """(pending or in flight, of which due later) among the rows of ``source``."""
        with self._tx() as cur:
            cur.execute(
                self._t(
                    "SELECT count(*), count(*) FILTER (WHERE next_attempt_at > %s) "
                    "FROM {s}.events WHERE source = %s AND state IN ('pending', 'in_flight')"
                ),
                (time.time(), source),
            )
            found = cur.fetchone()
        assert found is not None
        return int(found[0]), int(found[1])

    def count_due(self, destination_id: int | None, *, now: float | None = None) -> int:
        """Pending events due now for this destination (and unbound ones)."""
        stamp = time.time() if now is None else now
        query = "SELECT count(*) FROM {s}.events WHERE state = 'pending' AND next_attempt_at <= %s"
        args: tuple[Any, ...] = (stamp,)
        if destination_id is not None:
            query += " AND (destination_id = %s OR destination_id IS NULL)"
            args += (destination_id,)
        with self._tx() as cur:
            cur.execute(self._t(query), args)
            found = cur.fetchone()
        return int(found[0]) if found else 0

    def is_failing(self, destination_id: int) -> bool:
        """True when the last delivery attempt for this destination failed temporarily."""
        with self._tx() as cur:
            cur.execute(
                self._t("SELECT failing_since FROM {s}.destinations WHERE id = %s"),
                (destination_id,),
            )
            row = cur.fetchone()
        return row is not None and row[0] is not None

    def note_destination(self, destination_id: int, *, up: bool, now: float | None = None) -> None:
        """Remember whether Intercom answered (``up``) or failed temporarily for it."""
        stamp = time.time() if now is None else now
        with self._tx() as cur:
            if up:
                cur.execute(
                    self._t(
                        "UPDATE {s}.destinations SET failing_since = NULL, last_success_at = %s "
                        "WHERE id = %s"
                    ),
                    (stamp, destination_id),
                )
            else:
                cur.execute(
                    self._t(
                        "UPDATE {s}.destinations SET failing_since = coalesce(failing_since, %s), "
                        "last_failure_at = %s WHERE id = %s"
                    ),
                    (stamp, stamp, destination_id),
                )
