"""The pieces the SQL of both stores is built from: the handle a statement runs on, ids a
statement's worth at a time, parameter marks, the pending-rows condition, and a claim as
asked for. Neutral SQL (``{s}.events``, ``?``), as in :mod:`.sql_store`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping, Sequence, Sized
from typing import Any, Protocol, TypeVar

from ..frozen import frozen

# Ids named per statement (old SQLite allows 999 parameters).
IDS_PER_QUERY = 500


class Rows(Protocol):
    """What a statement hands back, in both drivers (a DB-API cursor)."""

    @property
    def rowcount(self) -> int:
        """Rows changed (-1 where the driver cannot tell)."""
        ...

    def fetchone(self) -> Any:
        """The next row, or None."""
        ...

    def fetchall(self) -> list[Any]:
        """Every remaining row."""
        ...


class Handle(Protocol):
    """A transaction's way in: a ``sqlite3.Connection`` or a psycopg cursor."""

    def execute(self, sql: str, args: Sequence[Any], /) -> Rows:
        """Run one statement."""
        ...

    def executemany(self, sql: str, args: Sequence[Sequence[Any]], /) -> Rows | None:
        """Run one statement once per row of parameters."""
        ...


H = TypeVar("H", bound=Handle)


def chunks(ids: Sequence[int]) -> Iterator[Sequence[int]]:
    """``ids`` a statement's worth at a time."""
    for start in range(0, len(ids), IDS_PER_QUERY):
        yield ids[start : start + IDS_PER_QUERY]


def marks(values: Sized) -> str:
    """``?, ?, ?``: one parameter per value."""
    return ", ".join("?" * len(values))


# Unbound rows any destination may deliver (and bind): captured by an older ievents. A
# row enqueued from SQL without a workspace waits for the schema's default instead, and
# one naming a workspace waits for a token of it: never whichever relay claims first.
ANYONES = "(destination_id IS NULL AND workspace IS NULL AND coalesce(source, '') <> 'sql')"


def pending_for(destination_id: int | None, due: str, stamp: float) -> tuple[str, tuple[Any, ...]]:
    """The condition (and its arguments) for pending rows whose next attempt is ``due``
    (``<= ?`` or ``> ?``) against ``stamp``, bound to ``destination_id`` or unbound (any
    destination for None)."""
    where = f"state = 'pending' AND next_attempt_at {due}"
    if destination_id is None:
        return where, (stamp,)
    return f"{where} AND (destination_id = ? OR {ANYONES})", (stamp, destination_id)


def meta_number(meta: Mapping[str, str], key: str) -> float | None:
    """A number kept in ``meta``, or None when missing or unreadable."""
    try:
        return float(meta[key]) if key in meta else None
    except ValueError:
        return None


def new_claim_token() -> int:
    """A claim's fencing token: random, 63 bits (one per claim, never reused in practice)."""
    return int.from_bytes(os.urandom(8), "big") >> 1


@frozen
class ClaimRequest:
    """One claim as :meth:`SqlStore.claim` asked for it, for a store's ``_claim``.

    ``now`` None: the store's clock, read in the claim's transaction (:meth:`SqlStore._clock`).
    """

    owner: str
    limit: int
    now: float | None
    lease_s: float
    due_or_not: bool  # due or not (the probe after an outage)
    destination_id: int | None
    token: int

    def times(self, now: float) -> tuple[float, float, float]:
        """(now, lease end, due until) for the clock reading ``now`` (unless one was given)."""
        stamp = now if self.now is None else self.now
        due_until = float("inf") if self.due_or_not else stamp
        return stamp, stamp + self.lease_s, due_until
