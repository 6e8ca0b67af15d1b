"""Bulk input: NDJSON and CSV streams (optionally gzip) → records with line numbers.

Memory stays bounded whatever the input size: the input is read one physical line at a
time, and no line longer than :data:`MAX_LINE_BYTES` is ever held whole (the rest of such a
line is skipped and the record reported invalid).

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

import codecs
import csv
import difflib
import gzip
import io
import json
import os
import stat
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Protocol

from .errors import ConfigError, UsageError, ValidationError
from .event import Event, as_json, event_from_record, validate_metadata_key

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
CSV_COLUMNS = ("event_name", "created_at", "user_id", "email", "id")
METADATA_COLUMN = "metadata"
METADATA_PREFIX = "metadata."
# Far above any valid event (ten metadata values of 255 characters), far below a problem.
MAX_LINE_BYTES = 1024 * 1024
# A CSV record spanning more lines than this (a quoted cell with newlines) is a stray quote.
MAX_RECORD_LINES = 100
GZIP_MAGIC = b"\x1f\x8b"
_BOM = codecs.BOM_UTF8

Clock = Callable[[], float]


class _LineReader(Protocol):
    def readline(self, size: int = -1, /) -> bytes: ...


class InputError(ValidationError):
    """The input as a whole cannot be read on (bad CSV header, corrupt gzip); exit 65.

    Records yielded before it was raised are unaffected.
    """


@dataclass(frozen=True)
class Record:
    """One input record: where it was, what it said, and the Event or the reason not."""

    line: int
    original: dict[str, Any] | str
    event: Event | None = None
    error: ValidationError | None = None

    @property
    def ok(self) -> bool:
        """True when the record is a valid event."""
        return self.event is not None

    def describe(self) -> str:
        """``line 7: not valid JSON: ...`` (the problem with its line), or ``line 7: ok``."""
        return f"line {self.line}: {self.error.message if self.error else 'ok'}"


def _not_valid_json(exc: ValueError | RecursionError) -> ValidationError:
    if isinstance(exc, json.JSONDecodeError):
        detail = f"{exc.msg} at column {exc.colno}"
    elif isinstance(exc, RecursionError):
        detail = "nested too deeply"
    else:
        detail = str(exc)
    return ValidationError(f"not valid JSON: {detail}", field="record")


def _json_problem(line: str) -> ValidationError:
    """Why ``line`` (without its line ending, so that the column is the editor's) is not JSON."""
    try:
        _decoder.decode(line)
    except (ValueError, RecursionError) as exc:
        return _not_valid_json(exc)
    return ValidationError("not valid JSON", field="record")  # pragma: no cover


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and which Intercom refuses.
    raise ValueError(f"{name} is not allowed")


_decoder = json.JSONDecoder(parse_constant=_refuse_constant)


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


def _peekable(stream: IO[bytes]) -> io.BufferedReader:
    """``stream`` itself when it can peek (files, stdin), else a buffered reader over it."""
    if isinstance(stream, io.BufferedReader):
        return stream
    return io.BufferedReader(_RawAdapter(stream), buffer_size=64 * 1024)


class _RawAdapter(io.RawIOBase):
    """A raw reader over any binary stream (e.g. BytesIO), so that it can be peeked."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream = stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._stream.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        return size


def _decompressed(stream: IO[bytes]) -> _LineReader:
    """The data of ``stream``, decompressed on the fly when it starts with the gzip magic."""
    buffered = _peekable(stream)
    if buffered.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)] != GZIP_MAGIC:
        return buffered
    # GzipFile buffers internally: readline on it is fast and bounded by the limit given.
    return gzip.GzipFile(fileobj=buffered, mode="rb")


def _physical_lines(stream: _LineReader) -> Iterator[tuple[bytes, bool]]:
    """Yield (line, too_long) for every physical line (split on ``\\n``), BOM removed.

    A line longer than :data:`MAX_LINE_BYTES` is cut there and the rest skipped, so that
    one enormous line cannot exhaust memory. A corrupt or truncated gzip stream raises
    :class:`InputError`.
    """
    readline = stream.readline
    first = True
    number = 0
    while True:
        try:
            line = readline(MAX_LINE_BYTES + 1)
            if not line:
                return
            number += 1
            too_long = len(line) > MAX_LINE_BYTES
            if too_long:
                rest = line
                while rest and not rest.endswith(b"\n"):
                    rest = readline(MAX_LINE_BYTES)
                line = line[:MAX_LINE_BYTES]
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise InputError(
                f"the gzip data is corrupt or truncated after line {number}: {exc}",
                field="input",
                hint="records before that line were read; check the file is complete",
            ) from None
        if first:
            first = False
            if line.startswith(_BOM):
                line = line[len(_BOM) :]
        yield line, too_long


def _too_long_error() -> ValidationError:
    return ValidationError(
        f"the line is longer than {MAX_LINE_BYTES // 1024} KiB; no valid event is that long",
        field="record",
    )


def _raw_text(line: bytes) -> str:
    return line.rstrip(b"\r\n").decode("utf-8", "replace")


def _validated(record: object, clock: Clock) -> Event:
    """``event_from_record``, every failure a :class:`ValidationError` of this one record.

    Whatever one record holds (a lone surrogate, a value no check foresaw) must not stop
    the reading of the others: an unexpected exception is that record's error.
    """
    try:
        return event_from_record(record, clock)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - one record's problem, never the run's
        raise ValidationError(
            f"the record cannot be used ({type(exc).__name__}); check its text and encoding",
            field="record",
        ) from None


def _read_ndjson(stream: _LineReader, clock: Clock) -> Iterator[Record]:
    decode = _decoder.decode
    for number, (line, too_long) in enumerate(_physical_lines(stream), start=1):
        if too_long:
            yield Record(number, _raw_text(line), error=_too_long_error())
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield Record(
                number,
                _raw_text(line),
                error=ValidationError(
                    f"not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8",
                    field="record",
                ),
            )
            continue
        if not text.strip():
            continue
        try:
            value = decode(text)
        except (ValueError, RecursionError):
            stripped = text.rstrip("\r\n")
            yield Record(number, stripped, error=_json_problem(stripped))
            continue
        try:
            event = _validated(value, clock)
        except ValidationError as exc:
            original = value if isinstance(value, dict) else text.rstrip("\r\n")
            yield Record(number, original, error=exc)
            continue
        yield Record(number, value, event=event)


@dataclass(frozen=True)
class _Column:
    index: int
    kind: str  # "field", "metadata", "metadata_key" or "ignored"
    key: str


def _suggest(name: str) -> str:
    known = [*CSV_COLUMNS, METADATA_COLUMN]
    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {as_json(close[0])}?)" if close else ""


def _csv_header(cells: list[str]) -> list[_Column]:
    """Classify the header's columns, refusing anything that would mis-send records."""
    columns: list[_Column] = []
    seen: set[str] = set()
    allowed = (
        "columns are event_name, created_at, user_id, email, id, metadata (a JSON object) "
        "and metadata.KEY; columns starting with _ are ignored"
    )
    for index, raw_name in enumerate(cells):
        name = raw_name.strip()
        if name in seen:
            raise InputError(f"line 1: CSV column {as_json(name)} appears twice", field=name)
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
                    f"line 1: CSV column {as_json(name)}: {exc.message}", field=name
                ) from None
            columns.append(_Column(index, "metadata_key", key))
        elif name.startswith("_"):
            columns.append(_Column(index, "ignored", name))
        elif not name:
            raise InputError(
                f"line 1: CSV column {index + 1} has no name; {allowed}", field="header"
            )
        else:
            raise InputError(
                f"line 1: unknown CSV column {as_json(name)}{_suggest(name)}; {allowed}", field=name
            )
    if "event_name" not in seen:
        raise InputError(
            "line 1: the CSV header has no event_name column; " + allowed, field="event_name"
        )
    if not seen & {"user_id", "email", "id"}:
        raise InputError(
            "line 1: the CSV header has no user_id, email or id column; every event needs a "
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
        typed = _decoder.decode(metadata_cell)
    except (ValueError, RecursionError) as exc:
        problem = f"metadata column: {_not_valid_json(exc).message}"
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

    def __init__(self, stream: _LineReader) -> None:
        self._physical = _physical_lines(stream)
        self._pushed_back: list[tuple[int, str, ValidationError | None]] = []
        self._number = 0
        self.record_lines: list[tuple[int, str, ValidationError | None]] = []
        self._record_bytes = 0

    def start_record(self) -> None:
        """The next line starts a new record."""
        self.record_lines = []
        self._record_bytes = 0

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
        return first[0], first[1].rstrip("\r\n")

    def _next(self) -> tuple[int, str, ValidationError | None]:
        if self._pushed_back:
            return self._pushed_back.pop(0)
        line, too_long = next(self._physical)
        self._number += 1
        if too_long:
            return self._number, "\n", _too_long_error()
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


def _row_text(cells: list[str]) -> str:
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="").writerow(cells)
    return buffer.getvalue()


def _read_csv(stream: _LineReader, clock: Clock) -> Iterator[Record]:
    lines = _CsvLines(stream)
    lines.start_record()
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        return
    except (csv.Error, _RunawayRecord) as exc:
        detail = exc if isinstance(exc, csv.Error) else "a quoted name is never closed"
        raise InputError(
            f"line 1: the CSV header cannot be read: {detail}", field="header"
        ) from None
    problem = lines.problem()
    if problem is not None:
        raise InputError(f"line 1: the CSV header is {problem.message}", field="header")
    yield from _csv_rows(lines, _csv_header(header), len(header), clock)


def _csv_rows(
    lines: _CsvLines, columns: list[_Column], width: int, clock: Clock
) -> Iterator[Record]:
    reader = csv.reader(lines)
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
            error = f"not valid CSV: {exc}"
        else:
            if len(lines.record_lines) > 1 and len(cells) != width:
                # A quoted cell spanning lines and a wrong cell count: a stray quote that
                # swallowed the lines after it (up to the end of the input, say).
                error = (
                    "a quoted field opened on this line swallows the lines after it (a stray "
                    "quote?); the line is skipped and reading goes on with the next line"
                )
        if error is not None:
            number, raw = lines.resume_after_first()
            yield Record(number, raw, error=ValidationError(error, field="record"))
            reader = csv.reader(lines)  # the old one may be mid-field: a fresh start
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
            event = _validated(record, clock)
        except ValidationError as exc:
            yield Record(start, record, error=exc)
            continue
        yield Record(start, record, event=event)


def read_records(stream: IO[bytes], format: str, *, clock: Clock = time.time) -> Iterator[Record]:
    """Stream the records of a binary ``stream`` in ``format`` (``ndjson`` or ``csv``).

    gzip-compressed data is recognised and decompressed on the fly. A CSV header is checked
    as soon as this is called, so a bad header raises :class:`InputError` before any record
    is read. ``created_at`` missing from a record is stamped from ``clock`` as the record is
    read (once: at capture).
    """
    chosen = detect_format("-", format)
    source = _decompressed(stream)
    if chosen == NDJSON:
        return _read_ndjson(source, clock)
    records = _read_csv(source, clock)
    # Run the generator up to the header check now, keeping the first record for later.
    try:
        first = next(records)
    except StopIteration:
        return iter(())
    return _chain_first(first, records)


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


def _same_file(one: Path, other: str | Path) -> bool:
    try:
        return os.path.samefile(one, Path(other).expanduser())
    except OSError:
        return False  # one of them does not exist (yet): not the same file


def _is_stdin(path: Path) -> bool:
    """True when ``path`` is the file standard input reads (same device and inode)."""
    try:
        ours, theirs = os.fstat(0), os.stat(path)
    except OSError:
        return False  # no stdin, or the path does not exist yet
    return stat.S_ISREG(ours.st_mode) and (ours.st_dev, ours.st_ino) == (
        theirs.st_dev,
        theirs.st_ino,
    )


def _reject_line(entry: dict[str, Any]) -> bytes:
    """One rejects line as UTF-8 bytes, whatever the record holds.

    A lone surrogate (from a ``\\ud800`` escape) cannot be encoded as UTF-8: such a line is
    written with ASCII escapes instead, which read back as the same text. Anything else
    that cannot be written keeps what can: the line, the error, the record as text.
    """
    try:
        return (json.dumps(entry, ensure_ascii=False, default=str) + "\n").encode("utf-8")
    except UnicodeEncodeError:
        return (json.dumps(entry, default=str) + "\n").encode("ascii")
    except (ValueError, TypeError, RecursionError):
        fallback = {"_raw": as_json(entry), "_line": entry["_line"], "_error": entry["_error"]}
        return (json.dumps(fallback) + "\n").encode("ascii")


class RejectsWriter:
    """Writes invalid or permanently rejected records as NDJSON, for fixing and replay.

    Each line is the original record plus ``"_line"`` (1-based input line) and ``"_error"``
    (why); a line that was not a JSON object is kept as ``{"_raw": TEXT, ...}``. Keys
    starting with ``_`` are ignored when the file is read back, so once fixed it replays as
    it is. The file is created (or truncated) with mode 0600, since records may hold
    e-mail addresses, and flushed after every line so that a crash loses little.
    Thread-safe.

    ``input_path``: the file being read, which the rejects file must not be (replaying a
    rejects file with ``--rejects`` pointing at itself would truncate it before reading).
    """

    def __init__(self, path: str | Path, *, input_path: str | Path | None = None) -> None:
        self.path = Path(path).expanduser()
        self.count = 0
        self._failed = False
        self._lock = threading.Lock()
        same = _is_stdin(self.path) if input_path == "-" else False
        if input_path is not None and input_path != "-":
            same = _same_file(self.path, input_path)
        if same:
            raise UsageError(
                f"the rejects file {str(path)!r} is the input file; writing it would destroy "
                "the input, so choose another --rejects path"
            )
        try:
            descriptor = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise UsageError(f"cannot write the rejects file {str(path)!r}: {reason}") from None
        # An existing file keeps its mode on open: tighten it.
        try:
            os.fchmod(descriptor, 0o600)
        except OSError:  # pragma: no cover - e.g. a file owned by someone else
            pass
        # Binary: UTF-8 bytes whatever the locale (a rejects file is data, not terminal text).
        self._file = os.fdopen(descriptor, "wb")

    def write(self, line: int, original: Mapping[str, Any] | str, error: str) -> None:
        """Append one rejected record with its line number and the reason."""
        if isinstance(original, Mapping):
            entry = {k: v for k, v in original.items() if k not in ("_line", "_error")}
        else:
            entry = {"_raw": original}
        entry["_line"] = line
        entry["_error"] = error
        data = _reject_line(entry)
        with self._lock:
            try:
                self._file.write(data)
                self._file.flush()
            except OSError as exc:  # a full disk, say: the run stops, with a clear reason
                self._failed = True
                raise self._write_error(exc) from None
            self.count += 1

    def _write_error(self, exc: OSError) -> ConfigError:
        return ConfigError(
            f"cannot write the rejects file {str(self.path)!r}: "
            f"{exc.strerror or type(exc).__name__}",
            hint="free some space or choose another --rejects path, then run the same batch "
            "again (what is already in the outbox is skipped)",
        )

    def write_record(self, record: Record) -> None:
        """Append an invalid :class:`Record` (its error message is the reason)."""
        error = record.error.message if record.error is not None else "rejected"
        self.write(record.line, record.original, error)

    def close(self) -> None:
        """Flush and close the file."""
        with self._lock:
            if not self._file.closed:
                try:
                    self._file.close()
                except OSError as exc:
                    if not self._failed:  # else write() has said so already
                        raise self._write_error(exc) from None

    def __enter__(self) -> RejectsWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
