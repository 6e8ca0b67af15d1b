"""What a delivery run produces: each row's :class:`Delivery`, the run's :class:`FlushReport`
and why it stopped (:class:`StopReason`), and the rules that turn an answer into a row's
next state (:func:`row_result`, :func:`deferred_until`).

The engine (:mod:`.engine`, its results settled by :mod:`.settle`) applies these rules;
``send --queue-on-failure`` (:mod:`.capture`) keeps a failed event by the same reschedule
rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING

from ..errors import ExitCode, most_severe
from ..frozen import frozen
from ..outbox import OutboxRow, RowResult, State, retry_delay_s
from ..outcome import CODE_CONNECTION, Outcome, classify_status, status_text

if TYPE_CHECKING:
    from ..http.client import AttemptLog
    from .destination import Destination


class StopReason(str, Enum):
    """Why a run stopped before the outbox ran dry (a str: ``--json`` shows the value)."""

    INTERRUPTED = "interrupted"  # the stop event: Ctrl-C, SIGTERM
    AUTH = "auth"  # the token was rejected, or the configuration cannot work
    MAX_TIME = "max_time"
    UNAVAILABLE = "unavailable"  # Intercom or the network kept failing
    INTERNAL = "internal_error"  # a bug in ievents


@frozen
class Delivery:
    """What became of one claimed row (passed to ``on_result``)."""

    row: OutboxRow
    state: State  # the row's new state
    outcome: Outcome | None  # None when the row went back unsent


@dataclass
class FlushReport:
    """The counts of one run, and why it stopped."""

    claimed: int = 0
    delivered: int = 0
    dead: int = 0
    deferred: int = 0  # temporary failure: pending again, with a later next attempt
    retried_in_run: int = 0  # retries ran out, but the event went back into this run
    probed: bool = False  # the run started with one probe (the destination was failing)
    waiting_elsewhere: list[tuple[Destination, int]] = field(default_factory=list)
    released: int = 0  # handed back to pending without an answer
    # Answers that stop the run because the setup must be fixed: the token rejected
    # (401/403), a redirect, an untrusted certificate, an unusable URL.
    setup_failures: int = 0
    stopped: StopReason | None = None
    internal_errors: list[str] = field(default_factory=list)
    codes: set[ExitCode] = field(default_factory=set)
    last_failure: Outcome | None = None
    # The first MAX_DEAD_LETTERS_KEPT of them (``dead`` counts all): a run that rejects
    # millions must not hold them all in memory; the outbox keeps every one.
    dead_letters: list[Delivery] = field(default_factory=list)
    # Rows refused before delivery (invalid: enqueued from SQL, or unreadable as stored),
    # made dead letters by this run without a request; counted in ``dead`` as well. Their
    # Delivery has no outcome: the reason is the row's ``last_error_message``.
    refused: int = 0
    next_attempt_at: float | None = None
    elapsed_s: float = 0.0
    # Codes noted since a relay last took them (its heartbeat's window), see note_code.
    recent_codes: set[ExitCode] = field(default_factory=set)

    def counts(self) -> tuple[int, ...]:
        """The counters, to :meth:`restore` when results could not be saved."""
        return (
            self.delivered,
            self.dead,
            self.deferred,
            self.released,
            self.retried_in_run,
            self.setup_failures,
            len(self.dead_letters),
        )

    def restore(self, counts: tuple[int, ...]) -> None:
        """Counters back to what :meth:`counts` returned."""
        (
            self.delivered,
            self.dead,
            self.deferred,
            self.released,
            self.retried_in_run,
            self.setup_failures,
            kept,
        ) = counts
        del self.dead_letters[kept:]

    def add_refused(self, row: OutboxRow, *, keep: int) -> Delivery:
        """Count a row made a dead letter without a request (claimed, refused, dead, 65);
        kept among the dead letters while fewer than ``keep`` are."""
        self.claimed += 1
        self.refused += 1
        self.dead += 1
        self.note_code(ExitCode.DATA)
        delivery = Delivery(row, State.DEAD, None)
        if len(self.dead_letters) < keep:
            self.dead_letters.append(delivery)
        return delivery

    def note_code(self, code: ExitCode) -> None:
        """Count a result's exit code in the run and in the current heartbeat window."""
        self.codes.add(code)
        self.recent_codes.add(code)

    def take_recent_code(self) -> ExitCode:
        """The most severe code noted since the last call (0: none), for a relay's heartbeat."""
        codes, self.recent_codes = self.recent_codes, set()
        # A bug (1) is outside the severity table: it is told apart, as exit_code does.
        return ExitCode.INTERNAL if ExitCode.INTERNAL in codes else most_severe(codes)

    @property
    def exit_code(self) -> ExitCode:
        """130 when interrupted, else the most severe result (0 when nothing failed)."""
        if self.stopped is StopReason.INTERRUPTED:
            return ExitCode.INTERRUPTED
        if self.internal_errors:
            return ExitCode.INTERNAL
        return most_severe(self.codes)


def deferred_until(attempts: int, now: float, retry_after_s: float | None = None) -> float:
    """When an event that failed temporarily on its ``attempts``-th delivery is due again.

    The one reschedule rule: the engine's, and ``send --queue-on-failure``'s (attempt 1).
    """
    return now + retry_delay_s(attempts, retry_after_s)


def row_result(
    row: OutboxRow, state: State, outcome: Outcome, next_attempt_at: float | None = None
) -> RowResult:
    """The row's new state with the answer kept (status, API error, request id)."""
    return RowResult(
        row.id,
        state,
        status=outcome.status,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        request_id=outcome.request_id,
        next_attempt_at=next_attempt_at,
    )


def refusal(row: OutboxRow) -> str | None:
    """Why a claimed row cannot be sent as it is stored (None: it can).

    Rows are validated on capture (and rows enqueued from SQL by the PostgreSQL claim);
    one written around ievents that cannot even be read as an event (not JSON, no
    created_at, no name or contact) is made a dead letter with this reason instead of
    being sent. Deliberately no more than that: a row ievents stored is never refused.
    """
    from ..event import Event

    try:
        data = json.loads(row.payload_text)
    except ValueError as exc:
        return f"refused before delivery: the stored event is not JSON ({exc})"
    try:
        event = Event.from_payload(data)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        cause = f"{type(exc).__name__}: {exc}"
        return f"refused before delivery: the stored event cannot be read ({cause})"
    if not isinstance(event.event_name, str) or not event.event_name or not event.contact:
        return "refused before delivery: the stored event has no event_name or no contact"
    return None


def outcome_from_attempt(row: OutboxRow, entry: AttemptLog) -> Outcome:
    """A temporary outcome from the last attempt of a delivery cut short by a stop."""
    return Outcome(
        event=row.event(),
        kind=entry.kind if entry.kind is not None else classify_status(entry.status),
        status=entry.status,
        attempts=entry.attempt,
        elapsed_s=entry.elapsed_ms / 1000,
        error_code=entry.error_code
        or (f"http_{entry.status}" if entry.status is not None else CODE_CONNECTION),
        error_message=entry.error or status_text(entry.status),
    )
