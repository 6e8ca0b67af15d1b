"""On a terminal, batch shows two bars: records read, and events delivered with rate and ETA."""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
import time
from pathlib import Path

from conftest import assert_no_token, base_env
from fake_intercom import FakeIntercom
from test_batch_delivery import event, ndjson, write


def run_on_a_terminal(args: list[str], env: dict[str, str], cwd: Path) -> tuple[int, str]:
    leader, follower = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "intercom_events_cli", *args],
        stdin=subprocess.DEVNULL,
        stdout=follower,
        stderr=follower,
        env=env,
        cwd=cwd,
    )
    os.close(follower)
    chunks: list[bytes] = []
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the terminal closed: the process has ended
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    return process.wait(timeout=30), b"".join(chunks).decode("utf-8", "replace")


def test_two_bars_read_and_delivered_with_rate_and_eta(fake: FakeIntercom, tmp_path: Path) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([event(n) for n in range(60)]))
    fake.latency = 0.03
    env = {**base_env(tmp_path, fake.url), "TERM": "xterm", "COLUMNS": "100"}
    code, screen = run_on_a_terminal(["batch", str(source), "--concurrency", "1"], env, tmp_path)
    assert_no_token(screen)
    assert code == 0, screen
    assert len(fake.stored_events()) == 60
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"read .* 60 records \(100%\)", plain), plain
    # Delivery has its own bar, behind reading: seen partway with a rate and an ETA.
    partway = re.findall(r"delivered .*?(\d+) of ~60, \d+/s, ETA \d:\d\d:\d\d", plain)
    assert partway and any(int(done) < 60 for done in partway), plain
