"""Questions asked of a PostgreSQL session after a statement failed, to tell what went
wrong (see :meth:`.pg_session.PgSession._translate`). Each answers False when it cannot
tell: the error is then told as it came.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import psycopg

if TYPE_CHECKING:
    from psycopg import Connection


def read_only_by_client(db: Connection[Any]) -> bool:
    """Whether the session is read-only by its own connection options (``?options=-c
    default_transaction_read_only=on``, ``PGOPTIONS``): so is every new one."""
    try:
        found = db.execute(
            "SELECT source = 'client' AND setting = 'on' FROM pg_settings "
            "WHERE name = 'default_transaction_read_only'"
        ).fetchone()
    except psycopg.Error:
        return False
    return bool(found and found[0])


def tables_gone(db: Connection[Any], schema: str) -> bool:
    """Whether ``schema.events`` is missing now: the outbox was dropped while in use."""
    try:
        found = db.execute("SELECT to_regclass(%s) IS NULL", (f"{schema}.events",)).fetchone()
    except psycopg.Error:
        return False
    return bool(found and found[0])
