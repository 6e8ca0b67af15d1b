"""``ievents batch`` delivery: faults, rate limits, pipes, signals, crashes and progress.

Real subprocesses against the fake Intercom on loopback, with real SQLite outboxes.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import signal
import struct
import subprocess
import termios
import threading
from collections import Counter
from pathlib import Path
from typing import IO, Any

import pytest
from conftest import TOKEN, RunCli, base_env
from fake_intercom import FakeIntercom, Reply
from helpers import (
    finish,
    key,
    launch,
    ndjson,
    order_record,
    outbox_states,
    run_process,
    wait_for,
    write,
)

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.delivery.engine import Deliverer
from intercom_events_cli.event import Event
from intercom_events_cli.outbox import SqliteOutbox, State


def start_batch(
    tmp_path: Path,
    fake: FakeIntercom,
    *args: str,
    stdin: int | IO[Any] | None = subprocess.DEVNULL,
    stderr: int | IO[Any] = subprocess.PIPE,
    extra_env: dict[str, str] | None = None,
) -> subprocess.Popen[bytes]:
    env = base_env(tmp_path, fake.url)
    env.update(extra_env or {})
    return launch(
        ["batch", *args],
        stdin=stdin,
        stdout=subprocess.PIPE,
        stderr=stderr,
        env=env,
        cwd=tmp_path,
    )


def accepted(fake: FakeIntercom) -> Counter[str]:
    return Counter(key(body) for body in fake.events_posted())


# -- faults and rate limits -----------------------------------------------------------------


def test_5xx_and_dropped_connections_still_deliver_every_event_exactly_once(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(200)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    # A share of faults among the first answers: every third of 90 answers fails.
    script: list[Reply] = []
    for n in range(30):
        script += [Reply(status=503) if n % 2 else Reply(drop=True), Reply(), Reply()]
    fake.script(*script)

    result = run_cli("batch", str(source), "--json", "--concurrency", "8", "--timeout", "5")

    assert result.code == 0, result
    assert result.json()["delivered"] == 200
    assert fake.pending_script() == []  # the faults did happen
    failed = [r for r in fake.posts() if r.status != 202]
    assert len(failed) == 30
    # Retried, and not one event accepted twice: no duplicate bodies among the 202s.
    assert accepted(fake) == Counter(key(r) for r in records)
    assert outbox_states(tmp_path) == {"delivered": 200}


def test_failures_that_outlast_the_retries_stay_pending_for_flush(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(6)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    fake.script(*[Reply(status=503) for _ in range(4)])

    result = run_cli(
        "batch", str(source), "--json", "--retries", "0", "--concurrency", "1", "--timeout", "2"
    )

    assert result.code == 75, result
    summary = result.json()
    assert summary["pending"] >= 1 and summary["delivered"] + summary["pending"] == 6
    assert "ievents flush" in result.stderr and "503" in result.stderr
    flushed = run_cli("flush", "--now")
    assert flushed.code == 0, flushed
    assert accepted(fake) == Counter(key(r) for r in records)


def test_a_rate_limit_is_paced_with_few_429s(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(120)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    fake.set_rate_limit(40, 1.0)

    result = run_cli("batch", str(source), "--json")

    assert result.code == 0, result
    assert accepted(fake) == Counter(key(r) for r in records)
    posts = len(fake.posts())
    assert fake.count_429 <= max(2, posts * 0.05), (fake.count_429, posts)


def test_max_rate_caps_the_pace(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    records = [order_record(n) for n in range(12)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    result = run_cli("batch", str(source), "--max-rate", "20", "--json")
    assert result.code == 0, result
    times = sorted(r.time for r in fake.posts())
    # 12 requests at 20/s are granted over 11 intervals of 50 ms (0.55 s), not in a burst
    # (which takes a few ms here). Half of that: a loaded machine may delay the first
    # request on its way to the fake more than the last, and that is not a burst.
    assert times[-1] - times[0] >= 11 * 0.05 * 0.5


def test_max_time_stores_everything_and_leaves_the_rest_for_flush(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(100)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    fake.latency = 0.05

    result = run_cli("batch", str(source), "--max-time", "0.3", "-c", "2", "--json")

    assert result.code == 75, result
    summary = result.json()
    assert summary["queued"] == 100 and summary["pending"] > 0
    assert summary["delivered"] + summary["pending"] == 100
    assert "--max-time" in result.stderr and "ievents flush" in result.stderr
    fake.latency = 0.0
    assert run_cli("flush").code == 0
    assert accepted(fake) == Counter(key(r) for r in records)


# -- pipes ----------------------------------------------------------------------------------


def test_a_slow_stream_is_delivered_as_it_arrives(fake: FakeIntercom, tmp_path: Path) -> None:
    """A pipeline, not read-all-then-send: a record goes while the stream stays open."""
    read_end, write_end = os.pipe()
    process = start_batch(tmp_path, fake, "-", stdin=read_end)
    os.close(read_end)
    try:
        os.write(write_end, ndjson([order_record(1)]).encode())
        wait_for(lambda: len(fake.events_posted()) == 1, what="the first record", alive=process)
        os.write(write_end, ndjson([order_record(2)]).encode())
        os.close(write_end)
        write_end = -1
        code, _, stderr = finish(process)
    finally:
        process.kill()
        if write_end >= 0:
            os.close(write_end)
    assert code == 0, stderr
    assert accepted(fake) == Counter(key(r) for r in [order_record(1), order_record(2)])


def test_ctrl_c_on_an_idle_stream_exits_and_keeps_what_was_read(
    fake: FakeIntercom, tmp_path: Path
) -> None:
    fake.latency = 3.0  # far longer than the signal takes to arrive, even under load
    read_end, write_end = os.pipe()
    # With a slow answer, the records read are stored but not all delivered at the stop.
    process = start_batch(tmp_path, fake, "-", "--concurrency", "1", stdin=read_end)
    os.close(read_end)
    try:
        os.write(write_end, ndjson([order_record(1), order_record(2), order_record(3)]).encode())
        # The writer keeps the pipe open and idle (as `tail -f | ievents batch -` would).
        wait_for(lambda: len(fake.posts()) >= 1, what="the first request", alive=process)
        process.send_signal(signal.SIGINT)
        code, _, stderr = finish(process)
    finally:
        process.kill()
        os.close(write_end)
    assert code == 130, stderr
    assert "interrupted" in stderr and "ievents flush" in stderr
    states = outbox_states(tmp_path)
    assert states.get("in_flight", 0) == 0
    assert states["pending"] >= 1 and states["pending"] + states.get("delivered", 0) == 3

    fake.latency = 0.0
    flushed = run_process(["flush"], env=base_env(tmp_path, fake.url), cwd=tmp_path)
    assert flushed.returncode == 0, flushed
    assert set(accepted(fake)) == {key(order_record(n)) for n in (1, 2, 3)}


def test_ctrl_c_while_queueing_an_idle_stream(fake: FakeIntercom, tmp_path: Path) -> None:
    read_end, write_end = os.pipe()
    process = start_batch(tmp_path, fake, "-", "--queue", stdin=read_end)
    os.close(read_end)
    try:
        os.write(write_end, ndjson([order_record(1), order_record(2)]).encode())
        wait_for(
            lambda: (
                (tmp_path / "outbox.sqlite3").exists()
                and outbox_states(tmp_path).get("pending") == 2
            ),
            what="the records read to be stored",
        )
        process.send_signal(signal.SIGINT)
        code, _, stderr = finish(process)
    finally:
        process.kill()
        os.close(write_end)
    assert code == 130, stderr
    assert "ievents flush" in stderr
    assert outbox_states(tmp_path) == {"pending": 2}
    assert fake.requests == []


def test_a_large_piped_input_is_streamed_into_the_outbox(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    count = 30_000
    lines = "".join(
        f'{{"event_name":"bulk","user_id":"u{n}","created_at":{1_700_000_000 + n}}}\n'
        for n in range(count)
    )
    result = run_cli("batch", "-", "--queue", "--json", input=lines)
    assert result.code == 0, result
    summary = result.json()
    assert (summary["read"], summary["valid"], summary["pending"]) == (count, count, count)
    assert fake.requests == []
    assert outbox_states(tmp_path) == {"pending": count}


# -- signals and crashes --------------------------------------------------------------------


def test_sigkill_mid_batch_loses_nothing_and_flush_then_a_rerun_finish_it(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(400)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    fake.latency = 0.05
    concurrency = 8

    process = start_batch(tmp_path, fake, str(source), "--concurrency", str(concurrency))
    try:
        wait_for(
            lambda: len(fake.events_posted()) >= 100, what="a hundred deliveries", alive=process
        )
        process.kill()
        process.wait(timeout=60)
    finally:
        process.kill()
    assert process.returncode == -signal.SIGKILL
    at_kill = len(fake.events_posted())
    assert at_kill < len(records), "the batch finished before it was killed"

    fake.latency = 0.0
    flushed = run_cli("flush", "--json")  # takes back the claims of the dead process
    assert flushed.code == 0, flushed
    rerun = run_cli("batch", str(source), "--json")  # stores and sends whatever is left
    assert rerun.code == 0, rerun
    assert rerun.json()["skipped"] + rerun.json()["queued"] == len(records)

    counts = accepted(fake)
    assert set(counts) == {key(r) for r in records}  # nothing lost
    # Only rows claimed at the kill may have gone twice: those on the wire, and those
    # answered but not yet recorded (the engine claims up to twice its concurrency).
    twice = sum(n - 1 for n in counts.values())
    assert twice <= 2 * concurrency, counts.most_common(3)
    assert outbox_states(tmp_path) == {"delivered": len(records)}


def test_ctrl_c_mid_batch_exits_130_and_leaves_the_rest_pending(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    records = [order_record(n) for n in range(300)]
    source = write(tmp_path / "in.ndjson", ndjson(records))
    fake.latency = 0.05
    concurrency = 8

    process = start_batch(tmp_path, fake, str(source), "--concurrency", str(concurrency), "--json")
    try:
        wait_for(lambda: len(fake.events_posted()) >= 40, what="some deliveries", alive=process)
        process.send_signal(signal.SIGINT)
        code, stdout, stderr = finish(process)
    finally:
        process.kill()

    assert code == 130, stderr
    assert "interrupted" in stderr and "ievents flush" in stderr
    summary = json.loads(stdout)
    assert summary["interrupted"] is True and summary["ok"] is False
    states = outbox_states(tmp_path)
    assert states.get("in_flight", 0) == 0  # handed back, not left claimed
    assert states["pending"] > 0 and states["pending"] == summary["pending"]
    assert states["delivered"] + states["pending"] == len(records)

    fake.latency = 0.0
    assert run_cli("flush").code == 0
    counts = accepted(fake)
    assert set(counts) == {key(r) for r in records}
    assert sum(n - 1 for n in counts.values()) <= 2 * concurrency


# -- progress -------------------------------------------------------------------------------


def render_terminal(data: str) -> list[str]:
    """The screen after ``data``: enough of a terminal for rich's live display."""
    screen: list[list[str]] = [[]]
    row = col = 0
    position = 0
    csi = re.compile(r"\x1b\[([0-9;?]*)([A-Za-z])")
    while position < len(data):
        char = data[position]
        if char == "\x1b":
            match = csi.match(data, position)
            if match is None:
                position += 2  # another escape: skip it
                continue
            params, command = match.group(1), match.group(2)
            number = int(params) if params.isdigit() else None
            if command == "A":
                row = max(0, row - (number or 1))
            elif command == "B":
                row += number or 1
            elif command == "G":
                col = (number or 1) - 1
            elif command == "K":
                while len(screen) <= row:
                    screen.append([])
                line = screen[row]
                if number == 2:
                    screen[row] = []
                else:
                    del line[col:]
            position = match.end()
            continue
        position += 1
        if char == "\r":
            col = 0
        elif char == "\n":
            row += 1
            col = 0
        elif char >= " ":
            while len(screen) <= row:
                screen.append([])
            line = screen[row]
            while len(line) < col:
                line.append(" ")
            if col < len(line):
                line[col] = char
            else:
                line.append(char)
            col += 1
    return ["".join(line).rstrip() for line in screen]


def test_render_terminal_follows_cursor_moves() -> None:
    assert render_terminal("one\r\ntwo\r\n\x1b[1A\x1b[2Kthree\r\n") == ["one", "three"]


def run_on_a_terminal(
    tmp_path: Path, fake: FakeIntercom, *args: str, lines: list[str] | None = None
) -> tuple[int, str]:
    """Run batch with stderr on a pseudo-terminal (100 columns); return code and raw stderr.

    With ``lines``, standard input is a pipe: the first line goes at once, the others
    one by one once the progress bar is showing.
    """
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 100, 0, 0))
    chunks: list[bytes] = []

    def drain() -> None:
        while True:
            try:
                data = os.read(leader, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    def screen_shows(pattern: str) -> bool:
        return re.search(pattern, b"".join(chunks).decode("utf-8", "replace")) is not None

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    read_end, write_end = os.pipe() if lines is not None else (-1, -1)
    with os.fdopen(follower, "wb", buffering=0) as terminal:
        process = start_batch(
            tmp_path,
            fake,
            *args,
            stdin=read_end if lines is not None else subprocess.DEVNULL,
            stderr=terminal,
            extra_env={"TERM": "xterm-256color"},
        )
    try:
        if lines is not None:
            os.close(read_end)
            for number, line in enumerate(lines, start=1):
                os.write(write_end, (line + "\n").encode())
                if number == 1:
                    wait_for(lambda: screen_shows(r" 1 records"), what="the progress bar")
                else:
                    wait_for(
                        lambda n=number: screen_shows(rf" {n} records"), what=f"record {number}"
                    )
            os.close(write_end)
        process.wait(timeout=60)
    finally:
        process.kill()
    reader.join(5)
    os.close(leader)
    assert process.stdout is not None
    process.stdout.close()
    stderr = b"".join(chunks).decode("utf-8", "replace")
    assert TOKEN not in stderr
    return process.returncode, stderr


def test_progress_bar_on_a_terminal_and_problems_stay_on_screen(
    fake: FakeIntercom, tmp_path: Path
) -> None:
    lines = [
        json.dumps(order_record(1)),
        '{"event_name": "x", "usr_id": "typo"}',
        json.dumps(order_record(3)),
    ]
    lines += ["not json", json.dumps(order_record(5))]

    code, raw = run_on_a_terminal(tmp_path, fake, "-", lines=lines)

    assert code == 65
    assert "\x1b[" in raw  # drawn with terminal controls
    screen = render_terminal(raw)
    text = "\n".join(screen)
    # Problems found while the bar was showing are printed above it, not drawn over; at
    # the end the bar is gone and the summary is there.
    assert 'line 2: unknown field "usr_id"' in text, text
    assert "line 4: not valid JSON" in text, text
    assert not any(re.search(r"ETA (\d|-):", line) for line in screen), text
    assert "read 5 records: 3 valid, 2 invalid" in text, text


def test_quiet_on_a_terminal_draws_nothing(fake: FakeIntercom, tmp_path: Path) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([order_record(n) for n in range(30)]))
    fake.latency = 0.05
    code, raw = run_on_a_terminal(tmp_path, fake, str(source), "-q", "--concurrency", "2")
    assert (code, raw) == (0, "")


def test_verbose_reports_progress_lines_without_a_terminal(
    fake: FakeIntercom, tmp_path: Path, run_cli: RunCli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """-v: one line every 10 s for cron logs (the interval is shortened for the test)."""
    import intercom_events_cli.cli.progress as progress

    source = write(tmp_path / "in.ndjson", ndjson([order_record(n) for n in range(20)]))
    fake.latency = 0.05
    monkeypatch.setattr(progress, "VERBOSE_PROGRESS_EVERY_S", 0.2)
    result = run_cli("batch", str(source), "-v", "--concurrency", "1")
    stderr = result.stderr
    assert result.code == 0, stderr
    lines = [line for line in stderr.splitlines() if line.startswith("batch: read ")]
    progress = [line for line in lines if "events/s" in line and "records:" not in line]
    assert len(progress) >= 2, stderr
    assert re.fullmatch(
        r"batch: read \d+ \(\d+%\), stored \d+, skipped 0, invalid 0, "
        r"delivered \d+ of ~\d+, \d+ events/s, ETA (\d:\d\d:\d\d|-:--:--)",
        progress[0],
    ), progress[0]
    assert "\x1b" not in stderr


def test_outbox_rows_remember_their_batch_line(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    source = write(tmp_path / "in.ndjson", "\n" + ndjson([order_record(1), order_record(2)]))
    assert run_cli("batch", str(source), "--queue").code == 0
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:
        rows = store.rows([State.PENDING])
    assert [row.source_line for row in rows] == [2, 3]
    assert all(row.source and row.source.startswith("batch:") for row in rows)


def test_rows_stored_just_before_the_producer_ends_are_still_delivered(
    fake: FakeIntercom, tmp_path: Path
) -> None:
    """The engine looks once more after the producer ends (the race batch runs into)."""
    late = Event.create("late", user_id="u1", created_at=1_700_000_000)
    with SqliteOutbox.open(tmp_path / "outbox.sqlite3") as store:

        def producing() -> bool:
            # The reader stores its last chunk after the engine's claim found nothing,
            # and is done by the time the engine asks.
            if not store.rows([State.PENDING, State.DELIVERED]):
                store.add_many([late])
            return False

        settings = Settings(token=TOKEN, base_url=fake.url, retries=0, timeout=5)
        report = Deliverer(store, settings, keep_going=producing).run()
        assert report.delivered == 1
        assert [row.state for row in store.rows(list(State))] == [State.DELIVERED]
    assert fake.events_posted() == [json.loads(late.body())]
