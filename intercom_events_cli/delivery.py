"""The flush engine: deliver the outbox's pending events, several at once.

One :class:`~intercom_events_cli.client.EventsClient` (one connection pool) is shared by a
pool of worker threads. The calling thread alone talks to SQLite: it claims rows in
chunks, hands them to the workers, and writes their results back in batched
transactions. A producer may keep adding rows while the engine runs (``keep_going``):
``ievents batch`` feeds the outbox while a :class:`Deliverer` drains it.

What becomes of a row:

- 202 → delivered (kept as a ledger);
- 400, 404, 422 and other non-retryable 4xx → dead, with the API error kept;
- 401/403 → the run stops at once and every claimed row goes back to pending;
- temporary (network, timeout, 429, 5xx) after the client's retries → pending again,
  with a later next attempt (:func:`~intercom_events_cli.retry.retry_delay_s`);
- a stop (``stop`` event, ``max_time``, Intercom unavailable) → rows not yet sent go
  back to pending untouched.

httpx is imported only once there is something to send.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .config import Settings
from .errors import ExitCode, OutboxError, most_severe
from .outbox import DEFAULT_LEASE_S, OutboxRow, RowResult, State, new_owner, retry_delay_s
from .outcome import CODE_CONNECTION, Outcome, OutcomeKind, classify_status, status_text
from .pacing import PacerClosed
from .retry import MAX_SERVER_WAIT_S

if TYPE_CHECKING:
    from .client import AttemptLog, EventsClient, Pacer
    from .destination import Destination
    from .outbox.store import OutboxStore

DEFAULT_CONCURRENCY = 16
# An event whose retries ran out while Intercom answers other requests goes back into the
# same run this many times, ROUND_DELAY_S later each time, before it waits for a later run.
MAX_ROUNDS = 5
ROUND_DELAY_S = 1.0
MAX_DEAD_LETTERS_KEPT = 1000
POLL_INTERVAL_S = 0.2

# Why a run stopped before the outbox ran dry.
STOP_INTERRUPTED = "interrupted"
STOP_AUTH = "auth"
STOP_MAX_TIME = "max_time"
STOP_UNAVAILABLE = "unavailable"
STOP_INTERNAL = "internal_error"


@dataclass(frozen=True)
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
    auth_failed: int = 0
    stopped: str | None = None
    internal_errors: list[str] = field(default_factory=list)
    codes: set[ExitCode] = field(default_factory=set)
    last_failure: Outcome | None = None
    # The first MAX_DEAD_LETTERS_KEPT of them (``dead`` counts all): a run that rejects
    # millions must not hold them all in memory; the outbox keeps every one.
    dead_letters: list[Delivery] = field(default_factory=list)
    next_attempt_at: float | None = None
    elapsed_s: float = 0.0

    @property
    def exit_code(self) -> ExitCode:
        """130 when interrupted, else the most severe result (0 when nothing failed)."""
        if self.stopped == STOP_INTERRUPTED:
            return ExitCode.INTERRUPTED
        if self.internal_errors:
            return ExitCode.INTERNAL
        return most_severe(self.codes)


class _Cancelled(Exception):
    """Raised inside a worker's retry wait when the run stops."""


@dataclass
class _Done:
    row: OutboxRow
    outcome: Outcome | None = None
    last_attempt: AttemptLog | None = None  # set when cancelled after a failed attempt
    error: str | None = None  # an unexpected exception in the worker


class Deliverer:
    """Deliver due pending rows of ``store`` until none is left (or a stop).

    ``settings`` carry the retries and timeout of each event's delivery. ``stop`` set
    from another thread (or a signal handler) ends the run promptly: rows not answered
    yet go back to pending. ``keep_going`` returning True keeps the engine polling for new
    rows while a producer adds them. ``on_result`` sees every row's result, on the calling
    thread; ``on_attempt`` every HTTP attempt, on a worker thread. An injected ``client``
    is used as it is (no ``on_attempt``, and its retry waits cannot be cut short).
    One :meth:`run` per instance.
    """

    def __init__(
        self,
        store: OutboxStore,
        settings: Settings,
        *,
        concurrency: int = DEFAULT_CONCURRENCY,
        max_time: float | None = None,
        retries: int | None = None,
        timeout: float | None = None,
        ignore_schedule: bool = False,
        on_result: Callable[[Delivery], None] | None = None,
        on_attempt: Callable[[AttemptLog], None] | None = None,
        stop: threading.Event | None = None,
        keep_going: Callable[[], bool] | None = None,
        pacer: Pacer | None = None,
        client: EventsClient | None = None,
        lease_s: float = DEFAULT_LEASE_S,
        poll_interval_s: float = POLL_INTERVAL_S,
        unavailable_after: int | None = None,
        destination_id: int | None = None,
        max_rounds: int = MAX_ROUNDS,
        round_delay_s: float = ROUND_DELAY_S,
    ) -> None:
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        if retries is not None:
            settings = dataclasses.replace(settings, retries=retries)
        if timeout is not None:
            settings = dataclasses.replace(settings, timeout=timeout)
        self.store = store
        self.settings = settings
        self.concurrency = concurrency
        self.max_time = max_time
        self.ignore_schedule = ignore_schedule
        self.on_result = on_result
        self.on_attempt = on_attempt
        self.stop = stop or threading.Event()
        self.keep_going = keep_going
        self.pacer = pacer
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        # This many temporary failures in a row, with no answer in between that proves
        # Intercom is up, and the run stops claiming: the rest waits for the next flush.
        self.unavailable_after = unavailable_after or max(3, concurrency)
        self.owner = new_owner()
        self.report = FlushReport()
        self._client = client
        self._own_client = client is None
        self._halt = threading.Event()
        self._deadline: float | None = None
        self._work: queue.Queue[OutboxRow | None] = queue.Queue()
        self._results: queue.Queue[_Done] = queue.Queue()
        self._outstanding: dict[int, OutboxRow] = {}
        self._workers: list[threading.Thread] = []
        self._local = threading.local()
        self._temporary_streak = 0
        # Only rows of this destination (and unbound ones) are claimed; None: bound at run().
        self.destination_id = destination_id
        self.max_rounds = max_rounds
        self.round_delay_s = round_delay_s
        self._rounds: dict[int, int] = {}  # row id -> rounds used in this run
        self._awaiting_round: dict[int, float] = {}  # row id -> when it is due again
        self._probing = False
        self._answered = False  # Intercom accepted or refused something in this run
        self._destination_up: bool | None = None  # as last written to the outbox

    # -- the run --------------------------------------------------------------------------

    def run(self) -> FlushReport:
        """Deliver until nothing is due (and ``keep_going`` is false), or a stop."""
        started = time.monotonic()
        if self.max_time is not None:
            self._deadline = started + self.max_time
        failed: BaseException | None = None
        try:
            if self.destination_id is None and self.settings.token:
                self.destination_id = self.store.bind(self.settings)
            if self.ignore_schedule:
                # Once, up front: a row that fails again in this run gets its backoff as usual.
                self.store.make_all_due(destination_id=self.destination_id)
            elif self.destination_id is not None:
                self._destination_up = not self.store.is_failing(self.destination_id)
                if not self._destination_up:
                    self._probe()
            self._loop()
            self._wind_down()
            if self._awaiting_round:
                # The run stopped before their next round: they wait for a later run.
                self.report.deferred += len(self._awaiting_round)
                self.report.codes.add(ExitCode.TEMPORARY)
        except BaseException as exc:
            failed = exc
            raise
        finally:
            self._halt.set()
            if self.pacer is not None:
                self.pacer.close()
            # Whatever is still claimed (interrupt, error) goes back to pending.
            leftover = list(self._outstanding.values())
            busy = bool(leftover)
            if leftover:
                try:
                    self.report.released += self.store.release(self.owner)
                except OutboxError:
                    # Never hide the error that ended the run; the claims expire with their
                    # lease (or as soon as this process is gone) and are taken back then.
                    if failed is None:
                        raise
                for row in leftover:
                    self._tell(Delivery(row, State.PENDING, None))
                self._outstanding.clear()
            for _ in self._workers:
                self._work.put(None)
            if self._client is not None and self._own_client and not busy:
                # Closing under a request still running on a worker would break it (its
                # row is pending again already); such a run is ending anyway.
                self._client.close()
            self.report.elapsed_s = time.monotonic() - started
        try:
            if self.destination_id is not None:
                self.report.waiting_elsewhere = self.store.waiting_elsewhere(self.destination_id)
            self.store.note_flush(int(self.report.exit_code))
        except OutboxError:
            pass  # the heartbeat is not worth failing a run whose results are saved
        return self.report

    def _probe(self) -> None:
        """The destination failed last time: send its oldest pending event first, alone.

        Accepted (or any answer from Intercom): every deferred event of the destination
        becomes due and the run goes on. A temporary failure: the run stops after it.
        """
        rows = self.store.claim(
            self.owner,
            1,
            lease_s=self.lease_s,
            destination_id=self.destination_id,
            due_or_not=True,
        )
        if not rows:
            return
        self.report.probed = True
        self._probing = True
        self._start_workers()
        self.report.claimed += 1
        self._outstanding[rows[0].id] = rows[0]
        self._work.put(rows[0])
        last_renewal = time.monotonic()
        try:
            while self._outstanding:
                if self.stop.is_set():
                    self.report.stopped = STOP_INTERRUPTED
                    return
                self._collect(self.poll_interval_s)
                if time.monotonic() - last_renewal >= self.lease_s / 3:
                    self.store.renew(self.owner, lease_s=self.lease_s)
                    last_renewal = time.monotonic()
        finally:
            self._probing = False
        if self.report.stopped is None:
            self.store.make_all_due(destination_id=self.destination_id)

    def _loop(self) -> None:
        last_renewal = time.monotonic()
        claimed_last = True
        last_claim = 0.0
        # Once the producer is done, one more claim: it may have stored rows after the
        # last claim and ended before keep_going was asked.
        last_look = self.keep_going is not None
        while True:
            if self.stop.is_set():
                self.report.stopped = STOP_INTERRUPTED
                return
            if self.report.stopped is not None:
                return
            if self._deadline is not None and time.monotonic() >= self._deadline:
                self.report.stopped = STOP_MAX_TIME
                return
            room = 2 * self.concurrency - len(self._outstanding)
            rows: list[OutboxRow] = []
            poll_due = time.monotonic() - last_claim >= self.poll_interval_s
            # A worker may have halted the run (401) before its result reached us.
            may_claim = not self._halt.is_set() and (claimed_last or poll_due)
            if room >= max(1, self.concurrency // 2) and may_claim:
                rows = self.store.claim(
                    self.owner,
                    min(room, self.concurrency),
                    lease_s=self.lease_s,
                    destination_id=self.destination_id,
                )
                last_claim = time.monotonic()
                claimed_last = bool(rows)
                for row in rows:
                    self._awaiting_round.pop(row.id, None)
                if rows:
                    self._start_workers()
                    self.report.claimed += len(rows)
                    for row in rows:
                        self._outstanding[row.id] = row
                        self._work.put(row)
            if not self._outstanding:
                if self.keep_going is not None and self.keep_going():
                    self.stop.wait(self.poll_interval_s)
                    continue
                if self._awaiting_round and not self._halt.is_set() and not rows:
                    # Events put back for another round: wait until they are due, claim.
                    now = time.time()
                    due = min(self._awaiting_round.values())
                    if due > now:
                        self.stop.wait(min(due - now, self.poll_interval_s))
                    else:
                        # Due and still not claimed: another flush took them.
                        for row_id in [i for i, at in self._awaiting_round.items() if at <= now]:
                            del self._awaiting_round[row_id]
                    claimed_last = True
                    continue
                if last_look:
                    last_look = False
                    claimed_last = True  # claim now, not after a poll interval
                    continue
                return
            self._collect(0.0 if rows and room > len(rows) else self.poll_interval_s)
            if time.monotonic() - last_renewal >= self.lease_s / 3:
                self.store.renew(self.owner, lease_s=self.lease_s)
                last_renewal = time.monotonic()

    def _wind_down(self) -> None:
        """After a stop: unsent rows come back from the workers; in-flight ones may finish."""
        self._halt.set()
        if self.pacer is not None:
            # Wake workers waiting for a rate-limit reset: their rows go back unsent.
            self.pacer.close()
        if self.report.stopped == STOP_INTERRUPTED or not self._outstanding:
            self._collect(0.0)
            return
        # A request already on the wire gets up to its timeout to end (retry waits are
        # cut short by the halt): its answer is worth recording.
        grace_end = time.monotonic() + self.settings.timeout + 1.0
        last_renewal = time.monotonic()
        while self._outstanding and time.monotonic() < grace_end and not self.stop.is_set():
            self._collect(min(self.poll_interval_s, max(0.0, grace_end - time.monotonic())))
            # The grace (up to --timeout) may outlast the lease: keep the claims ours.
            if self._outstanding and time.monotonic() - last_renewal >= self.lease_s / 3:
                self.store.renew(self.owner, lease_s=self.lease_s)
                last_renewal = time.monotonic()
        if self.stop.is_set():
            self.report.stopped = STOP_INTERRUPTED

    # -- workers --------------------------------------------------------------------------

    def _start_workers(self) -> None:
        if self._workers:
            return
        if self._client is None:
            from .client import EventsClient

            self._client = EventsClient(
                self.settings,
                max_connections=self.concurrency,
                on_attempt=self._attempted,
                pacer=self.pacer,
                sleep=self._wait_before_retry,
            )
        for number in range(self.concurrency):
            worker = threading.Thread(
                target=self._work_loop, name=f"ievents-deliver-{number}", daemon=True
            )
            worker.start()
            self._workers.append(worker)

    def _attempted(self, entry: AttemptLog) -> None:
        self._local.last_attempt = entry
        if self.on_attempt is not None:
            self.on_attempt(entry)

    def _wait_before_retry(self, seconds: float) -> None:
        deadline = self._deadline
        if deadline is not None and time.monotonic() + seconds > deadline:
            raise _Cancelled
        if self._halt.wait(seconds):
            raise _Cancelled

    def _work_loop(self) -> None:
        while True:
            row = self._work.get()
            if row is None:
                return
            self._local.last_attempt = None
            if self._halt.is_set():
                self._results.put(_Done(row))
                continue
            try:
                outcome = self._send(row)
                if outcome.kind in (OutcomeKind.AUTH, OutcomeKind.CONFIG):
                    # Stop the other workers now, not when the main thread gets to it.
                    self._halt.set()
                self._results.put(_Done(row, outcome=outcome))
            except (_Cancelled, PacerClosed):
                self._results.put(_Done(row, last_attempt=self._local.last_attempt))
            except Exception as exc:  # noqa: BLE001 - a bug must not lose the row
                self._results.put(_Done(row, error=f"{type(exc).__name__}: {exc}"))

    def _send(self, row: OutboxRow) -> Outcome:
        from .client import EVENTS_ACCEPTED, EVENTS_PATH

        assert self._client is not None
        # The stored bytes, exactly: the body is identical on every try, ever.
        exchange = self._client.request(
            "POST", EVENTS_PATH, content=row.payload_text.encode(), expect=EVENTS_ACCEPTED
        )
        return exchange.outcome_for(row.event())

    # -- results --------------------------------------------------------------------------

    def _collect(self, wait_s: float) -> None:
        """Take every result available (waiting up to ``wait_s`` for the first); save them."""
        done: list[_Done] = []
        try:
            done.append(
                self._results.get(timeout=wait_s) if wait_s > 0 else self._results.get_nowait()
            )
            while True:
                done.append(self._results.get_nowait())
        except queue.Empty:
            pass
        done = [item for item in done if item.row.id in self._outstanding]
        if not done:
            return
        now = time.time()
        settled = [self._settle(item, now) for item in done]
        self.store.record(self.owner, [result for result, _ in settled], now=now)
        self._note_destination([delivery for _, delivery in settled], now)
        for item in done:
            del self._outstanding[item.row.id]
        for _, delivery in settled:
            self._tell(delivery)

    def _note_destination(self, deliveries: list[Delivery], now: float) -> None:
        """Remember whether Intercom answered the last attempt for this destination.

        Written only when it changes: a failing destination makes the next run probe.
        """
        answered = [d.outcome for d in deliveries if d.outcome is not None]
        if self.destination_id is None or not answered:
            return
        up = answered[-1].kind is not OutcomeKind.TEMPORARY
        if up != self._destination_up:
            self.store.note_destination(self.destination_id, up=up, now=now)
            self._destination_up = up

    def _tell(self, delivery: Delivery) -> None:
        if self.on_result is not None:
            self.on_result(delivery)

    def _settle(self, item: _Done, now: float) -> tuple[RowResult, Delivery]:
        row, outcome, report = item.row, item.outcome, self.report
        if item.error is not None:
            # A bug, most likely hitting every row alike: keep the row, stop the run.
            report.internal_errors.append(item.error)
            report.released += 1
            if report.stopped is None:
                report.stopped = STOP_INTERNAL
            self._halt.set()
            next_at = now + retry_delay_s(row.attempts + 1)
            result = RowResult(row.id, State.PENDING, next_attempt_at=next_at, counts_attempt=False)
            return result, Delivery(row, State.PENDING, None)
        if outcome is None and item.last_attempt is not None and not self.stop.is_set():
            outcome = _outcome_from_attempt(row, item.last_attempt)
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
            report.codes.add(ExitCode.OK)
            result = _row_result(row, State.DELIVERED, outcome)
            return result, Delivery(row, State.DELIVERED, outcome)
        report.last_failure = outcome
        if kind is not OutcomeKind.TEMPORARY:
            report.codes.add(outcome.exit_code)
            self._answered = True
        if kind in (OutcomeKind.AUTH, OutcomeKind.CONFIG):
            # The token (or base URL) can be fixed: the row stays due, nothing held against it.
            report.auth_failed += 1
            report.stopped = STOP_AUTH
            self._halt.set()
            # Not this configuration's to keep: an unbound row stays unbound.
            result = dataclasses.replace(_row_result(row, State.PENDING, outcome), unbind=unbind)
            return result, Delivery(row, State.PENDING, outcome)
        if kind is OutcomeKind.TEMPORARY:
            self._temporary_streak += 1
            # A server asking for a wait beyond the cap will not take this run's events
            # sooner: stop now (the rest stays pending) rather than knock on every row.
            too_long = (outcome.retry_after_s or 0.0) > MAX_SERVER_WAIT_S
            streak = self._temporary_streak >= self.unavailable_after
            if (self._probing or streak or too_long) and report.stopped is None:
                report.stopped = STOP_UNAVAILABLE
                self._halt.set()
            rounds = self._rounds.get(row.id, 0)
            deadline = self._deadline
            if (
                self._answered
                and report.stopped is None
                and not self._halt.is_set()
                and rounds < self.max_rounds
                and (deadline is None or time.monotonic() + self.round_delay_s < deadline)
            ):
                # Intercom is answering other requests: this event gets another round in
                # this run instead of waiting for the next flush.
                self._rounds[row.id] = rounds + 1
                report.retried_in_run += 1
                next_at = now + self.round_delay_s
                self._awaiting_round[row.id] = next_at
                result = _row_result(row, State.PENDING, outcome, next_at)
                return result, Delivery(row, State.PENDING, outcome)
            report.deferred += 1
            report.codes.add(outcome.exit_code)
            next_at = now + retry_delay_s(row.attempts + 1, outcome.retry_after_s)
            if report.next_attempt_at is None or next_at < report.next_attempt_at:
                report.next_attempt_at = next_at
            result = _row_result(row, State.PENDING, outcome, next_at)
            return result, Delivery(row, State.PENDING, outcome)
        report.dead += 1
        self._temporary_streak = 0
        delivery = Delivery(row, State.DEAD, outcome)
        if len(report.dead_letters) < MAX_DEAD_LETTERS_KEPT:
            report.dead_letters.append(delivery)
        return _row_result(row, State.DEAD, outcome), delivery


def _row_result(
    row: OutboxRow, state: State, outcome: Outcome, next_attempt_at: float | None = None
) -> RowResult:
    return RowResult(
        row.id,
        state,
        status=outcome.status,
        error_code=outcome.error_code,
        error_message=outcome.error_message,
        request_id=outcome.request_id,
        next_attempt_at=next_attempt_at,
    )


def _outcome_from_attempt(row: OutboxRow, entry: AttemptLog) -> Outcome:
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


def deliver_pending(store: OutboxStore, settings: Settings, **options: Any) -> FlushReport:
    """Run a :class:`Deliverer` once; ``options`` are its keyword arguments."""
    return Deliverer(store, settings, **options).run()
