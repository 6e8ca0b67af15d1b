"""What every input format shares: a :class:`Record` and :class:`InputError`, the lines
of a (possibly gzip) stream read with bounded memory, JSON decoding, and the validation
of one record.
"""

from __future__ import annotations

import codecs
import gzip
import io
import json
import zlib
from collections.abc import Callable, Iterator
from typing import IO, Any, Protocol

from ..errors import ValidationError
from ..event import Event, event_from_record
from ..frozen import frozen

# Far above any valid event (ten metadata values of 255 characters), far below a problem.
MAX_LINE_BYTES = 1024 * 1024
# A CSV record spanning more lines than this (a quoted cell with newlines) is a stray quote.
MAX_RECORD_LINES = 100
GZIP_MAGIC = b"\x1f\x8b"
_BOM = codecs.BOM_UTF8

Clock = Callable[[], float]


class LineReader(Protocol):
    """What lines are read from: a buffered or gzip binary stream."""

    def readline(self, size: int = -1, /) -> bytes: ...

    def read1(self, size: int = -1, /) -> bytes: ...


class InputError(ValidationError):
    """The input as a whole cannot be read on (bad CSV header, corrupt gzip); exit 65.

    Records yielded before it was raised are unaffected.
    """


@frozen
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


def valid_record(line: int, original: dict[str, Any], event: Event) -> Record:
    """``Record(line, original, event=event)``, without the frozen dataclass's ``__init__``
    (a bulk reader makes one per line)."""
    record = object.__new__(Record)
    object.__setattr__(
        record, "__dict__", {"line": line, "original": original, "event": event, "error": None}
    )
    return record


def not_valid_json(exc: ValueError | RecursionError) -> ValidationError:
    if isinstance(exc, json.JSONDecodeError):
        detail = f"{exc.msg} at column {exc.colno}"
    elif isinstance(exc, RecursionError):
        detail = "nested too deeply"
    else:
        detail = str(exc)
    return ValidationError(f"not valid JSON: {detail}", field="record")


def json_problem(line: str) -> ValidationError:
    """Why ``line`` (without its line ending, so that the column is the editor's) is not JSON."""
    try:
        DECODER.decode(line)
    except (ValueError, RecursionError) as exc:
        return not_valid_json(exc)
    return ValidationError("not valid JSON", field="record")  # pragma: no cover


def array_hint(text: str, error: ValidationError) -> ValidationError:
    """``error``, saying how to convert when the NDJSON line opens a JSON array (an export
    as one array, on one line or pretty-printed, rather than one object per line)."""
    if not text.lstrip(" \t\r\n").startswith("["):
        return error
    return ValidationError(
        f"{error.message}; the input looks like a JSON array, and batch reads one JSON "
        "object per line (NDJSON): convert it with jq -c '.[]' FILE | ievents batch -",
        field=error.field,
    )


def _refuse_constant(name: str) -> Any:
    # Python's json reads NaN and Infinity, which are not JSON and which Intercom refuses.
    raise ValueError(f"{name} is not allowed")


DECODER = json.JSONDecoder(parse_constant=_refuse_constant)
# The decoder's scanner: (text, index) -> (value, end), raising StopIteration when no value
# starts there. ``DECODER.decode`` is this plus whitespace checks, in Python.
SCAN: Callable[[str, int], tuple[Any, int]] = DECODER.scan_once  # type: ignore[attr-defined]


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


def decompressed(stream: IO[bytes]) -> LineReader:
    """The data of ``stream``, decompressed on the fly when it starts with the gzip magic."""
    buffered = _peekable(stream)
    try:
        head = buffered.peek(len(GZIP_MAGIC))[: len(GZIP_MAGIC)]
    except OSError as exc:
        raise unreadable(0, exc) from None
    if head != GZIP_MAGIC:
        return buffered
    # GzipFile buffers internally: readline on it is fast and bounded by the limit given.
    return gzip.GzipFile(fileobj=buffered, mode="rb")


def physical_lines(stream: LineReader) -> Iterator[tuple[bytes, bool]]:
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
        except OSError as exc:
            raise unreadable(number, exc) from None
        if first:
            first = False
            if line.startswith(_BOM):
                line = line[len(_BOM) :]
        yield line, too_long


def unreadable(number: int, exc: OSError) -> InputError:
    """The input failed while read (EIO from a failing disk or a network mount)."""
    where = f"after line {number}" if number else "from its start"
    return InputError(
        f"the input cannot be read {where}: {exc.strerror or exc}",
        field="input",
        hint="records before that line were read; check the file, disk or mount, then run again",
    )


def too_long_error() -> ValidationError:
    return ValidationError(
        f"the line is longer than {MAX_LINE_BYTES // 1024} KiB; no valid event is that long",
        field="record",
    )


def raw_text(line: bytes) -> str:
    return line.rstrip(b"\r\n").decode("utf-8", "replace")


def validated(record: object, clock: Clock) -> Event:
    """``event_from_record``, every failure a :class:`ValidationError` of this one record.

    Whatever one record holds (a lone surrogate, a value no check foresaw) must not stop
    the reading of the others: an unexpected exception is that record's error.
    """
    try:
        return event_from_record(record, clock)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - one record's problem, never the run's
        raise unusable(exc) from None


def unusable(exc: Exception) -> ValidationError:
    """The error of a record whose validation failed unexpectedly (see :func:`validated`)."""
    return ValidationError(
        f"the record cannot be used ({type(exc).__name__}); check its text and encoding",
        field="record",
    )
