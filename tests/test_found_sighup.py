"""SIGHUP to a relay (``flush --watch``: the terminal it was started from closes, or
``kill -HUP``) killed it with exit 129: no summary, no final heartbeat, and the rows it
had claimed left in flight until their lease ran out. SIGHUP now stops a run as SIGTERM
does: the relay hands back what is in flight, says its summary and exits 0; a one-shot
flush stops as on SIGTERM (130, every row pending); a process started with SIGHUP
ignored (``nohup``) keeps ignoring it."""

from __future__ import annotations

import fcntl
import os
import pty
import signal
import subprocess
import sys
import termios
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import RunCli, base_env
from fake_intercom import FakeIntercom, Reply
from helpers import Relay, launch, wait_for

from intercom_events_cli.cli.common import stop_on_signals

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGHUP"), reason="no SIGHUP here")


def test_sighup_stops_a_relay_as_sigterm_does(
    run_cli: RunCli, fake: FakeIntercom, outbox: str, start_relay: Callable[..., Relay]
) -> None:
    env = {"IEVENTS_OUTBOX": outbox}
    fake.script(Reply(status=202, delay=300))  # ended early when the fake stops
    relay = start_relay(outbox)
    assert run_cli("send", "slow", "--user-id", "1", "--queue", env=env).code == 0
    wait_for(lambda: len(fake.posts()) == 1, what="the request on the wire", alive=relay.process)
    assert relay.stop(signal.SIGHUP) == 0, relay.stderr
    assert "watch stopped" in relay.stdout, relay.stdout
    assert "1 event handed back unsent" in relay.stdout, relay.stdout
    status = run_cli("outbox", "status", "--json", env=env).json()
    assert (status["in_flight"], status["pending"]) == (0, 1)
    assert status["relay_heartbeat_at"] is not None
    assert "Traceback" not in relay.stderr


def _controlling_terminal() -> None:
    # In the child: a session of its own, whose controlling terminal is its stdin (the
    # pty): closing the pty's other end hangs it up, and the kernel sends SIGHUP.
    os.setsid()
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a pty as on Linux")
def test_a_relay_whose_terminal_closes_stops_cleanly(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    fake.script(Reply(status=202, delay=300))  # ended early when the fake stops
    assert run_cli("send", "slow", "--user-id", "1", "--queue").code == 0
    master, terminal = pty.openpty()
    try:
        relay = launch(
            ["flush", "--watch"],
            env=base_env(tmp_path, fake.url),
            cwd=tmp_path,
            stdin=terminal,
            stdout=terminal,
            stderr=terminal,
            preexec_fn=_controlling_terminal,
        )
    finally:
        os.close(terminal)
    try:
        wait_for(lambda: len(fake.posts()) == 1, what="the request on the wire", alive=relay)
    finally:
        os.close(master)  # the terminal window closes: its writes now fail with EIO
    # 0, not killed by SIGHUP (129), nor an internal error for a summary nobody can read
    assert relay.wait(timeout=60) == 0
    status = run_cli("outbox", "status", "--json").json()
    assert (status["in_flight"], status["pending"]) == (0, 1)


def test_sighup_stops_a_one_shot_flush_as_sigterm_does(
    run_cli: RunCli, fake: FakeIntercom, tmp_path: Path
) -> None:
    for n in range(3):
        assert run_cli("send", "e", "--user-id", str(n), "--queue").code == 0
    fake.latency = 60.0  # no answer before the signal (the fake's stop ends the wait)
    process = launch(
        ["flush", "-c", "2"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=base_env(tmp_path, fake.url),
        cwd=tmp_path,
    )
    wait_for(lambda: len(fake.posts()) >= 1, what="a request from the flush", alive=process)
    process.send_signal(signal.SIGHUP)
    out, err = process.communicate(timeout=60)
    assert process.returncode == 130, (out, err)
    assert b"Traceback" not in err
    status = run_cli("outbox", "status", "--json").json()
    assert (status["in_flight"], status["pending"]) == (0, 3)


def test_sighup_only_asks_to_stop_and_an_ignored_one_stays_ignored() -> None:
    previous = signal.getsignal(signal.SIGHUP)
    try:
        stop = threading.Event()
        with stop_on_signals(stop):
            os.kill(os.getpid(), signal.SIGHUP)
            wait_for(stop.is_set, what="SIGHUP handled")
        assert signal.getsignal(signal.SIGHUP) is previous
        signal.signal(signal.SIGHUP, signal.SIG_IGN)  # as nohup starts a process
        stop = threading.Event()
        with stop_on_signals(stop):
            assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGHUP)
        assert not stop.is_set()
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_IGN
    finally:
        signal.signal(signal.SIGHUP, previous)
