"""``ievents batch`` as real subprocesses: files, pipes, the fake Intercom, real SQLite.

Inputs, bad records and the rejects file, re-runs, and every summary and output mode. The
delivery under faults, rate limits, signals and crashes is in ``test_batch_delivery.py``.
"""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

from conftest import RunCli
from fake_intercom import FakeIntercom, api_error
from helpers import key, ndjson, order_record, outbox_states, write

BASE_TIME = 1_700_000_000
SUMMARY_KEYS = {
    "ok",
    "read",
    "valid",
    "invalid",
    "skipped",
    "delivered",
    "dead",
    "pending",
    "elapsed_s",
    "events_per_s",
    "rejects",
}


# -- helpers --------------------------------------------------------------------------------


def assert_delivered_exactly(fake: FakeIntercom, expected: list[dict[str, Any]]) -> None:
    """Every expected body was accepted exactly once, and nothing else was."""
    accepted = Counter(key(body) for body in fake.events_posted())
    assert accepted == Counter(key(body) for body in expected)


def read_rejects(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_line(rejects: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    lines = [entry["_line"] for entry in rejects]
    assert len(lines) == len(set(lines)), f"a line was rejected twice: {lines}"
    return {entry["_line"]: entry for entry in rejects}


# -- inputs ---------------------------------------------------------------------------------


def test_ndjson_file_delivers_every_event_once_with_its_exact_payload(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    plain = [order_record(n) for n in range(60)]
    converted = [
        # Input forms that are converted: ISO and millisecond times, _date keys, money, links.
        {
            "event_name": "trial-started",
            "created_at": "2024-01-31T12:00:00Z",
            "email": "ada@example.org",
            "metadata": {
                "start_date": "2024-01-31",
                "price": {"amount": 2999, "currency": "usd"},
                "doc": {"url": "https://example.org/d", "value": "the doc"},
                "ratio": 0.5,
            },
        },
        {"event_name": "ms", "created_at": 1_700_000_000_123, "id": "5f00aa", "_note": "x"},
    ]
    expected_converted = [
        {
            "event_name": "trial-started",
            "created_at": 1_706_702_400,
            "email": "ada@example.org",
            "metadata": {
                "start_date": 1_706_659_200,
                "price": {"amount": 2999, "currency": "usd"},
                "doc": {"url": "https://example.org/d", "value": "the doc"},
                "ratio": 0.5,
            },
        },
        {"event_name": "ms", "created_at": 1_700_000_000, "id": "5f00aa"},
    ]
    # Blank lines (and a Windows line ending) are skipped, not invalid.
    text = ndjson(plain[:30]) + "\n   \n" + ndjson(plain[30:]).replace("\n", "\r\n", 1)
    source = write(tmp_path / "events.ndjson", text + ndjson(converted))

    result = run_cli("batch", str(source), "--json")

    assert result.code == 0, result
    assert_delivered_exactly(fake, plain + expected_converted)
    summary = result.json()
    assert SUMMARY_KEYS <= summary.keys()
    assert summary["ok"] is True
    assert (summary["read"], summary["valid"], summary["invalid"]) == (62, 62, 0)
    assert (summary["skipped"], summary["delivered"], summary["dead"]) == (0, 62, 0)
    assert summary["pending"] == 0 and summary["rejects"] is None
    assert isinstance(summary["elapsed_s"], float) and summary["elapsed_s"] > 0
    assert summary["events_per_s"] > 0
    assert outbox_states(tmp_path) == {"delivered": 62}
    # Every request carried the token (never printed: run_cli checks the output).
    assert all(r.headers["authorization"].startswith("Bearer ") for r in fake.posts())


def test_jsonl_and_json_extensions_are_ndjson(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    first = write(tmp_path / "a.jsonl", ndjson([order_record(1)]))
    second = write(tmp_path / "b.json", ndjson([order_record(2)]))
    assert run_cli("batch", str(first)).code == 0
    assert run_cli("batch", str(second)).code == 0
    assert_delivered_exactly(fake, [order_record(1), order_record(2)])


CSV_TEXT = (
    "event_name,created_at,user_id,email,id,metadata.plan,metadata.signup_date,metadata\n"
    "signed-up,1700000001,u1,,,pro,2024-01-31,\n"
    'signed-up,2024-01-31T12:00:00Z,,a@example.org,,,,"{""price"": {""amount"": 2999, '
    '""currency"": ""usd""}, ""seats"": 3}"\n'
    'upgraded,1700000003,u3,,,"team, yearly",,"{""plan"": ""ignored"", ""ratio"": 2.5}"\n'
    "viewed,1700000004,,,5f00aa,,,\n"
    # A quoted cell with a line break: one record over two physical lines.
    'noted,1700000005,u5,,,"line one\nline two",,\n'
)
CSV_EXPECTED = [
    {
        "event_name": "signed-up",
        "created_at": 1_700_000_001,
        "user_id": "u1",
        "metadata": {"plan": "pro", "signup_date": 1_706_659_200},
    },
    {
        "event_name": "signed-up",
        "created_at": 1_706_702_400,
        "email": "a@example.org",
        "metadata": {"price": {"amount": 2999, "currency": "usd"}, "seats": 3},
    },
    {
        # metadata.KEY (a string) wins over the same key in the metadata JSON column.
        "event_name": "upgraded",
        "created_at": 1_700_000_003,
        "user_id": "u3",
        "metadata": {"plan": "team, yearly", "ratio": 2.5},
    },
    {"event_name": "viewed", "created_at": 1_700_000_004, "id": "5f00aa"},
    {
        "event_name": "noted",
        "created_at": 1_700_000_005,
        "user_id": "u5",
        "metadata": {"plan": "line one\nline two"},
    },
]


def test_csv_file_with_both_metadata_column_styles(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "events.csv", CSV_TEXT)
    result = run_cli("batch", str(source), "--json")
    assert result.code == 0, result
    assert_delivered_exactly(fake, CSV_EXPECTED)
    assert result.json()["read"] == 5


def test_gzip_files_and_gzip_on_standard_input(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(20)]
    packed = write(tmp_path / "events.ndjson.gz", gzip.compress(ndjson(records[:10]).encode()))
    csv_packed = write(tmp_path / "events.csv.gz", gzip.compress(CSV_TEXT.encode()))

    assert run_cli("batch", str(packed)).code == 0
    assert run_cli("batch", str(csv_packed)).code == 0
    piped = run_cli("batch", "-", input=gzip.compress(ndjson(records[10:]).encode()))
    assert piped.code == 0, piped

    assert_delivered_exactly(fake, records + CSV_EXPECTED)


def test_standard_input_and_format_override(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(5)]
    # Standard input is NDJSON unless told otherwise; no argument means standard input.
    assert run_cli("batch", input=ndjson(records[:2])).code == 0
    assert run_cli("batch", "-", input=ndjson(records[2:])).code == 0
    assert run_cli("batch", "-", "--format", "csv", input=CSV_TEXT).code == 0
    # A name that says nothing (or the wrong thing) is read as --format says.
    odd = write(tmp_path / "export.txt", CSV_TEXT.replace("signed-up", "renamed"))
    overridden = run_cli("batch", str(odd), "--format", "csv", "--json")
    assert overridden.code == 0, overridden
    # The three rows not renamed were delivered from standard input already.
    assert (overridden.json()["delivered"], overridden.json()["skipped"]) == (2, 3)
    unknown = run_cli("batch", str(odd))
    assert unknown.code == 2 and "--format" in unknown.stderr

    renamed = [{**body, "event_name": "renamed"} for body in CSV_EXPECTED[:2]]
    assert_delivered_exactly(fake, records + CSV_EXPECTED + renamed)


def test_usage_errors(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    missing = run_cli("batch", str(tmp_path / "nope.ndjson"))
    assert missing.code == 2 and "nope.ndjson" in missing.stderr
    both = run_cli("batch", "-", "--dry-run", "--queue", input="")
    assert both.code == 2
    bad_format = run_cli("batch", "-", "--format", "xml", input="")
    assert bad_format.code == 2 and "xml" in bad_format.stderr
    assert fake.requests == []


def test_a_csv_header_naming_an_unknown_column_stops_before_anything_is_sent(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "typo.csv", "event_name,usr_id\nsigned-up,u1\n")
    result = run_cli("batch", str(source))
    assert result.code == 65, result
    assert "usr_id" in result.stderr and "user_id" in result.stderr
    assert fake.requests == []


# -- bad records ----------------------------------------------------------------------------

# (line, record or raw text, a fragment of the reason), in file order. Good lines between.
BAD_NDJSON: list[tuple[int, Any, str]] = [
    (2, {"event_name": "x", "usr_id": "u", "created_at": 1}, 'unknown field "usr_id"'),
    (3, "not json {", "not valid JSON"),
    (4, "[1, 2]", "must be a JSON object"),
    (5, {"user_id": "u", "created_at": 1}, "event_name is missing"),
    (6, {"event_name": "", "user_id": "u"}, "event_name is empty"),
    (7, {"event_name": "x" * 300, "user_id": "u"}, "at most 255"),
    (8, {"event_name": 5, "user_id": "u"}, "is not a string"),
    (9, {"event_name": "x", "created_at": 1}, "no contact"),
    (10, {"event_name": "x", "email": "not-an-address"}, "not an e-mail address"),
    (11, {"event_name": "x", "user_id": ""}, "user_id is empty"),
    (12, {"event_name": "x", "user_id": "a\u0007b"}, "control character"),
    (13, {"event_name": "x", "user_id": "u", "created_at": "yesterday"}, "is not a time"),
    (14, {"event_name": "x", "user_id": "u", "created_at": -5}, "not a valid Unix time"),
    (15, {"event_name": "x", "user_id": "u", "created_at": 10**17}, "too far in the future"),
    (16, {"event_name": "x", "user_id": "u", "metadata": [1]}, "must be a JSON object"),
    (17, {"event_name": "x", "user_id": "u", "metadata": {"a.b": 1}}, "rename the key"),
    (18, {"event_name": "x", "user_id": "u", "metadata": {"a": [1]}}, "arrays are not"),
    (19, {"event_name": "x", "user_id": "u", "metadata": {"a": None}}, "not an Intercom metadata"),
    (20, {"event_name": "x", "user_id": "u", "metadata": {"s": "y" * 300}}, "at most 255"),
    (
        21,
        {"event_name": "x", "user_id": "u", "metadata": {f"k{i}": i for i in range(11)}},
        "11 keys",
    ),
    (
        22,
        {"event_name": "x", "user_id": "u", "metadata": {"l": {"url": "ftp://x", "value": "v"}}},
        "rich link",
    ),
    (
        23,
        {"event_name": "x", "user_id": "u", "metadata": {"p": {"amount": -1, "currency": "usd"}}},
        "monetary amount",
    ),
    (24, {"event_name": "x", "user_id": "u", "metadata": {"o": {"k": 1}}}, "must be a rich link"),
    (25, {"event_name": "x", "user_id": "u", "metadata": {"d_date": "soon"}}, "is not a time"),
    (26, '{"event_name": "x", "user_id": "u", "metadata": {"n": NaN}}', "not valid JSON"),
]


def bad_ndjson_file(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    """Line 1 and every line from 27 on are good; 2-26 are bad; one blank and one bad UTF-8."""
    good = [order_record(n) for n in range(1, 6)]
    lines: list[bytes] = [json.dumps(good[0]).encode()]
    for _, record, _ in BAD_NDJSON:
        text = record if isinstance(record, str) else json.dumps(record)
        lines.append(text.encode())
    lines.append(json.dumps(good[1]).encode())  # 27
    lines.append(b"")  # 28: blank, skipped
    lines.append(b'{"event_name": "x", "user_id": "\xff"}')  # 29: not UTF-8
    lines.extend(json.dumps(record).encode() for record in good[2:])  # 30-32
    return write(tmp_path / "mixed.ndjson", b"\n".join(lines) + b"\n"), good


def test_bad_records_go_to_the_rejects_file_with_their_line_and_reason(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source, good = bad_ndjson_file(tmp_path)
    rejects_path = tmp_path / "rejects.ndjson"

    result = run_cli("batch", str(source), "--rejects", str(rejects_path), "--json")

    # The bad ones never stopped the good ones, but the run says some records were bad.
    assert result.code == 65, result
    assert_delivered_exactly(fake, good)
    summary = result.json()
    assert summary["ok"] is False
    assert (summary["read"], summary["valid"], summary["invalid"]) == (31, 5, 26)
    assert summary["delivered"] == 5 and summary["rejects"] == str(rejects_path)

    rejects = by_line(read_rejects(rejects_path))
    assert sorted(rejects) == [line for line, _, _ in BAD_NDJSON] + [29]
    for line, record, reason in BAD_NDJSON:
        entry = rejects[line]
        assert reason in entry["_error"], (line, entry)
        if isinstance(record, dict):
            # The original record, as it was, so that it can be fixed and replayed.
            assert {k: v for k, v in entry.items() if not k.startswith("_")} == record
        else:
            assert entry["_raw"] == record
    assert "UTF-8" in rejects[29]["_error"]
    # With --rejects the problems are in the file, not one by one on stderr.
    assert "line 2:" not in result.stderr
    assert str(rejects_path) in result.stderr
    assert (rejects_path.stat().st_mode & 0o777) == 0o600


def test_without_rejects_the_first_ten_problems_and_a_count_go_to_stderr(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source, good = bad_ndjson_file(tmp_path)
    result = run_cli("batch", str(source))
    assert result.code == 65, result
    shown = [line for line in result.stderr.splitlines() if line.startswith("ievents: error: line")]
    assert len(shown) == 10, result.stderr
    assert shown[0].startswith('ievents: error: line 2: unknown field "usr_id"')
    assert "and 16 more invalid records" in result.stderr
    assert "read 31 records: 5 valid, 26 invalid" in result.stderr
    assert_delivered_exactly(fake, good)


def test_csv_bad_rows_count_the_header_as_line_one(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    text = (
        "event_name,created_at,user_id,email,metadata.plan,metadata\n"  # 1
        "ok,1700000002,u2,,pro,\n"  # 2
        ",1700000003,u3,,,\n"  # 3: no event name
        'multi,1700000004,u4,,"two\nlines",\n'  # 4-5: one good record over two lines
        "bad-email,1700000006,,nope,,\n"  # 6
        "short,1700000007,u7\n"  # 7: too few cells
        'json,1700000008,u8,,,"{not json}"\n'  # 8
        "\n"  # 9: blank
        "ok,1700000010,u10,,,\n"  # 10
        'bad-key,1700000011,u11,,,"{""a.b"": 1}"\n'  # 11
    )
    source = write(tmp_path / "events.csv", text)
    rejects_path = tmp_path / "rejects.ndjson"

    result = run_cli("batch", str(source), "--rejects", str(rejects_path))

    assert result.code == 65, result
    rejects = by_line(read_rejects(rejects_path))
    assert sorted(rejects) == [3, 6, 7, 8, 11]
    assert "event_name" in rejects[3]["_error"]
    assert rejects[6]["email"] == "nope" and "e-mail" in rejects[6]["_error"]
    assert "cells" in rejects[7]["_error"]
    assert "metadata" in rejects[8]["_error"] and rejects[8]["_metadata_cell"] == "{not json}"
    assert "a.b" in rejects[11]["_error"]
    assert_delivered_exactly(
        fake,
        [
            {"event_name": "ok", "created_at": 1_700_000_002, "user_id": "u2",
             "metadata": {"plan": "pro"}},
            {"event_name": "multi", "created_at": 1_700_000_004, "user_id": "u4",
             "metadata": {"plan": "two\nlines"}},
            {"event_name": "ok", "created_at": 1_700_000_010, "user_id": "u10"},
        ],
    )  # fmt: skip


def test_a_fixed_rejects_file_replays(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    good = [order_record(n) for n in range(3)]
    typo = {"event_name": "x", "usr_id": "u9", "created_at": BASE_TIME + 9}
    bad_meta = {"event_name": "y", "user_id": "u8", "created_at": BASE_TIME + 8,
                "metadata": {"tags": ["a", "b"]}}  # fmt: skip
    source = write(tmp_path / "in.ndjson", ndjson([good[0], typo, good[1], bad_meta, good[2]]))
    rejects_path = tmp_path / "rejects.ndjson"
    assert run_cli("batch", str(source), "--rejects", str(rejects_path)).code == 65

    # Fix the records in place, keeping the _line and _error keys: they are ignored.
    fixed = []
    for entry in read_rejects(rejects_path):
        if "usr_id" in entry:
            entry["user_id"] = entry.pop("usr_id")
        if "metadata" in entry:
            entry["metadata"]["tags"] = ",".join(entry["metadata"]["tags"])
        assert "_line" in entry and "_error" in entry
        fixed.append(entry)
    write(rejects_path, ndjson(fixed))
    replay = run_cli("batch", str(rejects_path), "--json")

    assert replay.code == 0, replay
    assert replay.json()["delivered"] == 2
    assert_delivered_exactly(
        fake,
        [
            *good,
            {"event_name": "x", "user_id": "u9", "created_at": BASE_TIME + 9},
            {"event_name": "y", "user_id": "u8", "created_at": BASE_TIME + 8,
             "metadata": {"tags": "a,b"}},
        ],
    )  # fmt: skip


def test_the_rejects_file_may_not_be_the_input(run_cli: RunCli, tmp_path: Path) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([order_record(1)]))
    result = run_cli("batch", str(source), "--rejects", str(source))
    assert result.code == 2, result
    assert json.loads(source.read_text()) == order_record(1)  # untouched


# -- rejected by Intercom -------------------------------------------------------------------


def test_records_intercom_refuses_are_dead_and_written_with_line_and_reason(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(1, 11)]
    records[3]["user_id"] = "ghost"  # line 4: unknown contact → 404
    fake.unknown_contacts.add("ghost")
    fake.script(api_error(422, "parameter_invalid", "metadata is odd"))  # line 1 → 422
    source = write(tmp_path / "in.ndjson", ndjson(records))
    rejects_path = tmp_path / "rejects.ndjson"

    # One at a time, in file order: the first request takes the scripted answer.
    result = run_cli(
        "batch", str(source), "--rejects", str(rejects_path), "--json", "--concurrency", "1"
    )

    # 65 (rejected data) is more severe than 67 (no such contact).
    assert result.code == 65, result
    summary = result.json()
    assert (summary["delivered"], summary["dead"], summary["pending"]) == (8, 2, 0)
    rejects = by_line(read_rejects(rejects_path))
    assert len(rejects) == 2
    assert sorted(rejects) == [1, 4]
    ghost, refused = rejects[4], rejects[1]
    assert ghost["user_id"] == "ghost" and "404" in ghost["_error"]
    assert "User Not Found" in ghost["_error"]
    assert "422" in refused["_error"] and "metadata is odd" in refused["_error"]
    # The original records, as they were on those lines.
    assert {k: v for k, v in ghost.items() if not k.startswith("_")} == records[3]
    assert {k: v for k, v in refused.items() if not k.startswith("_")} == records[0]
    assert outbox_states(tmp_path) == {"delivered": 8, "dead": 2}


def test_an_unknown_contact_alone_exits_67_and_shows_on_stderr(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(1), order_record(2, user_id="ghost"), order_record(3)]
    fake.unknown_contacts.add("ghost")
    source = write(tmp_path / "in.ndjson", ndjson(records))
    result = run_cli("batch", str(source))
    assert result.code == 67, result
    assert "line 2" in result.stderr and "ghost" in result.stderr and "404" in result.stderr


def test_replaying_after_the_contact_exists_delivers_a_dead_letter(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(1), order_record(2, user_id="ghost")]
    fake.unknown_contacts.add("ghost")
    source = write(tmp_path / "in.ndjson", ndjson(records))
    rejects_path = tmp_path / "rejects.ndjson"
    assert run_cli("batch", str(source), "--rejects", str(rejects_path)).code == 67

    fake.unknown_contacts.clear()  # the contact was created meanwhile
    replay = run_cli("batch", str(rejects_path), "--json")

    # A dead letter is not "already delivered or pending": replaying it sends it again.
    assert replay.code == 0, replay
    assert replay.json()["delivered"] == 1 and replay.json()["skipped"] == 0
    assert Counter(key(b) for b in fake.events_posted()) == Counter(key(r) for r in records)
    assert outbox_states(tmp_path) == {"delivered": 2}


# -- re-runs --------------------------------------------------------------------------------


def test_running_a_delivered_file_again_sends_nothing_and_resend_sends_again(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(25)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    assert run_cli("batch", str(source)).code == 0
    posts = len(fake.posts())

    again = run_cli("batch", str(source), "--json")
    assert again.code == 0, again
    summary = again.json()
    assert (summary["skipped"], summary["delivered"], summary["valid"]) == (25, 0, 25)
    assert len(fake.posts()) == posts

    # A file that grew: only the new records go.
    more = [order_record(n) for n in range(25, 30)]
    write(source, ndjson(records + more))
    grown = run_cli("batch", str(source), "--json").json()
    assert (grown["skipped"], grown["delivered"]) == (25, 5)
    assert_delivered_exactly(fake, records + more)

    resent = run_cli("batch", str(source), "--resend", "--json")
    assert resent.code == 0 and resent.json()["delivered"] == 30
    assert_delivered_exactly(fake, (records + more) * 2)
    assert outbox_states(tmp_path) == {"delivered": 30}  # still one ledger row per event


def test_records_without_created_at_are_stamped_and_the_summary_says_so(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [
        {"event_name": "x", "user_id": "u1"},
        {"event_name": "x", "user_id": "u2", "created_at": "now"},
        order_record(3),
    ]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    result = run_cli("batch", str(source))
    assert result.code == 0, result
    stamped = [body for body in fake.events_posted() if body["event_name"] == "x"]
    assert len(stamped) == 2
    assert all(isinstance(b["created_at"], int) and b["created_at"] > BASE_TIME for b in stamped)
    assert "2 records had no created_at and were stamped now" in result.stderr


def test_one_record_without_created_at_is_named_in_the_singular(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([{"event_name": "x", "user_id": "u1"}]))
    result = run_cli("batch", str(source))
    assert result.code == 0, result
    assert "1 record had no created_at and was stamped now" in result.stderr
    assert "would send it again" in result.stderr


# -- modes ----------------------------------------------------------------------------------


def test_queue_stores_only_and_flush_delivers(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(40)]
    source = write(tmp_path / "in.ndjson", ndjson(records))

    queued = run_cli("batch", str(source), "--queue", "--json")

    assert queued.code == 0, queued
    assert fake.requests == []
    summary = queued.json()
    assert summary["queue_only"] is True and summary["pending"] == 40
    assert (summary["delivered"], summary["valid"], summary["skipped"]) == (0, 40, 0)
    assert outbox_states(tmp_path) == {"pending": 40}
    assert "ievents flush" in run_cli("batch", str(source), "--queue").stderr

    assert run_cli("flush").code == 0
    assert_delivered_exactly(fake, records)


def test_queue_needs_a_token_but_sends_nothing(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([order_record(1)]))
    result = run_cli("batch", str(source), "--queue", env={"INTERCOM_ACCESS_TOKEN": None})
    assert result.code == 78, result
    assert "no access token" in result.stderr
    queued = run_cli("batch", str(source), "--queue")
    assert queued.code == 0, queued
    assert outbox_states(tmp_path) == {"pending": 1}
    assert fake.posts() == []


def test_dry_run_validates_and_stores_and_sends_nothing(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    good = write(tmp_path / "good.ndjson", ndjson([order_record(n) for n in range(5)]))
    clean = run_cli("batch", str(good), "--dry-run", "--json")
    assert clean.code == 0, clean
    summary = clean.json()
    assert summary["dry_run"] is True and summary["valid"] == 5 and summary["delivered"] == 0

    mixed, _ = bad_ndjson_file(tmp_path)
    rejects_path = tmp_path / "rejects.ndjson"
    dirty = run_cli("batch", str(mixed), "-n", "--rejects", str(rejects_path))
    assert dirty.code == 65, dirty
    assert len(read_rejects(rejects_path)) == 26
    assert "nothing stored or sent" in dirty.stderr

    # Not even the token or the outbox is needed to check a file.
    tokenless = run_cli("batch", str(good), "-n", env={"INTERCOM_ACCESS_TOKEN": None})
    assert tokenless.code == 0, tokenless
    assert fake.requests == []
    assert not (tmp_path / "outbox.sqlite3").exists()


def test_quiet_prints_nothing_on_success_but_still_shows_problems(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([order_record(1), order_record(2)]))
    quiet = run_cli("batch", str(source), "-q")
    assert (quiet.code, quiet.stdout, quiet.stderr) == (0, "", "")

    bad = write(tmp_path / "bad.ndjson", ndjson([order_record(3), {"event_name": "x"}]))
    noisy = run_cli("batch", str(bad), "-q")
    assert noisy.code == 65
    assert "line 2: no contact" in noisy.stderr
    assert "read 2 records" not in noisy.stderr  # the summary is not a problem


def test_output_without_a_terminal_has_no_escape_codes(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([order_record(1), {"event_name": "x"}]))
    result = run_cli("batch", str(source), "-v", env={"TERM": "xterm-256color"})
    assert result.code == 65
    assert "\x1b" not in result.stderr and "\x1b" not in result.stdout
    assert "read 2 records" in result.stderr


# -- configuration and the token ------------------------------------------------------------


def test_no_token_is_a_configuration_error_before_anything_is_read(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    rejects_path = tmp_path / "rejects.ndjson"
    result = run_cli(
        "batch",
        "-",
        "--rejects",
        str(rejects_path),
        "--json",
        input=ndjson([order_record(1), "not json"]),
        env={"INTERCOM_ACCESS_TOKEN": None},
    )
    assert result.code == 78, result
    assert result.json()["ok"] is False
    # The same {"code", "message"} error object as send, flush, check and outbox --json.
    assert result.json()["error"]["code"] == "config_error"
    assert "token" in result.json()["error"]["message"].lower()
    assert "INTERCOM_ACCESS_TOKEN" in result.stderr
    assert not (tmp_path / "outbox.sqlite3").exists()
    assert not rejects_path.exists()
    assert fake.requests == []


def test_a_rejected_token_exits_77_and_keeps_every_row_pending(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    fake.expected_token = "a-different-token-entirely"
    records = [order_record(n) for n in range(50)]
    source = write(tmp_path / "in.ndjson", ndjson(records))

    result = run_cli("batch", str(source), "--json")

    assert result.code == 77, result
    summary = result.json()
    assert summary["delivered"] == 0 and summary["pending"] == 50
    assert outbox_states(tmp_path) == {"pending": 50}
    assert "token" in result.stderr.lower() and "ievents flush" in result.stderr
    # It stopped at the first answers instead of trying all fifty.
    assert len(fake.posts()) < 50

    fake.expected_token = None  # the token was fixed
    assert run_cli("flush").code == 0
    assert len({key(b) for b in fake.events_posted()}) == 50


def test_the_summary_json_is_one_object_even_with_problems(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([order_record(1), "oops"]))
    result = run_cli("batch", str(source), "--json")
    assert result.code == 65
    [summary] = result.json_lines()
    assert summary["invalid"] == 1 and summary["ok"] is False and summary["exit_code"] == 65


def test_help_shows_examples_and_what_verbose_does(run_cli: RunCli) -> None:
    result = run_cli("batch", "--help", env={"COLUMNS": "100"})
    assert result.code == 0
    assert "ievents batch events.ndjson.gz --rejects rejects.ndjson" in result.stdout
    assert "as a line every 10 s" in result.stdout


def test_a_rejected_token_is_said_at_once_and_the_rest_is_still_stored(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    """401 stops delivery; the message comes at once, and every record is kept pending."""
    fake.expected_token = "another-token-entirely"
    path = tmp_path / "events.ndjson"
    path.write_text(
        "".join(
            json.dumps({"event_name": "e", "user_id": str(n), "created_at": 1_700_000_000 + n})
            + "\n"
            for n in range(50)
        )
    )

    result = run_cli("batch", str(path), "--concurrency", "2", "--json")

    assert result.code == 77, result
    assert "delivery stopped: 401 Unauthorized (the token was rejected)" in result.stderr
    assert result.stderr.count("delivery stopped") == 1
    summary = result.json()
    assert summary["queued"] == 50 and summary["delivered"] == 0 and summary["pending"] == 50
