"""Found by the idle suite runs: a relay that a Ctrl-C did not stop in 60 s
(``test_relay.py::test_sigint_exits_0_too``, once in three runs).

The stop handler set a ``threading.Event`` from inside the signal handler. A handler
runs on the main thread between two of its instructions; when those are inside
``event.wait()`` (which holds the event's lock for a moment around its wait), ``set()``
waits for a lock that its own thread holds: the relay hangs for ever, its rows claimed.
The handler now hands the event to a setter thread.

Each case stands in for that moment exactly: the main thread holds the event's lock (as
``wait()`` does) when the signal arrives. A child process does it, so that the hang the
old code has ends with the child's timeout, not the test run's.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

# The child holds the event's condition lock (what Event.wait holds around its wait), gets
# the signal there, lets go of the lock, and says whether the event was set.
HOLD_THE_LOCK_AND_SIGNAL = """
import os, signal, sys, threading
{setup}
with event._cond:  # the lock Event.wait() holds for a moment
    os.kill(os.getpid(), signal.{signal})
    # The handler has run by now (signals are handled between instructions).
    for _ in range(1000):
        pass
print("set" if event.wait(30) else "not set", flush=True)
"""

RELAY = """
from intercom_events_cli import early_signals
early_signals.install(["flush", "--watch"])
event = early_signals.STOP
"""

STOP_ON_SIGNALS = """
from intercom_events_cli.cli.common import stop_on_signals
event = threading.Event()
context = stop_on_signals(event)
context.__enter__()
"""


@pytest.mark.parametrize("setup", [RELAY, STOP_ON_SIGNALS], ids=["relay", "flush-and-batch"])
@pytest.mark.parametrize("signal_name", ["SIGINT", "SIGTERM"])
def test_a_stop_signal_inside_an_events_wait_sets_it_and_does_not_hang(
    setup: str, signal_name: str
) -> None:
    code = HOLD_THE_LOCK_AND_SIGNAL.format(setup=textwrap.dedent(setup), signal=signal_name)
    try:
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60
        )
    except subprocess.TimeoutExpired:
        pytest.fail(f"{signal_name} while the event's lock was held: the process hung")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "set", done.stdout + done.stderr
