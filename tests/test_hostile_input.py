"""Broken, huge or hostile input gets a prompt, bounded, honest answer (the real CLI).

Each case checks the exit code, a generous time bound, a generous peak-RSS bound of the
CLI process and that nothing is lost (what is valid is stored, what is not is in the
rejects file with its line).
"""

from __future__ import annotations

import json
import os
import sqlite3
import stat
from pathlib import Path

import pytest
from conftest import RunCli
from fake_intercom import FakeIntercom
from helpers import RSS_BOUND_KB, pending_count
from helpers import measured_run as run


def stored_count(tmp_path: Path) -> int:
    with sqlite3.connect(tmp_path / "outbox.sqlite3") as db:
        return int(db.execute("SELECT count(*) FROM events").fetchone()[0])


def rejects(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_bytes().decode("utf-8").splitlines()]


def test_a_lone_surrogate_is_a_record_error_and_reading_goes_on(tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text(
        '{"event_name": "e", "user_id": "u1", "\\ud800x": 1, "created_at": 1700000000}\n'
        '{"event_name": "e", "user_id": "u2", "metadata": {"k": "\\udc00"}}\n'
        '{"event_name": "e", "user_id": "u3", "created_at": 1700000000}\n',
        encoding="ascii",
    )
    out = tmp_path / "rejects.ndjson"
    result = run(tmp_path, None, "batch", str(source), "--queue", "--rejects", str(out))
    assert result.code == 65, result
    assert "Traceback" not in result.stderr
    assert pending_count(tmp_path) == 1  # the valid line after it was read and stored
    lines = rejects(out)
    assert [line["_line"] for line in lines] == [1, 2]
    assert "\ud800x" in lines[0]  # the same text back, written as valid UTF-8 JSON


def test_a_stray_csv_quote_costs_one_line_not_the_rows_after_it(tmp_path: Path) -> None:
    rows = [f"e,u{i},{1700000000 + i}" for i in range(20_000)]
    source = tmp_path / "in.csv"
    source.write_text(
        "event_name,user_id,created_at\n" + 'e,"stray,1700000000\n' + "\n".join(rows) + "\n",
        encoding="utf-8",
    )
    out = tmp_path / "rejects.ndjson"
    result = run(tmp_path, None, "batch", str(source), "--queue", "--rejects", str(out))
    assert result.code == 65, result
    assert result.seconds < 120, result
    assert result.peak_rss_kb < RSS_BOUND_KB, result.peak_rss_kb
    assert stored_count(tmp_path) == 20_000  # every good row after the stray quote
    [reject] = rejects(out)
    assert reject["_line"] == 2
    assert reject["_raw"] == 'e,"stray,1700000000'
    assert "stray quote" in str(reject["_error"])


def test_a_stray_quote_near_the_end_loses_no_row(tmp_path: Path) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        'event_name,user_id,created_at\ne,u1,1700000000\ne,"u2,1700000001\ne,u3,1700000002\n',
        encoding="utf-8",
    )
    out = tmp_path / "rejects.ndjson"
    result = run(tmp_path, None, "batch", str(source), "--queue", "--rejects", str(out))
    assert result.code == 65, result
    assert stored_count(tmp_path) == 2
    assert [r["_line"] for r in rejects(out)] == [3]


def test_csv_memory_stays_flat_on_lines_that_are_not_utf8(tmp_path: Path) -> None:
    bad = b'e,\xff\xfe,1700000000,"x\n' * 2 + b"e,u\xff,1700000000\n" * 400_000  # ~8 MB
    source = tmp_path / "in.csv"
    source.write_bytes(b"event_name,user_id,created_at\n" + bad)
    result = run(tmp_path, None, "batch", str(source), "--dry-run", "-q")
    assert result.code == 65, result
    assert result.peak_rss_kb < RSS_BOUND_KB, result.peak_rss_kb


def test_metadata_json_from_dev_zero_is_refused_quickly(tmp_path: Path) -> None:
    result = run(
        tmp_path, None, "send", "e", "--user-id", "u1", "--metadata-json", "@/dev/zero", "-n"
    )
    assert result.code == 2, result
    assert result.seconds < 20, result
    assert result.peak_rss_kb < RSS_BOUND_KB, result.peak_rss_kb
    assert "larger than 64 KiB" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_token_file_of_zeros_is_refused(tmp_path: Path) -> None:
    result = run(tmp_path, None, "send", "e", "--user-id", "u1", "--token-file", "/dev/zero")
    assert result.code == 78, result
    assert result.peak_rss_kb < RSS_BOUND_KB, result.peak_rss_kb


def test_standard_input_is_never_its_own_rejects_file(tmp_path: Path) -> None:
    target = tmp_path / "r.ndjson"
    content = b'{"event_name": "e", "user_id": "u1", "_line": 1, "_error": "x"}\n'
    target.write_bytes(content)
    result = run(
        tmp_path, None, "batch", "-", "--queue", "--rejects", str(target), stdin_file=target
    )
    assert result.code == 2, result
    assert "is the input" in result.stderr
    assert target.read_bytes() == content  # not truncated


def test_export_is_utf8_json_whatever_the_locale(tmp_path: Path) -> None:
    queued = run(tmp_path, None, "send", "e", "--user-id", "Jürgen", "--queue")
    assert queued.code == 0, queued
    exported = run(tmp_path, None, "outbox", "export", env={"PYTHONIOENCODING": "ascii"})
    assert exported.code == 0, exported
    [line] = exported.stdout.splitlines()
    assert json.loads(line)["user_id"] == "Jürgen"


def test_a_fixed_csv_rejects_file_replays(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = tmp_path / "in.csv"
    source.write_text(
        "event_name,user_id,created_at,metadata,metadata.plan\n"
        'e,u1,1700000000,"{""seats"": 3",pro\n',
        encoding="utf-8",
    )
    out = tmp_path / "rejects.ndjson"
    assert run_cli("batch", str(source), "--rejects", str(out)).code == 65
    [entry] = rejects(out)
    assert entry["metadata"] == {"plan": "pro"} and "metadata.plan" not in entry
    # Unfixed, the replay refuses it (the broken cell is not silently dropped).
    unfixed = run_cli("batch", str(out), "--rejects", str(tmp_path / "again.ndjson"))
    assert unfixed.code == 65, unfixed
    # The fix: the cell's keys into metadata, _metadata_cell deleted.
    entry["metadata"] = {"plan": "pro", "seats": 3}
    del entry["_metadata_cell"]
    out.write_text(json.dumps(entry) + "\n", encoding="utf-8")
    replay = run_cli("batch", str(out), "--json")
    assert replay.code == 0, replay
    [posted] = fake.events_posted()
    assert posted["metadata"] == {"plan": "pro", "seats": 3}


def test_a_non_object_line_is_reported_as_json(tmp_path: Path) -> None:
    source = tmp_path / "in.ndjson"
    source.write_text('["e", "u1", true, null]\n', encoding="utf-8")
    result = run(tmp_path, None, "batch", str(source), "--queue")
    assert result.code == 65, result
    assert '["e", "u1", true, null]' in result.stderr
    assert "True" not in result.stderr and "None" not in result.stderr


# -- the outbox is the user's -------------------------------------------------------------------


def test_folders_ievents_creates_are_private(tmp_path: Path) -> None:
    outbox = tmp_path / "a" / "b" / "c" / "outbox.sqlite3"
    result = run(tmp_path, None, "send", "e", "--user-id", "u1", "--queue",
                 env={"IEVENTS_OUTBOX": str(outbox)})  # fmt: skip
    assert result.code == 0, result
    for folder in (tmp_path / "a", tmp_path / "a" / "b", tmp_path / "a" / "b" / "c"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


@pytest.mark.skipif(os.geteuid() != 0, reason="chown to another user needs root")
def test_an_outbox_file_of_another_user_is_refused(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o700)
    planted = shared / "outbox.sqlite3"
    planted.write_bytes(b"")
    os.chown(planted, 65534, 65534)
    result = run(tmp_path, None, "send", "e", "--user-id", "u1", "--queue",
                 env={"IEVENTS_OUTBOX": str(planted)})  # fmt: skip
    assert result.code == 78, result
    assert str(planted) in result.stderr and "another user" in result.stderr
    assert "hint:" in result.stderr
    assert planted.read_bytes() == b""  # untouched


@pytest.mark.parametrize("what", ["file", "folder"])
def test_an_outbox_writable_by_others_is_refused(tmp_path: Path, what: str) -> None:
    shared = tmp_path / "shared"
    shared.mkdir()
    os.chmod(shared, 0o777 if what == "folder" else 0o700)
    planted = shared / "outbox.sqlite3"
    if what == "file":
        planted.write_bytes(b"")
        os.chmod(planted, 0o666)
    result = run(tmp_path, None, "send", "e", "--user-id", "u1", "--queue",
                 env={"IEVENTS_OUTBOX": str(planted)})  # fmt: skip
    assert result.code == 78, result
    culprit = planted if what == "file" else shared
    assert str(culprit) in result.stderr and "writable by other users" in result.stderr
    assert ("chmod 600" if what == "file" else "chmod 700") in result.stderr
    assert planted.exists() == (what == "file")  # nothing created in someone else's folder


@pytest.mark.parametrize("source", ["token file", "env file"])
def test_a_token_readable_by_others_is_warned_about(tmp_path: Path, source: str) -> None:
    from conftest import TOKEN

    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    holder = work / (".env" if source == "env file" else "token.txt")
    holder.write_text(f"INTERCOM_ACCESS_TOKEN={TOKEN}\n" if source == "env file" else TOKEN + "\n")
    os.chmod(holder, 0o644)
    args = ["send", "e", "--user-id", "u1", "-n"]
    if source == "token file":
        args += ["--token-file", str(holder)]
    result = run(tmp_path, None, *args, env={"INTERCOM_ACCESS_TOKEN": ""})
    assert result.code == 0, result
    assert result.stderr.count("readable by other users") == 1, result.stderr
    assert f"chmod 600 {holder}" in result.stderr
    os.chmod(holder, 0o600)
    quiet = run(tmp_path, None, *args, env={"INTERCOM_ACCESS_TOKEN": ""})
    assert "readable by other users" not in quiet.stderr, quiet.stderr
