"""Ctrl-C and SIGTERM answered the same way from a run's first moment.

``python -m intercom_events_cli`` and the ``ievents`` script install these handlers
before anything heavy is imported (typer, rich and the command take ~100 ms to load):
a signal then never ends a run with a traceback or a bare ``-15``.

- Every command but the relay: SIGINT or SIGTERM raises ``KeyboardInterrupt``, which the
  command line turns into "interrupted" and exit 130 (as once a command runs).
- The relay (``flush --watch``): the first SIGINT or SIGTERM asks it to stop (:data:`STOP`,
  which the relay watches: exit 0, as documented); a second Ctrl-C forces the stop (130).

Nothing here prints or exits; only the entry point uses :func:`install`, never a library
import.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Sequence
from types import FrameType

# Set by a first signal in a relay run; the relay stops when it is set.
STOP = threading.Event()
_installed: list[str] = []


def is_relay(argv: Sequence[str]) -> bool:
    """Whether ``argv`` runs the relay: ``flush ... --watch``."""
    args = list(argv[: argv.index("--")] if "--" in argv else argv)
    command = next((arg for arg in args if not arg.startswith("-")), None)
    return command == "flush" and "--watch" in args


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def _stop(signum: int, frame: FrameType | None) -> None:
    if STOP.is_set() and signum == signal.SIGINT:
        raise KeyboardInterrupt
    STOP.set()


HANDLERS = (_interrupt, _stop)


def install(argv: Sequence[str]) -> None:
    """Handle SIGINT and SIGTERM for the run of ``argv`` (a signal its parent made the
    process ignore, as ``nohup`` does, stays ignored)."""
    relay = is_relay(argv)
    handler = _stop if relay else _interrupt
    for sig in (signal.SIGINT, signal.SIGTERM):
        if signal.getsignal(sig) is not signal.SIG_IGN:
            signal.signal(sig, handler)
    _installed[:] = ["relay" if relay else "command"]


def relay_stop() -> threading.Event | None:
    """:data:`STOP` when the entry point installed the relay's handling, else None (an
    in-process run, which gets its own event)."""
    return STOP if _installed == ["relay"] else None


def settle() -> None:
    """The run is over and its exit code decided: from now on a signal changes nothing."""
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, signal.SIG_IGN)
