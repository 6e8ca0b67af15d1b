"""NDJSON records, read a block at a time: the bulk capture's reader.

A block (up to :data:`BLOCK_BYTES`, what the stream has ready: a pipe is never waited on
for more than it holds) is decoded as a whole and split on ``\\n``; each line is parsed
by the JSON scanner itself and validated. The records come back a block's worth at a
time (:func:`ndjson_batches`), so that the caller takes its lock once per block.
Whatever is not plain, a block that is not UTF-8, a block that may hold an over-long
line, the first line (its BOM), a line that is not one JSON object, goes line by line
through the rules of :mod:`.input_records`, with the messages they always gave.
"""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

from ..errors import ValidationError
from ..event import event_from_record
from . import records as input_records
from .records import (
    DECODER,
    SCAN,
    Clock,
    InputError,
    LineReader,
    Record,
    array_hint,
    json_problem,
    raw_text,
    too_long_error,
    unreadable,
    unusable,
    valid_record,
)

BLOCK_BYTES = 256 * 1024
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = " \t\r\n"


class _Lines:
    """The state of one stream's reading: line numbers, and whether the next is the first."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.number = 0
        self.first = True

    def block(self, complete: bytes, limit: int) -> Iterable[Record]:
        """The records of ``complete``: whole lines, without the last line's ``\\n``."""
        if self.first:
            self.first = False
            if len(complete) >= limit:
                return self.lines(complete.split(b"\n"), limit, first=True)
            if complete.startswith(_BOM):
                complete = complete[len(_BOM) :]
        if len(complete) < limit:  # no line in it can be over-long
            try:
                text = complete.decode("utf-8")
            except UnicodeDecodeError:
                pass  # line by line: the message names the line's byte
            else:
                return self.texts(text.split("\n"))
        return self.lines(complete.split(b"\n"), limit)

    def texts(self, lines: list[str]) -> Iterator[Record]:
        """Each line's record, made as it is asked for: the caller is done with one
        before the next is made, so a block's records are never all alive at once (making
        them all first, then handing them over, cost a third more: more memory touched,
        and all of it freed at once). The lines are counted now, so that the numbers are
        right whenever the records are taken."""
        start = self.number
        self.number += len(lines)
        return self._records(lines, start)

    def _records(self, lines: list[str], number: int) -> Iterator[Record]:
        clock = self.clock
        for text in lines:
            number += 1
            if text[:1] != "{":
                if not text.strip():
                    continue
                yield self.parsed(number, text)
                continue
            try:
                value, end = SCAN(text, 0)
            except (StopIteration, ValueError, RecursionError):
                yield self.parsed(number, text)
                continue
            if end != len(text) and text[end:].strip(_JSON_SPACE):
                yield self.parsed(number, text)  # "Extra data", worded by the decoder
                continue
            try:
                record = valid_record(number, value, event_from_record(value, clock))
            except ValidationError as exc:
                record = Record(number, value, error=exc)
            except Exception as exc:  # noqa: BLE001 - one record's problem, never the run's
                record = Record(number, value, error=unusable(exc))
            yield record

    def parsed(self, number: int, text: str) -> Record:
        """One line (a str, without ``\\n``) through the full JSON decoder and the rules."""
        try:
            value = DECODER.decode(text)
        except (ValueError, RecursionError):
            stripped = text.rstrip("\r\n")
            return Record(number, stripped, error=array_hint(stripped, json_problem(stripped)))
        try:
            return Record(number, value, event=input_records.validated(value, self.clock))
        except ValidationError as exc:
            original = value if isinstance(value, dict) else text.rstrip("\r\n")
            return Record(number, original, error=array_hint(text, exc))

    def lines(self, lines: list[bytes], limit: int, *, first: bool = False) -> list[Record]:
        """Line by line, as bytes: over-long lines, UTF-8 errors, the first line's BOM."""
        records: list[Record] = []
        for line in lines:
            self.number += 1
            if len(line) + 1 > limit:  # with its \\n, more than readline(limit + 1) gives
                records.append(self.too_long(line[:limit], first=first))
            else:
                records.extend(self.one(line, first=first))
            first = False
        return records

    def last(self, line: bytes, limit: int) -> list[Record]:
        """The last line, which has no ``\\n``: over-long only past ``limit`` itself."""
        first, self.first = self.first, False
        self.number += 1
        if len(line) > limit:
            return [self.too_long(line[:limit], first=first)]
        return self.one(line, first=first)

    def too_long(self, head: bytes, *, first: bool = False) -> Record:
        if first and head.startswith(_BOM):
            head = head[len(_BOM) :]
        return Record(self.number, raw_text(head), error=too_long_error())

    def one(self, line: bytes, *, first: bool = False) -> list[Record]:
        if first and line.startswith(_BOM):
            line = line[len(_BOM) :]
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            error = ValidationError(
                f"not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8", field="record"
            )
            return [Record(self.number, raw_text(line), error=error)]
        if not text.strip():
            return []
        return [self.parsed(self.number, text)]


def ndjson_batches(stream: LineReader, clock: Clock) -> Iterator[Iterable[Record]]:
    """The records of an NDJSON stream, a block's worth at a time (perhaps none, for a
    block of blank lines). Take each batch's records before asking for the next batch.

    Memory stays bounded: a line longer than ``MAX_LINE_BYTES`` is reported from its
    first ``MAX_LINE_BYTES`` bytes and the rest of it skipped. A corrupt or truncated
    gzip stream raises :class:`InputError` after the records before it.
    """
    state = _Lines(clock)
    read = stream.read1
    carry = b""
    skipping = False  # inside an over-long line already reported
    while True:
        limit = input_records.MAX_LINE_BYTES
        try:
            data = read(BLOCK_BYTES)
        except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
            raise _broken(state.number, exc) from None
        except OSError as exc:  # after BadGzipFile, an OSError too: a read that failed
            raise unreadable(state.number, exc) from None
        if not data:
            break
        if skipping:
            newline = data.find(b"\n")
            if newline < 0:
                continue
            data, skipping = data[newline + 1 :], False
        buffer = carry + data if carry else data
        end = buffer.rfind(b"\n")
        if end < 0:
            carry = buffer
            if len(carry) > limit:
                state.number += 1
                first, state.first = state.first, False
                yield [state.too_long(carry[:limit], first=first)]
                carry, skipping = b"", True
            continue
        carry = buffer[end + 1 :]
        yield state.block(buffer[:end], limit)
    if carry:  # the last line, without a newline
        records = state.last(carry, input_records.MAX_LINE_BYTES)
        if records:
            yield records


def _broken(number: int, exc: Any) -> InputError:
    return InputError(
        f"the gzip data is corrupt or truncated after line {number}: {exc}",
        field="input",
        hint="records before that line were read; check the file is complete",
    )
