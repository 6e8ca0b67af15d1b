"""The stop-cleanly signal handling of flush, batch and flush --watch, in this process.

A first Ctrl-C or SIGTERM only asks the run to stop (it hands back what is in flight and
exits 0 or 130 by itself); a second Ctrl-C forces the stop. In a real relay the first
signal ends the run within milliseconds, so a subprocess test finds no window for the
second one: here the run is the body of the ``with`` block, and it waits for it.
"""

from __future__ import annotations

import io
import os
import signal
import threading
import time

import pytest
import typer

from intercom_events_cli.cli.common import reporting, stop_on_signals
from intercom_events_cli.cli.output import Output


def _wait_for(stop: threading.Event) -> None:
    # Signals are handled between bytecodes of the main thread: give it some.
    deadline = time.monotonic() + 5
    while not stop.is_set() and time.monotonic() < deadline:
        time.sleep(0.01)


def test_first_ctrl_c_asks_to_stop_and_the_second_forces_it() -> None:
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(stop)
        assert stop.is_set()  # asked to stop, still running
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)  # the second signal interrupts this
        pytest.fail("a second Ctrl-C did not force the stop")
    assert signal.getsignal(signal.SIGINT) is previous


def test_sigterm_only_asks_to_stop_even_twice() -> None:
    stop = threading.Event()
    previous = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.05)
        assert stop.is_set()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_forced_stop_is_said_and_exits_130() -> None:
    stop = threading.Event()
    stdout, stderr = io.StringIO(), io.StringIO()
    ui = Output(stdout=stdout, stderr=stderr)
    with pytest.raises(typer.Exit) as exited, reporting(ui), stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(stop)
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(5)
    assert exited.value.exit_code == 130
    assert "interrupted" in stderr.getvalue() and stdout.getvalue() == ""
