"""The outbox's summary for a relay's metrics, kept current without touching delivery.

A scrape of ``flush --watch --metrics-port`` used to run the full summary (counts by
state over every row) on the relay's only outbox connection, so each scrape held up
delivery, and a few scrapers starved it. Now:

- a thread of its own refreshes the summary on **a connection of its own**, at most
  every :data:`REFRESH_S`, and only while someone scrapes (the first one at start);
- between refreshes the relay adjusts the counts as it settles rows (:meth:`observe`);
- a scrape reads the snapshot so adjusted (:meth:`SummaryCache.get`): it never waits for
  the database, so a scrape storm costs delivery only the CPU of answering it.

The counts are exact after each refresh and close to it in between (a row the relay
settles is moved from in flight, or pending, to its new state; rows captured meanwhile
show at the next refresh).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import IeventsError
from ..outbox import OutboxSummary, State
from .timings import SUMMARY_REFRESH_S

if TYPE_CHECKING:
    from ..outbox.store import OutboxStore
    from .engine import Delivery

# The full summary is read at most this often (and only when scraped).
REFRESH_S = SUMMARY_REFRESH_S


class SummaryCache:
    """The last outbox summary read on its own connection, plus what settled since.

    ``open_store`` opens a store of its own (not the relay's). :meth:`start` begins the
    refreshing thread; :meth:`close` ends it.
    """

    def __init__(
        self, open_store: Callable[[], OutboxStore], *, refresh_s: float = REFRESH_S
    ) -> None:
        self.open_store = open_store
        self.refresh_s = refresh_s
        self._lock = threading.Lock()
        self._snapshot: OutboxSummary | None = None
        self._taken_at: float | None = None  # time.monotonic() of the snapshot's read
        self._moved: dict[State, int] = {}  # settled since the snapshot: state -> rows
        self._last_success: float | None = None  # this relay's last 202 (Unix time)
        self._wanted = threading.Event()
        self._stop = threading.Event()
        self._store: OutboxStore | None = None
        self._thread: threading.Thread | None = None
        self.refreshes = 0  # summaries read (for tests and the benchmark)

    # -- the scrape's side -----------------------------------------------------------------

    def get(self) -> OutboxSummary | None:
        """The snapshot with the rows settled since (None before the first refresh).

        Never waits for the database: a stale snapshot asks the thread for a new one.
        """
        with self._lock:
            snapshot, taken_at = self._snapshot, self._taken_at
            moved = dict(self._moved)
            success = self._last_success
        if taken_at is None or time.monotonic() - taken_at >= self.refresh_s:
            self._wanted.set()
        if snapshot is None:
            return None
        counts = dict(snapshot.counts)
        for state, count in moved.items():
            counts[state] = counts.get(state, 0) + count
            # Taken from in flight first (what the relay settles was claimed), then pending.
            from_flight = min(count, counts.get(State.IN_FLIGHT, 0))
            counts[State.IN_FLIGHT] = counts.get(State.IN_FLIGHT, 0) - from_flight
            counts[State.PENDING] = max(0, counts.get(State.PENDING, 0) - (count - from_flight))
        last_success = snapshot.last_success_at
        if success is not None and (last_success is None or success > last_success):
            last_success = success
        return dataclasses.replace(snapshot, counts=counts, last_success_at=last_success)

    def age_s(self) -> float | None:
        """Seconds since the snapshot was read (None: none yet)."""
        taken_at = self._taken_at
        return None if taken_at is None else time.monotonic() - taken_at

    # -- the relay's side -------------------------------------------------------------------

    def observe(self, delivery: Delivery, now: float | None = None) -> None:
        """A row the relay settled: delivered or dead (handed-back rows change nothing)."""
        if delivery.state not in (State.DELIVERED, State.DEAD):
            return
        with self._lock:
            self._moved[delivery.state] = self._moved.get(delivery.state, 0) + 1
            if delivery.state is State.DELIVERED:
                self._last_success = time.time() if now is None else now

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        """Read a first snapshot in the background and keep it fresh while scraped
        (once: later calls do nothing)."""
        if self._thread is not None:
            return
        self._wanted.set()
        self._thread = threading.Thread(
            target=self._loop, name="ievents-metrics-summary", daemon=True
        )
        self._thread.start()

    def refresh(self) -> bool:
        """Read the summary now, on this cache's connection; False when it failed."""
        with self._lock:
            moved_before = dict(self._moved)
        try:
            if self._store is None:
                self._store = self.open_store()
            summary = self._store.summary()
        except IeventsError:
            self._drop_store()
            return False
        with self._lock:
            # What settled before the read began is in it; what settled during the
            # read may be too (counted twice until the next refresh, at most).
            self._moved = {
                state: count - moved_before.get(state, 0)
                for state, count in self._moved.items()
                if count != moved_before.get(state, 0)
            }
            self._snapshot = summary
            self._taken_at = time.monotonic()
            self.refreshes += 1
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wanted.wait()
            if self._stop.is_set():
                return
            self._wanted.clear()
            self.refresh()
            # At most one read every refresh_s, however many scrapes ask.
            self._stop.wait(self.refresh_s)

    def close(self) -> None:
        """Stop refreshing and let go of the connection."""
        self._stop.set()
        self._wanted.set()
        if self._thread is not None:
            # A read the database holds up (a lock) must not hold up the relay's exit.
            self._thread.join(timeout=2)
            if self._thread.is_alive():
                return
        self._drop_store()

    def _drop_store(self) -> None:
        store, self._store = self._store, None
        if store is not None:
            try:
                store.close()
            except IeventsError:
                pass
