"""The PostgreSQL outbox's change notification: ``LISTEN`` on the outbox's channel, on a
connection of its own (see :meth:`PgSession.waker <.pg_session.PgSession.waker>`)."""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Any

import psycopg  # imported by pg_session first, which says when the extra is missing

from . import pg_schema
from .location import PostgresLocation

if TYPE_CHECKING:
    from psycopg import Connection


class ListenWaker:
    """``LISTEN`` on the outbox's channel, on a connection of its own (reconnecting): every
    capture (``send --queue``, ``batch --queue``, ``<schema>.enqueue()``) notifies on
    commit. See :class:`~.store.Waker`."""

    def __init__(self, location: PostgresLocation, stop: threading.Event) -> None:
        self.location = location
        self.stop = stop
        self._db: Connection[Any] | None = None

    def _connect(self) -> bool:
        try:
            self._db = psycopg.connect(
                self.location.uri, autocommit=True, connect_timeout=5, application_name="ievents"
            )
            self._db.execute(f"LISTEN {pg_schema.channel(self.location.schema)}")
            return True
        except psycopg.Error:
            self.close()
            return False

    def wait(self, timeout: float) -> bool:
        """Wait for a notification (in short slices, to see a stop at once)."""
        if self._db is None:
            # Just (re)connected: rows may have arrived while nobody listened.
            if self._connect():
                return True
            self.stop.wait(min(timeout, 1.0))
            return False
        deadline = time.monotonic() + timeout
        while not self.stop.is_set():
            left = deadline - time.monotonic()
            if left <= 0:
                return False
            try:
                for _ in self._db.notifies(timeout=min(left, 0.25), stop_after=1):
                    return True
            except psycopg.Error:
                self.close()
                return True
        return True

    def close(self) -> None:
        """Close the listening connection."""
        if self._db is not None:
            try:
                self._db.close()
            except Exception:  # noqa: BLE001 - closing a broken connection
                pass
        self._db = None
