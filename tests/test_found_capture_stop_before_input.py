"""Found in the capture bug hunt: stopping ``batch -`` before its input sent anything.

``consumer | ievents batch -`` with a producer that has nothing yet (a queue consumer, a
``tail -f`` of an empty file): SIGTERM from a supervisor, or Ctrl-C, waited until the
producer wrote or closed the pipe, possibly forever, because the first read (the look
for gzip's magic bytes) ran in the main thread, which a stop does not interrupt. A stop
ends the run at once, as it does once records flow.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from fake_intercom import FakeIntercom
from helpers import finish, wait_for


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_stop_while_the_input_pipe_is_still_silent_ends_the_run(
    start_cli: Any, fake: FakeIntercom, tmp_path: Path, signum: int
) -> None:
    read_end, write_end = os.pipe()
    process = start_cli(
        "batch", "-", "--json", stdin=read_end, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    os.close(read_end)
    try:
        # The outbox is opened before the input is read: the run is under way.
        wait_for(lambda: (tmp_path / "outbox.sqlite3").exists(), what="the outbox", alive=process)
        process.send_signal(signum)
        # The pipe stays open and silent: the run must end without it.
        code, stdout, stderr = finish(process, timeout=60)
    finally:
        process.kill()
        os.close(write_end)
    assert code == 130, stderr
    # One JSON document saying so: the batch's report, or, when the signal comes before
    # the run has begun reading, the interrupted error (which of the two is timing).
    document = json.loads(stdout)
    assert (document["ok"], document["exit_code"]) == (False, 130), stdout
    assert fake.requests == []
