"""``python -m intercom_events_cli`` and the ``ievents`` console script.

Signal handling comes first, before the command line is imported (:mod:`.early_signals`):
Ctrl-C or SIGTERM at any moment of a run ends it with a documented exit code and one
line, never a traceback.
"""

from __future__ import annotations

import os
import sys

from . import early_signals

INTERRUPTED = 130
# A hook for the tests only (tests/test_early_signals.py): "announce" writes a line on
# stderr once signals are handled; "pause:start" / "pause:imported" also wait there (up
# to a minute) until a signal arrives. Unset, as everywhere else, it does nothing.
TEST_HOOK_ENV = "IEVENTS_TEST_HOOK"


def _test_hook(point: str) -> None:
    hook = os.environ.get(TEST_HOOK_ENV)
    if hook == f"pause:{point}" or (hook == "announce" and point == "start"):
        os.write(2, f"ievents-test: at {point}\n".encode())
    if hook == f"pause:{point}":
        import time

        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not early_signals.STOP.is_set():
            time.sleep(0.01)  # a signal ends this: KeyboardInterrupt, or STOP for a relay


def _interrupted(argv: list[str]) -> int:
    """Ctrl-C or SIGTERM before the command line could say so (or after it had): said
    here, in its words, exit 130."""
    if "--json" in argv:
        sys.stdout.write(
            '{"ok": false, "exit_code": 130, "error": {"code": "interrupted", '
            '"message": "interrupted", "hint": null}}\n'
        )
    sys.stderr.write("ievents: error: interrupted\n")
    return INTERRUPTED


def _stand_in_for_closed_streams() -> None:
    """Give a stream to a descriptor the process was started without (``>&-``).

    Python leaves ``sys.stdout`` / ``sys.stderr`` None then, and the first write would end
    a run (an event already delivered, say) in an internal error, exit 1. What would be
    written there goes nowhere, as to a closed pipe; the exit code still says how the run
    ended.
    """
    for name in ("stdout", "stderr"):
        if getattr(sys, name) is None:
            setattr(sys, name, open(os.devnull, "w", encoding="utf-8"))  # noqa: SIM115


def run() -> None:
    """Run ievents on ``sys.argv`` and exit with its code (the console script's entry)."""
    _stand_in_for_closed_streams()
    argv = sys.argv[1:]
    code = INTERRUPTED
    try:
        try:
            early_signals.install(argv)
            _test_hook("start")
            from .cli import main

            _test_hook("imported")
            code = main(argv)
        finally:
            early_signals.settle()
    except KeyboardInterrupt:
        code = _interrupted(argv)
    except Exception as exc:
        if not _from_interrupt(exc):
            raise
        code = _interrupted(argv)
    if code == INTERRUPTED:
        _exit_interrupted()
    sys.exit(code)


def _from_interrupt(exc: BaseException) -> bool:
    """Whether ``exc`` wraps a KeyboardInterrupt: Python 3.11 turns one raised while a
    class is made (a dataclass field's ``__set_name__``, as a module is imported) into
    ``RuntimeError("Error calling __set_name__ ...")``."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, KeyboardInterrupt):
            return True
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return False


def _exit_interrupted() -> None:
    """Exit 130 at once, the streams flushed.

    Not ``sys.exit``: a KeyboardInterrupt raised inside ``exec()`` of source text (as
    dataclasses and namedtuple do while a module is imported) marks the process as killed
    by SIGINT even once caught, and CPython would end it with SIGINT (-2) after our 130.
    Every store was closed by the command; nothing else is left to finalise.
    """
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(INTERRUPTED)


if __name__ == "__main__":
    run()
