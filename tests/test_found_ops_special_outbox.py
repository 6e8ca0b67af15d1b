"""An outbox location that is not a regular file: a FIFO, a device such as /dev/null.

A FIFO (``mkfifo``, or a typo landing on one) made every command that opens the outbox
hang for ever reading its header, ``outbox status`` included; ``--outbox /dev/null`` was
refused as "writable by other users (mode 0666)" with the hint to run
``chmod 600 /dev/null``, which (as root) breaks every other program on the machine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import RunCli


@pytest.mark.parametrize(
    "args", [("send", "x", "--user-id", "1", "--queue"), ("outbox", "status"), ("flush",)]
)
def test_a_fifo_as_outbox_is_refused_at_once(
    run_cli: RunCli, tmp_path: Path, args: tuple[str, ...]
) -> None:
    fifo = tmp_path / "outbox.fifo"
    os.mkfifo(fifo, 0o600)
    result = run_cli(*args, "--outbox", str(fifo), timeout=60)
    assert result.code == 78, result
    assert "not a regular file" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_device_as_outbox_is_refused_without_a_chmod_hint(run_cli: RunCli) -> None:
    before = os.stat(os.devnull).st_mode
    result = run_cli("send", "x", "--user-id", "1", "--queue", "--outbox", os.devnull)
    assert result.code == 78, result
    assert "not a regular file" in result.stderr
    assert "chmod" not in result.stderr
    assert os.stat(os.devnull).st_mode == before
