"""Which workspace a token belongs to, learned once per token with GET /me.

Capture stays offline (a queued event is bound to its token); the first flush, relay or
``check`` that uses a token asks Intercom once, and the outbox remembers the answer
(see :meth:`~intercom_events_cli.outbox.store.OutboxStore.learn`). From then on every
token of that workspace delivers the events captured under any of them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from ..errors import ExitCode, IeventsError

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..http.client import AttemptLog
    from ..outbox.store import OutboxStore


def token_refused(exc: IeventsError) -> bool:
    """Whether GET /me's failure refuses the token itself (77), or the base URL is not
    Intercom's (78), rather than an outage a later try may get past."""
    return exc.exit_code in (ExitCode.AUTH, ExitCode.CONFIG)


def refusal_text(exc: IeventsError) -> str:
    """What a refused GET /me means, for a token none of whose events met the refusal."""
    if exc.exit_code == ExitCode.AUTH:
        return "the token was rejected when asking Intercom which workspace it belongs to"
    return "asking Intercom which workspace the token belongs to failed"


def learn_workspace(
    store: OutboxStore,
    settings: Settings,
    on_attempt: Callable[[AttemptLog], None] | None = None,
    name: str | None = None,
    on_failure: Callable[[IeventsError], None] | None = None,
) -> str | None:
    """The workspace id of the token of ``settings``: remembered, or asked with one GET
    /me and remembered (``name``: the profile it was chosen by, which SQL ``enqueue`` may
    name). None when there is no token or Intercom did not say (a revoked
    token, an outage): the delivery that follows meets the same failure and reports it,
    and the next run asks again. ``on_failure`` hears why GET /me failed (a relay whose
    token has no rows of its own to deliver has no delivery to report it).
    """
    if not settings.token:
        return None
    known = store.token_workspace(settings)
    if known:
        # Again: it binds to the workspace what a capture bound to one of its tokens just
        # as the workspace was learned (and the profile's name, for SQL enqueue).
        store.learn(settings, known, name)
        return known
    from ..http.client import EventsClient
    from ..http.lookup import get_me

    # One attempt: the delivery that follows retries (and reports) the same failure.
    once = dataclasses.replace(settings, retries=0)
    try:
        with EventsClient(once, on_attempt=on_attempt) as client:
            owner = get_me(client)
    except IeventsError as exc:
        if on_failure is not None:
            on_failure(exc)
        return None
    if not owner.app_id_code:
        return None
    store.learn(settings, owner.app_id_code, name)
    return owner.app_id_code
