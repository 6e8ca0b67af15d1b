"""``send --queue`` and ``--queue-on-failure``: keep one event in the outbox and say so.

The capture itself (what is stored, what the same event already there means, the exit
code) is :func:`intercom_events_cli.capture.capture`; this module only words its result.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

import typer

from ..config.settings import Settings
from ..errors import IeventsError
from ..event import Event, format_utc
from ..outcome import Outcome, api_error_text, status_text
from .common import open_outbox, outbox_path
from .environment import current
from .output import Output
from .render import (
    describe_failure,
    error_hint,
    error_json,
    failure_hint,
    outcome_json,
    plural,
    when,
)
from .render_json import capture_json

if TYPE_CHECKING:
    from ..capture import CaptureResult


def queue_event(
    ui: Output, event: Event, option: str | None, env: Mapping[str, str], settings: Settings
) -> int:
    """``send --queue``: store the event as pending, bound to ``settings``' destination;
    no network. Says what became of it; returns the exit code."""
    from ..capture import capture

    with open_outbox(outbox_path(option, env), env) as store:
        result = capture(store, event, settings)
    say_captured(ui, result, settings)
    return int(result.exit_code)


def queue_after_failure(
    ui: Output, outcome: Outcome, option: str | None, env: Mapping[str, str], settings: Settings
) -> int:
    """``send --queue-on-failure``: keep an event that failed temporarily (or on a TLS
    setup problem) as pending; says so, returns the exit code. An outbox that cannot
    take it: the failure, why it was not kept, and the outbox error's exit code."""
    from ..capture import capture

    try:
        with open_outbox(outbox_path(option, env), env) as store:
            result = capture(store, outcome.event, settings, failure=outcome, now=current().clock())
    except IeventsError as exc:
        if ui.json_mode:
            # The real attempts and status of the delivery, and why it was not kept.
            failed = {**outcome_json(outcome), "exit_code": int(exc.exit_code)}
            failed["error"] = {**error_json(exc), "delivery_error": outcome.error()}
            ui.json(failed)
        ui.error(describe_failure(outcome) + "; and it could not be queued:")
        ui.error(exc.message, error_hint(exc))
        raise typer.Exit(int(exc.exit_code)) from None
    say_captured(ui, result, settings)
    return int(result.exit_code)


def say_captured(ui: Output, result: CaptureResult, settings: Settings) -> None:
    """The result line (stdout) or the error and hint (stderr), and the ``--json`` object."""
    from ..capture import CaptureState

    if ui.json_mode:
        ui.json(capture_json(result))
    event, ident = result.event, result.outbox_id
    what = f"{event.event_name} for {event.contact} at {format_utc(event.created_at)}"
    if result.stored and result.failure is not None:
        say_kept_after_failure(ui, result, settings)
        return
    if result.stored:
        message = f"queued {what} (outbox id {ident}); ievents flush delivers it"
    elif result.state is CaptureState.DEAD_LETTER:
        row = result.row
        assert row is not None
        detail = api_error_text(row.last_error_code, row.last_error_message)
        ui.error(
            f"{what} is already in the outbox as a dead letter (id {ident}, "
            f"{status_text(row.last_status)}: {detail}); not queued again",
            f"fix the event and send it again, or try it as it is: ievents outbox retry {ident}",
        )
        return
    elif result.state is CaptureState.ALREADY_DELIVERED:
        assert result.row is not None
        message = (
            f"already delivered: {what} (outbox id {ident}, {when(result.row.updated)}); "
            "not queued again"
        )
    else:
        assert result.row is not None
        message = (
            f"already queued: {what} (outbox id {ident}, {result.row.state.value}); not "
            "added again; ievents flush delivers it"
        )
    if not ui.json_mode:
        ui.result(message, style="green")


def say_kept_after_failure(ui: Output, result: CaptureResult, settings: Settings) -> None:
    """``queued, NOT delivered: ...``: on stdout after a temporary failure; on stderr with
    the hint after a configuration failure (the exit code is not 0)."""
    outcome, event = result.failure, result.event
    assert outcome is not None
    reason = (
        status_text(outcome.status)
        if outcome.status is not None
        else outcome.error_message or outcome.error_code
    )
    line = (
        f"queued, NOT delivered: {event.event_name} for {event.contact} at "
        f"{format_utc(event.created_at)} ({reason} after "
        f"{plural(outcome.attempts, 'attempt')}); kept in the outbox (id {result.outbox_id}), "
        "ievents flush delivers it"
    )
    if result.exit_code:
        ui.error(line + " once the configuration is fixed", failure_hint(outcome, settings))
    elif not ui.json_mode:
        ui.result(line, style="yellow")
