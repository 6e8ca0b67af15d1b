"""Bulk capture's writing thread: chunks of rows stored in order while reading goes on.

A ``batch`` run reads and validates records (Python, holding the interpreter's lock) and
stores them in chunks. SQLite stores a chunk in one statement that runs without that
lock from its first row to its last (see :mod:`..outbox.sqlite_bulk`); PostgreSQL's COPY
formats the rows in Python but waits for the server without it. On one thread reading
and storing take turns; here the store works on one chunk while the reader fills the
next, so a big file takes about the longer of the two rather than their sum.

A chunk is handed over only once the one before is stored: at most two are in memory
(one being stored, one being filled), and a reader faster than the disk is held back
rather than piling chunks up.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable

from ..outbox.rows import BulkRow

StoreChunk = Callable[[list[BulkRow]], None]


class ChunkWriter:
    """Stores the chunks handed to it, in order, on a thread of its own.

    ``store`` is called with each chunk. Its first exception goes to ``on_error`` (once);
    chunks handed after that are dropped: the run is ending with that error, and which
    rows were stored is what the store says.
    """

    def __init__(self, store: StoreChunk, on_error: Callable[[BaseException], None]) -> None:
        self._store = store
        self._on_error = on_error
        self._chunks: queue.Queue[list[BulkRow] | None] = queue.Queue(maxsize=1)
        self._taken = threading.Semaphore(0)
        # Held by a hand-over until the thread has taken it, and by close: a chunk handed
        # after close (a forced stop ends the run while the reader still reads) is stored
        # on the caller's thread rather than waiting for a thread that has ended.
        self._handing = threading.Lock()
        self._closed = False
        self._failed = False
        self._thread = threading.Thread(target=self._run, name="ievents-batch-writer", daemon=True)
        self._thread.start()

    def hand(self, rows: list[BulkRow]) -> None:
        """Have ``rows`` stored after those handed before; waits until the chunk before
        is stored (after :meth:`close`: stores them now, on this thread)."""
        with self._handing:
            if not self._closed:
                self._chunks.put(rows)
                self._taken.acquire()
                return
        self._store_unless_failed(rows)

    def wait(self) -> None:
        """Return once every chunk handed so far is stored (or dropped after an error)."""
        self._chunks.join()

    def close(self) -> None:
        """Store what was handed, then end the thread."""
        with self._handing:
            self._closed = True
            self._chunks.put(None)
            self._taken.acquire()
        self._thread.join()

    def _run(self) -> None:
        while True:
            rows = self._chunks.get()
            self._taken.release()
            try:
                if rows is None:
                    return
                self._store_unless_failed(rows)
            finally:
                self._chunks.task_done()

    def _store_unless_failed(self, rows: list[BulkRow]) -> None:
        """``store(rows)``, unless a store failed before; its first error to ``on_error``."""
        if self._failed:
            return
        try:
            self._store(rows)
        except BaseException as exc:  # noqa: BLE001 - handed to the run, which raises it
            self._failed = True
            self._on_error(exc)
