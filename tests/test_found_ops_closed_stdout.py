"""A relay or flush started with its standard output closed (``ievents flush --watch >&-``,
a supervisor that closes the descriptors it does not use).

Python then has no ``sys.stdout`` (None): the first line written to it, the relay's
"watch stopped" summary or the flush's result, raised AttributeError. The relay delivered
everything and then exited 1, "internal error: AttributeError: 'NoneType' object has no
attribute 'write'", a failure to its supervisor (and to a cron job, a reason to run again).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from conftest import RunCli, StartCli
from fake_intercom import FakeIntercom
from helpers import check_no_token, wait_for


def _close_stdout() -> None:
    os.close(1)  # in the child, before exec: it starts with descriptor 1 closed


def test_a_one_shot_flush_with_stdout_closed_exits_as_its_deliveries(
    run_cli: RunCli, fake: FakeIntercom, start_cli: StartCli, tmp_path: Path
) -> None:
    assert run_cli("send", "queued", "--user-id", "1", "--queue").code == 0
    process = start_cli(
        "flush", stdin=subprocess.DEVNULL, stderr=subprocess.PIPE, preexec_fn=_close_stdout
    )
    _, err = process.communicate(timeout=120)
    stderr = err.decode("utf-8", "replace")
    check_no_token(stderr)
    assert process.returncode == 0, stderr
    assert "internal error" not in stderr
    assert len(fake.events_posted()) == 1


def test_a_relay_with_stdout_closed_stops_cleanly(
    run_cli: RunCli, fake: FakeIntercom, start_cli: StartCli, tmp_path: Path
) -> None:
    process = start_cli(
        "flush",
        "--watch",
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        preexec_fn=_close_stdout,
    )
    assert process.stderr is not None
    first = process.stderr.readline().decode()  # "watching ...": its handlers are in place
    assert "watching " in first, first
    assert run_cli("send", "later", "--user-id", "2", "--queue").code == 0
    wait_for(lambda: len(fake.events_posted()) == 1, what="the delivery", alive=process)
    process.send_signal(signal.SIGTERM)
    _, rest = process.communicate(timeout=120)
    stderr = first + rest.decode("utf-8", "replace")
    check_no_token(stderr)
    assert process.returncode == 0, stderr
    assert "internal error" not in stderr
