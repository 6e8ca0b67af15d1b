"""A signal that lands while Python runs a callback whose exceptions it cannot raise (a
weakref callback such as importlib's module-lock cleanup, a ``__del__``) still ends the
run: before, Python printed "Exception ignored ... KeyboardInterrupt" with a traceback and
the run went on (seen once in a full-suite run under load, SIGTERM at start-up)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import signal, time, weakref
from intercom_events_cli import early_signals

early_signals.install(["send"])

class Thing:
    pass

def callback(_ref):
    signal.raise_signal(signal.SIGTERM)  # the signal lands inside the callback

try:
    thing = Thing()
    ref = weakref.ref(thing, callback)
    del thing
    deadline = time.monotonic() + 30  # ends early: the interrupt comes within ms
    while time.monotonic() < deadline:
        time.sleep(0.01)
    print("not interrupted")
except KeyboardInterrupt:
    print("interrupted")
"""


def test_a_signal_inside_a_weakref_callback_still_interrupts_the_run() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], capture_output=True, text=True, timeout=120
    )
    assert done.stdout.strip() == "interrupted", (done.stdout, done.stderr)
    assert "Exception ignored" not in done.stderr and "Traceback" not in done.stderr, done.stderr
