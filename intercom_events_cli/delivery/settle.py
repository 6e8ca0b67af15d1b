"""What a worker's result makes of its row, and of the run: the engine's bookkeeping.

The flush engine (:mod:`.engine`) claims rows, hands them to the senders and collects
their results; a :class:`Settler` turns each result into the row's next state (a
:class:`~intercom_events_cli.outbox.RowResult` to record) and the run's counts, and decides
what the run does next: a rejected token or a bug halts it, too many temporary failures in a
row (or a probe that fails, or a server asking for too long a wait) stop it as unavailable,
and an event whose retries ran out while Intercom answers other requests gets another round
in the same run (:attr:`Settler.awaiting_round`). The rules for a single answer (the backoff,
the row's fields) are in :mod:`.results`.
"""

from __future__ import annotations

import dataclasses
import threading
import time

from ..errors import ExitCode
from ..http.retry import MAX_SERVER_WAIT_S
from ..outbox import OutboxRow, RowResult, State
from ..outcome import Outcome, OutcomeKind
from .results import (
    Delivery,
    FlushReport,
    StopReason,
    deferred_until,
    outcome_from_attempt,
    row_result,
)
from .workers import Done


class Settler:
    """Settle one run's results into ``report``, and say when the run must stop.

    ``halt`` is set when the senders must stop sending (a rejected token, a bug, Intercom
    unavailable); ``stop`` is the run's stop event (a result collected after it was set is
    not read as an answer). ``deadline`` (``time.monotonic()``, set by the engine when the
    run starts) leaves no room for a round past it. ``probing`` is true while the run sends
    its one probe: a temporary failure then stops the run at once.
    """

    def __init__(
        self,
        report: FlushReport,
        *,
        halt: threading.Event,
        stop: threading.Event,
        unavailable_after: int,
        max_rounds: int,
        round_delay_s: float,
        keep_dead_letters: int,
    ) -> None:
        self.report = report
        self.halt = halt
        self.stop = stop
        self.unavailable_after = unavailable_after
        self.max_rounds = max_rounds
        self.round_delay_s = round_delay_s
        self.keep_dead_letters = keep_dead_letters
        self.deadline: float | None = None
        self.probing = False
        # Row id -> when it is due again (on the outbox's clock), for another round.
        self.awaiting_round: dict[int, float] = {}
        self._rounds: dict[int, int] = {}  # row id -> rounds used in this run
        self._temporary_streak = 0
        self._answered = False  # Intercom accepted or refused something in this run

    def settle(self, item: Done, now: float) -> tuple[RowResult, Delivery]:
        """A worker's result: count it, and say what becomes of the row."""
        row, outcome, report = item.row, item.outcome, self.report
        if item.error is not None:
            return self._settle_bug(row, item.error, now)
        if outcome is None and item.last_attempt is not None and not self.stop.is_set():
            outcome = outcome_from_attempt(row, item.last_attempt)
        unbind = row.destination_id is None  # bound by this run's claim
        if outcome is None:
            report.released += 1
            result = RowResult(row.id, State.PENDING, counts_attempt=False, unbind=unbind)
            return result, Delivery(row, State.PENDING, None)

        kind = outcome.kind
        if kind is OutcomeKind.DELIVERED:
            report.delivered += 1
            self._answered = True
            self._temporary_streak = 0
            report.note_code(ExitCode.OK)
            result = row_result(row, State.DELIVERED, outcome)
            return result, Delivery(row, State.DELIVERED, outcome)
        report.last_failure = outcome
        if kind is not OutcomeKind.TEMPORARY:
            report.note_code(outcome.exit_code)
            self._answered = True
        if outcome.stops_run:
            # The token (or base URL) can be fixed: the row stays due, nothing held against it.
            report.setup_failures += 1
            report.stopped = StopReason.AUTH
            self.halt.set()
            # Not this configuration's to keep: an unbound row stays unbound.
            result = dataclasses.replace(row_result(row, State.PENDING, outcome), unbind=unbind)
            return result, Delivery(row, State.PENDING, outcome)
        if kind is OutcomeKind.TEMPORARY:
            return self._settle_temporary(row, outcome, now)
        report.dead += 1
        self._temporary_streak = 0
        delivery = Delivery(row, State.DEAD, outcome)
        if len(report.dead_letters) < self.keep_dead_letters:
            report.dead_letters.append(delivery)
        return row_result(row, State.DEAD, outcome), delivery

    def _settle_bug(self, row: OutboxRow, error: str, now: float) -> tuple[RowResult, Delivery]:
        """A bug, most likely hitting every row alike: keep the row, stop the run."""
        report = self.report
        report.internal_errors.append(error)
        report.recent_codes.add(ExitCode.INTERNAL)
        report.released += 1
        if report.stopped is None:
            report.stopped = StopReason.INTERNAL
        self.halt.set()
        next_at = deferred_until(row.attempts + 1, now)
        result = RowResult(row.id, State.PENDING, next_attempt_at=next_at, counts_attempt=False)
        return result, Delivery(row, State.PENDING, None)

    def _settle_temporary(
        self, row: OutboxRow, outcome: Outcome, now: float
    ) -> tuple[RowResult, Delivery]:
        """Retries ran out: another round in this run, or pending for a later one."""
        report = self.report
        self._temporary_streak += 1
        # A server asking for a wait beyond the cap will not take this run's events
        # sooner: stop now (the rest stays pending) rather than knock on every row.
        too_long = (outcome.retry_after_s or 0.0) > MAX_SERVER_WAIT_S
        streak = self._temporary_streak >= self.unavailable_after
        if (self.probing or streak or too_long) and report.stopped is None:
            report.stopped = StopReason.UNAVAILABLE
            self.halt.set()
        rounds = self._rounds.get(row.id, 0)
        deadline = self.deadline
        if (
            self._answered
            and report.stopped is None
            and not self.halt.is_set()
            and rounds < self.max_rounds
            and (deadline is None or time.monotonic() + self.round_delay_s < deadline)
        ):
            # Intercom is answering other requests: this event gets another round in
            # this run instead of waiting for the next flush.
            self._rounds[row.id] = rounds + 1
            report.retried_in_run += 1
            next_at = now + self.round_delay_s
            self.awaiting_round[row.id] = next_at
        else:
            report.deferred += 1
            report.note_code(outcome.exit_code)
            next_at = deferred_until(row.attempts + 1, now, outcome.retry_after_s)
            if report.next_attempt_at is None or next_at < report.next_attempt_at:
                report.next_attempt_at = next_at
        result = row_result(row, State.PENDING, outcome, next_at)
        return result, Delivery(row, State.PENDING, outcome)
