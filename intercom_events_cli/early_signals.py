"""Ctrl-C, SIGTERM and SIGHUP answered the same way from a run's first moment.

``python -m intercom_events_cli`` and the ``ievents`` script install these handlers
before anything heavy is imported (typer, rich and the command take ~100 ms to load):
a signal then never ends a run with a traceback or a bare ``-15``.

- Every command but the relay: SIGINT, SIGTERM or SIGHUP raises ``KeyboardInterrupt``,
  which the command line turns into "interrupted" and exit 130 (as once a command runs).
- The relay (``flush --watch``): the first SIGINT, SIGTERM or SIGHUP asks it to stop
  (:data:`STOP`, which the relay watches: exit 0, as documented); a second Ctrl-C forces
  the stop (130).

SIGHUP (the terminal a relay was started from closes, or ``kill -HUP``) is SIGTERM's
twin: by default it killed the process (129) with rows claimed and no summary. A process
started with SIGHUP ignored (``nohup``) keeps ignoring it.

Nothing here prints or exits; only the entry point uses :func:`install`, never a library
import.
"""

from __future__ import annotations

import os
import queue
import signal
import sys
import threading
from collections.abc import Sequence
from types import FrameType
from typing import Any

# Set by a first signal in a relay run; the relay stops when it is set.
STOP = threading.Event()
_installed: list[str] = []


def is_relay(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs the relay: ``flush ... --watch``."""
    args = list(argv[: argv.index("--")] if "--" in argv else argv)
    command = next((arg for arg in args if not arg.startswith("-")), None)
    return command == "flush" and "--watch" in args


class SignalInterrupt(KeyboardInterrupt):
    """The ``KeyboardInterrupt`` a handled signal raises; it remembers the signal."""

    def __init__(self, signum: int) -> None:
        super().__init__()
        self.signum = signum


def _interrupt(signum: int, frame: FrameType | None) -> None:
    if _in_hook:
        _send_again(signum)  # raised in the hook, it would be lost as well
        return
    raise SignalInterrupt(signum)


def _stop(signum: int, frame: FrameType | None) -> None:
    if STOP.is_set() and signum == signal.SIGINT:
        _interrupt(signum, frame)
        return
    set_from_handler(STOP)


# Events a signal handler asked to set, and the thread that sets them (started before a
# handler that uses it is installed: starting a thread takes locks as well).
_to_set: queue.SimpleQueue[threading.Event] = queue.SimpleQueue()
_setter: list[threading.Thread] = []
_setter_lock = threading.Lock()


def start_setter() -> None:
    """Start the thread :func:`set_from_handler` hands its events to (once a process)."""
    with _setter_lock:
        if not _setter:
            thread = threading.Thread(target=_set_each, name="ievents-signal-setter", daemon=True)
            thread.start()
            _setter.append(thread)


def _set_each() -> None:
    while True:
        _to_set.get().set()


def set_from_handler(event: threading.Event) -> None:
    """Set ``event`` from a signal handler, without deadlocking.

    ``Event.set()`` takes the event's lock, and a handler runs on the main thread between
    two of its instructions: should those be inside ``event.wait()``, which holds the same
    lock for a moment, ``set()`` waits for a lock its own thread holds, for ever (a relay
    that a Ctrl-C froze instead of stopping, seen once in three suite runs). The event is
    handed to the setter thread instead (a ``SimpleQueue`` put is safe in a handler), which
    sets it as soon as the main thread lets go of the lock. Without a setter thread (none
    was started), it is set here, as before.
    """
    if _setter:
        _to_set.put(event)
    else:
        event.set()


# Whether _unraisable runs: a handler that runs meanwhile sends its signal again instead.
_in_hook = False


def _unraisable(unraisable: Any) -> None:
    """A signal that lands while Python runs a callback whose exceptions it cannot raise
    (a weakref callback, ``__del__``: an import lock freed, say) would be printed as
    "Exception ignored" with a traceback, and lost. Instead it is sent again a moment
    later, from another thread: its handler then runs once the callback is over, where
    the interrupt can end the run (should it land in such a callback again, the same)."""
    global _in_hook
    if isinstance(unraisable.exc_value, SignalInterrupt):
        _in_hook = True
        try:
            _send_again(unraisable.exc_value.signum)
        finally:
            _in_hook = False
        return
    _previous_unraisable(unraisable)


def _send_again(signum: int) -> None:
    again = threading.Timer(0.05, os.kill, (os.getpid(), signum))
    again.daemon = True
    again.start()


_previous_unraisable = sys.unraisablehook


HANDLERS = (_interrupt, _stop)


def stop_signals() -> tuple[signal.Signals, ...]:
    """The signals that stop a run: SIGINT, SIGTERM and, where there is one (not on
    Windows), SIGHUP."""
    hangup = getattr(signal, "SIGHUP", None)
    return (signal.SIGINT, signal.SIGTERM) + ((hangup,) if hangup is not None else ())


def install(argv: Sequence[str]) -> None:
    """Handle SIGINT, SIGTERM and SIGHUP for the run of ``argv`` (a signal its parent made
    the process ignore, as ``nohup`` does, stays ignored)."""
    relay = is_relay(argv)
    handler = _stop if relay else _interrupt
    if relay:
        start_setter()
    for sig in stop_signals():
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, handler)
    sys.unraisablehook = _unraisable
    _installed[:] = ["relay" if relay else "command"]


def relay_stop() -> threading.Event | None:
    """:data:`STOP` when the entry point installed the relay's handling, else None (an
    in-process run, which gets its own event)."""
    return STOP if _installed == ["relay"] else None


def settle() -> None:
    """The run is over and its exit code decided: from now on a signal changes nothing."""
    for sig in stop_signals():
        signal.signal(sig, signal.SIG_IGN)
