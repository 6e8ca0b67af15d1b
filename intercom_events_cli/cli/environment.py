"""What a command reads from the world: its streams, terminals, variables and clock.

Every command reads these through :func:`current`, never ``sys.stdin``, ``sys.stdout``,
``os.environ`` or ``time.time`` directly, as HTTPie's ``Environment`` does. The console
script uses :meth:`Environment.from_process`; a test (or any in-process caller) builds
one with its own streams and passes it to :func:`intercom_events_cli.cli.main`, which
makes it current for the run (:func:`activated`).

The core never sees this object: the CLI passes what the core needs (a mapping of
variables, a binary input stream, a clock) as plain arguments.
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import IO, TextIO


def _isatty(stream: TextIO | None) -> bool:
    isatty = getattr(stream, "isatty", None)
    try:
        return bool(isatty and isatty())
    except (OSError, ValueError):  # a closed stream is not a terminal
        return False


class Environment:
    """One run's view of the process: streams, whether each is a terminal, variables, clock.

    ``stdin`` may be None (a process started with descriptor 0 closed). The ``*_isatty``
    flags default to asking the streams; a test can set them to act as a terminal.
    ``process_streams`` says the streams are the process's own (``sys.stdin``...): only
    then may a reader of its own be opened on descriptor 0 (see :meth:`stdin_reader`).
    """

    def __init__(
        self,
        *,
        stdin: TextIO | None,
        stdout: TextIO,
        stderr: TextIO,
        environ: Mapping[str, str],
        clock: Callable[[], float] = time.time,
        stdin_isatty: bool | None = None,
        stdout_isatty: bool | None = None,
        stderr_isatty: bool | None = None,
        process_streams: bool = False,
    ) -> None:
        self.stdin = stdin
        self.stdout = stdout
        self.stderr = stderr
        self.environ = environ
        self.clock = clock
        self.stdin_isatty = _isatty(stdin) if stdin_isatty is None else stdin_isatty
        self.stdout_isatty = _isatty(stdout) if stdout_isatty is None else stdout_isatty
        self.stderr_isatty = _isatty(stderr) if stderr_isatty is None else stderr_isatty
        self.process_streams = process_streams
        # Set once the run has said how it ended (an error line, or its one --json
        # document): typer turns a Ctrl-C it meets while parsing, or after a command's
        # result (a dry run's request) was written, into a silent exit 130, still to be
        # said (cli/runner.py).
        self.ending_said = False

    def __repr__(self) -> str:  # never the variables: they hold the token
        return (
            f"Environment(stdin_isatty={self.stdin_isatty}, stdout_isatty={self.stdout_isatty}, "
            f"stderr_isatty={self.stderr_isatty}, process_streams={self.process_streams})"
        )

    @classmethod
    def from_process(cls) -> Environment:
        """The real process: ``sys`` streams, ``os.environ``, ``time.time``."""
        return cls(
            stdin=sys.stdin,
            # Never None: __main__ gives a descriptor closed at start a stand-in.
            stdout=sys.stdout,
            stderr=sys.stderr,
            environ=os.environ,
            process_streams=True,
        )

    @property
    def stdin_binary(self) -> IO[bytes]:
        """Standard input as bytes (an empty input when there is none)."""
        import io

        buffer = getattr(self.stdin, "buffer", None)
        return buffer if buffer is not None else io.BytesIO()

    def stdin_reader(self) -> IO[bytes]:
        """A binary reader of standard input of its own, where the process's stdin is real.

        A thread left waiting on an idle pipe must not hold ``sys.stdin``'s buffer lock:
        the interpreter flushes that buffer at exit and would abort. A second reader on
        descriptor 0 (never closed) avoids that; a test's in-memory stdin has no
        descriptor and is read as it is.
        """
        if self.process_streams and self.stdin is not None:
            try:
                fd = self.stdin.fileno()
            except (AttributeError, OSError, ValueError):
                return self.stdin_binary
            return open(fd, "rb", closefd=False)  # noqa: SIM115 - never closed: see above
        return self.stdin_binary


_active: list[Environment] = []


def current() -> Environment:
    """The environment of the running command (the process's own outside :func:`activated`)."""
    return _active[-1] if _active else Environment.from_process()


@contextmanager
def activated(env: Environment) -> Iterator[Environment]:
    """Make ``env`` current and point ``sys``' streams at it while the block runs.

    Libraries that write to ``sys.stdout`` themselves (click's help and prompts, rich's
    help panels) then write to the run's streams too; all are restored afterwards.
    """
    saved = (sys.stdin, sys.stdout, sys.stderr)
    _active.append(env)
    if not env.process_streams:
        sys.stdin, sys.stdout, sys.stderr = env.stdin, env.stdout, env.stderr
    try:
        yield env
    finally:
        _active.pop()
        sys.stdin, sys.stdout, sys.stderr = saved
