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

import pytest
import typer
from helpers import wait_for

from intercom_events_cli.cli.common import reporting, stop_on_signals
from intercom_events_cli.cli.output import Output


class CountingEvent(threading.Event):
    """An Event that counts how often it was set: each handled signal sets it once."""

    def __init__(self) -> None:
        super().__init__()
        self.sets = 0

    def set(self) -> None:
        self.sets += 1
        super().set()


def _wait_for(stop: CountingEvent, sets: int = 1) -> None:
    # Signals are handled between bytecodes of the main thread: this loop gives it some.
    wait_for(lambda: stop.sets >= sets, what=f"signal number {sets} handled")


def _wait_to_be_interrupted() -> None:
    # The pending second Ctrl-C raises out of this wait at once; the deadline is a fence.
    wait_for(lambda: False, what="the second Ctrl-C to force the stop")


def test_first_ctrl_c_asks_to_stop_and_the_second_forces_it() -> None:
    stop = CountingEvent()
    previous = signal.getsignal(signal.SIGINT)
    with pytest.raises(KeyboardInterrupt), stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(stop)
        assert stop.is_set()  # asked to stop, still running
        os.kill(os.getpid(), signal.SIGINT)
        _wait_to_be_interrupted()
    assert signal.getsignal(signal.SIGINT) is previous


def test_sigterm_only_asks_to_stop_even_twice() -> None:
    stop = CountingEvent()
    previous = signal.getsignal(signal.SIGTERM)
    with stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(stop)
        os.kill(os.getpid(), signal.SIGTERM)
        _wait_for(stop, sets=2)  # handled, and raised nothing
        assert stop.is_set()
    assert signal.getsignal(signal.SIGTERM) is previous


def test_a_forced_stop_is_said_and_exits_130() -> None:
    stop = CountingEvent()
    stdout, stderr = io.StringIO(), io.StringIO()
    ui = Output(stdout=stdout, stderr=stderr)
    with pytest.raises(typer.Exit) as exited, reporting(ui), stop_on_signals(stop):
        os.kill(os.getpid(), signal.SIGINT)
        _wait_for(stop)
        os.kill(os.getpid(), signal.SIGINT)
        _wait_to_be_interrupted()
    assert exited.value.exit_code == 130
    assert "interrupted" in stderr.getvalue() and stdout.getvalue() == ""
