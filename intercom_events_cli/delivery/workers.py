"""The delivery engine's senders: worker threads sharing one client (one connection pool).

:class:`SenderPool` takes claimed rows, posts each one's stored bytes (with the client's
retries) and puts a :class:`Done` on :attr:`SenderPool.results`; only the engine's calling
thread talks to the outbox. A halt (a stop, a rejected token) or the run's deadline cuts
retry waits short: the row comes back unsent, with its last attempt if there was one.

Before each request (the first and every retry) a sender asks ``may_send`` whether the
row's claim still holds: a relay frozen past its lease (SIGSTOP, a long GC, a suspended
VM) hands its rows back unsent on waking, instead of sending what another relay may
have delivered meanwhile. Only a request already on the wire can go out twice.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..config.settings import Settings
from ..http.pacing import PacerClosed
from ..outbox import OutboxRow
from ..outcome import Outcome

if TYPE_CHECKING:
    from ..http.client import AttemptLog, EventsClient, Pacer


class Cancelled(Exception):
    """Raised inside a worker's retry wait when the run stops."""


@dataclass
class Done:
    """A worker's answer for one row."""

    row: OutboxRow
    outcome: Outcome | None = None
    last_attempt: AttemptLog | None = None  # set when cancelled after a failed attempt
    error: str | None = None  # an unexpected exception in the worker


class SenderPool:
    """``concurrency`` threads posting rows with one :class:`EventsClient`.

    An injected ``client`` is used as it is (no ``on_attempt``, and its retry waits cannot
    be cut short); otherwise one is made at :meth:`start` and closed by :meth:`close`.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        concurrency: int,
        halt: threading.Event,
        pacer: Pacer | None = None,
        client: EventsClient | None = None,
        on_attempt: Callable[[AttemptLog], None] | None = None,
        may_send: Callable[[OutboxRow], bool] | None = None,
    ) -> None:
        self.settings = settings
        self.may_send = may_send
        self.concurrency = concurrency
        self.halt = halt
        self.pacer = pacer
        self.client = client
        self.on_attempt = on_attempt
        self.deadline: float | None = None  # time.monotonic() after which no retry waits
        self.results: queue.Queue[Done] = queue.Queue()
        self._own_client = client is None
        self._work: queue.Queue[OutboxRow | None] = queue.Queue()
        self._threads: list[threading.Thread] = []
        self._local = threading.local()

    def send(self, row: OutboxRow) -> None:
        """Hand a claimed row to the workers (started on the first row)."""
        self.start()
        self._work.put(row)

    def start(self) -> None:
        """Start the workers (and the client) once."""
        if self._threads:
            return
        if self.client is None:
            from ..http.client import EventsClient

            self.client = EventsClient(
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
            self._threads.append(worker)

    def close(self, *, busy: bool) -> None:
        """Let the workers end; close the client we made unless a request may still run."""
        for _ in self._threads:
            self._work.put(None)
        if self.client is not None and self._own_client and not busy:
            # Closing under a request still running on a worker would break it (its
            # row is pending again already); such a run is ending anyway.
            self.client.close()

    def _attempted(self, entry: AttemptLog) -> None:
        self._local.last_attempt = entry
        if self.on_attempt is not None:
            self.on_attempt(entry)

    def _wait_before_retry(self, seconds: float) -> None:
        deadline = self.deadline
        if deadline is not None and time.monotonic() + seconds > deadline:
            raise Cancelled
        if self.halt.wait(seconds):
            raise Cancelled
        row = getattr(self._local, "row", None)
        if row is not None and self.may_send is not None and not self.may_send(row):
            raise Cancelled  # the claim ran out during the wait: no more tries

    def _work_loop(self) -> None:
        while True:
            row = self._work.get()
            if row is None:
                return
            self._local.last_attempt = None
            self._local.row = row
            if self.halt.is_set() or (self.may_send is not None and not self.may_send(row)):
                self.results.put(Done(row))
                continue
            try:
                outcome = self._send(row)
                if outcome.stops_run:
                    # Stop the other workers now, not when the main thread gets to it.
                    self.halt.set()
                self.results.put(Done(row, outcome=outcome))
            except (Cancelled, PacerClosed):
                self.results.put(Done(row, last_attempt=self._local.last_attempt))
            except Exception as exc:  # noqa: BLE001 - a bug must not lose the row
                self.results.put(Done(row, error=f"{type(exc).__name__}: {exc}"))
                # Most likely one every row would hit: stop the other workers now too,
                # or each would take another row into it before the main thread stops.
                # After the put: a worker the halt wakes from a retry wait puts its row
                # back behind this one, so the run stops for the bug, not as unavailable.
                self.halt.set()

    def _send(self, row: OutboxRow) -> Outcome:
        from ..http.client import EVENTS_ACCEPTED, EVENTS_PATH

        assert self.client is not None
        # The stored bytes, exactly: the body is identical on every try, ever.
        exchange = self.client.request(
            "POST", EVENTS_PATH, content=row.payload_text.encode(), expect=EVENTS_ACCEPTED
        )
        return exchange.outcome_for(row.event())
