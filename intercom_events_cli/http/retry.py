"""The retry schedule: what is retried and how long to wait. Pure; the clock is injected.

Retried: whatever :func:`~intercom_events_cli.outcome.classify_status` (or
``classify_exception``) calls temporary: network failures and timeouts, 408, 429, every
5xx, and a 2xx that is not the request's success status. Never any other 4xx: they will
fail the same way again. The wait is, in order of preference:

1. ``Retry-After`` (seconds or an HTTP date) when the server sent one;
2. on 429, until ``X-RateLimit-Reset`` (Unix seconds) plus a little jitter;
3. otherwise exponential backoff with jitter: about 0.5 s, doubling, capped.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

from ..frozen import frozen
from ..outcome import is_retryable

BASE_DELAY_S = 0.5
MAX_BACKOFF_S = 30.0
RESET_JITTER_S = 0.25
# The longest wait any server may ask for (Retry-After, X-RateLimit-Reset), everywhere:
# send/flush give up on a longer one (exit 75, the event kept), the pacer never waits more.
MAX_SERVER_WAIT_S = 60.0
# An X-RateLimit-Reset above this is in milliseconds (as seconds it is past the year 5000).
_MILLISECONDS_ABOVE = 1e11


def header(headers: Mapping[str, str], name: str) -> str | None:
    """A header's value by case-insensitive name (any mapping, httpx's or a plain dict)."""
    value = headers.get(name)
    if value is not None:
        return value
    lowered = name.lower()
    for key, found in headers.items():
        if key.lower() == lowered:
            return found
    return None


def _finite_number(value: str | None) -> float | None:
    """A header's number; None when absent, garbage, NaN or infinite (a server's mistake)."""
    if value is None:
        return None
    try:
        number = float(value)
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def parse_retry_after(value: str | None, now: float) -> float | None:
    """Seconds to wait from a ``Retry-After`` value (delta seconds or HTTP date)."""
    if value is None:
        return None
    text = value.strip()
    if not text:
        return None
    seconds = _finite_number(text)
    if seconds is not None:
        return max(0.0, seconds)
    # Imported here: only a Retry-After in date form needs it (6 ms at start-up).
    from email.utils import parsedate_to_datetime

    try:
        moment = parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError):
        return None
    if moment.tzinfo is None:
        return None
    return max(0.0, moment.timestamp() - now)


def parse_rate_limit_reset(headers: Mapping[str, str]) -> float | None:
    """``X-RateLimit-Reset`` as Unix seconds, or None (absent, garbage, not positive).

    A value in milliseconds is read as such; a value still absurd after that is the
    caller's to clamp (every wait is capped at :data:`MAX_SERVER_WAIT_S`).
    """
    number = _finite_number(header(headers, "X-RateLimit-Reset"))
    if number is None or number <= 0:
        return None
    return number / 1000 if number > _MILLISECONDS_ABOVE else number


def parse_rate_limit_limit(headers: Mapping[str, str]) -> int | None:
    """``X-RateLimit-Limit`` as a positive integer, or None."""
    number = _finite_number(header(headers, "X-RateLimit-Limit"))
    return int(number) if number is not None and number >= 1 else None


def parse_rate_limit_remaining(headers: Mapping[str, str]) -> int | None:
    """``X-RateLimit-Remaining`` as an integer, or None."""
    number = _finite_number(header(headers, "X-RateLimit-Remaining"))
    return int(number) if number is not None else None


@frozen
class RetryDecision:
    """Whether to try again, and after how many seconds."""

    retry: bool
    delay_s: float = 0.0
    reason: str = ""


def retry_decision(
    *,
    attempt: int,
    max_retries: int,
    status: int | None,
    headers: Mapping[str, str],
    now: float,
    random: Callable[[], float],
    max_wait_s: float = 60.0,
    retryable: bool | None = None,
) -> RetryDecision:
    """Decide about the attempt numbered ``attempt`` (1-based) that just failed.

    ``max_retries`` is how many retries follow the first attempt. A wait longer than
    ``max_wait_s`` is not taken: the caller gives up and reports when to try again.
    ``retryable`` is the caller's classification; None classifies ``status`` alone.
    """
    if not (is_retryable(status) if retryable is None else retryable):
        return RetryDecision(False, reason="not retryable")
    if attempt > max_retries:
        return RetryDecision(False, reason="retries exhausted")
    delay = server_requested_delay(status, headers, now, random)
    if delay is None:
        # The exponent is bounded: 2**1024 does not fit in a float, and the cap is hit by 7.
        backoff = min(MAX_BACKOFF_S, BASE_DELAY_S * 2 ** min(attempt - 1, 32))
        delay = backoff * (0.75 + 0.5 * random())
    if delay > max_wait_s:
        return RetryDecision(False, delay, reason="wait too long")
    return RetryDecision(True, delay)


def server_requested_delay(
    status: int | None, headers: Mapping[str, str], now: float, random: Callable[[], float]
) -> float | None:
    """The wait the server asked for: Retry-After, or on 429 the rate-limit reset."""
    retry_after = parse_retry_after(header(headers, "Retry-After"), now)
    if retry_after is not None:
        return retry_after
    if status == 429:
        reset = parse_rate_limit_reset(headers)
        if reset is not None:
            return max(0.0, reset - now) + RESET_JITTER_S * random()
    return None


# -- the outbox's backoff: how long a stored event waits before its next flush ---------------

# Temporary failures wait 30 s, 1 min, 2 min, ... up to an hour before the next try.
BACKOFF_BASE_S = 30.0
BACKOFF_CAP_S = 3600.0


def retry_delay_s(attempts: int, retry_after_s: float | None = None) -> float:
    """How long a temporarily failed event waits before its next try.

    30 s after the first failed try, doubling, capped at an hour; never less than what the
    server asked for (``Retry-After`` or the rate-limit reset).
    """
    exponent = min(max(attempts, 1) - 1, 16)
    delay: float = min(BACKOFF_CAP_S, BACKOFF_BASE_S * float(2**exponent))
    return max(delay, min(retry_after_s or 0.0, 24 * 3600.0))
