"""The real CLI against a misbehaving server (tests/hostile_server.py): prompt, bounded, honest.

Each case checks the exit code, a generous time bound, a generous bound on the peak RSS
of the CLI's process (from ``os.wait4``), and that nothing is lost: an event not known to
be delivered is still in the outbox.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
from conftest import TOKEN, RunCli, StartCli, base_env
from fake_intercom import FakeIntercom
from helpers import RSS_BOUND_KB, MeasuredRun, finish, pending_count, run_process, wait_for
from helpers import measured_run as run
from hostile_server import NASTY, HostileServer


def send(tmp_path: Path, url: str, *extra: str) -> MeasuredRun:
    return run(
        tmp_path, url, "send", "signed-up", "--user-id", "u1", "--json", "--timeout", "2", *extra
    )


def test_a_trickled_body_does_not_outlast_the_timeout(tmp_path: Path) -> None:
    with HostileServer("trickle") as server:
        result = send(tmp_path, server.url, "--retries", "0", "--queue-on-failure")
    # The 202 came, the body did not: the status is what counts (the event arrived).
    # Not the 300 s the body would take (idle: 2.6 s).
    assert result.seconds < 30, result
    assert len(server.event_posts) == 1
    assert result.code == 0, result


def test_a_long_retry_after_gives_up_at_once_and_keeps_the_event(tmp_path: Path) -> None:
    with HostileServer("retry_after_long") as server:
        result = send(tmp_path, server.url, "--queue-on-failure")
        bare = send(tmp_path, server.url)
    assert result.code == 0, result  # queued: kept for flush, as --queue-on-failure asks
    assert json.loads(result.stdout)["queued"] is True
    # Not the hour asked for (idle: 1-4 s).
    assert result.seconds < 60, result
    assert pending_count(tmp_path) == 1
    assert bare.code == 75, bare
    assert bare.seconds < 60, bare


def write_events(path: Path, count: int) -> Path:
    lines = [
        json.dumps({"event_name": "e", "user_id": f"u{i}", "created_at": 1700000000 + i})
        for i in range(count)
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_batch_does_not_sleep_through_a_long_retry_after(tmp_path: Path) -> None:
    source = write_events(tmp_path / "in.ndjson", 20)
    with HostileServer("retry_after_long") as server:
        result = run(tmp_path, server.url, "batch", str(source), "--json", "-c", "4")
    assert result.code == 75, result
    assert result.seconds < 30, result
    assert pending_count(tmp_path) == 20  # nothing lost: all still to deliver


def test_batch_ignores_a_rate_limit_reset_a_day_ahead(tmp_path: Path) -> None:
    source = write_events(tmp_path / "in.ndjson", 20)
    with HostileServer("reset_far") as server:
        result = run(tmp_path, server.url, "batch", str(source), "--json", "-c", "4")
    assert result.code == 0, result
    assert result.seconds < 30, result
    assert len(server.event_posts) == 20
    assert pending_count(tmp_path) == 0


def test_batch_reads_a_reset_in_milliseconds(tmp_path: Path) -> None:
    source = write_events(tmp_path / "in.ndjson", 5)
    with HostileServer("reset_ms") as server:
        result = run(tmp_path, server.url, "batch", str(source), "--json", "-c", "1")
    assert result.code == 0, result
    assert result.seconds < 60, result  # idle: 6 s; a reset misread as seconds: years
    assert "Traceback" not in result.stderr
    assert pending_count(tmp_path) == 0


@pytest.mark.parametrize("mode", ["gzip_bomb", "huge_chunked"])
def test_huge_error_bodies_stay_small_in_memory(tmp_path: Path, mode: str) -> None:
    with HostileServer(mode) as server:
        result = send(tmp_path, server.url, "--retries", "1", "--queue-on-failure")
    assert result.code == 0, result  # a 500: temporary, classified by its status; queued
    assert result.seconds < 60, result
    assert result.peak_rss_kb < RSS_BOUND_KB, result.peak_rss_kb
    assert json.loads(result.stdout)["queued"] is True
    assert pending_count(tmp_path) == 1


def test_server_text_is_sanitised(tmp_path: Path) -> None:
    with HostileServer("control_chars") as server:
        checked = run(tmp_path, server.url, "check")
        sent = send(tmp_path, server.url, "--retries", "0")
        sent_text = run(tmp_path, server.url, "send", "e", "--user-id", "u1", "--retries", "0")
    for output in (checked.stdout, checked.stderr, sent_text.stdout, sent_text.stderr):
        for bad in ("\x1b", "\r", "\x00", "\x07", "\x9b"):
            assert bad not in output, (bad, output)
    assert "Evil" in checked.stdout + checked.stderr
    assert sent.code == 65, sent
    assert json.loads(sent.stdout)["ok"] is False
    assert NASTY not in sent_text.stderr


ODD_TOKEN = 'tok/Odd+Token=="&<x>_9f8e7d6c5b4a'


def test_a_token_echoed_in_a_next_link_is_redacted_in_every_encoding(tmp_path: Path) -> None:
    import base64
    import html
    from urllib.parse import quote, quote_plus

    import httpx
    from fake_intercom import FakeIntercom

    b64 = base64.b64encode(ODD_TOKEN.encode()).decode()
    forms = [quote(ODD_TOKEN, safe=""), quote_plus(ODD_TOKEN), html.escape(ODD_TOKEN), b64]
    with FakeIntercom(expected_token=ODD_TOKEN) as fake:
        with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {ODD_TOKEN}"}) as c:
            for i in range(2):
                body = {"event_name": f"e-{i}", "created_at": 1700000000 + i, "user_id": "u-1"}
                assert c.post("/events", json=body).status_code == 202
        fake.next_page_override = (
            "/events?type=user&user_id=u-1&per_page=1&page=2"
            f"&a={forms[0]}&b={forms[1]}&c={forms[2]}&d={b64}"
        )
        env = base_env(tmp_path, fake.url) | {"INTERCOM_ACCESS_TOKEN": ODD_TOKEN}
        (tmp_path / "work").mkdir(exist_ok=True)
        completed = run_process(
            ["list", "--user-id", "u-1", "--per-page", "1", "-v"],
            env=env,
            cwd=tmp_path / "work",
            timeout=60,
        )
    output = completed.stdout.decode() + completed.stderr.decode()
    assert completed.returncode == 0, output
    assert "page=2" in output  # -v logged the next page's URL, redacted
    for form in [ODD_TOKEN, *forms, b64.rstrip("=")[4:-4]]:
        assert form not in output, (form, output)


@pytest.mark.parametrize("command", ["send", "check"])
def test_sigterm_is_handled_like_ctrl_c(tmp_path: Path, command: str, start_cli: StartCli) -> None:
    import signal

    args = ["send", "e", "--user-id", "u1", "--queue-on-failure"] if command == "send" else []
    args = args or ["check"]
    with HostileServer("hang") as server:
        process = start_cli(
            *args,
            "--timeout",
            "60",
            base_url=server.url,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        wait_for(lambda: server.requests, what="the request at the server")
        assert server.requests == 1
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        code, out, stderr = finish(process, timeout=60)
    assert code == 130, (out, stderr)
    # Promptly: well before the 60 s timeout (idle: well under a second).
    assert time.monotonic() - started < 30
    assert "interrupted" in stderr
    assert "Traceback" not in stderr
    if command == "send":
        assert "kept in the outbox" in stderr
        assert pending_count(tmp_path) == 1  # nothing lost


def test_trickled_headers_do_not_outlast_the_timeout(tmp_path: Path) -> None:
    with HostileServer("trickle_headers") as server:
        result = send(tmp_path, server.url, "--retries", "1", "--queue-on-failure")
    # Two attempts of at most 2 s each (plus the backoff; idle: 5.4 s), not 2 x 230 s of
    # header bytes.
    assert result.seconds < 60, result
    assert result.code == 0, result
    body = json.loads(result.stdout)
    assert body["queued"] is True and body["error"]["code"] == "timeout", body
    assert pending_count(tmp_path) == 1


def test_flush_is_bounded_by_the_same_limits(tmp_path: Path) -> None:
    with HostileServer("gzip_bomb") as server:
        # Queued for the same destination, so that this flush is the one to deliver it.
        queued = run(tmp_path, server.url, "send", "e", "--user-id", "u1", "--queue")
        assert queued.code == 0, queued
        result = run(tmp_path, server.url, "flush", "--retries", "0", "--json")
    assert result.code == 75, result
    assert result.peak_rss_kb < RSS_BOUND_KB, result.peak_rss_kb
    assert pending_count(tmp_path) == 1


def test_a_page_of_events_larger_than_the_error_cap_is_read_whole(
    run_cli: RunCli, fake: FakeIntercom
) -> None:
    import httpx

    metadata = {f"k{i}": "v" * 250 for i in range(10)}
    with httpx.Client(base_url=fake.url, headers={"Authorization": f"Bearer {TOKEN}"}) as c:
        for i in range(40):  # about 100 KiB of JSON on one page
            body = {"event_name": f"big-{i}", "created_at": 1700000000 + i, "user_id": "u-1"}
            assert c.post("/events", json={**body, "metadata": metadata}).status_code == 202
    result = run_cli("list", "--user-id", "u-1", "--per-page", "50", "--json")
    assert result.code == 0, result
    assert len(result.json_lines()) == 40
