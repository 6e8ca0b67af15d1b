"""Bulk input: NDJSON and CSV streams (optionally gzip) → records with line numbers.

Memory stays bounded whatever the input size: NDJSON is read a block at a time
(:mod:`.input_ndjson`), CSV one physical line at a time, and no line longer than
:data:`MAX_LINE_BYTES` is ever held whole (the rest of such a line is skipped and the
record reported invalid).

Every record comes back as a :class:`Record`: its 1-based line number, the original record
(a dict, or the raw text of a line that is not a JSON object) and either a validated
:class:`~intercom_events_cli.event.Event` or the
:class:`~intercom_events_cli.errors.ValidationError` saying why not. Invalid records never
stop the others. Only a problem with the input as a whole (a CSV header naming an unknown
column, a corrupt gzip stream) raises :class:`InputError`.

Decisions:

- gzip is recognised by its magic bytes (``1f 8b``), not by the name, so a ``.gz`` file,
  a compressed standard input and a misnamed file all work; the ``.gz`` suffix is only
  skipped when the format is chosen from the extension.
- CSV records are given back (and written to a rejects file) in the NDJSON form: the same
  field names, with ``metadata`` as one object. A rejects file is therefore always NDJSON
  and replays as it is.
- CSV metadata: a ``metadata`` column holds a JSON object (typed values); ``metadata.KEY``
  columns hold strings. When both give the same key, ``metadata.KEY`` wins.
- CSV header problems (unknown or duplicate column, no ``event_name`` column, no contact
  column) fail once, up front, before any record is read: a typo such as ``usr_id`` must
  never send events without their contact.
- A CSV row with more or fewer cells than the header is invalid: a missing comma would
  otherwise shift a value into another column (a user id into ``email``).
"""

from __future__ import annotations

import io
import os
import stat
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import IO

from ..errors import UsageError
from .csv_rows import CSV_COLUMNS, read_csv
from .ndjson_blocks import ndjson_batches
from .records import (
    MAX_LINE_BYTES,
    Clock,
    InputError,
    LineReader,
    Record,
    decompressed,
)
from .rejects import RejectsWriter

__all__ = [
    "CSV_COLUMNS",
    "FORMATS",
    "InputError",
    "InputSource",
    "MAX_LINE_BYTES",
    "Record",
    "RejectsWriter",
    "detect_format",
    "open_input",
    "read_records",
]

NDJSON = "ndjson"
CSV = "csv"
FORMATS = (NDJSON, CSV)
EXTENSION_FORMATS = {".ndjson": NDJSON, ".jsonl": NDJSON, ".json": NDJSON, ".csv": CSV}


def detect_format(name: str, format: str | None = None) -> str:
    """The input format: ``format`` when given, else from the extension of ``name``.

    ``-`` (standard input) defaults to NDJSON. A trailing ``.gz`` is skipped. An unknown
    extension without ``format`` is a :class:`UsageError`.
    """
    if format is not None:
        chosen = format.strip().lower()
        if chosen in ("jsonl", "json"):
            chosen = NDJSON
        if chosen not in FORMATS:
            raise UsageError(f"unknown format {format!r}; use --format ndjson or --format csv")
        return chosen
    if name == "-":
        return NDJSON
    lowered = name.lower()
    if lowered.endswith(".gz"):
        lowered = lowered[:-3]
    suffix = os.path.splitext(lowered)[1]
    found = EXTENSION_FORMATS.get(suffix)
    if found is None:
        raise UsageError(
            f"cannot tell the format of {name!r} from its extension (.ndjson, .jsonl, .json "
            "or .csv, optionally .gz); add --format ndjson or --format csv"
        )
    return found


def read_ndjson(stream: LineReader, clock: Clock) -> Iterator[Record]:
    """The records of an NDJSON stream, one by one (see :func:`ndjson_batches`)."""
    for batch in ndjson_batches(stream, clock):
        yield from batch


def read_records(stream: IO[bytes], format: str, *, clock: Clock = time.time) -> Iterator[Record]:
    """Stream the records of a binary ``stream`` in ``format`` (``ndjson`` or ``csv``).

    gzip-compressed data is recognised and decompressed on the fly. A CSV header is checked
    as soon as this is called, so a bad header raises :class:`InputError` before any record
    is read. ``created_at`` missing from a record is stamped from ``clock`` as the record is
    read (once: at capture).
    """
    chosen = detect_format("-", format)
    source = decompressed(stream)
    if chosen == NDJSON:
        return read_ndjson(source, clock)
    records = read_csv(source, clock)
    # Run the generator up to the header check now, keeping the first record for later.
    try:
        first = next(records)
    except StopIteration:
        return iter(())
    return _chain_first(first, records)


def read_record_batches(
    stream: IO[bytes], format: str, *, clock: Clock = time.time
) -> Iterator[Iterable[Record]]:
    """:func:`read_records` in batches, as they come: an NDJSON block's worth at a time
    (a reader then takes its lock once per block), a CSV record at a time."""
    if detect_format("-", format) == NDJSON:
        return _ndjson_batches_on_first_use(stream, clock)
    return ([record] for record in read_records(stream, format, clock=clock))


def _ndjson_batches_on_first_use(stream: IO[bytes], clock: Clock) -> Iterator[Iterable[Record]]:
    # NDJSON has no header to check up front: its first read (the look for gzip's magic
    # bytes) waits for the first byte, so it is left to whoever iterates (batch's reader
    # thread), where a stop does not wait on a pipe that is still silent.
    yield from ndjson_batches(decompressed(stream), clock)


def _chain_first(first: Record, rest: Iterator[Record]) -> Iterator[Record]:
    yield first
    yield from rest


class InputSource:
    """An opened input: its name, format, size when known, and its records.

    Use as a context manager; standard input is never closed.
    """

    def __init__(self, name: str, format: str, stream: IO[bytes], *, owned: bool) -> None:
        self.name = name
        self.format = format
        self._stream = stream
        self._owned = owned
        self.size: int | None = None
        try:
            info = os.fstat(stream.fileno())
            if stat.S_ISREG(info.st_mode):
                self.size = info.st_size
        except (OSError, ValueError, io.UnsupportedOperation):
            self.size = None

    def records(self, *, clock: Clock = time.time) -> Iterator[Record]:
        """The records of this input (see :func:`read_records`)."""
        return read_records(self._stream, self.format, clock=clock)

    def record_batches(self, *, clock: Clock = time.time) -> Iterator[Iterable[Record]]:
        """The records of this input in batches (see :func:`read_record_batches`)."""
        return read_record_batches(self._stream, self.format, clock=clock)

    def position(self) -> int | None:
        """Bytes of the file consumed so far (compressed bytes for gzip), for progress."""
        try:
            return self._stream.tell()
        except (OSError, ValueError):
            return None

    def close(self) -> None:
        """Close the file (never standard input)."""
        if self._owned:
            self._stream.close()

    def __enter__(self) -> InputSource:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def open_input(
    path_or_dash: str, format: str | None = None, *, stdin: IO[bytes] | None = None
) -> InputSource:
    """Open a path, or ``-`` for standard input (binary: ``stdin``, else the process's).

    The format is ``format`` when given, else the extension (``.ndjson``, ``.jsonl``,
    ``.json``, ``.csv``, each optionally ``.gz``), standard input defaulting to NDJSON.
    A file that cannot be opened or an unknown extension is a :class:`UsageError`.
    """
    chosen = detect_format(path_or_dash, format)
    if path_or_dash == "-":
        stream = stdin if stdin is not None else sys.stdin.buffer
        return InputSource("<stdin>", chosen, stream, owned=False)
    path = Path(path_or_dash).expanduser()
    try:
        stream = path.open("rb")
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise UsageError(f"cannot read {path_or_dash!r}: {reason}") from None
    return InputSource(str(path), chosen, stream, owned=True)
