"""Absurd wait headers are clamped or ignored, never an exception (retry.py, pacing.py)."""

from __future__ import annotations

import math

import pytest

from intercom_events_cli.http.pacing import RateLimitPacer
from intercom_events_cli.http.retry import (
    MAX_SERVER_WAIT_S,
    parse_rate_limit_reset,
    parse_retry_after,
    retry_decision,
)

NOW = 1_700_000_000.0


@pytest.mark.parametrize(
    ("value", "expected"),
    [("-5", 0.0), ("NaN", None), ("inf", None), ("1e308", 1e308), ("garbage", None),
     ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0), ("3", 3.0)],
)  # fmt: skip
def test_retry_after_values(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_a_reset_in_milliseconds_is_read_as_such() -> None:
    assert parse_rate_limit_reset({"X-RateLimit-Reset": str(int((NOW + 5) * 1000))}) == NOW + 5
    assert parse_rate_limit_reset({"X-RateLimit-Reset": "-1"}) is None
    assert parse_rate_limit_reset({"X-RateLimit-Reset": "nan"}) is None


@pytest.mark.parametrize("retry_after", ["3600", "1e308"])
def test_a_long_wait_is_not_taken(retry_after: str) -> None:
    decision = retry_decision(
        attempt=1, max_retries=3, status=429, headers={"Retry-After": retry_after},
        now=NOW, random=lambda: 0.5,
    )  # fmt: skip
    assert not decision.retry and decision.delay_s > MAX_SERVER_WAIT_S


@pytest.mark.parametrize(
    "headers",
    [
        {"Retry-After": "1e308"},
        {"Retry-After": "3600"},
        {"X-RateLimit-Reset": str(NOW * 1000 * 1000), "X-RateLimit-Remaining": "0"},
        {"X-RateLimit-Reset": "1e308", "X-RateLimit-Remaining": "0"},
    ],
)
def test_the_pacer_never_waits_beyond_the_cap(headers: dict[str, str]) -> None:
    slept: list[float] = []
    clock = [NOW]

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock[0] += seconds

    pacer = RateLimitPacer(clock=lambda: clock[0], sleep=sleep)
    pacer.acquire()
    pacer.observe(429, headers)
    pacer.acquire()  # must come back, after at most one capped wait
    assert slept and all(math.isfinite(s) and s <= MAX_SERVER_WAIT_S for s in slept)
    assert sum(slept) <= MAX_SERVER_WAIT_S + 1


def test_a_window_a_day_ahead_does_not_stall_the_pacer() -> None:
    clock = [NOW]
    slept: list[float] = []
    pacer = RateLimitPacer(clock=lambda: clock[0], sleep=slept.append)
    pacer.acquire()
    pacer.observe(202, {"X-RateLimit-Reset": str(NOW + 86400), "X-RateLimit-Remaining": "0"})
    pacer.acquire()
    assert slept == []
