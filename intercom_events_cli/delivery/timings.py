"""The relay's clock: how often it looks, beats, asks again, and how long it pauses.

The defaults are the product's and are not a user setting. The test suite shortens the
ones a test waits for through ``IEVENTS_RELAY_TIMINGS`` (``heartbeat_s=0.5,learn_retry_s=0.5``),
read by the command line (``cli/watch.py``) and handed down here as a
:class:`RelayTimings`: a test of a heartbeat then waits half a second, not five, and
still watches a real relay process do it.
"""

from __future__ import annotations

import dataclasses
import math

from ..errors import ConfigError
from ..frozen import frozen

TIMINGS_ENV = "IEVENTS_RELAY_TIMINGS"

IDLE_LOOK_S = 1.0
# After the engine stopped for Intercom being unavailable (or an internal error), and
# after the token was rejected (someone has to fix it: no point hammering).
PAUSE_UNAVAILABLE_S = 15.0
PAUSE_AUTH_S = 60.0
# Waiting for the database to come back: 0.5 s, doubling, at most this.
RECONNECT_MAX_S = 10.0
# A running relay writes its heartbeat (the outbox's last flush, with the exit code of
# what it did since the last beat, and relay_heartbeat_at) this often.
HEARTBEAT_S = 5.0
# A token whose workspace GET /me could not learn (Intercom down at start) is asked again
# after this long while the relay idles (doubling up to PAUSE_AUTH_S): its workspace's
# rows wait for the answer, and a revoked token is not asked every few seconds.
LEARN_RETRY_S = 5.0
# How often a relay whose token came from a file reads the file again (a rotation).
TOKEN_LOOK_S = 5.0
# The outbox's figures in the metrics are read again at most this often while scraped
# (delivery/summary_cache.py), and the metrics text rendered at most this often
# (delivery/metrics_server.py).
SUMMARY_REFRESH_S = 5.0
METRICS_RENDER_S = 1.0


@frozen
class RelayTimings:
    """The relay's intervals in seconds; see the constants of this module."""

    idle_look_s: float = IDLE_LOOK_S
    pause_unavailable_s: float = PAUSE_UNAVAILABLE_S
    pause_auth_s: float = PAUSE_AUTH_S
    reconnect_max_s: float = RECONNECT_MAX_S
    heartbeat_s: float = HEARTBEAT_S
    learn_retry_s: float = LEARN_RETRY_S
    token_look_s: float = TOKEN_LOOK_S
    summary_refresh_s: float = SUMMARY_REFRESH_S
    metrics_render_s: float = METRICS_RENDER_S


def timings_from_text(text: str | None) -> RelayTimings:
    """The timings ``IEVENTS_RELAY_TIMINGS`` gives (``name=seconds,...``), else the defaults.

    Raises :class:`~.errors.ConfigError` naming a part that is not ``name=seconds`` with a
    known name and a finite number of seconds over 0.
    """
    if not text or not text.strip():
        return RelayTimings()
    names = [item.name for item in dataclasses.fields(RelayTimings)]
    given: dict[str, float] = {}
    for part in text.split(","):
        name, equals, value = part.strip().partition("=")
        try:
            seconds = float(value) if equals else math.nan
        except ValueError:
            seconds = math.nan
        if name not in names or not (math.isfinite(seconds) and seconds > 0):
            raise ConfigError(
                f"{TIMINGS_ENV}: {part.strip()!r} is not name=seconds (seconds over 0, "
                f"names: {', '.join(names)}); it is for tests: unset it"
            )
        given[name] = seconds
    return RelayTimings(**given)
