"""CSV input: the header checked up front, each row turned into the NDJSON form of a
record, and a runaway quoted field reported at its first line (see :mod:`.readers`).
"""

from __future__ import annotations

import csv
import difflib
import io
from collections.abc import Iterator
from typing import Any

from ..errors import ValidationError
from ..event import as_json, validate_metadata_key
from ..frozen import frozen
from .records import (
    DECODER,
    MAX_LINE_BYTES,
    MAX_RECORD_LINES,
    Clock,
    InputError,
    LineReader,
    Record,
    not_valid_json,
    physical_lines,
    too_long_error,
    validated,
)

CSV_COLUMNS = ("event_name", "created_at", "user_id", "email", "id")
METADATA_COLUMN = "metadata"
METADATA_PREFIX = "metadata."


@frozen
class _Column:
    index: int
    kind: str  # "field", "metadata", "metadata_key" or "ignored"
    key: str


def _suggest(name: str) -> str:
    known = [*CSV_COLUMNS, METADATA_COLUMN]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {as_json(close[0])}?)" if close else ""


def _csv_header(cells: list[str], at: int = 1) -> list[_Column]:
    """Classify the header's columns (on line ``at``), refusing anything that would
    mis-send records."""
    columns: list[_Column] = []
    seen: set[str] = set()
    allowed = (
        "columns are event_name, created_at, user_id, email, id, metadata (a JSON object) "
        "and metadata.KEY; columns starting with _ are ignored"
    )
    for index, raw_name in enumerate(cells):
        name = raw_name.strip()
        if name in seen:
            raise InputError(f"line {at}: CSV column {as_json(name)} appears twice", field=name)
        seen.add(name)
        if name in CSV_COLUMNS:
            columns.append(_Column(index, "field", name))
        elif name == METADATA_COLUMN:
            columns.append(_Column(index, "metadata", name))
        elif name.startswith(METADATA_PREFIX):
            key = name[len(METADATA_PREFIX) :]
            try:
                validate_metadata_key(key)
            except ValidationError as exc:
                raise InputError(
                    f"line {at}: CSV column {as_json(name)}: {exc.message}", field=name
                ) from None
            columns.append(_Column(index, "metadata_key", key))
        elif name.startswith("_"):
            columns.append(_Column(index, "ignored", name))
        elif not name:
            raise InputError(
                f"line {at}: CSV column {index + 1} has no name; {allowed}", field="header"
            )
        else:
            raise InputError(
                f"line {at}: unknown CSV column {as_json(name)}{_suggest(name)}; {allowed}",
                field=name,
            )
    if "event_name" not in seen:
        raise InputError(
            f"line {at}: the CSV header has no event_name column; " + allowed, field="event_name"
        )
    if not seen & {"user_id", "email", "id"}:
        raise InputError(
            f"line {at}: the CSV header has no user_id, email or id column; every event needs a "
            "contact",
            field="user_id",
        )
    return columns


def _csv_record(columns: list[_Column], cells: list[str]) -> tuple[dict[str, Any], str | None]:
    """The NDJSON form of one row, and a problem with its ``metadata`` cell if any."""
    record: dict[str, Any] = {}
    by_key: dict[str, str] = {}
    metadata_cell: str | None = None
    for column in columns:
        cell = cells[column.index]
        if not cell:
            continue
        if column.kind == "field" or column.kind == "ignored":
            record[column.key] = cell
        elif column.kind == "metadata_key":
            by_key[column.key] = cell
        else:
            metadata_cell = cell
    if metadata_cell is None:
        if by_key:
            record["metadata"] = by_key
        return record, None
    try:
        typed = DECODER.decode(metadata_cell)
    except (ValueError, RecursionError) as exc:
        problem = f"metadata column: {not_valid_json(exc).message}"
    else:
        if isinstance(typed, dict):
            typed.update(by_key)
            record["metadata"] = typed
            return record, None
        problem = f"metadata column must hold a JSON object, got {as_json(metadata_cell[:40])}"
    # The rejects file keeps the NDJSON shape (metadata one object) so that it replays once
    # fixed: the metadata.KEY cells in metadata, the broken cell beside it to be merged in
    # by hand (a record still holding _metadata_cell is refused, so it is never lost).
    if by_key:
        record["metadata"] = by_key
    record["_metadata_cell"] = metadata_cell
    return record, problem


class _RunawayRecord(Exception):
    """A CSV record (an open quote, most likely) ran past MAX_RECORD_LINES or _BYTES."""


class _CsvLines:
    """The physical lines of a CSV input as text for the csv module, one record at a time.

    Before each record :meth:`start_record` notes where it starts; the lines it takes are
    kept (bounded) so that a record that runs away (a stray opening quote swallowing the
    rows after it) can be reported at its first line and reading resumed on the line after
    it: :meth:`resume_after_first` puts the other lines back. Problems with lines (not
    UTF-8, too long) are kept only for the record being read: memory stays flat.
    """

    def __init__(self, stream: LineReader) -> None:
        self._physical = physical_lines(stream)
        self._pushed_back: list[tuple[int, str, ValidationError | None]] = []
        self._number = 0
        self.record_lines: list[tuple[int, str, ValidationError | None]] = []
        self._record_bytes = 0
        # Set when the csv module asked for a line past the end of the input: a record
        # it still returns then was cut off inside a quoted cell (a quote never closed).
        self.ran_out = False

    def start_record(self) -> None:
        """The next line starts a new record."""
        self.record_lines = []
        self._record_bytes = 0
        self.ran_out = False

    @property
    def record_start(self) -> int:
        """The line number where the current record started (0 before any)."""
        return self.record_lines[0][0] if self.record_lines else self._number + 1

    @property
    def last_line(self) -> int:
        """The number of the last line handed to the csv module."""
        return self.record_lines[-1][0] if self.record_lines else self._number

    def problem(self) -> ValidationError | None:
        """The first problem among the current record's lines, if any."""
        return next((p for _, _, p in self.record_lines if p is not None), None)

    def resume_after_first(self) -> tuple[int, str]:
        """Put back every line of the current record but its first; (number, raw text)."""
        first, *rest = self.record_lines
        self._pushed_back[:0] = rest
        self.record_lines = []
        self.ran_out = False
        return first[0], first[1].rstrip("\r\n")

    def _next(self) -> tuple[int, str, ValidationError | None]:
        if self._pushed_back:
            return self._pushed_back.pop(0)
        try:
            line, too_long = next(self._physical)
        except StopIteration:
            self.ran_out = True
            raise
        self._number += 1
        if too_long:
            return self._number, "\n", too_long_error()
        try:
            return self._number, line.decode("utf-8"), None
        except UnicodeDecodeError as exc:
            problem = ValidationError(
                f"not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8",
                field="record",
            )
            return self._number, line.decode("utf-8", "replace"), problem

    def __iter__(self) -> Iterator[str]:
        return self

    def __next__(self) -> str:
        if len(self.record_lines) >= MAX_RECORD_LINES or self._record_bytes > MAX_LINE_BYTES:
            raise _RunawayRecord
        entry = self._next()
        self.record_lines.append(entry)
        self._record_bytes += len(entry[1])
        return entry[1]


def _quotes_close_cells(record_lines: list[tuple[int, str, ValidationError | None]]) -> bool:
    """Whether every quote that ends a cell of this multi-line record is followed by a comma
    or the line's end, as in a real quoted cell; a stray quote closed by a later row's
    quote ('e,5,"ok"') is not, and it swallowed the rows between."""
    try:
        lines = (text for _, text, _ in record_lines)
        for _ in csv.reader(lines, skipinitialspace=True, strict=True):
            pass
    except csv.Error:
        return False
    return True


def _row_text(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def _reader(lines: Iterator[str]) -> Iterator[list[str]]:
    # A space after the comma belongs to the delimiter, not the cell: 'a, "b"' is the cell b
    # (else ' "b"', quotes and all, would be sent as a user id). The header reads the same.
    return csv.reader(lines, skipinitialspace=True)


def _csv_error(exc: csv.Error) -> str:
    """The csv module's complaint, in the user's words where Python's would puzzle them."""
    if "new-line character seen in unquoted field" in str(exc):
        # A bare CR (classic Mac line endings, Excel's "CSV (Macintosh)"): lines are split
        # at LF only, so the csv module sees a line break inside a cell.
        return (
            "a carriage return (CR) ends a line or sits inside an unquoted cell; lines must "
            "end with LF or CRLF: convert the file with tr '\\r' '\\n' < IN.csv > OUT.csv, "
            "or quote a cell that holds a line break"
        )
    return str(exc)


def read_csv(stream: LineReader, clock: Clock) -> Iterator[Record]:
    lines = _CsvLines(stream)
    reader = _reader(lines)
    header: list[str] = []
    # Blank lines before the header are skipped, as blank lines between rows are: a file
    # of blank lines holds no record, as an empty file does.
    while not header:
        lines.start_record()
        try:
            header = next(reader)
        except StopIteration:
            return
        except (csv.Error, _RunawayRecord) as exc:
            detail = (
                _csv_error(exc) if isinstance(exc, csv.Error) else "a quoted name is never closed"
            )
            raise InputError(
                f"line {lines.record_start}: the CSV header cannot be read: {detail}",
                field="header",
            ) from None
    at = lines.record_start
    problem = lines.problem()
    if problem is not None:
        raise InputError(f"line {at}: the CSV header is {problem.message}", field="header")
    yield from _csv_rows(lines, _csv_header(header, at), len(header), clock)


def _csv_rows(
    lines: _CsvLines, columns: list[_Column], width: int, clock: Clock
) -> Iterator[Record]:
    reader = _reader(lines)
    while True:
        lines.start_record()
        error: str | None = None
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _RunawayRecord:
            error = (
                f"a quoted field opened on this line runs past {MAX_RECORD_LINES} lines or "
                f"{MAX_LINE_BYTES // 1024} KiB (a stray quote?); the line is skipped and "
                "reading goes on with the next line"
            )
        except csv.Error as exc:
            error = f"not valid CSV: {_csv_error(exc)}"
        else:
            if lines.ran_out:
                # The input ended inside a quoted cell: the csv module gives the record
                # anyway, every line after the quote in its last cell (rows lost unseen).
                error = (
                    "a quoted field opened on this line is never closed (a stray quote?); "
                    "the line is skipped and reading goes on with the next line"
                )
            elif len(lines.record_lines) > 1 and (
                len(cells) != width or not _quotes_close_cells(lines.record_lines)
            ):
                # A quoted cell spanning lines and a wrong cell count: a stray quote that
                # swallowed the lines after it (up to the end of the input, say).
                error = (
                    "a quoted field opened on this line swallows the lines after it (a stray "
                    "quote?); the line is skipped and reading goes on with the next line"
                )
        if error is not None:
            number, raw = lines.resume_after_first()
            yield Record(number, raw, error=ValidationError(error, field="record"))
            reader = _reader(lines)  # the old one may be mid-field: a fresh start
            continue
        start = lines.record_start
        line_problem = lines.problem()
        if line_problem is not None:
            yield Record(start, _row_text(cells), error=line_problem)
            continue
        if not any(cell.strip() for cell in cells):
            continue  # a blank line, or an empty spreadsheet row (",,,,")
        if len(cells) != width:
            yield Record(
                start,
                _row_text(cells),
                error=ValidationError(
                    f"the row has {len(cells)} cells but the header has {width} columns; "
                    "check for a missing or extra comma (quote cells that contain commas)",
                    field="record",
                ),
            )
            continue
        record, problem = _csv_record(columns, cells)
        if problem is not None:
            yield Record(start, record, error=ValidationError(problem, field="metadata"))
            continue
        try:
            event = validated(record, clock)
        except ValidationError as exc:
            yield Record(start, record, error=exc)
            continue
        yield Record(start, record, event=event)
