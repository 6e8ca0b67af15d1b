"""Bulk capture stores on a thread of its own (``delivery/chunk_writer.py``, issue 24
part 6): chunks stored in their order, a run that waits for what it handed, and a store
that fails ending the run with its error, what was stored before it kept."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

import pytest
from conftest import RunCli
from helpers import event, numbered_ndjson, outbox_file, write

from intercom_events_cli.delivery.chunk_writer import ChunkWriter
from intercom_events_cli.outbox.rows import BulkRow, bulk_row


def chunk(first: int, count: int = 3) -> list[BulkRow]:
    return [bulk_row(event(n), n) for n in range(first, first + count)]


def test_chunks_are_stored_in_their_order_on_another_thread() -> None:
    stored: list[tuple[list[BulkRow], int]] = []
    errors: list[BaseException] = []
    writer = ChunkWriter(lambda rows: stored.append((rows, threading.get_ident())), errors.append)
    chunks = [chunk(n * 3) for n in range(6)]
    for rows in chunks:
        writer.hand(rows)
    writer.close()
    assert [rows for rows, _ in stored] == chunks
    assert {thread for _, thread in stored} != {threading.get_ident()}
    assert errors == []


def test_wait_returns_once_the_chunks_handed_are_stored() -> None:
    gate = threading.Event()
    stored: list[list[BulkRow]] = []

    def store(rows: list[BulkRow]) -> None:
        if stored:
            gate.wait(60)  # the second chunk's store ends only when the timer below fires
        stored.append(rows)

    writer = ChunkWriter(store, lambda exc: None)
    first, second = chunk(0), chunk(3)
    writer.hand(first)
    writer.hand(second)  # returns once the first is stored and this one taken
    releaser = threading.Timer(0.2, gate.set)
    releaser.start()
    writer.wait()
    assert stored == [first, second]
    writer.close()
    releaser.join()


def test_a_failing_store_is_told_once_and_the_chunks_after_it_are_dropped() -> None:
    stored: list[list[BulkRow]] = []
    errors: list[BaseException] = []
    refused = OSError("disk full")

    def store(rows: list[BulkRow]) -> None:
        if len(stored) == 1:
            raise refused
        stored.append(rows)

    writer = ChunkWriter(store, errors.append)
    chunks = [chunk(n * 3) for n in range(4)]
    for rows in chunks:
        writer.hand(rows)
    writer.wait()
    writer.close()
    assert stored == chunks[:1]
    assert errors == [refused]


def test_batch_queue_whose_outbox_fails_at_the_second_chunk_keeps_the_first(
    tmp_path: Path, run_cli: RunCli
) -> None:
    """A real refusal from SQLite (a trigger refusing one event) while a later chunk is
    stored: the run ends with the outbox's error (78), the chunks before stay stored,
    nothing from the refused one on."""
    outbox = outbox_file(tmp_path)
    seeded = run_cli("send", "seed", "--user-id", "s", "--queue", "--outbox", str(outbox))
    assert seeded.code == 0, seeded
    with sqlite3.connect(outbox) as db:
        db.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON events WHEN NEW.event_name = 'boom' "
            "BEGIN SELECT RAISE(ABORT, 'boom refused'); END"
        )
    lines = numbered_ndjson(25_000).splitlines()
    lines[15_000] = '{"event_name": "boom", "user_id": "u-boom", "created_at": 1700000000}'
    source = write(tmp_path / "in.ndjson", "\n".join(lines) + "\n")
    result = run_cli("batch", str(source), "--queue", "--outbox", str(outbox))
    assert result.code == 78, result
    assert "boom refused" in result.stderr
    with sqlite3.connect(outbox) as db:
        names = dict(db.execute("SELECT event_name, count(*) FROM events GROUP BY 1").fetchall())
        lines = [row[0] for row in db.execute("SELECT source_line FROM events WHERE id > 1")]
    # The chunks before the refused one (the first is cut at 10,000 records, or earlier by
    # its age on a loaded machine): lines 1..k, and nothing from the refused chunk on.
    assert 1 <= len(lines) <= 15_000 and sorted(lines) == list(range(1, len(lines) + 1))
    assert names == {"seed": 1, "event": len(lines)}


def test_a_chunk_handed_after_close_is_stored_on_the_callers_thread() -> None:
    """A forced stop can end the run (close) while the reader still hands a chunk: it
    was left waiting for a thread that had ended, and the chunk was never stored."""
    stored: list[tuple[list[BulkRow], int]] = []
    writer = ChunkWriter(lambda rows: stored.append((rows, threading.get_ident())), print)
    writer.close()
    late = chunk(0)
    writer.hand(late)
    assert stored == [(late, threading.get_ident())]


def test_a_store_failure_ends_the_reading_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The reader went on reading (and, from a pipe, consuming) until the tending thread
    next looked, its chunks dropped: 51,090 of 60,000 records read, 10,000 stored, in a
    review's run. It stops at its next batch now: at most the chunk it was filling."""
    from intercom_events_cli.config.settings import Settings
    from intercom_events_cli.delivery import batch
    from intercom_events_cli.errors import OutboxError
    from intercom_events_cli.input.readers import InputSource
    from intercom_events_cli.outbox import SqliteOutbox

    # The tending thread would stop the reading too, when it next looks: not for a minute.
    monkeypatch.setattr(batch, "CHUNK_SECONDS", 60.0)
    source = write(tmp_path / "in.ndjson", numbered_ndjson(60_000))
    calls: list[int] = []

    class RefusingSecondChunk:
        def __init__(self, inner: SqliteOutbox) -> None:
            self.inner = inner

        def __getattr__(self, name: str) -> object:
            return getattr(self.inner, name)

        def queue_rows(self, rows: list[BulkRow], **options: object) -> tuple[int, int]:
            calls.append(len(rows))
            if len(calls) == 2:
                raise OutboxError("the disk is full (for this test)")
            return self.inner.queue_rows(rows, **options)  # type: ignore[arg-type]

    settings = Settings(token="tok_test_chunk_writer_1234", base_url="http://127.0.0.1:9")
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store, source.open("rb") as stream:
        run = batch.BatchRun(
            InputSource(str(source), "ndjson", stream, owned=False),
            mode=batch.BatchMode.QUEUE,
            store=RefusingSecondChunk(store),  # type: ignore[arg-type]
            settings=settings,
        )
        with pytest.raises(OutboxError, match="disk is full"):
            run.run()
        # The first chunk may be cut short by its age (a loaded machine reads slowly).
        assert store.count_undelivered(run.run_id) == (calls[0], 0)
    assert run.report.queued == calls[0]
    # Read at most: the chunk stored, the one refused, the one being filled, a block.
    most = calls[0] + calls[1] + batch.CHUNK_RECORDS + 5_000
    assert run.report.read <= most < 60_000, (run.report.read, calls)
