"""Bulk delivery: read a file or stream into the outbox while the flush engine drains it.

The shape is a pipeline, not read-all-then-send::

    reader thread: records ──validate──► rows ──► writer thread ──► outbox
                                │                (chunks, one transaction each)
                                └─ invalid ──► rejects (or the first ten on stderr)
    calling thread: Deliverer (the flush engine) ──► Intercom, paced by X-RateLimit-*

Everything valid is made durable before it is sent, so ``kill -9`` at any moment loses
nothing: ``ievents flush`` delivers what was stored, and running the same batch again
stores (and sends) only what is not in the outbox yet. Each stored row remembers this
run and its input line, so a record Intercom rejects for good goes to the rejects file
with its ``_line`` without the run keeping records in memory.
"""

from __future__ import annotations

import gc
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ..config.settings import Settings
from ..errors import ExitCode, IeventsError, most_severe
from ..input.readers import InputError, InputSource, Record, RejectsWriter
from ..outbox import State
from ..outbox.rows import BulkRow, bulk_row
from ..outcome import api_error_text
from .chunk_writer import ChunkWriter

if TYPE_CHECKING:
    from ..http.client import AttemptLog, Pacer
    from ..outbox.store import OutboxStore
    from .engine import Delivery, FlushReport

# Records per outbox transaction: each commit waits for the disk (fsync), so a big file
# must cost few of them. The first chunk is written within FIRST_CHUNK_S, so the first
# events are on their way at once; later ones when full, when the input has been quiet
# for QUIET_S (a slow pipe), or when CHUNK_MAX_AGE_S old.
CHUNK_RECORDS = 10_000
# ... or once its bodies hold CHUNK_CHARS characters: a chunk is alive several times over
# while it is stored (its rows, their JSON array, SQLite's copy of it), and two chunks at
# once (one stored, one filled). 10,000 of the largest events (10 metadata values of 255
# characters) made a batch --queue peak at 1 GiB; small events still fill CHUNK_RECORDS.
CHUNK_CHARS = 4_000_000
FIRST_CHUNK_S = 0.1
QUIET_S = 0.1
CHUNK_MAX_AGE_S = 1.0
CHUNK_SECONDS = QUIET_S  # how often the tending thread looks
# Intercom allows 10,000 requests a minute per app (≈167/s). In flight = rate × round
# trip (Little's law): 167/s × 50–200 ms ≈ 8–34, so 32 reaches the limit over a real
# network; the pacer keeps it from bursting into 429s.
DEFAULT_BATCH_CONCURRENCY = 32
GC_THRESHOLD = 20_000  # see fewer_collections


class BatchMode(str, Enum):
    """What a batch run does with valid records (a str: ``--json`` shows the value)."""

    DELIVER = "deliver"  # store, and deliver while reading
    QUEUE = "queue"  # store only: ievents flush delivers
    DRY_RUN = "dry_run"  # validate only: nothing stored or sent


@dataclass
class BatchReport:
    """The counts of one batch run."""

    read: int = 0
    valid: int = 0
    invalid: int = 0
    skipped: int = 0  # already delivered or pending in the outbox
    queued: int = 0  # stored as pending by this run
    without_created_at: int = 0  # stamped at capture: a re-run would send them again
    delivered: int = 0
    dead: int = 0
    rejected_lines: int = 0  # dead letters of this run written to the rejects file
    pending: int = 0  # events of this run (stored or already there) not delivered at the end
    failed: int = 0  # of those: delivery failed in this run
    not_due: int = 0  # of those: not sent, waiting for the next attempt of an earlier failure
    elsewhere: int = 0  # of those: being sent by another process (in flight at the end)
    elapsed_s: float = 0.0
    interrupted: bool = False
    reading_done: bool = False
    input_error: str | None = None  # the input broke off (e.g. a truncated gzip stream)
    flush: FlushReport | None = None
    codes: set[ExitCode] = field(default_factory=set)

    @property
    def events_per_s(self) -> float:
        """Events delivered (or, without delivery, valid records) per second."""
        done = self.delivered if self.flush is not None else self.valid
        return done / self.elapsed_s if self.elapsed_s > 0 else 0.0

    @property
    def exit_code(self) -> ExitCode:
        """130 when interrupted; else the most severe outcome (65 if any record was bad)."""
        if self.interrupted:
            return ExitCode.INTERRUPTED
        codes = set(self.codes)
        if self.invalid or self.input_error:
            codes.add(ExitCode.DATA)
        if self.flush is not None:
            if self.flush.internal_errors:
                return ExitCode.INTERNAL
            codes |= self.flush.codes
            if self.pending:
                # Events it was given are not delivered (safe in the outbox): not a success.
                codes.add(ExitCode.TEMPORARY)
        return most_severe(codes)


class BatchRun:
    """One ``ievents batch``: read ``source``, store, and (unless queueing) deliver.

    ``on_invalid`` sees every record refused locally; ``on_result`` every delivery
    result; ``on_attempt`` every HTTP attempt (worker threads). ``stop`` ends the run
    promptly: reading stops, rows in flight go back to pending.
    """

    def __init__(
        self,
        source: InputSource,
        *,
        mode: BatchMode = BatchMode.DELIVER,
        store: OutboxStore | None = None,
        settings: Settings | None = None,
        rejects: RejectsWriter | None = None,
        resend: bool = False,
        concurrency: int = DEFAULT_BATCH_CONCURRENCY,
        max_time: float | None = None,
        pacer: Pacer | None = None,
        stop: threading.Event | None = None,
        on_invalid: Callable[[Record], None] | None = None,
        on_result: Callable[[Delivery], None] | None = None,
        on_attempt: Callable[[AttemptLog], None] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if mode is not BatchMode.DRY_RUN and store is None:
            raise ValueError("an outbox is needed unless this is a dry run")
        if mode in (BatchMode.DELIVER, BatchMode.QUEUE) and settings is None:
            raise ValueError("settings are needed to capture (the destination) and deliver")
        self.source = source
        self.mode = mode
        self.store = store
        self.settings = settings
        self.rejects = rejects
        self.resend = resend
        self.concurrency = concurrency
        self.max_time = max_time
        self.pacer = pacer
        self.stop = stop or threading.Event()
        self.on_invalid = on_invalid
        self.on_result = on_result
        self.on_attempt = on_attempt
        self.clock = clock
        self.run_id = f"batch:{uuid.uuid4().hex[:12]}"
        self.report = BatchReport()
        self.live_delivered = 0  # deliveries so far, for progress displays
        self._reader_error: BaseException | None = None
        # The reader thread and the tender share the chunk being filled.
        self._lock = threading.Lock()
        self._closed = False  # reading ended by a stop: records read later are not taken
        self._chunk: list[BulkRow] = []
        self._chunk_chars = 0  # the length of the chunk's bodies
        self._chunk_started = time.monotonic()
        self._last_record_at = self._chunk_started
        self._stored_any = False
        self._writer: ChunkWriter | None = None  # storing on a thread of its own
        self._destination_id: int | None = None
        self._failed_ids: set[int] = set()

    # -- the run --------------------------------------------------------------------------

    def run(self) -> BatchReport:
        """Read, store and deliver; raise the reader's error (e.g. a bad CSV header)."""
        started = time.monotonic()
        # Called here, not in the reader thread: a CSV header naming an unknown column
        # fails before anything is stored or sent.
        records = self.source.record_batches(clock=self.clock)
        reader = threading.Thread(
            target=self._read_guarded, args=(records,), name="ievents-batch-reader", daemon=True
        )
        if (
            self.store is not None
            and self.settings is not None
            and self.mode is not BatchMode.DRY_RUN
        ):
            # Every row this run stores is bound to the workspace it runs for.
            self._destination_id = self.store.bind(self.settings)
        if self.mode is not BatchMode.DRY_RUN:
            self._writer = ChunkWriter(self._store, self._store_failed)
        try:
            with fewer_collections():
                if self.mode is BatchMode.DELIVER:
                    self._read_and_deliver(reader)
                else:
                    reader.start()
                    self._tend(reader)
        finally:
            if self._writer is not None:
                self._writer.close()
            self.report.elapsed_s = time.monotonic() - started
            if self.store is not None and self.mode is not BatchMode.DRY_RUN:
                self._count_undelivered()
        if self._reader_error is not None:
            raise self._reader_error
        return self.report

    def _read_and_deliver(self, reader: threading.Thread) -> None:
        from .engine import Deliverer, StopReason

        assert self.store is not None and self.settings is not None
        tender = threading.Thread(
            target=self._tend_guarded, args=(reader,), name="ievents-batch-tender", daemon=True
        )
        deliverer = Deliverer(
            self.store,
            self.settings,
            concurrency=self.concurrency,
            max_time=self.max_time,
            on_result=self._delivered,
            on_attempt=self.on_attempt,
            stop=self.stop,
            keep_going=tender.is_alive,
            pacer=self.pacer,
            destination_id=self._destination_id,
        )
        reader.start()
        tender.start()
        try:
            flush = deliverer.run()
        finally:
            # The engine may stop early (token rejected, Intercom unavailable, --max-time):
            # the reader still stores the rest, so that nothing read is lost.
            while tender.is_alive():
                tender.join(0.1)
        self.report.flush = flush
        self.report.delivered = flush.delivered
        self.report.dead = flush.dead
        if flush.stopped is StopReason.INTERRUPTED or (
            self.stop.is_set() and self._reader_error is None
        ):
            self.report.interrupted = True

    def _tend(self, reader: threading.Thread) -> None:
        """Until the reader is done: store what it read when the input goes quiet; on a
        stop, store what was read and end reading, without waiting for more input.

        The reader alone would store a partial chunk only when the next record arrives,
        which on a slow stream (``tail -f | ievents batch -``) may be never, and a stop
        would wait for input that does not come. Returns once what was read is stored.
        """
        while reader.is_alive():
            reader.join(CHUNK_SECONDS)
            if self.stop.is_set():
                with self._lock:
                    self._closed = True
                    if not self.report.reading_done and self._reader_error is None:
                        self.report.interrupted = True
                    self._store_chunk()
                # A file reader finishes its record at once; one waiting on a pipe is left.
                reader.join(CHUNK_SECONDS)
                self._wait_stored()
                return
            with self._lock:
                now = time.monotonic()
                if self._chunk and (
                    now - self._last_record_at >= QUIET_S
                    or now - self._chunk_started >= CHUNK_MAX_AGE_S
                ):
                    self._store_chunk()
        self._wait_stored()

    def _wait_stored(self) -> None:
        if self._writer is not None:
            self._writer.wait()

    def _tend_guarded(self, reader: threading.Thread) -> None:
        try:
            self._tend(reader)
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            self._reader_error = exc
            self.stop.set()

    def _read_guarded(self, stream: Iterator[Iterable[Record]]) -> None:
        try:
            self._read(stream)
        except InputError as exc:
            # What was read before the input broke off is stored and still delivered.
            with self._lock:
                self.report.input_error = exc.message
                self._store_chunk()
        except BaseException as exc:  # noqa: BLE001 - handed to the calling thread
            # Store what was read before the error (the tender stops looking once this
            # thread ends): records taken from a pipe cannot be read again.
            with self._lock:
                try:
                    self._store_chunk()
                except IeventsError:
                    pass  # the outbox itself failed: the error below says so
            self._reader_error = exc
            self.stop.set()

    def _read(self, batches: Iterator[Iterable[Record]]) -> None:
        """Validate every record; store the valid ones in chunks (not in a dry run).

        The lock is taken once per batch (an NDJSON block, or one CSV record): the tender
        sees whole batches, and a stop ends reading between two.
        """
        report = self.report
        dry = self.mode is BatchMode.DRY_RUN
        for batch in batches:
            with self._lock:
                if self._closed:
                    return  # stopped: what was read before is stored
                added = False
                # Counted here and added to the report once per batch: the lock is held
                # for the whole batch, so nobody sees the difference.
                read = valid = unstamped = 0
                try:
                    for record in batch:
                        read += 1
                        event = record.event
                        if event is None:
                            self._invalid(record)
                            continue
                        valid += 1
                        original = record.original
                        if isinstance(original, dict):
                            given = original.get("created_at")
                            if given is None or (type(given) is not int and _stamped_now(given)):
                                unstamped += 1
                        if dry:
                            continue
                        row = bulk_row(event, record.line)
                        self._chunk.append(row)
                        self._chunk_chars += len(row[1])
                        added = True
                        if len(self._chunk) >= CHUNK_RECORDS or self._chunk_chars >= CHUNK_CHARS:
                            self._store_chunk()
                finally:
                    report.read += read
                    report.valid += valid
                    report.without_created_at += unstamped
                if added:
                    self._last_record_at = now = time.monotonic()
                    if not self._stored_any and now - self._chunk_started >= FIRST_CHUNK_S:
                        self._store_chunk()
        with self._lock:
            if not self._closed:
                report.reading_done = True
                self._store_chunk()

    def _invalid(self, record: Record) -> None:
        self.report.invalid += 1
        if self.rejects is not None:
            self.rejects.write_record(record)
        if self.on_invalid is not None:
            self.on_invalid(record)

    def _store_chunk(self) -> None:
        """Hand the records read since the last chunk to the writing thread (call with
        ``_lock`` held)."""
        if self._chunk and self._writer is not None:
            self._writer.hand(self._chunk)
            self._stored_any = True
        self._chunk = []
        self._chunk_chars = 0
        self._chunk_started = time.monotonic()

    def _store(self, rows: list[BulkRow]) -> None:
        assert self.store is not None
        # Only what is delivered or pending is skipped. A dead letter (a contact that did
        # not exist yet, say) is sent again: replaying its rejects file after the fix must
        # not be a silent no-op. Its row is reused and now points at this run's line.
        requeue = (State.DEAD, State.DELIVERED) if self.resend else (State.DEAD,)
        stored, skipped = self.store.queue_rows(
            rows,
            source=self.run_id,
            requeue=requeue,
            destination_id=self._destination_id,
        )
        self.report.queued += stored
        self.report.skipped += skipped

    def _store_failed(self, exc: BaseException) -> None:
        """The outbox failed storing a chunk (full disk, lost database): the run ends
        with that error; what was stored stays. Reading ends at once (the reader looks at
        ``_closed`` before each batch): what it read after this would not be stored."""
        if self._reader_error is None:
            self._reader_error = exc
        self._closed = True
        self.stop.set()

    def _delivered(self, delivery: Delivery) -> None:
        row = delivery.row
        if delivery.state is State.DELIVERED:
            self.live_delivered += 1
        if delivery.state is State.PENDING and delivery.outcome is not None:
            self._failed_ids.add(row.id)
        else:
            self._failed_ids.discard(row.id)
        if (
            delivery.state is State.DEAD
            and self.rejects is not None
            and row.source == self.run_id
            and row.source_line is not None
        ):
            outcome = delivery.outcome
            reason = "rejected by Intercom"
            if outcome is not None:
                detail = api_error_text(outcome.error_code, outcome.error_message)
                status = outcome.status if outcome.status is not None else "no response"
                reason = f"rejected by Intercom ({status}): {detail}" if detail else reason
            self.rejects.write(row.source_line, row.payload, reason)
            self.report.rejected_lines += 1
        if self.on_result is not None:
            self.on_result(delivery)

    def _count_undelivered(self) -> None:
        """How many events of this run are not delivered: failed now, being sent by another
        process (another batch or a relay took them first), or not due yet."""
        assert self.store is not None
        try:
            total, in_flight = self.store.count_undelivered(self.run_id)
        except IeventsError:
            return
        self.report.pending = total
        self.report.elsewhere = in_flight
        self.report.failed = min(total - in_flight, len(self._failed_ids))
        self.report.not_due = total - in_flight - self.report.failed


@contextmanager
def fewer_collections() -> Iterator[None]:
    """Python's cyclic garbage collector run less often while the block runs.

    A bulk read makes a few objects per record and keeps a block's records alive
    together: at the default threshold (700 new objects) the collector runs every third
    record and moves each block through its generations, a fifth of ``batch --dry-run``'s
    time. The records hold no cycles; what the collector would find is found later.
    Process-wide, so restored on the way out.
    """
    before = gc.get_threshold()
    gc.set_threshold(max(before[0], GC_THRESHOLD), *before[1:])
    # What exists now (modules, settings) is left out of the full collections that the
    # chunks of records cause: they would walk all of it each time.
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)


def _stamped_now(given: object) -> bool:
    """Whether a record's ``created_at`` makes its time the moment it was read (none
    given, or "now")."""
    return given is None or (isinstance(given, str) and given.strip().lower() in ("", "now"))
