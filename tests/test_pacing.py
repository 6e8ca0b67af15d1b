"""The rate-limit pacer: budget, spreading, 429 holds, max rate, skew; one real-server run."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest
from conftest import TOKEN
from fake_intercom import FakeIntercom
from helpers import wait_for

from intercom_events_cli.config.settings import Settings
from intercom_events_cli.event import Event
from intercom_events_cli.http.client import EventsClient
from intercom_events_cli.http.pacing import (
    DEFAULT_429_HOLD_S,
    PROBE_AFTER_S,
    RESET_MARGIN_S,
    PacerClosed,
    RateLimitPacer,
)

START = 1_000_000.0


class FakeClock:
    """A clock that only moves when someone sleeps (or the test says so)."""

    def __init__(self) -> None:
        self.now = START
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        assert seconds > 0, "the pacer must not sleep for nothing"
        self.sleeps.append(seconds)
        self.now += seconds


def limits(remaining: int, reset: float, limit: int = 100, **extra: str) -> dict[str, str]:
    return {
        "X-RateLimit-Limit": str(limit),
        "X-RateLimit-Remaining": str(remaining),
        "X-RateLimit-Reset": str(reset),
        **extra,
    }


def make(clock: FakeClock, **kwargs: Any) -> RateLimitPacer:
    return RateLimitPacer(clock=clock, sleep=clock.sleep, **kwargs)


def test_without_rate_limit_headers_requests_go_at_once() -> None:
    clock = FakeClock()
    pacer = make(clock)
    for status in (202, None, 500, 202):
        pacer.acquire()
        pacer.observe(status, {})
    assert clock.sleeps == []
    assert pacer.requests == 4


def test_a_comfortable_budget_never_waits() -> None:
    clock = FakeClock()
    pacer = make(clock)
    for remaining in range(99, 49, -1):
        pacer.acquire()
        clock.now += 0.01
        pacer.observe(202, limits(remaining, START + 10))
    assert clock.sleeps == []


def test_at_zero_remaining_everybody_waits_for_the_reset() -> None:
    clock = FakeClock()
    pacer = make(clock)
    pacer.acquire()
    pacer.observe(202, limits(0, START + 7))
    pacer.acquire()
    assert clock.now == pytest.approx(START + 7 + RESET_MARGIN_S)
    # A new window by our clock: a whole window's allowance (the Limit header) is guessed.
    assert pacer.snapshot()["budget"] == 100 - 1


def test_requests_in_flight_count_against_the_budget() -> None:
    clock = FakeClock()
    pacer = make(clock, spread_below=0)
    pacer.acquire()
    pacer.observe(202, limits(3, START + 10))
    for _ in range(3):  # three requests in flight, none answered yet
        pacer.acquire()
    assert clock.sleeps == []
    assert pacer.snapshot()["budget"] == 0
    pacer.acquire()  # the fourth must wait: the three may use up the window
    assert clock.now >= START + 10


def test_answers_free_the_budget_they_did_not_use() -> None:
    clock = FakeClock()
    pacer = make(clock, spread_below=0)
    pacer.acquire()
    pacer.observe(202, limits(2, START + 10))
    pacer.acquire()
    pacer.acquire()
    assert pacer.snapshot()["budget"] == 0
    pacer.observe(202, limits(1, START + 10))  # one answered, one still in flight
    assert pacer.snapshot()["budget"] == 0
    pacer.observe(202, limits(0, START + 10))
    assert pacer.snapshot()["budget"] == 0
    # Answers arriving in any order: the lowest Remaining seen is what counts.
    pacer.observe(202, limits(5, START + 10))
    assert pacer.snapshot()["budget"] == 0


def test_the_last_of_the_budget_is_spread_evenly_until_the_reset() -> None:
    clock = FakeClock()
    pacer = make(clock, spread_below=10, backlog=lambda: 1000)
    pacer.acquire()
    pacer.observe(202, limits(4, START + 10))
    sent = []
    for remaining in (3, 2, 1, 0):
        pacer.acquire()
        sent.append(clock.now)
        pacer.observe(202, limits(remaining, START + 10))
    gaps = [b - a for a, b in zip([START, *sent[:-1]], sent, strict=True)]
    assert gaps == pytest.approx([2.0, 2.0, 2.0, 2.0])
    assert sent[-1] < START + 10  # the whole budget fits in the window


def test_no_spreading_when_everything_left_fits_in_the_budget() -> None:
    clock = FakeClock()
    left = [4]
    pacer = make(clock, spread_below=10, backlog=lambda: left[0])
    pacer.acquire()
    pacer.observe(202, limits(5, START + 10))
    for remaining in (4, 3, 2, 1):
        left[0] -= 1
        pacer.acquire()
        pacer.observe(202, limits(remaining, START + 10))
    assert clock.sleeps == []


def test_without_a_backlog_the_waiting_threads_are_the_demand() -> None:
    clock = FakeClock()
    pacer = make(clock, spread_below=10)
    pacer.acquire()
    pacer.observe(202, limits(3, START + 10))
    for remaining in (2, 1, 0):  # one thread asking at a time: it always fits
        pacer.acquire()
        pacer.observe(202, limits(remaining, START + 10))
    assert clock.sleeps == []


def test_after_a_429_everybody_waits_for_the_reset() -> None:
    clock = FakeClock()
    pacer = make(clock)
    pacer.acquire()
    pacer.observe(202, limits(50, START + 10))
    pacer.acquire()
    pacer.observe(429, limits(0, START + 4))  # a newer window, already spent by others
    assert pacer.throttled == 1
    pacer.acquire()
    assert clock.now == pytest.approx(START + 4 + RESET_MARGIN_S)


def test_a_429_without_a_reset_holds_for_retry_after_or_a_second() -> None:
    clock = FakeClock()
    pacer = make(clock)
    pacer.acquire()
    pacer.observe(429, {"Retry-After": "3"})
    pacer.acquire()
    assert clock.now == pytest.approx(START + 3)
    pacer.observe(429, {})
    pacer.acquire()
    assert clock.now == pytest.approx(START + 3 + DEFAULT_429_HOLD_S)


def test_max_rate_spaces_requests_evenly() -> None:
    clock = FakeClock()
    pacer = make(clock, max_rate=4)
    times = []
    for _ in range(5):
        pacer.acquire()
        times.append(clock.now - START)
        pacer.observe(202, limits(9000, START + 10))
    assert times == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])


def test_max_rate_must_be_positive() -> None:
    with pytest.raises(ValueError):
        RateLimitPacer(max_rate=0)


def test_an_answer_from_the_new_window_replaces_the_guess() -> None:
    clock = FakeClock()
    pacer = make(clock)
    pacer.acquire()
    pacer.observe(202, limits(0, START + 2, limit=100))
    pacer.acquire()  # waits for the reset, then guesses a full window
    assert pacer.snapshot()["budget"] == 99
    pacer.observe(202, limits(20, START + 12))  # others used most of it
    assert pacer.snapshot()["budget"] == 20
    assert pacer.snapshot()["reset"] == START + 12


def test_a_straggler_from_the_old_window_is_ignored() -> None:
    clock = FakeClock()
    pacer = make(clock, spread_below=0)
    pacer.acquire()
    pacer.acquire()
    pacer.observe(202, limits(40, START + 12))
    pacer.observe(202, limits(90, START + 2))  # sent earlier, answered late
    assert pacer.snapshot()["reset"] == START + 12
    assert pacer.snapshot()["budget"] == 40


def test_a_spent_guess_waits_for_answers_then_probes() -> None:
    clock = FakeClock()
    pacer = make(clock, spread_below=0)
    pacer.acquire()
    pacer.observe(202, limits(0, START + 1, limit=2))
    pacer.acquire()
    pacer.acquire()  # the guess (2 per window) is spent by two requests in flight
    before = clock.now
    pacer.acquire()  # no answer ever comes (in this single thread): one probe goes
    assert clock.now - before == pytest.approx(PROBE_AFTER_S)


def test_learns_that_our_clock_is_ahead_of_the_servers() -> None:
    clock = FakeClock()
    pacer = make(clock)
    pacer.acquire()
    pacer.observe(202, limits(0, START + 5))
    skew = 0.0
    throttled = 0
    # The server's clock is 1.5 s behind ours: its window ends at START + 6.5 by our clock.
    while True:
        pacer.acquire()
        if clock.now < START + 6.5:
            throttled += 1
            pacer.observe(429, limits(0, START + 5))
            assert pacer.snapshot()["skew_s"] > skew
            skew = float(pacer.snapshot()["skew_s"] or 0)
        else:
            pacer.observe(202, limits(99, START + 15))
            break
    assert 1 <= throttled <= 6
    assert clock.now < START + 6.5 + 1.6  # the doubling does not overshoot wildly
    # Later resets are waited for with the skew learnt: the next window costs no 429.
    pacer.observe(202, limits(0, START + 15))
    pacer.acquire()
    assert clock.now >= START + 15 + 1.5


def test_counters_and_snapshot() -> None:
    clock = FakeClock()
    pacer = make(clock)
    pacer.acquire()
    pacer.observe(429, limits(0, START + 2))
    pacer.acquire()
    pacer.observe(202, limits(98, START + 12))
    snapshot = pacer.snapshot()
    assert (snapshot["requests"], snapshot["throttled"], snapshot["capacity"]) == (2, 1, 100)
    assert pacer.waited_s == pytest.approx(2 + RESET_MARGIN_S)


def test_close_wakes_waiting_threads_and_refuses_more() -> None:
    pacer = RateLimitPacer()
    pacer.acquire()
    pacer.observe(429, limits(0, time.time() + 30))
    failures: list[BaseException] = []

    def wait() -> None:
        try:
            pacer.acquire()
        except PacerClosed as exc:
            failures.append(exc)

    threads = [threading.Thread(target=wait) for _ in range(4)]
    for thread in threads:
        thread.start()
    # All four inside acquire(): close() must wake them, not merely refuse newcomers.
    wait_for(lambda: pacer._waiting == 4, what="four threads waiting in acquire()")
    pacer.close()
    for thread in threads:
        thread.join(timeout=60)
    assert not any(thread.is_alive() for thread in threads)
    assert len(failures) == 4
    with pytest.raises(PacerClosed):
        pacer.acquire()


def test_an_answer_wakes_threads_waiting_for_budget() -> None:
    pacer = RateLimitPacer(spread_below=0)
    reset = time.time() + 30
    pacer.acquire()
    pacer.observe(202, limits(1, reset))
    pacer.acquire()  # in flight, holding the last of the budget
    woke = threading.Event()

    def second() -> None:
        pacer.acquire()
        woke.set()

    thread = threading.Thread(target=second)
    thread.start()
    # Blocked, waiting for an answer: the request in flight may use the last one.
    wait_for(lambda: pacer._answer_waiters == 1, what="the thread waiting for an answer")
    assert not woke.is_set()
    # Answered, and it turns out the window has room left after all.
    pacer.observe(202, limits(3, reset))
    assert woke.wait(60)
    thread.join()


# -- with the real client and the fake server -----------------------------------------------


def test_many_threads_share_one_pacer_with_few_429s(fake: FakeIntercom) -> None:
    """16 threads, one EventsClient: every event delivered, at most 5 % answered 429."""
    fake.set_rate_limit(50, 1.0)
    total = 150
    work: queue.Queue[Event] = queue.Queue()
    for number in range(total):
        work.put(Event.create("paced", user_id=f"u{number}", created_at=1_700_000_000))
    pacer = RateLimitPacer()
    settings = Settings(token=TOKEN, base_url=fake.url, retries=6, timeout=5)
    delivered: list[bool] = []
    with EventsClient(settings, pacer=pacer, max_connections=16) as client:

        def worker() -> None:
            while True:
                try:
                    event = work.get_nowait()
                except queue.Empty:
                    return
                delivered.append(client.send(event).delivered)

        threads = [threading.Thread(target=worker) for _ in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert len(delivered) == total and all(delivered)
    assert sorted(e["user_id"] for e in fake.stored_events()) == sorted(
        f"u{n}" for n in range(total)
    )
    stats = fake.stats()
    assert stats["count_429"] <= 0.05 * stats["posts"], stats
    assert pacer.requests == stats["posts"]
