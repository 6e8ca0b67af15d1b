"""Where messages go and how they look: results on stdout, messages on stderr.

Colour only when the stream is a terminal, ``NO_COLOR`` is unset, ``TERM`` is not
``dumb`` and ``--no-color`` was not given. Every line written passes through
:func:`~intercom_events_cli.config.redaction.redact`, so a token can never reach the screen or a
log, whatever text an error carried. rich is imported only by the commands that draw
tables or progress bars (:meth:`Output.rich_console`).

A reader that goes away (``ievents list | head``) is not an error: what is written after
that is dropped, and the command ends with the exit code of what it did, so a delivered
event never reports exit 1 (which a cron job would answer by sending it again).
"""

from __future__ import annotations

import errno
import json
import os
from collections.abc import Mapping
from typing import IO, TYPE_CHECKING, Any

from ..config.redaction import redact
from ..textsafe import sanitize
from .environment import current

if TYPE_CHECKING:
    from rich.console import Console

_STYLES = {"red": "31", "green": "32", "yellow": "33", "dim": "2", "bold": "1"}


def _safe(text: str) -> str:
    """Text for a terminal: the token redacted, control characters escaped (textsafe)."""
    return sanitize(redact(text))


def colour_allowed(
    stream: IO[str],
    no_color: bool = False,
    *,
    isatty: bool | None = None,
    environ: Mapping[str, str] | None = None,
) -> bool:
    """Whether ANSI colour may be written to ``stream`` (clig.dev's rules).

    ``isatty`` and ``environ`` default to asking the stream and the current environment.
    """
    environ = current().environ if environ is None else environ
    if no_color or environ.get("NO_COLOR") or environ.get("TERM") == "dumb":
        return False
    if isatty is None:
        method = getattr(stream, "isatty", None)
        isatty = bool(method and method())
    return isatty


def _isatty(stream: IO[str]) -> bool:
    method = getattr(stream, "isatty", None)
    try:
        return bool(method and method())
    except (OSError, ValueError):  # a closed stream is not a terminal
        return False


def _reader_gone(exc: OSError) -> bool:
    """Whether a write failed because nobody reads any more: a closed pipe, or a terminal
    that hung up (EIO: the window a relay was started from closed, its SIGHUP handled)."""
    return isinstance(exc, BrokenPipeError) or exc.errno == errno.EIO


def _discard_further_writes(stream: IO[str]) -> None:
    """Point a stream whose reader went away at /dev/null.

    Its buffer still holds the unwritten text: without this, the interpreter's final flush
    would fail again and print "Exception ignored ... BrokenPipeError" on the way out.
    """
    try:
        fd = stream.fileno()
    except (AttributeError, OSError, ValueError):
        return  # not a file (a test's StringIO): nothing is flushed at exit
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
    finally:
        os.close(devnull)


def _escape_what_cannot_be_encoded(stream: IO[str]) -> None:
    # On an ASCII or Latin-1 stream a character it lacks raised UnicodeEncodeError: a
    # delivered event then ended in exit 1 and a cron job sending it again. Escape instead.
    reconfigure = getattr(stream, "reconfigure", None)
    if reconfigure is not None and getattr(stream, "errors", None) == "strict":
        reconfigure(errors="backslashreplace")


class Output:
    """The CLI's two streams plus its verbosity and format choices."""

    def __init__(
        self,
        *,
        json_mode: bool = False,
        quiet: bool = False,
        verbose: bool = False,
        no_color: bool = False,
        stdout: IO[str] | None = None,
        stderr: IO[str] | None = None,
    ) -> None:
        env = current()
        self._env = env  # told when the run's ending is said (Environment.ending_said)
        self.environ = env.environ
        self.stdout = stdout or env.stdout
        self.stderr = stderr or env.stderr
        # Whether each stream is a terminal: the environment says for its own streams.
        self.stdout_isatty = (
            env.stdout_isatty if self.stdout is env.stdout else _isatty(self.stdout)
        )
        self.stderr_isatty = (
            env.stderr_isatty if self.stderr is env.stderr else _isatty(self.stderr)
        )
        _escape_what_cannot_be_encoded(self.stdout)
        _escape_what_cannot_be_encoded(self.stderr)
        self.json_mode = json_mode
        self.quiet = quiet
        self.verbose = verbose and not quiet
        self.no_color = no_color
        self.colour_out = colour_allowed(
            self.stdout, no_color, isatty=self.stdout_isatty, environ=env.environ
        )
        self.colour_err = colour_allowed(
            self.stderr, no_color, isatty=self.stderr_isatty, environ=env.environ
        )
        self.reader_gone = False
        self.json_written = 0  # JSON documents written so far (``--json``: exactly one)

    def _emit(self, stream: IO[str], text: str, *, flush: bool = True) -> None:
        try:
            stream.write(text)
            if flush:
                stream.flush()
        except OSError as exc:
            if not _reader_gone(exc):
                raise
            _discard_further_writes(stream)
            if stream is self.stdout:
                self.reader_gone = True

    def raw(self, text: str, *, flush: bool = True) -> None:
        """Data on stdout as UTF-8 bytes (NDJSON export); ``reader_gone`` tells when to stop.

        Bytes, not text through the locale's encoding: with an ASCII locale an escaped
        ``\\xfc`` would make the export invalid JSON.
        """
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is None:  # a StringIO in tests
            self._emit(self.stdout, text, flush=flush)
            return
        try:
            self.stdout.flush()
            buffer.write(text.encode("utf-8", "backslashreplace"))
            if flush:
                buffer.flush()
        except OSError as exc:
            if not _reader_gone(exc):
                raise
            _discard_further_writes(self.stdout)
            self.reader_gone = True

    def flush(self) -> None:
        """Flush stdout (after :meth:`raw` with ``flush=False``)."""
        self._emit(self.stdout, "")
        buffer = getattr(self.stdout, "buffer", None)
        if buffer is not None and not self.reader_gone:
            try:
                buffer.flush()
            except OSError as exc:
                if not _reader_gone(exc):
                    raise
                _discard_further_writes(self.stdout)
                self.reader_gone = True

    def _paint(self, text: str, style: str | None, enabled: bool) -> str:
        if not style or not enabled:
            return text
        return f"\x1b[{_STYLES[style]}m{text}\x1b[0m"

    def result(self, text: str, style: str | None = None) -> None:
        """A human result line on stdout (suppressed by ``-q``)."""
        if not self.quiet:
            self._emit(self.stdout, self._paint(_safe(text), style, self.colour_out) + "\n")

    def json(self, value: Any) -> None:
        """One JSON document on stdout, one line (written even with ``-q``)."""
        text = json.dumps(value, ensure_ascii=False)
        try:
            text.encode(getattr(self.stdout, "encoding", None) or "utf-8")
        except UnicodeEncodeError:  # \u escapes keep it valid JSON; \x escapes would not
            text = json.dumps(value)
        self.json_written += 1
        self._env.ending_said = True
        self._emit(self.stdout, redact(text) + "\n")

    def info(self, text: str, style: str | None = None) -> None:
        """A message on stderr (suppressed by ``-q``)."""
        if not self.quiet:
            self._emit(self.stderr, self._paint(_safe(text), style, self.colour_err) + "\n")

    def log(self, text: str) -> None:
        """A ``--verbose`` line on stderr."""
        if self.verbose:
            self._emit(self.stderr, self._paint(_safe(text), "dim", self.colour_err) + "\n")

    def warn(self, text: str) -> None:
        """A warning on stderr (shown even with ``-q``: it needs attention)."""
        label = self._paint("warning:", "yellow", self.colour_err)
        self._emit(self.stderr, f"ievents: {label} {_safe(text)}\n")

    def error(self, text: str, hint: str | None = None) -> None:
        """An error on stderr, always shown; ``hint`` says how to fix it."""
        label = self._paint("error:", "red", self.colour_err)
        hint_line = f"  hint: {_safe(hint)}\n" if hint else ""
        self._env.ending_said = True
        self._emit(self.stderr, f"ievents: {label} {_safe(text)}\n{hint_line}")

    def rich_console(self, *, stderr: bool = False) -> Console:
        """A rich Console on one of the streams, honouring the colour rules."""
        from rich.console import Console

        stream = self.stderr if stderr else self.stdout
        enabled = self.colour_err if stderr else self.colour_out
        isatty = self.stderr_isatty if stderr else self.stdout_isatty
        return Console(
            file=stream,
            no_color=not enabled,
            color_system="auto" if enabled else None,
            highlight=False,
            soft_wrap=False,
            # A terminal by the environment's word (rich would ask the stream itself),
            # sized by its variables (COLUMNS), not necessarily the process's.
            force_terminal=True if isatty else None,
            _environ=self.environ,
        )
