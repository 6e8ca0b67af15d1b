"""Plumbing the commands share: the one place errors become exit codes, opening the
outbox, stopping on signals. The options they share are in :mod:`.options`."""

from __future__ import annotations

import re
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from types import FrameType
from typing import TYPE_CHECKING, Any

import typer

from ..config.redaction import redact
from ..config.warning_sink import set_warning_sink
from ..errors import ExitCode, IeventsError, UsageError
from ..outcome import status_text
from .output import Output
from .render import error_hint, failure_json

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..http.client import AttemptLog, EventsClient
    from ..outbox.store import OutboxLocation, OutboxStore

_DURATION = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([smhdw])\s*", re.IGNORECASE)
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def attempt_logger(ui: Output) -> Callable[[AttemptLog], None] | None:
    """With ``-v``: a thread-safe logger of one stderr line per HTTP attempt; else None."""
    if not ui.verbose:
        return None
    lock = threading.Lock()

    def log_attempt(entry: AttemptLog) -> None:
        result = status_text(entry.status) if entry.status is not None else entry.error
        remaining = (
            f", rate limit remaining {entry.rate_limit_remaining}"
            if entry.rate_limit_remaining is not None
            else ""
        )
        with lock:
            ui.log(
                f"{entry.method} {entry.url} -> {result} in {entry.elapsed_ms:.0f} ms "
                f"(attempt {entry.attempt}{remaining})"
            )

    return log_attempt


@contextmanager
def reporting(
    ui: Output, debug: bool = False, on_error: Callable[[IeventsError], None] | None = None
) -> Iterator[None]:
    """Run a command body; turn every error into a message and an exit code.

    Expected errors (:class:`IeventsError`) become one line plus a hint. Anything else is
    a bug: one line and exit 1, the traceback (redacted) only with ``--debug``. Ctrl-C
    exits 130. Warnings found while loading the settings (a token file readable by
    others) go to stderr as they are found, once each.
    """
    set_warning_sink(ui.warn)
    try:
        yield
    except typer.Exit:
        raise
    except IeventsError as exc:
        if on_error is not None:
            on_error(exc)
        if debug and exc.__cause__ is not None:
            # What the expected error was made from (a SQLite error, an OS error): for
            # a failure the message alone cannot explain.
            ui.stderr.write(redact("".join(traceback.format_exception(exc.__cause__))))
        hint = error_hint(exc)
        if hint is None and isinstance(exc, UsageError):
            from .runner import current_help_hint

            hint = current_help_hint()  # a usage error is always one line plus a hint
        _json_error_once(ui, exc.exit_code, exc.code, exc.message, hint)
        ui.error(exc.message, hint)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        _json_error_once(ui, ExitCode.INTERRUPTED, "interrupted", "interrupted")
        ui.error("interrupted")
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:  # noqa: BLE001 - the last line of defence
        if debug:
            ui.stderr.write(redact("".join(traceback.format_exception(exc))))
        message = f"internal error: {type(exc).__name__}: {exc}"
        _json_error_once(ui, ExitCode.INTERNAL, "internal_error", message)
        ui.error(
            message,
            None if debug else "this is a bug in ievents; run again with --debug for details",
        )
        raise typer.Exit(int(ExitCode.INTERNAL)) from None
    finally:
        set_warning_sink(None)


def _json_error_once(
    ui: Output, exit_code: ExitCode, code: str, message: str, hint: str | None = None
) -> None:
    """With ``--json``, every exit prints one JSON object: this one, if none was printed
    (the shape of :func:`~.render.failure_json`)."""
    if ui.json_mode and not ui.json_written:
        ui.json(
            {
                "ok": False,
                "exit_code": int(exit_code),
                "error": {"code": code, "message": message, "hint": hint},
            }
        )


def outbox_path(option: str | None, env: Mapping[str, str]) -> OutboxLocation:
    """Where the outbox is: ``--outbox`` > IEVENTS_OUTBOX > the XDG state folder.

    A file path, or a ``postgresql://`` URI (see :mod:`intercom_events_cli.outbox.store`).
    """
    from ..outbox.store import resolve_location

    return resolve_location(option, env)


def open_outbox(path: OutboxLocation, env: Mapping[str, str]) -> OutboxStore:
    """Open (or create) the outbox; errors name the file or database (exit 78, or 75)."""
    from ..outbox.store import open_store

    return open_store(path, env)


def open_existing(path: OutboxLocation, env: Mapping[str, str]) -> OutboxStore | None:
    """Open the outbox for a command that creates nothing; None when there is none there.

    No file, folder, PostgreSQL schema or table is ever created: a mistyped path or
    ``IEVENTS_OUTBOX_SCHEMA`` is reported as "no outbox at ...", never made.
    """
    from ..errors import OutboxMissing
    from ..outbox.store import open_store

    try:
        return open_store(path, env, create=False)
    except OutboxMissing:
        return None


@contextmanager
def stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Ctrl-C, SIGTERM or SIGHUP asks the run to stop cleanly; a second Ctrl-C forces it.
    A SIGHUP the process was started ignoring (``nohup``) stays ignored."""
    from ..early_signals import set_from_handler, start_setter, stop_signals

    def handle(signum: int, frame: FrameType | None) -> None:
        if stop.is_set() and signum == signal.SIGINT:
            raise KeyboardInterrupt
        set_from_handler(stop)

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    start_setter()
    hangup = getattr(signal, "SIGHUP", None)
    previous = {
        sig: signal.signal(sig, handle)
        for sig in stop_signals()
        if sig != hangup or signal.getsignal(sig) is not signal.SIG_IGN
    }
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def json_error(
    ui: Output, extra: Mapping[str, Any] | None = None
) -> Callable[[IeventsError], None]:
    """An ``on_error`` for :func:`reporting`: with ``--json``, ``{"ok": false, "exit_code",
    ...extra, "error": {code, message, hint}}`` (:func:`~.render.failure_json`)."""

    def report(exc: IeventsError) -> None:
        if ui.json_mode:
            ui.json(failure_json(exc, **(extra or {})))

    return report


def parse_duration(text: str) -> float:
    """``30d``, ``12h``, ``90m``, ``45s``, ``2w`` as seconds."""
    match = _DURATION.fullmatch(text)
    if not match:
        raise UsageError(
            f"--older-than {text!r} is not a duration; use a number and a unit, such as "
            "30d, 12h, 90m, 45s or 2w"
        )
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2).lower()]


def open_client(ui: Output, settings: Settings) -> EventsClient:
    """One client for the run; with ``-v`` one stderr line per HTTP attempt."""
    from ..http.client import EventsClient

    return EventsClient(settings, on_attempt=attempt_logger(ui))
