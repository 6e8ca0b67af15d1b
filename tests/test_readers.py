"""Bulk input: NDJSON and CSV (and gzip) into records with line numbers, and rejects files."""

from __future__ import annotations

import gzip
import io
import json
import os
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from itertools import islice
from pathlib import Path
from typing import Any

import pytest
from helpers import ndjson_bytes
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intercom_events_cli.errors import ExitCode, UsageError, ValidationError
from intercom_events_cli.input import records as input_records
from intercom_events_cli.input.readers import (
    InputError,
    Record,
    RejectsWriter,
    detect_format,
    open_input,
    read_records,
)

NOW = 1_700_000_000.0


def clock() -> float:
    return NOW


def read(data: bytes, format: str = "ndjson") -> list[Record]:
    return list(read_records(io.BytesIO(data), format, clock=clock))


def errors(records: list[Record]) -> list[tuple[int, str]]:
    return [(r.line, r.error.message) for r in records if r.error is not None]


SIGNUP = {"event_name": "signed-up", "user_id": "42", "created_at": 1_690_000_000}


# -- choosing the format ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("events.ndjson", "ndjson"),
        ("events.jsonl", "ndjson"),
        ("events.json", "ndjson"),
        ("EVENTS.NDJSON", "ndjson"),
        ("events.csv", "csv"),
        ("events.csv.gz", "csv"),
        ("events.ndjson.GZ", "ndjson"),
        ("dir.csv/events.jsonl", "ndjson"),
        ("-", "ndjson"),
    ],
)
def test_format_follows_the_extension(name: str, expected: str) -> None:
    assert detect_format(name) == expected


def test_an_explicit_format_wins_over_the_extension() -> None:
    assert detect_format("events.csv", "ndjson") == "ndjson"
    assert detect_format("-", "CSV") == "csv"
    assert detect_format("data.txt", "jsonl") == "ndjson"


@pytest.mark.parametrize("name", ["events.txt", "events", "events.gz", "events.tsv.gz"])
def test_an_unknown_extension_is_a_usage_error_naming_the_fix(name: str) -> None:
    with pytest.raises(UsageError) as caught:
        detect_format(name)
    assert caught.value.exit_code == ExitCode.USAGE
    assert name in caught.value.message
    assert "--format ndjson" in caught.value.message


def test_an_unknown_format_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="unknown format 'xml'"):
        detect_format("events.csv", "xml")


# -- NDJSON ---------------------------------------------------------------------------------


def test_ndjson_records_become_events_with_physical_line_numbers() -> None:
    data = ndjson_bytes(SIGNUP, "", "   ", {**SIGNUP, "user_id": "43"})
    records = read(data)
    assert [r.line for r in records] == [1, 4]
    assert all(r.ok and r.error is None for r in records)
    assert records[0].original == SIGNUP
    assert records[1].event is not None
    assert records[1].event.user_id == "43"
    assert records[1].event.created_at == 1_690_000_000


def test_ndjson_last_line_without_newline_and_crlf_endings_are_read() -> None:
    data = (json.dumps(SIGNUP) + "\r\n" + json.dumps({**SIGNUP, "user_id": "7"})).encode()
    records = read(data)
    assert [(r.line, r.ok) for r in records] == [(1, True), (2, True)]


def test_a_missing_created_at_is_stamped_once_from_the_clock() -> None:
    records = read(ndjson_bytes({"event_name": "x", "email": "a@example.org"}))
    assert records[0].event is not None
    assert records[0].event.created_at == int(NOW)
    assert "created_at" not in records[0].original


def test_invalid_json_is_reported_with_its_line_and_the_others_still_read() -> None:
    data = ndjson_bytes(SIGNUP, '{"event_name": "x", "user_id": 1', SIGNUP)
    records = read(data)
    assert [r.ok for r in records] == [True, False, True]
    bad = records[1]
    assert bad.line == 2
    assert bad.error is not None
    # The column counts from the start of the line, as an editor shows it.
    assert bad.error.message == "not valid JSON: Expecting ',' delimiter at column 33"
    assert bad.describe().startswith("line 2: not valid JSON: ")
    assert bad.original == '{"event_name": "x", "user_id": 1'
    assert bad.error.exit_code == ExitCode.DATA


@pytest.mark.parametrize("line", ["[1, 2]", "42", '"text"', "null", "true"])
def test_a_json_value_that_is_not_an_object_is_invalid_and_kept_as_text(line: str) -> None:
    records = read(ndjson_bytes(line))
    assert records[0].original == line
    assert records[0].error is not None
    assert "must be a JSON object" in records[0].error.message


@pytest.mark.parametrize("constant", ["NaN", "Infinity", "-Infinity"])
def test_nan_and_infinity_are_not_json(constant: str) -> None:
    line = '{"event_name": "x", "user_id": "1", "metadata": {"v": CONSTANT}}'
    records = read(ndjson_bytes(line.replace("CONSTANT", constant)))
    assert records[0].error is not None
    assert records[0].error.message == f"not valid JSON: {constant} is not allowed"


def test_unknown_keys_are_refused_naming_the_key_and_underscore_keys_ignored() -> None:
    data = ndjson_bytes(
        {"event_name": "x", "usr_id": "42", "email": "a@example.org"},
        {**SIGNUP, "_line": 9, "_error": "old", "_note": {"any": "thing"}},
    )
    typo, replay = read(data)
    assert typo.error is not None
    assert 'unknown field "usr_id" (did you mean "user_id"?)' in typo.error.message
    assert typo.error.field == "usr_id"
    assert replay.ok


def test_metadata_dates_are_converted_and_rules_applied() -> None:
    data = ndjson_bytes(
        {**SIGNUP, "metadata": {"trial_end_date": "2024-01-31T00:00:00Z", "seats": 3}},
        {**SIGNUP, "metadata": {"tags": ["a", "b"]}},
        {**SIGNUP, "metadata": {f"k{i}": i for i in range(11)}},
        {"user_id": "1"},
        {"event_name": "x"},
        {**SIGNUP, "created_at": "yesterday"},
        {**SIGNUP, "email": "not-an-address"},
    )
    records = read(data)
    assert records[0].event is not None
    assert records[0].event.metadata == {"trial_end_date": 1706659200, "seats": 3}
    problems = dict(errors(records))
    assert "arrays are not supported" in problems[2]
    assert "metadata has 11 keys" in problems[3]
    assert problems[4] == "event_name is missing"
    assert problems[5].startswith("no contact given")
    assert problems[6].startswith('created_at: "yesterday" is not a time')
    assert "is not an e-mail address" in problems[7]


def test_a_utf8_bom_is_skipped() -> None:
    records = read(b"\xef\xbb\xbf" + ndjson_bytes(SIGNUP))
    assert records[0].ok


def test_invalid_utf8_is_a_record_error_naming_the_byte() -> None:
    data = (
        ndjson_bytes(SIGNUP) + b'{"event_name": "caf\xe9", "user_id": "1"}\n' + ndjson_bytes(SIGNUP)
    )
    records = read(data)
    assert [r.ok for r in records] == [True, False, True]
    assert records[1].error is not None
    assert records[1].error.message.startswith("not valid UTF-8 (byte 20)")
    assert isinstance(records[1].original, str)
    assert "caf\N{REPLACEMENT CHARACTER}" in records[1].original


def test_json_escapes_for_lone_surrogates_are_refused() -> None:
    records = read(ndjson_bytes('{"event_name": "x\\ud800", "user_id": "1"}'))
    assert records[0].error is not None
    assert "not valid UTF-8" in records[0].error.message


def test_an_overlong_line_is_invalid_and_skipped_without_losing_the_next(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(input_records, "MAX_LINE_BYTES", 100)
    long_line = json.dumps({**SIGNUP, "metadata": {"text": "x" * 500}})
    records = read(ndjson_bytes(SIGNUP, long_line, SIGNUP))
    assert [r.line for r in records] == [1, 2, 3]
    assert [r.ok for r in records] == [True, False, True]
    assert records[1].error is not None
    assert "longer than" in records[1].error.message
    assert isinstance(records[1].original, str)
    assert len(records[1].original) <= 100


def test_deeply_nested_json_is_a_record_error() -> None:
    records = read(ndjson_bytes("[" * 100_000 + "]" * 100_000))
    assert records[0].error is not None
    assert records[0].error.message.startswith("not valid JSON")


# -- gzip -----------------------------------------------------------------------------------


def test_gzip_is_decompressed_from_a_stream_by_its_magic_bytes() -> None:
    records = read(gzip.compress(ndjson_bytes(SIGNUP, {**SIGNUP, "user_id": "2"})))
    assert [(r.line, r.ok) for r in records] == [(1, True), (2, True)]


def test_gzip_files_are_read_by_name_and_when_misnamed(tmp_path: Path) -> None:
    for name in ("events.ndjson.gz", "events.ndjson"):
        path = tmp_path / name
        path.write_bytes(gzip.compress(ndjson_bytes(SIGNUP, "oops")))
        with open_input(str(path)) as source:
            assert [r.ok for r in source.records(clock=clock)] == [True, False]


def test_a_gz_name_on_plain_data_is_read_as_it_is(tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(b"event_name,user_id\nsigned-up,42\n")
    with open_input(str(path)) as source:
        assert source.format == "csv"
        assert [r.line for r in source.records(clock=clock)] == [2]


def test_truncated_gzip_raises_input_error_after_the_good_records() -> None:
    data = gzip.compress(ndjson_bytes(*([SIGNUP] * 2000)))
    records = read_records(io.BytesIO(data[: len(data) // 2]), "ndjson", clock=clock)
    good = 0
    with pytest.raises(InputError) as caught:
        for record in records:
            assert record.ok
            good += 1
    assert good > 0
    assert "gzip data is corrupt or truncated" in caught.value.message
    assert caught.value.exit_code == ExitCode.DATA


# -- CSV ------------------------------------------------------------------------------------


def test_csv_rows_become_events_and_the_header_is_line_one() -> None:
    data = (
        b"event_name,created_at,user_id,email,id\n"
        b"signed-up,1690000000,42,,\n"
        b"\n"
        b"invited,2024-01-31T12:00:00Z,,a@example.org,\n"
    )
    records = read(data, "csv")
    assert [r.line for r in records] == [2, 4]
    first, second = records
    assert first.original == {
        "event_name": "signed-up",
        "created_at": "1690000000",
        "user_id": "42",
    }
    assert first.event is not None
    assert (first.event.user_id, first.event.email, first.event.created_at) == (
        "42",
        None,
        1_690_000_000,
    )
    assert second.event is not None
    assert second.event.email == "a@example.org"
    assert second.event.created_at == 1706702400


def test_an_empty_created_at_cell_is_absent_and_stamped_at_capture() -> None:
    records = read(b"event_name,created_at,user_id\nx,,1\n", "csv")
    assert records[0].event is not None
    assert records[0].event.created_at == int(NOW)


def test_a_quoted_multiline_cell_takes_the_line_where_its_record_starts() -> None:
    data = (
        b"event_name,user_id,metadata.note\n"
        b'x,1,"first\nsecond\nthird"\n'
        b"y,2,plain\n"
        b'bad name\x01,3,"a\nb"\n'
        b"z,4,\n"
    )
    records = read(data, "csv")
    assert [(r.line, r.ok) for r in records] == [(2, True), (5, True), (6, False), (8, True)]
    assert records[0].event is not None
    assert records[0].event.metadata == {"note": "first\nsecond\nthird"}


def test_csv_metadata_key_columns_give_strings_and_dates_are_converted() -> None:
    data = (
        b"event_name,user_id,metadata.plan,metadata.seats,metadata.renew_date\n"
        b"x,1,pro,3,2024-01-31\n"
    )
    records = read(data, "csv")
    assert records[0].event is not None
    assert records[0].event.metadata == {"plan": "pro", "seats": "3", "renew_date": 1706659200}
    assert records[0].original["metadata"] == {  # type: ignore[index]
        "plan": "pro",
        "seats": "3",
        "renew_date": "2024-01-31",
    }


def test_the_csv_metadata_column_holds_typed_values_and_metadata_key_wins() -> None:
    typed = {
        "seats": 3,
        "price": {"amount": 2999, "currency": "usd"},
        "invoice": {"url": "https://example.org/i/1", "value": "i-1"},
        "plan": "basic",
    }
    cell = json.dumps(typed).replace('"', '""')
    data = f'event_name,user_id,metadata,metadata.plan\nx,1,"{cell}",pro\nx,2,"{cell}",\n'
    first, second = read(data.encode(), "csv")
    assert first.event is not None
    assert first.event.metadata == {**typed, "plan": "pro"}
    assert second.event is not None
    assert second.event.metadata == typed


def test_a_bad_csv_metadata_cell_is_a_record_error_keeping_the_cell() -> None:
    data = (
        b'event_name,user_id,metadata,metadata.plan\nx,1,{"seats": 3,pro\nx,2,[1],pro\nx,3,,pro\n'
    )
    records = read(data, "csv")
    assert [r.ok for r in records] == [False, False, True]
    assert records[0].error is not None
    assert records[0].error.message.startswith("metadata column: not valid JSON")
    assert records[0].original == {
        "event_name": "x",
        "user_id": "1",
        "metadata": {"plan": "pro"},  # the NDJSON shape: replays once the cell is merged
        "_metadata_cell": '{"seats": 3',
    }
    assert records[1].error is not None
    assert "must hold a JSON object" in records[1].error.message


def test_csv_validation_rules_apply_per_row() -> None:
    data = b"event_name,user_id,email,created_at\n,1,,\nx,,,\nx,1,nope,\nx,1,,soon\n"
    problems = dict(errors(read(data, "csv")))
    assert problems == {
        2: "event_name is missing",
        3: problems[3],
        4: problems[4],
        5: problems[5],
    }
    assert problems[3].startswith("no contact given")
    assert "not an e-mail address" in problems[4]
    assert problems[5].startswith('created_at: "soon" is not a time')


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        ("event_name,usr_id", 'unknown CSV column "usr_id" (did you mean "user_id"?)'),
        ("event_name,user_id,colour", 'unknown CSV column "colour"'),
        ("event_name,user_id,user_id", 'CSV column "user_id" appears twice'),
        ("event_name,user_id,", "CSV column 3 has no name"),
        ("user_id,email", "no event_name column"),
        ("event_name,created_at", "no user_id, email or id column"),
        ("event_name,user_id,metadata.a$b", 'CSV column "metadata.a$b"'),
        ("event_name,user_id,metadata.", "metadata key is empty"),
    ],
)
def test_a_bad_csv_header_fails_up_front_before_any_record(header: str, expected: str) -> None:
    data = f"{header}\nx,1,2\n".encode()
    with pytest.raises(InputError) as caught:
        read_records(io.BytesIO(data), "csv", clock=clock)  # not even iterated
    assert caught.value.message.startswith("line 1: ")
    assert expected in caught.value.message
    assert caught.value.exit_code == ExitCode.DATA


def test_csv_header_names_are_trimmed_and_underscore_columns_ignored() -> None:
    data = b"event_name , user_id,_line,_error\nx,1,9,old problem\n"
    records = read(data, "csv")
    assert records[0].ok
    assert records[0].original == {
        "event_name": "x",
        "user_id": "1",
        "_line": "9",
        "_error": "old problem",
    }


def test_a_row_with_the_wrong_number_of_cells_is_invalid() -> None:
    data = b"event_name,user_id,email\nx,a@example.org\nx,1,a@example.org,extra\nx,1,\n"
    records = read(data, "csv")
    assert [(r.line, r.ok) for r in records] == [(2, False), (3, False), (4, True)]
    assert records[0].error is not None
    assert "the row has 2 cells but the header has 3 columns" in records[0].error.message
    assert records[0].original == "x,a@example.org"


def test_empty_csv_rows_are_skipped() -> None:
    data = b"event_name,user_id\r\n\r\n,\r\n  ,  \r\nx,1\r\n"
    assert [(r.line, r.ok) for r in read(data, "csv")] == [(5, True)]


def test_csv_with_a_bom_and_an_empty_csv() -> None:
    assert [r.ok for r in read(b"\xef\xbb\xbfevent_name,user_id\nx,1\n", "csv")] == [True]
    assert read(b"", "csv") == []
    assert read(b"event_name,user_id\n", "csv") == []


def test_invalid_utf8_in_a_csv_row_is_a_record_error() -> None:
    data = b"event_name,user_id\ncaf\xe9,1\nx,2\n"
    records = read(data, "csv")
    assert [(r.line, r.ok) for r in records] == [(2, False), (3, True)]
    assert records[0].error is not None
    assert records[0].error.message.startswith("not valid UTF-8")


def test_an_overlong_csv_line_is_invalid(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(input_records, "MAX_LINE_BYTES", 50)
    data = f"event_name,user_id\nx,{'1' * 200}\ny,2\n".encode()
    records = read(data, "csv")
    assert [(r.line, r.ok) for r in records] == [(2, False), (3, True)]


def test_csv_gzip_file(tmp_path: Path) -> None:
    path = tmp_path / "events.csv.gz"
    path.write_bytes(gzip.compress(b"event_name,user_id\nx,1\nx,\n"))
    with open_input(str(path)) as source:
        assert source.format == "csv"
        assert [(r.line, r.ok) for r in source.records(clock=clock)] == [(2, True), (3, False)]


# -- opening inputs -------------------------------------------------------------------------


def test_open_input_reports_size_and_position(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    data = ndjson_bytes(*([SIGNUP] * 100))
    path.write_bytes(data)
    with open_input(str(path)) as source:
        assert source.size == len(data)
        assert source.format == "ndjson"
        assert len(list(source.records())) == 100
        assert source.position() == len(data)


def test_open_input_refuses_a_missing_file_or_a_directory(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot read .*missing.csv.*No such file"):
        open_input(str(tmp_path / "missing.csv"))
    (tmp_path / "dir.csv").mkdir()
    with pytest.raises(UsageError, match="cannot read"):
        open_input(str(tmp_path / "dir.csv"))


def test_standard_input_defaults_to_ndjson_and_may_be_gzip(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    stdin = io.TextIOWrapper(io.BytesIO(gzip.compress(ndjson_bytes(SIGNUP))))
    monkeypatch.setattr(sys, "stdin", stdin)
    source = open_input("-")
    assert (source.name, source.format, source.size) == ("<stdin>", "ndjson", None)
    assert [r.ok for r in source.records()] == [True]
    source.close()
    assert not stdin.closed


def test_standard_input_through_a_real_pipe() -> None:
    script = (
        "from intercom_events_cli.input.readers import open_input\n"
        "for r in open_input('-', 'csv').records(): print(r.line, r.ok)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-c", script],
        input=gzip.compress(b"event_name,user_id\nx,1\nx,\n"),
        capture_output=True,
        timeout=60,
    )
    assert completed.returncode == 0, completed.stderr
    assert completed.stdout.decode().split("\n")[:2] == ["2 True", "3 False"]


class EndlessNdjson(io.RawIOBase):
    """An endless stream of valid records that counts the bytes handed out."""

    line = ndjson_bytes(SIGNUP)

    def __init__(self) -> None:
        self.handed_out = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        size = len(buffer)
        offset = self.handed_out % len(self.line)
        repeated = self.line * (size // len(self.line) + 2)
        buffer[:size] = repeated[offset : offset + size]
        self.handed_out += size
        return size


@pytest.mark.parametrize("format", ["ndjson", "csv"])
def test_reading_streams_instead_of_loading_the_input(format: str) -> None:
    stream = EndlessNdjson()
    if format == "csv":
        stream.line = b"signed-up,42\n"
        source = io.BufferedReader(_Prefix(b"event_name,user_id\n", stream))
    else:
        source = io.BufferedReader(stream)
    records = read_records(source, format, clock=clock)
    first = list(islice(records, 1000))
    assert len(first) == 1000 and all(r.ok for r in first)
    assert stream.handed_out < 1024 * 1024


class _Prefix(io.RawIOBase):
    def __init__(self, prefix: bytes, rest: io.RawIOBase) -> None:
        self.prefix = prefix
        self.rest = rest

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        if self.prefix:
            size = min(len(buffer), len(self.prefix))
            buffer[:size] = self.prefix[:size]
            self.prefix = self.prefix[size:]
            return size
        return self.rest.readinto(buffer)


# -- property: any input gives records or validation errors ---------------------------------


def _check_records(records: Iterator[Record], line_count: int) -> None:
    last = 0
    for record in records:
        assert isinstance(record, Record)
        assert (record.event is None) != (record.error is None)
        assert isinstance(record.original, dict | str)
        assert last < record.line <= max(line_count, 1)
        last = record.line
        if record.error is not None:
            assert isinstance(record.error, ValidationError)
            assert record.describe().startswith(f"line {record.line}: ")


def _consume(data: bytes, format: str, line_count: int) -> None:
    try:
        _check_records(read_records(io.BytesIO(data), format, clock=clock), line_count)
    except InputError:
        pass  # the input as a whole is refused (CSV header, corrupt gzip): fine


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=8,
)
names = st.text(alphabet="abcdefghij-_ .$", min_size=1, max_size=12)
plausible_values = (
    st.text(max_size=20)
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.fixed_dictionaries(
        {"amount": st.integers(-5, 10**6), "currency": st.sampled_from(["usd", "eu"])}
    )
    | st.fixed_dictionaries(
        {"url": st.sampled_from(["https://x.org/1", "ftp://x"]), "value": names}
    )
)
times = st.integers(-10, 2 * 10**12) | st.sampled_from(["now", "2024-01-31", "1e400", "soon", ""])
# Mostly valid records, each field sometimes missing or wrong, with the odd unknown key.
record_like = st.fixed_dictionaries(
    {"event_name": names, "user_id": st.integers(0, 10**6).map(str)},
    optional={
        "email": st.sampled_from(["a@example.org", "no-at", "", " a@b.c"]) | json_values,
        "id": names | json_values,
        "created_at": times | json_values,
        "metadata": st.dictionaries(names, plausible_values, max_size=11) | json_values,
        "_line": st.integers(),
        "usr_id": st.text(max_size=4),
    },
)
ndjson_line = (
    record_like.map(json.dumps)
    | json_values.map(json.dumps)
    | st.text(max_size=30)
    | st.binary(max_size=30).map(lambda b: b.decode("latin-1"))
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300), st.sampled_from(["ndjson", "csv"]))
def test_any_bytes_give_records_or_validation_errors(data: bytes, format: str) -> None:
    lines = data.count(b"\n") + 1
    _consume(data, format, lines)
    _consume(gzip.compress(data), format, lines)
    _consume(gzip.compress(data)[:-5], format, lines)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(ndjson_line, max_size=8))
def test_any_ndjson_lines_give_records_or_validation_errors(lines: list[str]) -> None:
    data = "\n".join(lines).encode("utf-8", "surrogatepass")
    _consume(data, "ndjson", data.count(b"\n") + 1)


csv_cell = (
    st.text(alphabet=st.characters(codec="utf-8"), max_size=12)
    | names
    | st.sampled_from(["", "now", "42", "a@example.org", '{"seats": 3}', "[1]", "2024-01-31"])
    | st.sampled_from(['{"p": {"amount": 1, "currency": "usd"}}', "{bad", '"quoted, cell"'])
)
extra_columns = st.lists(
    st.sampled_from(
        ["email", "id", "created_at", "metadata", "metadata.plan", "metadata.x_date", "_note"]
        + ["usr_id", "", "user_id", "metadata.a.b"]
    ),
    max_size=4,
)


@settings(max_examples=300, suppress_health_check=[HealthCheck.too_slow])
@given(extra_columns, st.data())
def test_any_csv_gives_records_or_validation_errors(extra: list[str], data: Any) -> None:
    import csv

    header = ["event_name", "user_id", *extra]
    width = st.integers(len(header) - 1, len(header) + 1) | st.just(len(header))
    rows = data.draw(
        st.lists(width.flatmap(lambda n: st.lists(csv_cell, min_size=n, max_size=n)), max_size=6)
    )
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(header)
    writer.writerows(rows)
    encoded = buffer.getvalue().encode("utf-8", "surrogatepass")
    _consume(encoded, "csv", encoded.count(b"\n") + 1)


# -- rejects --------------------------------------------------------------------------------


def test_rejects_file_is_private_and_holds_the_record_its_line_and_the_error(
    tmp_path: Path,
) -> None:
    path = tmp_path / "rejects.ndjson"
    data = ndjson_bytes(SIGNUP, {"event_name": "x", "usr_id": "1"}, "{not json", "[1]")
    with RejectsWriter(path) as rejects:
        for record in read(data):
            if not record.ok:
                rejects.write_record(record)
        assert rejects.count == 3
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert lines[0] == {
        "event_name": "x",
        "usr_id": "1",
        "_line": 2,
        "_error": lines[0]["_error"],
    }
    assert 'unknown field "usr_id"' in lines[0]["_error"]
    assert lines[1]["_raw"] == "{not json"
    assert lines[1]["_line"] == 3
    assert lines[1]["_error"].startswith("not valid JSON")
    assert lines[2] == {"_raw": "[1]", "_line": 4, "_error": lines[2]["_error"]}


def test_an_existing_rejects_file_is_truncated_and_made_private(tmp_path: Path) -> None:
    path = tmp_path / "rejects.ndjson"
    path.write_text("old\n")
    os.chmod(path, 0o644)
    with RejectsWriter(path):
        pass
    assert path.read_text() == ""
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_an_unwritable_rejects_path_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="cannot write the rejects file"):
        RejectsWriter(tmp_path / "no" / "such" / "dir" / "rejects.ndjson")


def test_the_rejects_file_may_not_be_the_input(tmp_path: Path) -> None:
    path = tmp_path / "rejects.ndjson"
    path.write_text('{"event_name": "x"}\n')
    with pytest.raises(UsageError, match="is the input file"):
        RejectsWriter(path, input_path=str(tmp_path / "." / "rejects.ndjson"))
    assert path.read_text() == '{"event_name": "x"}\n'
    with RejectsWriter(tmp_path / "other.ndjson", input_path=path):
        pass
    with RejectsWriter(tmp_path / "third.ndjson", input_path="-"):
        pass


def test_rejects_are_on_disk_as_soon_as_written(tmp_path: Path) -> None:
    path = tmp_path / "rejects.ndjson"
    rejects = RejectsWriter(path)
    rejects.write(12, {"event_name": "x"}, "422: User Not Found")
    assert json.loads(path.read_text()) == {
        "event_name": "x",
        "_line": 12,
        "_error": "422: User Not Found",
    }
    rejects.close()


def test_a_rejected_rejects_line_gets_its_new_line_and_error(tmp_path: Path) -> None:
    path = tmp_path / "rejects.ndjson"
    with RejectsWriter(path) as rejects:
        rejects.write(3, {"event_name": "x", "_line": 9, "_error": "old", "_note": 1}, "new")
    assert json.loads(path.read_text()) == {
        "event_name": "x",
        "_note": 1,
        "_line": 3,
        "_error": "new",
    }


def test_rejects_from_many_threads_stay_whole_lines(tmp_path: Path) -> None:
    path = tmp_path / "rejects.ndjson"
    with RejectsWriter(path) as rejects:

        def write_many(start: int) -> None:
            for n in range(start, start + 200):
                rejects.write(n, {"event_name": "é" * 50, "user_id": str(n)}, "bad " * 20)

        threads = [threading.Thread(target=write_many, args=(i * 1000,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    assert len(lines) == 1600 == rejects.count
    assert sorted(line["_line"] for line in lines) == sorted(
        n for i in range(8) for n in range(i * 1000, i * 1000 + 200)
    )


def test_a_fixed_ndjson_rejects_file_replays(tmp_path: Path) -> None:
    source = ndjson_bytes(
        SIGNUP,
        {"event_name": "x", "usr_id": "1"},
        {"event_name": "y", "user_id": "2", "metadata": {"tags": ["a"]}},
    )
    path = tmp_path / "rejects.ndjson"
    with RejectsWriter(path) as rejects:
        for record in read(source):
            if not record.ok:
                rejects.write_record(record)
    fixed = []
    for line in path.read_text().splitlines():
        entry = json.loads(line)
        if "usr_id" in entry:
            entry["user_id"] = entry.pop("usr_id")
        if "metadata" in entry:
            entry["metadata"] = {"tags": "a"}
        fixed.append(entry)
    fixed_path = tmp_path / "fixed.ndjson"
    fixed_path.write_text("".join(json.dumps(entry) + "\n" for entry in fixed))
    with open_input(str(fixed_path)) as replay:
        events = [r.event for r in replay.records(clock=clock)]
    assert [(e.event_name, e.user_id, dict(e.metadata)) for e in events if e] == [
        ("x", "1", {}),
        ("y", "2", {"tags": "a"}),
    ]


def test_csv_rejects_are_ndjson_and_replay_once_fixed(tmp_path: Path) -> None:
    source = (
        b"event_name,user_id,created_at,metadata,metadata.plan\n"
        b'x,1,1690000000,"{""seats"": 3}",pro\n'
        b"y,2,yesterday,,basic\n"
    )
    path = tmp_path / "rejects.ndjson"
    with RejectsWriter(path) as rejects:
        for record in read(source, "csv"):
            if not record.ok:
                rejects.write_record(record)
    (entry,) = [json.loads(line) for line in path.read_text().splitlines()]
    assert entry == {
        "event_name": "y",
        "user_id": "2",
        "created_at": "yesterday",
        "metadata": {"plan": "basic"},
        "_line": 3,
        "_error": entry["_error"],
    }
    entry["created_at"] = "2024-01-31T00:00:00Z"
    records = read(ndjson_bytes(entry))
    assert records[0].event is not None
    assert (records[0].event.event_name, records[0].event.created_at) == ("y", 1706659200)
