"""On a terminal, batch shows two bars: records read, and events delivered with rate and ETA."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import base_env
from fake_intercom import FakeIntercom
from helpers import ndjson, order_record, run_on_terminal, write


def test_two_bars_read_and_delivered_with_rate_and_eta(fake: FakeIntercom, tmp_path: Path) -> None:
    source = write(tmp_path / "in.ndjson", ndjson([order_record(n) for n in range(60)]))
    fake.latency = 0.03
    env = {**base_env(tmp_path, fake.url), "TERM": "xterm", "COLUMNS": "100"}
    ran = run_on_terminal(["batch", str(source), "--concurrency", "1"], env=env, cwd=tmp_path)
    code, screen = ran.code, ran.screen
    assert code == 0, screen
    assert len(fake.stored_events()) == 60
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", screen)
    assert re.search(r"read .* 60 records \(100%\)", plain), plain
    # Delivery has its own bar, behind reading: seen partway with a rate and an ETA.
    partway = re.findall(r"delivered .*?(\d+) of ~60, \d+/s, ETA \d:\d\d:\d\d", plain)
    assert partway and any(int(done) < 60 for done in partway), plain
