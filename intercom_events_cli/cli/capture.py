"""``send --queue`` and ``--queue-on-failure``: keep one event in the outbox and say so.

Used by ``send``; the outbox commands (``flush``, ``outbox ...``) are in :mod:`.outbox`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import typer

from ..config import Settings
from ..errors import ExitCode, IeventsError
from ..event import Event, format_utc
from ..outcome import Outcome, OutcomeKind, status_text
from .common import open_outbox, outbox_path
from .environment import current
from .output import Output
from .render import describe_failure, failure_hint, outcome_json, plural, when

if TYPE_CHECKING:
    from ..outbox import AddResult


def queue_event(
    ui: Output, event: Event, option: str | None, env: Mapping[str, str], settings: Settings
) -> int:
    """``send --queue``: store the event as pending, bound to ``settings``' destination;
    no network. Returns the exit code.

    The same event already in the outbox is not stored twice: already queued or already
    delivered exits 0 and says so; a dead letter exits as it failed (65 or 67).
    """
    path = outbox_path(option, env)
    with open_outbox(path, env) as store:
        added = store.add(event, destination_id=store.bind(settings))
    body: dict[str, Any] = {
        "ok": True,
        "delivered": False,
        "queued": True,
        "status": None,
        "attempts": 0,
        "request_id": None,
        "event": event.payload(),
        "error": None,
        "outbox_id": added.id,
        "duplicate": not added.added,
    }
    if added.added:
        what = f"{event.event_name} for {event.contact} at {format_utc(event.created_at)}"
        if ui.json_mode:
            ui.json(body)
        else:
            ui.result(f"queued {what} (outbox id {added.id}); ievents flush delivers it", "green")
        return int(ExitCode.OK)
    return report_existing(ui, added, event, body)


def report_existing(ui: Output, added: AddResult, event: Event, body: dict[str, Any]) -> int:
    """An event captured again: answer with its row's real state; returns the exit code.

    Delivered: "already delivered", 0. Pending or in flight: "already queued", 0. Dead:
    the dead letter's exit code (65, or 67 for a missing contact) and how to retry it.
    """
    from ..outbox import State

    what = f"{event.event_name} for {event.contact} at {format_utc(event.created_at)}"
    row = added.row
    assert row is not None
    body = {**body, "outbox_id": added.id, "duplicate": True}
    if added.state is State.DELIVERED:
        body.update(ok=True, queued=False, delivered=True, status=row.last_status)
        message = (
            f"already delivered: {what} (outbox id {added.id}, {when(row.updated)}); "
            "not queued again"
        )
    elif added.state is State.DEAD:
        code = ExitCode.NO_CONTACT if row.last_status == 404 else ExitCode.DATA
        body.update(ok=False, queued=False, status=row.last_status, error=row.error())
        if ui.json_mode:
            ui.json(body)
        detail = ": ".join(str(p) for p in (row.last_error_code, row.last_error_message) if p)
        ui.error(
            f"{what} is already in the outbox as a dead letter (id {added.id}, "
            f"{status_text(row.last_status)}: {detail}); not queued again",
            f"fix the event and send it again, or try it as it is: ievents outbox retry {added.id}",
        )
        return int(code)
    else:
        body.update(ok=True, queued=True)
        message = (
            f"already queued: {what} (outbox id {added.id}, {added.state.value}); not added "
            "again; ievents flush delivers it"
        )
    if ui.json_mode:
        ui.json(body)
    else:
        ui.result(message, style="green")
    return int(ExitCode.OK)


def queue_after_failure(
    ui: Output, outcome: Outcome, option: str | None, env: Mapping[str, str], settings: Settings
) -> int:
    """``send --queue-on-failure``: keep an event that failed temporarily (or on a TLS
    setup problem) as pending; returns the exit code.

    Kept after a temporary failure: 0. Kept after a configuration failure: 78 all the
    same (nothing will deliver it until the setup is fixed). Already in the outbox: that
    row's real state (see :func:`report_existing`).
    """
    from ..outbox import retry_delay_s

    event = outcome.event
    path = outbox_path(option, env)
    now = current().clock()
    try:
        with open_outbox(path, env) as store:
            destination_id = store.bind(settings)
            added = store.add(
                event,
                now=now,
                attempts=1,
                last_status=outcome.status,
                last_error_code=outcome.error_code,
                last_error_message=outcome.error_message,
                request_id=outcome.request_id,
                next_attempt_at=now + retry_delay_s(1, outcome.retry_after_s),
                destination_id=destination_id,
            )
            if outcome.kind is OutcomeKind.TEMPORARY:
                # The next flush starts with one probe, and delivers everything at once
                # if Intercom is back, instead of waiting out this event's backoff.
                store.note_destination(destination_id, up=False, now=now)
    except IeventsError as exc:
        if ui.json_mode:
            # The real attempts and status of the delivery, and why it was not kept.
            failed = outcome_json(outcome)
            failed["error"] = {
                "code": exc.code,
                "message": exc.message,
                "delivery_error": outcome.error(),
            }
            ui.json(failed)
        ui.error(describe_failure(outcome) + "; and it could not be queued:")
        ui.error(exc.message, exc.hint)
        raise typer.Exit(int(exc.exit_code)) from None
    if not added.added:
        return report_existing(ui, added, event, outcome_json(outcome, queued=True))
    code = int(ExitCode.OK) if outcome.kind is OutcomeKind.TEMPORARY else int(outcome.exit_code)
    if ui.json_mode:
        body = {**outcome_json(outcome, queued=True), "outbox_id": added.id}
        body["ok"] = code == 0
        ui.json(body)
    reason = (
        status_text(outcome.status)
        if outcome.status is not None
        else outcome.error_message or outcome.error_code
    )
    line = (
        f"queued, NOT delivered: {event.event_name} for {event.contact} at "
        f"{format_utc(event.created_at)} ({reason} after "
        f"{plural(outcome.attempts, 'attempt')}); kept in the outbox (id {added.id}), "
        "ievents flush delivers it"
    )
    if code:
        ui.error(line + " once the configuration is fixed", failure_hint(outcome, settings))
    elif not ui.json_mode:
        ui.result(line, style="yellow")
    return code
