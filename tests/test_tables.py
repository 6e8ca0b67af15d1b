"""outbox list's table fits 80 columns without breaking times or addresses mid-token."""

from __future__ import annotations

import re
from pathlib import Path

from conftest import RunCli, base_env
from fake_intercom import FakeIntercom, Reply
from helpers import run_on_terminal

EMAIL = "ada.lovelace@example.org"


def test_outbox_table_at_80_columns(run_cli: RunCli, fake: FakeIntercom, tmp_path: Path) -> None:
    # A delivered row (queued, then flushed) and a pending one (queued on failure).
    assert run_cli("send", "later", "--email", EMAIL, "--queue").code == 0
    assert run_cli("flush", "-q").code == 0
    fake.script(Reply(status=503))
    queued = run_cli("send", "failed-one", "--email", EMAIL, "--retries", "0", "--queue-on-failure")
    assert queued.code == 0, queued

    env = {**base_env(tmp_path, fake.url), "TERM": "xterm", "COLUMNS": "80"}
    for which in ("--delivered", "--pending"):
        ran = run_on_terminal(["outbox", "list", which], env=env, cwd=tmp_path / "work")
        code, screen = ran.code, ran.screen
        assert code == 0, screen
        lines = [re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", line) for line in screen.splitlines()]
        assert all(len(line) <= 80 for line in lines), "\n".join(lines)
        text = "\n".join(lines)
        assert "last result" in text and "captured (UTC)" in text, text
        assert EMAIL in text  # whole, on one line
        assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d", text)
        if which == "--delivered":
            assert "Accepted" not in text  # delivered rows: the last result is empty
        else:
            assert "503" in text  # the pending row says why it is still pending
