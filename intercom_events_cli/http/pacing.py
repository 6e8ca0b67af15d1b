"""Rate-limit pacing shared by every worker thread of a run.

Intercom counts requests per app in fixed windows (10 seconds) and says, on every answer,
how many are left in the current one (``X-RateLimit-Remaining``), how many a window allows
(``X-RateLimit-Limit``) and when it ends (``X-RateLimit-Reset``, Unix seconds).
:class:`RateLimitPacer` turns that into a budget: the lowest ``Remaining`` seen in the
window minus the requests in flight. That is a lower bound of what may still be sent:
the answer with the lowest figure was counted last, so every request counted after it
(or not counted yet) is still in flight.

- While the budget is comfortable, requests go at once (as fast as the workers allow).
- When it runs low relative to the requests in flight and more requests want to go than
  it allows, the rest of it is spread evenly until the reset instead of being burst, so
  that each request goes with fresher figures. When the requests wanting to go all fit
  (the ``backlog`` when the caller knows it, else the threads waiting), they go at once:
  the last window of a run is not stretched to its end.
- At zero, everybody waits for the reset; after a 429, everybody waits for the reset.
- ``max_rate`` (requests per second) caps the pace further, evenly spaced.

Clock skew: the reset is in the server's clock. When an answer to a request sent after the
reset (by our clock) still names that window, our clock is ahead of the server's by at
least the difference, and later resets are waited for that much longer. A clock that is
behind only makes the pacer a little slower.

The clock and sleep are injectable for tests. With the default sleep, waiting threads use
a condition variable, so that :meth:`RateLimitPacer.close` and fresh figures wake them.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Mapping

from .retry import (
    MAX_SERVER_WAIT_S,
    header,
    parse_rate_limit_limit,
    parse_rate_limit_remaining,
    parse_rate_limit_reset,
    parse_retry_after,
)

__all__ = ["PacerClosed", "RateLimitPacer"]

# Wait this long after the reset (our clock) before counting on a new window.
RESET_MARGIN_S = 0.05
# A 429 that says nothing about the window holds everybody this long.
DEFAULT_429_HOLD_S = 1.0
# How long a thread waits for an answer before looking again (a safety net: answers wake it).
ANSWER_POLL_S = 0.1
# With a guessed budget spent and no answer for this long, one request goes to find out.
PROBE_AFTER_S = 1.0


class PacerClosed(Exception):
    """The pacer was closed (the run is stopping): no more requests are let through."""


class RateLimitPacer:
    """A :class:`~intercom_events_cli.http.client.Pacer` shared by all workers (thread-safe).

    ``acquire()`` blocks until a request may go; ``observe(status, headers)`` learns from
    each answer (a network failure is ``observe(None, {})``). Every ``acquire`` must be
    followed by one ``observe`` on the same thread, as ``EventsClient.request`` does.

    ``max_rate``: at most this many requests per second (None: no cap). ``backlog``: a
    cheap callable giving how many requests are still to come after this one (None when
    unknown); called under the pacer's lock, it must not call the pacer. ``spread_below``:
    the budget under which requests are spread (default: the most requests seen in flight
    at once).
    """

    def __init__(
        self,
        *,
        max_rate: float | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] | None = None,
        backlog: Callable[[], int | None] | None = None,
        spread_below: int | None = None,
        reset_margin_s: float = RESET_MARGIN_S,
    ) -> None:
        if max_rate is not None and not max_rate > 0:
            raise ValueError("max_rate must be positive")
        self.max_rate = max_rate
        self._clock = clock
        self._sleep = sleep
        self._backlog = backlog
        self._spread_below = spread_below
        self._margin = reset_margin_s
        self._cond = threading.Condition(threading.Lock())
        self._local = threading.local()
        self._closed = False
        self._in_flight = 0
        self._peak_in_flight = 0
        # The window the budget is about: its reset in the server's clock.
        self._reset: float | None = None
        # The lowest Remaining seen in that window (None: no limit known). After the reset
        # by our clock ("rolled"), a guess: a whole window's allowance, until an answer.
        self._window_remaining: int | None = None
        self._rolled = False
        self._capacity: int | None = None  # requests a whole window allows
        self._learnt_capacity = 0
        self._skew = 0.0  # how far our clock is ahead of the server's, at least
        self._hold_until = -math.inf  # after a 429 (our clock)
        self._last_sent = -math.inf
        self._last_answer = -math.inf
        self._next_token = -math.inf  # max_rate spacing
        self._answer_waiters = 0
        self._waiting = 0  # threads inside acquire()
        self.requests = 0
        self.throttled = 0  # answers 429
        self.waited_s = 0.0  # summed over threads

    # -- the Pacer protocol ------------------------------------------------------------------

    def acquire(self) -> None:
        """Block until a request may be sent; raise :class:`PacerClosed` once closed."""
        with self._cond:
            self._waiting += 1
            try:
                while True:
                    if self._closed:
                        raise PacerClosed("the run is stopping")
                    now = self._clock()
                    wait, for_answer = self._wait_s(now)
                    # Never one wait beyond the cap (and never a value Condition.wait rejects).
                    wait = min(wait, MAX_SERVER_WAIT_S)
                    if wait <= 0:
                        self._grant(now)
                        return
                    self._pause(wait, for_answer)
                    self.waited_s += max(0.0, self._clock() - now)
            finally:
                self._waiting -= 1

    def observe(self, status: int | None, headers: Mapping[str, str]) -> None:
        """Learn from an answer: its status and ``X-RateLimit-*`` headers."""
        with self._cond:
            self._in_flight = max(0, self._in_flight - 1)
            sent_at: float | None = getattr(self._local, "sent_at", None)
            self._local.sent_at = None
            now = self._clock()
            self._last_answer = now
            remaining = parse_rate_limit_remaining(headers)
            reset = parse_rate_limit_reset(headers)
            if reset is not None and reset - now > MAX_SERVER_WAIT_S + self._skew:
                # A window ending a day ahead is a server's mistake (Intercom's are 10 s):
                # waiting for it would stall the run; the figures are not used.
                reset = None
            limit = parse_rate_limit_limit(headers)
            wake = self._answer_waiters > 0
            if remaining is not None:
                self._learnt_capacity = max(self._learnt_capacity, remaining + 1)
            if limit is not None or self._learnt_capacity:
                self._capacity = limit if limit is not None else self._learnt_capacity
            if status == 429:
                self.throttled += 1
                remaining = 0 if reset is not None else remaining
            if reset is not None and remaining is not None:
                wake = self._learn_window(reset, remaining, sent_at, status == 429) or wake
            if status == 429:
                self._hold(now, reset, headers)
            if wake:
                self._cond.notify_all()

    # -- other public methods ----------------------------------------------------------------

    def close(self) -> None:
        """Refuse further requests and wake every waiting thread (for a prompt stop)."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def snapshot(self) -> dict[str, float | int | None]:
        """The pacer's current figures (for verbose logs and tests)."""
        with self._cond:
            return {
                "budget": self._budget(),
                "reset": self._reset,
                "in_flight": self._in_flight,
                "capacity": self._capacity,
                "skew_s": self._skew,
                "hold_until": self._hold_until if self._hold_until > -math.inf else None,
                "requests": self.requests,
                "throttled": self.throttled,
            }

    # -- internals (called with the lock held) -----------------------------------------------

    def _grant(self, now: float) -> None:
        self._in_flight += 1
        self._peak_in_flight = max(self._peak_in_flight, self._in_flight)
        self._last_sent = now
        if self.max_rate is not None:
            self._next_token = max(self._next_token, now) + 1.0 / self.max_rate
        self._local.sent_at = now
        self.requests += 1

    def _pause(self, seconds: float, for_answer: bool) -> None:
        if self._sleep is None:
            if for_answer:
                self._answer_waiters += 1
            try:
                self._cond.wait(seconds)
            finally:
                if for_answer:
                    self._answer_waiters -= 1
            return
        self._cond.release()
        try:
            self._sleep(seconds)
        finally:
            self._cond.acquire()

    def _local_reset(self) -> float:
        assert self._reset is not None
        return self._reset + self._skew + self._margin

    def _roll_window(self, now: float) -> None:
        """Past the reset by our clock: a new window, its budget guessed until an answer."""
        if self._reset is None or self._rolled or now < self._local_reset():
            return
        self._rolled = True
        # Requests still in flight may be counted in the new window: the budget counts
        # them as spent until their answers say which window they went to.
        self._window_remaining = self._capacity

    def _budget(self) -> int | None:
        """Requests that may still go in the current window (None: no limit known)."""
        if self._window_remaining is None:
            return None
        return self._window_remaining - self._in_flight

    def _wait_s(self, now: float) -> tuple[float, bool]:
        """Seconds to wait before the next request (<= 0: go), and whether for an answer."""
        if now < self._hold_until:
            return self._hold_until - now, False
        self._roll_window(now)
        wait = 0.0
        budget = self._budget()
        if budget is not None:
            if budget <= 0:
                if not self._rolled:
                    # Until the reset, or until answers in flight free some of the budget.
                    return self._local_reset() - now, self._in_flight > 0
                quiet_since = max(self._last_answer, self._last_sent)
                if self._in_flight > 0 and now - quiet_since < PROBE_AFTER_S:
                    # A guess ran out: the answers in flight will tell the real figure.
                    return min(ANSWER_POLL_S, quiet_since + PROBE_AFTER_S - now), True
                # Nothing in flight (or silent for long) to learn from: one request finds out.
            elif not self._rolled and budget < self._spread_threshold():
                if self._demand() > budget:
                    # budget + 1 gaps: the last request goes one gap before the reset.
                    assert self._reset is not None
                    interval = max(0.0, self._reset + self._skew - now) / (budget + 1)
                    wait = self._last_sent + interval - now
        if self.max_rate is not None:
            wait = max(wait, self._next_token - now)
        return wait, False

    def _demand(self) -> int:
        """Requests wanting to go: the backlog when known, else the threads waiting now."""
        backlog = self._backlog() if self._backlog is not None else None
        return backlog + 1 if backlog is not None else self._waiting

    def _spread_threshold(self) -> int:
        if self._spread_below is not None:
            return self._spread_below
        return max(2, self._peak_in_flight)

    def _learn_window(
        self, reset: float, remaining: int, sent_at: float | None, throttled: bool
    ) -> bool:
        """Update the window from one answer; True when the budget may have grown."""
        sent_after_reset = (
            sent_at is not None and self._reset is not None and sent_at >= self._reset + self._skew
        )
        if sent_at is not None and sent_at > reset + self._skew:
            # Sent after this reset by our clock, yet counted in the window: we are ahead by
            # at least the difference. After a 429 the true skew may be much larger: double
            # the guess so that a large skew costs a few 429s, not one per margin.
            self._skew = max(sent_at - reset, 2 * self._skew if throttled else 0.0)
        if self._reset is None or reset > self._reset:
            self._reset = reset
            self._window_remaining = remaining
            self._rolled = False
            return True
        if reset < self._reset:
            return False  # a straggler from an earlier window
        if self._rolled:
            if not sent_after_reset:
                return False  # sent before the reset: it tells nothing about the new window
            # The server is still in this window although our clock said it had ended.
            self._rolled = False
            self._window_remaining = remaining
            return False
        if self._window_remaining is None or remaining < self._window_remaining:
            self._window_remaining = remaining
        return False

    def _hold(self, now: float, reset: float | None, headers: Mapping[str, str]) -> None:
        """After a 429: nobody sends before the window resets (or the server's wait)."""
        retry_after = parse_retry_after(header(headers, "Retry-After"), now)
        if reset is not None:
            until = reset + self._skew + self._margin
        elif retry_after is not None:
            until = now + retry_after
        else:
            until = now + DEFAULT_429_HOLD_S
        if retry_after is not None:
            until = max(until, now + retry_after)
        # However long the server asks for, nobody is held beyond the cap: the client gives
        # up on such a wait (the event stays pending), the pacer does not sleep through it.
        until = min(until, now + MAX_SERVER_WAIT_S)
        self._hold_until = max(self._hold_until, until)
