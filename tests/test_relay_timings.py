"""``IEVENTS_RELAY_TIMINGS``: the suite's way to shorten a relay's intervals.

The defaults are the product's; a test that waits for a heartbeat, a re-ask or the
metrics' refresh shortens that one interval and still watches a real relay.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from conftest import RunCli
from helpers import check_no_token

from intercom_events_cli.delivery.timings import (
    HEARTBEAT_S,
    PAUSE_AUTH_S,
    RelayTimings,
    timings_from_text,
)
from intercom_events_cli.errors import ConfigError


def test_unset_or_blank_gives_the_products_defaults() -> None:
    assert timings_from_text(None) == RelayTimings() == timings_from_text("  ")
    assert RelayTimings().heartbeat_s == HEARTBEAT_S == 5.0
    assert RelayTimings().pause_auth_s == PAUSE_AUTH_S == 60.0


def test_named_intervals_replace_their_defaults_only() -> None:
    timings = timings_from_text("heartbeat_s=0.5, learn_retry_s=2")
    assert (timings.heartbeat_s, timings.learn_retry_s) == (0.5, 2.0)
    assert timings.pause_unavailable_s == RelayTimings().pause_unavailable_s


@pytest.mark.parametrize(
    "text",
    [
        "heartbeat=1",
        "heartbeat_s",
        "heartbeat_s=",
        "heartbeat_s=0",
        "heartbeat_s=-1",
        "heartbeat_s=nan",
        "heartbeat_s=inf",
        "heartbeat_s=soon",
        "heartbeat_s=1,,",
    ],
)
def test_a_bad_part_is_refused_naming_it_and_the_names(text: str) -> None:
    with pytest.raises(ConfigError) as raised:
        timings_from_text(text)
    message = str(raised.value)
    assert "IEVENTS_RELAY_TIMINGS" in message and "heartbeat_s" in message
    assert "\n" not in message


def test_a_relay_given_bad_timings_says_so_in_one_line_and_exits_78(
    run_cli: RunCli, outbox: str
) -> None:
    result = run_cli(
        "flush", "--watch", env={"IEVENTS_OUTBOX": outbox, "IEVENTS_RELAY_TIMINGS": "beat=1"}
    )
    assert result.code == 78, result
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "IEVENTS_RELAY_TIMINGS: 'beat=1'" in lines[0], result.stderr
    assert "Traceback" not in result.stderr
    check_no_token(result.stdout, result.stderr)


def test_a_relay_beats_at_the_interval_it_is_given(
    run_cli: RunCli, outbox: str, start_relay: Callable[..., Any]
) -> None:
    from helpers import wait_for

    from intercom_events_cli.outbox.store import open_store

    relay = start_relay(outbox, IEVENTS_RELAY_TIMINGS="heartbeat_s=0.2,idle_look_s=0.2")
    # The beat's own time (a float; outbox status shows whole seconds).
    with open_store(outbox, {}) as store:

        def beat() -> float | None:
            return store.summary().relay_heartbeat_at

        first = wait_for(beat, what="a first beat", alive=relay.process)
        # Beats about 0.3 s apart (0.2 s, as it looks while idle): five more in about 1.7 s,
        # within a deadline 10 times that for a loaded machine, which beats 5 s apart could
        # not meet (25 s from the first).
        seen = {first}
        wait_for(
            lambda: seen.add(beat()) or len(seen - {None}) >= 6,
            timeout=18,
            what="five more beats",
            alive=relay.process,
        )
    assert relay.stop() == 0, relay.stderr
