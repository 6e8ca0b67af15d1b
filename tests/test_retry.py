"""Unit tests of the pure retry schedule (retry.py), with the clock and random injected."""

from __future__ import annotations

import math
from email.utils import formatdate

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intercom_events_cli.http.retry import (
    BASE_DELAY_S,
    MAX_BACKOFF_S,
    RESET_JITTER_S,
    RetryDecision,
    parse_rate_limit_remaining,
    parse_rate_limit_reset,
    parse_retry_after,
    retry_decision,
)
from intercom_events_cli.outcome import is_retryable

NOW = 1_700_000_000.0


def middle() -> float:
    """A random source that always gives 0.5: jitter factor exactly 1."""
    return 0.5


def decide(
    status: int | None,
    headers: dict[str, str] | None = None,
    *,
    attempt: int = 1,
    max_retries: int = 4,
    random: float = 0.5,
    max_wait_s: float = 60.0,
) -> RetryDecision:
    return retry_decision(
        attempt=attempt,
        max_retries=max_retries,
        status=status,
        headers=headers or {},
        now=NOW,
        random=lambda: random,
        max_wait_s=max_wait_s,
    )


# -- what is retried ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "status", [None, 408, 429, 500, 501, 502, 503, 504, 505, 507, 508, 511, 599]
)
def test_retryable_statuses(status: int | None) -> None:
    assert is_retryable(status)
    assert decide(status).retry


@pytest.mark.parametrize("status", [200, 202, 400, 401, 403, 404, 405, 409, 413, 422, 451])
def test_other_statuses_are_never_retried(status: int) -> None:
    assert not is_retryable(status)
    decision = decide(status, {"Retry-After": "1", "X-RateLimit-Reset": str(int(NOW) + 1)})
    assert not decision.retry
    assert decision.reason == "not retryable"


def test_every_5xx_is_retried_and_no_other_4xx() -> None:
    retried = {status for status in range(100, 600) if is_retryable(status)}
    assert retried == {408, 429} | set(range(500, 600))


def test_a_2xx_other_than_the_expected_one_is_retried() -> None:
    # POST /events succeeds with 202 only: a captive portal's 200 is not a delivery.
    assert is_retryable(200, expected={202})
    assert not is_retryable(202, expected={202})
    decision = retry_decision(
        attempt=1,
        max_retries=2,
        status=200,
        headers={},
        now=NOW,
        random=middle,
        retryable=is_retryable(200, expected={202}),
    )
    assert decision.retry


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize("status", [429, 503, None])
def test_retry_after_seconds_is_honoured_without_jitter(status: int | None) -> None:
    for random in (0.0, 0.99):
        decision = decide(status, {"Retry-After": "3"}, random=random)
        assert decision.retry
        assert decision.delay_s == 3.0


def test_retry_after_header_name_is_case_insensitive() -> None:
    assert decide(503, {"retry-after": "2"}).delay_s == 2.0
    assert decide(503, {"RETRY-AFTER": "2.5"}).delay_s == 2.5


def test_retry_after_http_date() -> None:
    in_seven_seconds = formatdate(NOW + 7, usegmt=True)
    assert decide(503, {"Retry-After": in_seven_seconds}).delay_s == pytest.approx(7.0)


def test_retry_after_in_the_past_means_now() -> None:
    assert decide(503, {"Retry-After": formatdate(NOW - 60, usegmt=True)}).delay_s == 0.0
    assert decide(503, {"Retry-After": "-5"}).delay_s == 0.0


@pytest.mark.parametrize("value", ["", "soon", "Tomorrow at noon", "nan", "inf", "1e400"])
def test_unusable_retry_after_falls_back_to_backoff(value: str) -> None:
    assert parse_retry_after(value, NOW) is None
    assert decide(503, {"Retry-After": value}).delay_s == BASE_DELAY_S


def test_retry_after_beats_the_rate_limit_reset() -> None:
    headers = {"Retry-After": "2", "X-RateLimit-Reset": str(int(NOW) + 40)}
    assert decide(429, headers).delay_s == 2.0


# -- 429 and X-RateLimit-Reset -----------------------------------------------------------------


@pytest.mark.parametrize("random", [0.0, 0.5, 0.999])
def test_429_waits_until_the_reset_plus_jitter(random: float) -> None:
    decision = decide(429, {"X-RateLimit-Reset": str(int(NOW) + 5)}, random=random)
    assert decision.retry
    assert decision.delay_s == pytest.approx(5 + RESET_JITTER_S * random)


def test_429_reset_in_the_past_waits_only_the_jitter() -> None:
    decision = decide(429, {"X-RateLimit-Reset": str(int(NOW) - 10)}, random=1.0)
    assert decision.delay_s == pytest.approx(RESET_JITTER_S)


def test_reset_is_ignored_for_statuses_other_than_429() -> None:
    assert decide(503, {"X-RateLimit-Reset": str(int(NOW) + 20)}).delay_s == BASE_DELAY_S


def test_429_without_headers_backs_off() -> None:
    assert decide(429).delay_s == BASE_DELAY_S


def test_rate_limit_header_parsing() -> None:
    assert parse_rate_limit_reset({"x-ratelimit-reset": "1700000010"}) == 1_700_000_010.0
    assert parse_rate_limit_reset({"X-RateLimit-Reset": "soon"}) is None
    assert parse_rate_limit_reset({}) is None
    assert parse_rate_limit_remaining({"X-RateLimit-Remaining": "12"}) == 12
    assert parse_rate_limit_remaining({"x-ratelimit-remaining": "12.0"}) == 12
    assert parse_rate_limit_remaining({}) is None


@pytest.mark.parametrize("value", ["", "many", "nan", "inf", "-inf", "1e400"])
def test_unusable_rate_limit_headers_are_ignored(value: str) -> None:
    headers = {"X-RateLimit-Remaining": value, "X-RateLimit-Reset": value}
    assert parse_rate_limit_remaining(headers) is None
    assert parse_rate_limit_reset(headers) is None
    assert decide(429, headers).delay_s == BASE_DELAY_S


# -- exponential backoff -----------------------------------------------------------------------


def test_backoff_doubles_from_half_a_second_and_is_capped() -> None:
    delays = [decide(503, attempt=n, max_retries=20).delay_s for n in range(1, 10)]
    assert delays == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0, MAX_BACKOFF_S, MAX_BACKOFF_S, MAX_BACKOFF_S]


@pytest.mark.parametrize("attempt", [1, 2, 5, 12])
def test_backoff_jitter_is_plus_or_minus_a_quarter(attempt: int) -> None:
    low = decide(None, attempt=attempt, max_retries=20, random=0.0).delay_s
    high = decide(None, attempt=attempt, max_retries=20, random=0.999999).delay_s
    nominal = min(MAX_BACKOFF_S, BASE_DELAY_S * 2 ** (attempt - 1))
    assert low == pytest.approx(0.75 * nominal)
    assert high == pytest.approx(1.25 * nominal, rel=1e-5)
    assert low < high


def test_backoff_uses_the_injected_random_source() -> None:
    values = iter([0.1, 0.9])

    def source() -> float:
        return next(values)

    first = retry_decision(attempt=1, max_retries=3, status=503, headers={}, now=NOW, random=source)
    second = retry_decision(
        attempt=1, max_retries=3, status=503, headers={}, now=NOW, random=source
    )
    assert first.delay_s == pytest.approx(0.5 * 0.8)
    assert second.delay_s == pytest.approx(0.5 * 1.2)


def test_a_very_late_attempt_does_not_overflow() -> None:
    decision = decide(503, attempt=5000, max_retries=10_000)
    assert decision.retry
    assert decision.delay_s == MAX_BACKOFF_S


# -- when to give up ---------------------------------------------------------------------------


def test_retries_exhausted() -> None:
    assert decide(503, attempt=4, max_retries=4).retry
    decision = decide(503, attempt=5, max_retries=4)
    assert not decision.retry
    assert decision.reason == "retries exhausted"


def test_no_retries_at_all() -> None:
    decision = decide(None, attempt=1, max_retries=0)
    assert not decision.retry
    assert decision.reason == "retries exhausted"


def test_a_wait_longer_than_the_limit_is_not_taken() -> None:
    decision = decide(503, {"Retry-After": "120"}, max_wait_s=60)
    assert not decision.retry
    assert decision.reason == "wait too long"
    assert decision.delay_s == 120.0
    reset_far = {"X-RateLimit-Reset": str(int(NOW) + 3600)}
    assert decide(429, reset_far).reason == "wait too long"
    assert decide(503, {"Retry-After": "60"}, max_wait_s=60).retry


def test_retry_after_is_measured_from_the_injected_clock() -> None:
    date = formatdate(NOW + 30, usegmt=True)
    later = retry_decision(
        attempt=1,
        max_retries=3,
        status=503,
        headers={"Retry-After": date},
        now=NOW + 20,
        random=middle,
    )
    assert later.delay_s == pytest.approx(10.0)


header_values = st.text(max_size=40) | st.sampled_from(
    ["nan", "inf", "-inf", "1e400", "-1", "0", "Wed, 21 Oct 2015 07:28:00 GMT", "99999999999"]
)


@given(
    attempt=st.integers(min_value=1, max_value=100_000),
    max_retries=st.integers(min_value=0, max_value=100_000),
    status=st.none() | st.integers(min_value=100, max_value=599),
    headers=st.dictionaries(
        st.sampled_from(["Retry-After", "X-RateLimit-Reset", "X-RateLimit-Remaining", "X"]),
        header_values,
    ),
    random=st.floats(min_value=0, max_value=1, exclude_max=True),
)
def test_any_answer_gives_a_sane_decision(
    attempt: int, max_retries: int, status: int | None, headers: dict[str, str], random: float
) -> None:
    decision = retry_decision(
        attempt=attempt,
        max_retries=max_retries,
        status=status,
        headers=headers,
        now=NOW,
        random=lambda: random,
    )
    if decision.retry:
        assert is_retryable(status)
        assert attempt <= max_retries
        assert math.isfinite(decision.delay_s)
        assert 0 <= decision.delay_s <= 60.0
    parse_rate_limit_remaining(headers)


def test_rate_limit_limit_is_a_positive_integer_or_none() -> None:
    from intercom_events_cli.http.retry import parse_rate_limit_limit

    assert parse_rate_limit_limit({"x-ratelimit-limit": "10000"}) == 10000
    assert parse_rate_limit_limit({"X-RateLimit-Limit": "166.7"}) == 166
    for bad in ("0", "-5", "nan", "inf", "many", ""):
        assert parse_rate_limit_limit({"X-RateLimit-Limit": bad}) is None, bad
    assert parse_rate_limit_limit({}) is None


def test_retry_delay_grows_and_honours_the_server() -> None:
    """The outbox's wait before the next flush tries an event again (retry_delay_s)."""
    from intercom_events_cli.http.retry import retry_delay_s

    assert retry_delay_s(1) == 30
    assert retry_delay_s(2) == 60
    assert retry_delay_s(100) == 3600
    assert retry_delay_s(1, retry_after_s=600) == 600
