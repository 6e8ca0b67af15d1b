"""Capture: keep one event in the outbox, bound to the workspace it is meant for.

``send --queue`` stores an event without sending it; ``send --queue-on-failure`` keeps
one whose delivery failed temporarily (or on a TLS setup problem), with that attempt
counted and the engine's reschedule rule (:func:`~.delivery_results.deferred_until`);
which failures it keeps is :func:`kept_after_failure`, and a send interrupted before
Intercom answered is kept by :func:`capture_interrupted`.
Either way the same event already in the outbox is not stored twice: the result says
what that row is (already queued, already delivered, a dead letter) and the exit code
that follows. Nothing here prints; ``cli/capture.py`` says it.
"""

from __future__ import annotations

import time
from enum import Enum
from typing import TYPE_CHECKING

from .delivery.results import deferred_until
from .errors import ExitCode, Interrupted
from .event import Event
from .frozen import frozen
from .outbox import OutboxRow, State
from .outcome import CODE_TLS, Outcome, OutcomeKind, dead_letter_kind, exit_code_for

if TYPE_CHECKING:
    from .config.settings import Settings
    from .outbox.store import OutboxStore


class CaptureState(str, Enum):
    """What the outbox holds for the event after a capture."""

    QUEUED = "queued"  # stored by this capture, pending
    ALREADY_QUEUED = "already_queued"  # the same event was pending (or in flight)
    ALREADY_DELIVERED = "already_delivered"  # the same event is in the ledger
    DEAD_LETTER = "dead_letter"  # the same event was rejected by Intercom


@frozen
class CaptureResult:
    """The outcome of one capture, and the exit code it calls for."""

    event: Event
    state: CaptureState
    outbox_id: int
    row: OutboxRow | None = None  # the row already there (not stored again)
    failure: Outcome | None = None  # the failed delivery kept (--queue-on-failure)

    @property
    def stored(self) -> bool:
        """True when this capture stored the event (it was not in the outbox yet)."""
        return self.state is CaptureState.QUEUED

    @property
    def dead_kind(self) -> OutcomeKind | None:
        """For a dead letter: why Intercom refused it (invalid data, or no such contact)."""
        if self.state is not CaptureState.DEAD_LETTER or self.row is None:
            return None
        return dead_letter_kind(self.row.last_status)

    @property
    def exit_code(self) -> ExitCode:
        """0 when the event is queued or delivered; a dead letter exits as it failed
        (65, or 67 for a missing contact); an event kept after a configuration failure
        exits 78 all the same (nothing delivers it until the setup is fixed)."""
        kind = self.dead_kind
        if kind is not None:
            return exit_code_for(kind)
        if self.stored and self.failure is not None:
            if self.failure.kind is not OutcomeKind.TEMPORARY:
                return self.failure.exit_code
        return ExitCode.OK


def kept_after_failure(outcome: Outcome) -> bool:
    """Whether ``send --queue-on-failure`` keeps the event after this failed delivery: a
    temporary failure (network, timeout, 429, 5xx past the retries), or a TLS setup
    problem, which a flush delivers once the setup is fixed. An answer about the event
    itself (400, 404, 422) or the token (401, 403) is not kept: sending it again cannot
    help. :attr:`CaptureResult.exit_code` says how a kept one exits."""
    if outcome.delivered:
        return False
    return outcome.kind is OutcomeKind.TEMPORARY or outcome.error_code == CODE_TLS


def capture_interrupted(store: OutboxStore, event: Event) -> Interrupted:
    """Keep an event whose send was interrupted before Intercom answered (``send
    --queue-on-failure`` on Ctrl-C or SIGTERM); returns the :class:`Interrupted` error (130)
    to raise, carrying the row's ``outbox_id``.

    It may have arrived: a flush sends it again with the same ``created_at``, which
    Intercom de-duplicates. It is stored unbound: no answer said which workspace took it,
    so any configuration that flushes delivers it.
    """
    kept = capture(store, event, None)
    return Interrupted(
        f"interrupted before Intercom answered: {event.event_name} for {event.contact} may "
        f"or may not have arrived; it was kept in the outbox (id {kept.outbox_id})",
        hint="ievents flush sends it again (same --created-at "
        f"{event.created_at}); Intercom de-duplicates the same event, contact and time",
        outbox_id=kept.outbox_id,
    )


def capture(
    store: OutboxStore,
    event: Event,
    settings: Settings | None,
    *,
    failure: Outcome | None = None,
    now: float | None = None,
) -> CaptureResult:
    """Store ``event`` as pending, bound to ``settings``' destination (None: unbound, any
    configuration that flushes delivers it), unless the same event is already there.

    With ``failure`` (the failed delivery of ``send --queue-on-failure``) the row starts
    with that attempt, its answer, and its next attempt after the engine's backoff; a
    temporary failure also marks the destination as failing, so that the next flush
    starts with one probe instead of waiting out every event's backoff.
    """
    destination_id = store.bind(settings) if settings is not None else None
    if failure is None:
        added = store.add(event, destination_id=destination_id)
    else:
        now = time.time() if now is None else now
        added = store.add(
            event,
            now=now,
            attempts=1,
            last_status=failure.status,
            last_error_code=failure.error_code,
            last_error_message=failure.error_message,
            request_id=failure.request_id,
            next_attempt_at=deferred_until(1, now, failure.retry_after_s),
            destination_id=destination_id,
        )
        if failure.kind is OutcomeKind.TEMPORARY and destination_id is not None:
            store.note_destination(destination_id, up=False, now=now)
    if added.added:
        return CaptureResult(event, CaptureState.QUEUED, added.id, failure=failure)
    return CaptureResult(event, _existing_state(added.state), added.id, added.row, failure)


def _existing_state(state: State) -> CaptureState:
    if state is State.DELIVERED:
        return CaptureState.ALREADY_DELIVERED
    if state is State.DEAD:
        return CaptureState.DEAD_LETTER
    return CaptureState.ALREADY_QUEUED
