"""The flush engine: deliver the outbox's pending events, several at once.

One :class:`~intercom_events_cli.http.client.EventsClient` (one connection pool) is shared by a
pool of worker threads (:mod:`.workers`). The calling thread alone talks to
the outbox: it claims rows in chunks, hands them to the workers, and writes their results
back in batched transactions. A producer may keep adding rows while the engine runs
(``keep_going``): ``ievents batch`` feeds the outbox while a :class:`Deliverer` drains it.

What becomes of a row:

- 202 → delivered (kept as a ledger);
- 400, 404, 422 and other non-retryable 4xx → dead, with the API error kept;
- 401/403 → the run stops at once and every claimed row goes back to pending;
- temporary (network, timeout, 429, 5xx) after the client's retries → pending again,
  with a later next attempt (:func:`~.results.deferred_until`);
- a stop (``stop`` event, ``max_time``, Intercom unavailable) → rows not yet sent go
  back to pending untouched.

The report, the stop reasons and the rules that turn an answer into a row's next state
are in :mod:`.results`; what each result makes of its row and of the run (the counts,
another round in this run, the stop when Intercom is unavailable) is the
:class:`~.settle.Settler`'s. httpx is imported only once there is something to send.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..config.settings import Settings
from ..errors import ExitCode, OutboxError
from ..outbox import DEFAULT_LEASE_S, OutboxRow, RowResult, State, new_owner
from ..outcome import OutcomeKind
from .results import (
    Delivery,
    FlushReport,
    StopReason,
    refusal,
)
from .settle import Settler
from .workers import Done, SenderPool

if TYPE_CHECKING:
    from ..http.client import AttemptLog, EventsClient, Pacer
    from ..outbox.store import OutboxStore

DEFAULT_CONCURRENCY = 16
# A claim is trusted for this share of its lease after it was made or renewed (by this
# host's monotonic clock, which runs on while the process is stopped): the rest covers the
# time from a sender's check to its request on the wire, and clock rate differences.
LEASE_TRUST = 0.8
# An event whose retries ran out while Intercom answers other requests goes back into the
# same run this many times, ROUND_DELAY_S later each time, before it waits for a later run.
MAX_ROUNDS = 5
ROUND_DELAY_S = 1.0
MAX_DEAD_LETTERS_KEPT = 1000
POLL_INTERVAL_S = 0.2

# The run's results are defined in delivery_results; imported from here as well.
__all__ = ["Deliverer", "Delivery", "FlushReport", "StopReason", "deliver_pending"]


class Deliverer:
    """Deliver due pending rows of ``store`` until none is left (or a stop).

    ``settings`` carry the retries and timeout of each event's delivery. ``stop`` set
    from another thread (or a signal handler) ends the run promptly: rows not answered
    yet go back to pending. ``keep_going`` returning True keeps the engine polling for new
    rows while a producer adds them; once it returns False the engine claims once more,
    for the rows the producer stored after the last claim. :meth:`finish` ends the run
    without another claim. ``on_result`` sees every row's result, on the calling thread;
    ``on_attempt`` every HTTP attempt, on a worker thread. An injected ``client`` is used
    as it is (no ``on_attempt``, and its retry waits cannot be cut short). One
    :meth:`run` per instance.
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
        note_flush: bool = True,
        on_tick: Callable[[], None] | None = None,
        claim_ahead: int | None = None,
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
        if pacer is None and client is None:
            from ..http.pacing import RateLimitPacer

            # Without one, every sender ran until a 429 at the end of each rate-limit
            # window (32 in flight: about 30 answered 429 a window); the pacer keeps the
            # senders within the X-RateLimit-Remaining the answers give.
            pacer = RateLimitPacer()
        self.pacer = pacer
        self.lease_s = lease_s
        self.poll_interval_s = poll_interval_s
        # This many temporary failures in a row, with no answer in between that proves
        # Intercom is up, and the run stops claiming: the rest waits for the next flush.
        self.unavailable_after = unavailable_after or max(3, concurrency)
        self.owner = new_owner()
        self.report = FlushReport()
        self._halt = threading.Event()
        self._deadline: float | None = None
        self._senders = SenderPool(
            settings,
            concurrency=concurrency,
            halt=self._halt,
            pacer=pacer,
            client=client,
            on_attempt=on_attempt,
            may_send=self._may_send,
        )
        self._outstanding: dict[int, OutboxRow] = {}
        # Row id -> time.monotonic() until which its claim is trusted (see LEASE_TRUST).
        self._held_until: dict[int, float] = {}
        # Only rows of this destination (and unbound ones) are claimed; None: bound at run().
        self.destination_id = destination_id
        self.max_rounds = max_rounds
        self.round_delay_s = round_delay_s
        self._settler = Settler(
            self.report,
            halt=self._halt,
            stop=self.stop,
            unavailable_after=self.unavailable_after,
            max_rounds=max_rounds,
            round_delay_s=round_delay_s,
            keep_dead_letters=MAX_DEAD_LETTERS_KEPT,
        )
        self._destination_up: bool | None = None  # as last written to the outbox
        # False: the caller keeps the outbox's flush record itself (the relay, whose stop
        # is not an interrupted flush); on_tick: called on the run's thread between steps.
        self.note_flush = note_flush
        self.on_tick = on_tick
        # Rows held claimed (in flight or queued for a sender): twice the senders, or more
        # for a lane of few senders (delivery_lanes), so that it claims in fewer statements.
        self.claim_ahead = max(claim_ahead or 0, 2 * concurrency)

    # -- the run --------------------------------------------------------------------------

    def run(self) -> FlushReport:
        """Deliver until nothing is due (and ``keep_going`` is false), or a stop."""
        started = time.monotonic()
        if self.max_time is not None:
            self._deadline = started + self.max_time
            self._senders.deadline = self._deadline
            self._settler.deadline = self._deadline
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
            if self._settler.awaiting_round:
                # The run stopped before their next round: they wait for a later run.
                self.report.deferred += len(self._settler.awaiting_round)
                self.report.note_code(ExitCode.TEMPORARY)
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
                self._held_until.clear()
            self._senders.close(busy=busy)
            self.report.elapsed_s = time.monotonic() - started
        try:
            if self.destination_id is not None:
                self.report.waiting_elsewhere = self.store.waiting_elsewhere(self.destination_id)
            if self.note_flush:
                self.store.note_flush(int(self.report.exit_code))
        except OutboxError:
            pass  # the heartbeat is not worth failing a run whose results are saved
        return self.report

    def finish(self) -> None:
        """End the run without claiming another row: the rows in hand are answered and
        recorded, rows waiting for another round stay pending for a later run, and
        ``keep_going`` is not asked again. For a caller that ends a run to start the next
        with new settings (the relay, when its token file holds a new token): a claim
        after this would send with the old ones. Safe from ``keep_going`` and ``on_tick``
        (the run's thread); the rows a worker has not sent yet go back unsent."""
        self._halt.set()

    def _probe(self) -> None:
        """The destination failed last time: send its oldest pending event first, alone.

        Accepted (or any answer from Intercom): every deferred event of the destination
        becomes due and the run goes on. A temporary failure: the run stops after it.
        """
        claimed_at = time.monotonic()
        rows = self.store.claim(
            self.owner,
            1,
            lease_s=self.lease_s,
            destination_id=self.destination_id,
            due_or_not=True,
        )
        rows = self._refuse_invalid(rows)
        if not rows:
            return
        self.report.probed = True
        self._settler.probing = True
        self.report.claimed += 1
        self._outstanding[rows[0].id] = rows[0]
        self._held_until[rows[0].id] = claimed_at + self.lease_s * LEASE_TRUST
        self._senders.send(rows[0])
        last_renewal = time.monotonic()
        try:
            while self._outstanding:
                if self.stop.is_set():
                    self.report.stopped = StopReason.INTERRUPTED
                    return
                self._collect(self.poll_interval_s)
                last_renewal = self._renew(last_renewal)
        finally:
            self._settler.probing = False
        if self.report.stopped is None:
            self.store.make_all_due(destination_id=self.destination_id)

    def _loop(self) -> None:
        last_renewal = time.monotonic()
        claimed_last = True
        last_claim = 0.0
        # Once the producer is done, one more claim: it may have stored rows after the
        # last claim and ended before keep_going was asked.
        last_look = self.keep_going is not None
        while not self._stopping():
            room = self.claim_ahead - len(self._outstanding)
            rows: list[OutboxRow] = []
            poll_due = time.monotonic() - last_claim >= self.poll_interval_s
            # A worker may have halted the run (401) before its result reached us.
            may_claim = not self._halt.is_set() and (claimed_last or poll_due)
            if room >= max(1, self.claim_ahead // 4) and may_claim:
                rows = self._claim(min(room, self.claim_ahead // 2))
                last_claim = time.monotonic()
                claimed_last = bool(rows)
            if not self._outstanding:
                if self._halt.is_set():
                    return  # finish(): nothing in hand, and nothing more is asked or claimed
                if self.keep_going is not None and self.keep_going():
                    self.stop.wait(self.poll_interval_s)
                    continue
                if self._settler.awaiting_round and not self._halt.is_set() and not rows:
                    self._wait_for_round()
                    claimed_last = True
                    continue
                if last_look:
                    last_look = False
                    claimed_last = True  # claim now, not after a poll interval
                    continue
                return
            self._collect(0.0 if rows and room > len(rows) else self.poll_interval_s)
            last_renewal = self._renew(last_renewal)
            if self.on_tick is not None:
                self.on_tick()

    def _stopping(self) -> bool:
        """True when the loop must end: a stop, a reason already given, or --max-time."""
        if self.stop.is_set():
            self.report.stopped = StopReason.INTERRUPTED
            return True
        if self.report.stopped is not None:
            return True
        if self._deadline is not None and time.monotonic() >= self._deadline:
            self.report.stopped = StopReason.MAX_TIME
            return True
        return False

    def _claim(self, limit: int) -> list[OutboxRow]:
        """Claim up to ``limit`` due rows and hand them to the workers."""
        claimed_at = time.monotonic()  # before: the database's lease starts later
        rows = self.store.claim(
            self.owner, limit, lease_s=self.lease_s, destination_id=self.destination_id
        )
        rows = self._refuse_invalid(rows)
        for row in rows:
            self._settler.awaiting_round.pop(row.id, None)
        self.report.claimed += len(rows)
        for row in rows:
            self._outstanding[row.id] = row
            self._held_until[row.id] = claimed_at + self.lease_s * LEASE_TRUST
            self._senders.send(row)
        return rows

    def _may_send(self, row: OutboxRow) -> bool:
        """Whether ``row``'s claim still holds (asked by a sender before each request)."""
        return time.monotonic() < self._held_until.get(row.id, 0.0)

    def _refuse_invalid(self, rows: list[OutboxRow]) -> list[OutboxRow]:
        """Count the rows the claim made dead letters (invalid, enqueued from SQL), make
        dead letters of claimed rows that cannot be sent as stored; the others go on."""
        refused = self.store.take_refused()
        results, sendable = [], []
        for row in rows:
            reason = refusal(row)
            if reason is None:
                sendable.append(row)
                continue
            results.append(
                RowResult(
                    row.id,
                    State.DEAD,
                    error_code="invalid_event",
                    error_message=reason,
                    claim_token=row.claim_token,
                )
            )
            refused.append(dataclasses.replace(row, state=State.DEAD, last_error_message=reason))
        if results:
            self.store.record(self.owner, results)
        for row in refused:
            self._tell(self.report.add_refused(row, keep=MAX_DEAD_LETTERS_KEPT))
        return sendable

    def _wait_for_round(self) -> None:
        """Events put back for another round: wait until the first is due (then claim)."""
        now = self.store.now()
        due = min(self._settler.awaiting_round.values())
        if due > now:
            self.stop.wait(min(due - now, self.poll_interval_s))
        else:
            # Due and still not claimed: another flush took them.
            for row_id in [i for i, at in self._settler.awaiting_round.items() if at <= now]:
                del self._settler.awaiting_round[row_id]

    def _renew(self, last_renewal: float) -> float:
        """Renew the claims' lease every third of it; returns when it was last renewed."""
        if time.monotonic() - last_renewal < self.lease_s / 3:
            return last_renewal
        renewed_at = time.monotonic()
        renewed = set(self.store.renew(self.owner, lease_s=self.lease_s))
        for row_id in self._outstanding:
            # A row not renewed was taken back while we could not renew: never send it.
            held = renewed_at + self.lease_s * LEASE_TRUST if row_id in renewed else 0.0
            self._held_until[row_id] = held
        return renewed_at

    def _wind_down(self) -> None:
        """After a stop: unsent rows come back from the workers; in-flight ones may finish."""
        self._halt.set()
        if self.pacer is not None:
            # Wake workers waiting for a rate-limit reset: their rows go back unsent.
            self.pacer.close()
        if self.report.stopped is StopReason.INTERRUPTED or not self._outstanding:
            self._collect(0.0)
            return
        # A request already on the wire gets up to its timeout to end (retry waits are
        # cut short by the halt): its answer is worth recording.
        grace_end = time.monotonic() + self.settings.timeout + 1.0
        last_renewal = time.monotonic()
        while self._outstanding and time.monotonic() < grace_end and not self.stop.is_set():
            self._collect(min(self.poll_interval_s, max(0.0, grace_end - time.monotonic())))
            # The grace (up to --timeout) may outlast the lease: keep the claims ours.
            if self._outstanding:
                last_renewal = self._renew(last_renewal)
        if self.stop.is_set():
            self.report.stopped = StopReason.INTERRUPTED

    # -- results --------------------------------------------------------------------------

    def _collect(self, wait_s: float) -> None:
        """Take every result available (waiting up to ``wait_s`` for the first); save them."""
        done: list[Done] = []
        results = self._senders.results
        try:
            done.append(results.get(timeout=wait_s) if wait_s > 0 else results.get_nowait())
            while True:
                done.append(results.get_nowait())
        except queue.Empty:
            pass
        done = [item for item in done if item.row.id in self._outstanding]
        if not done:
            return
        now = self.store.now()  # the outbox's clock: backoffs are due times on it
        counted = self.report.counts()
        settled = [self._settler.settle(item, now) for item in done]
        # Each result names its claim: a claim taken back meanwhile makes it stale (ignored).
        fenced = [
            dataclasses.replace(result, claim_token=item.row.claim_token)
            for item, (result, _) in zip(done, settled, strict=True)
        ]
        try:
            self.store.record(self.owner, fenced, now=now)
        except OutboxError:
            # Not saved: these rows are taken back and answered again later, and counted
            # then (a relay's totals must match what the outbox holds).
            self.report.restore(counted)
            raise
        self._note_destination([delivery for _, delivery in settled], now)
        for item in done:
            del self._outstanding[item.row.id]
            self._held_until.pop(item.row.id, None)
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


def deliver_pending(store: OutboxStore, settings: Settings, **options: Any) -> FlushReport:
    """Run a :class:`Deliverer` once; ``options`` are its keyword arguments."""
    return Deliverer(store, settings, **options).run()
