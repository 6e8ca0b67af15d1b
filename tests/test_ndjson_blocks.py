"""The block reader of NDJSON (input_ndjson.py) gives what reading line by line gives.

The reference below is the reader as it was before blocks: ``physical_lines`` (readline
with a bound), UTF-8 per line, the JSON decoder, the rules. Any bytes, any block size,
any line bound: the same records (line, original, event, error), in the same order.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intercom_events_cli.errors import ValidationError
from intercom_events_cli.input import ndjson_blocks as input_ndjson
from intercom_events_cli.input import records as input_records
from intercom_events_cli.input.readers import read_records
from intercom_events_cli.input.records import (
    DECODER,
    InputError,
    Record,
    array_hint,
    decompressed,
    json_problem,
    physical_lines,
    raw_text,
    too_long_error,
    validated,
)


def clock() -> float:
    return 1_700_000_000.0


def line_by_line(data: bytes) -> Iterator[Record]:
    stream = decompressed(io.BytesIO(data))
    for number, (line, too_long) in enumerate(physical_lines(stream), start=1):
        if too_long:
            yield Record(number, raw_text(line), error=too_long_error())
            continue
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError as exc:
            message = f"not valid UTF-8 (byte {exc.start + 1}); save the file as UTF-8"
            yield Record(number, raw_text(line), error=ValidationError(message, field="record"))
            continue
        if not text.strip():
            continue
        try:
            value = DECODER.decode(text)
        except (ValueError, RecursionError):
            stripped = text.rstrip("\r\n")
            yield Record(number, stripped, error=array_hint(stripped, json_problem(stripped)))
            continue
        try:
            event = validated(value, clock)
        except ValidationError as exc:
            original = value if isinstance(value, dict) else text.rstrip("\r\n")
            yield Record(number, original, error=array_hint(text, exc))
            continue
        yield Record(number, value, event=event)


def summary(records: Any) -> list[tuple[Any, ...]]:
    seen: list[tuple[Any, ...]] = []
    try:
        for r in records:
            error = (r.error.message, r.error.field) if r.error else None
            seen.append((r.line, repr(r.original), r.event.body() if r.event else None, error))
    except InputError as exc:  # a gzip stream that breaks off: records before, then this
        seen.append(("input error", exc.message.split(" after line")[0]))
    return seen


lines = st.sampled_from(
    [
        b'{"event_name":"a","user_id":"1","created_at":5}',
        b'{"event_name":"a","user_id":"1","created_at":5}\r',
        b' {"event_name":"b","email":"x@y","created_at":"2024-01-31T12:00:00Z"} ',
        b'{"event_name":"a","user_id":"1","created_at":5} x',
        b'{"event_name":"a","user_id":"1","created_at":5}\x0c',
        b'{"event_name":"a"}',
        b'{"event_name":"a","user_id":"1","metadata":{"n":NaN}}',
        b'{"event_name":"\\ud800","user_id":"1"}',
        b'{"event_name":"caf\xc3\xa9","user_id":"1","created_at":5}',
        b'{"event_name":"a","user_id":"\xff"}',
        b"[1, 2]",
        b"{",
        b"",
        b"   ",
        b"\xe2\x80\xa8",
        b"\xef\xbb\xbf{}",
        b'"text"',
        b'{"event_name":"a","user_id":"1","created_at":5,"metadata":{"t":"' + b"x" * 90 + b'"}}',
    ]
)
documents = st.builds(
    lambda bom, parts, end: (b"\xef\xbb\xbf" if bom else b"") + b"\n".join(parts) + end,
    st.booleans(),
    st.lists(lines | st.binary(max_size=12) | st.just(b"\x1f\x8b"), max_size=12),
    st.sampled_from([b"", b"\n", b"\r\n"]),
)


@settings(max_examples=400)
@given(documents, st.sampled_from([1, 2, 7, 64, 4096]), st.integers(44, 52) | st.just(1 << 20))
def test_blocks_read_as_lines_do(data: bytes, block: int, limit: int) -> None:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(input_ndjson, "BLOCK_BYTES", block)
        patch.setattr(input_records, "MAX_LINE_BYTES", limit)
        expected = summary(line_by_line(data))
        got = summary(read_records(io.BytesIO(data), "ndjson", clock=clock))
    assert got == expected


def test_a_pipe_gives_each_line_as_it_comes_without_waiting_for_a_block() -> None:
    class Trickle(io.RawIOBase):
        """Hands out one line per read, like a pipe written line by line."""

        def __init__(self, parts: list[bytes]) -> None:
            self.parts = parts

        def readable(self) -> bool:
            return True

        def readinto(self, buffer: Any) -> int:
            if not self.parts:
                raise AssertionError("read past the lines asked for: it waited for more")
            part = self.parts.pop(0)
            buffer[: len(part)] = part
            return len(part)

    line = b'{"event_name":"a","user_id":"1","created_at":5}\n'
    batches = input_ndjson.ndjson_batches(io.BufferedReader(Trickle([line, line])), clock)
    assert [r.line for r in next(batches)] == [1]
    assert [r.line for r in next(batches)] == [2]


def test_line_numbers_do_not_depend_on_when_a_batch_is_taken() -> None:
    """A block's records are made as they are taken; its lines are counted when the
    block is read, so batches collected first and taken later keep their numbers."""
    ok = b'{"event_name":"a","user_id":"1","created_at":5}'
    data = b"\xef\xbb\xbf" + ok + b"\n\n\n" + ok + b"\nnot json\n" + ok  # no last \n
    stream = io.BufferedReader(io.BytesIO(data))
    batches = list(input_ndjson.ndjson_batches(stream, clock))
    assert [(r.line, r.ok) for batch in batches for r in batch] == [
        (1, True),
        (4, True),
        (5, False),
        (6, True),
    ]
