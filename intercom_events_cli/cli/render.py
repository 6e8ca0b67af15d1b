"""How outcomes read: failure text and hints, the JSON of an outcome, a row or an error,
plurals and times. The --json objects of whole commands are in :mod:`.render_json`.

Shared by every command (``send``, ``flush``, ``batch``, ``outbox``); it writes nothing itself.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..errors import ExitCode
from ..event import format_utc
from ..outcome import (
    CODE_BAD_URL,
    CODE_TLS,
    CODE_UNEXPECTED,
    Outcome,
    OutcomeKind,
    api_error_text,
    status_text,
)
from .environment import current

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..delivery.destination import Destination
    from ..delivery.results import Delivery, StopReason
    from ..errors import ApiError, IeventsError
    from ..http.lookup import Contact
    from ..outbox import OutboxRow
    from ..outbox.store import OutboxLocation


def outcome_json(outcome: Outcome, *, queued: bool = False) -> dict[str, Any]:
    """The ``--json`` object for a delivery attempt."""
    return {
        "ok": outcome.delivered or queued,
        "exit_code": 0 if queued else int(outcome.exit_code),
        "delivered": outcome.delivered,
        "queued": queued,
        "status": outcome.status,
        "attempts": outcome.attempts,
        "request_id": outcome.request_id,
        "event": outcome.event.payload(),
        "error": outcome.error(),
    }


def token_rejected_hint(settings: Settings, allowed: str) -> str:
    """401/403: the token, its permission (``allowed``), or the workspace's region."""
    # token_source may end ", overriding <a lower layer's token>": said apart, as a
    # second suspect, not in the middle of the sentence.
    source, _, hidden = settings.token_source.partition(", overriding ")
    also = f" (it overrides the token from {hidden}: is that the one to use?)" if hidden else ""
    return (
        f"the token was rejected: check that the token from {source or 'the settings'} is "
        f"current and {allowed}{also}; EU and AU workspaces need --region eu or --region au "
        f"(this request went to {settings.base_url})"
    )


def failure_hint(outcome: Outcome, settings: Settings) -> str:
    """What the user can do about a failed delivery."""
    event = outcome.event
    if outcome.kind is OutcomeKind.AUTH:
        return token_rejected_hint(settings, "has the 'write events' permission")
    if outcome.error_code == CODE_TLS:
        return (
            f"the certificate of {settings.base_url} is not trusted here: behind a proxy that "
            "inspects TLS, point SSL_CERT_FILE at its CA bundle (PEM); otherwise check "
            "--base-url / INTERCOM_BASE_URL and the system's CA certificates"
        )
    if outcome.error_code == CODE_BAD_URL:
        return f"{settings.base_url} cannot be used: check --base-url / INTERCOM_BASE_URL"
    if outcome.error_code == CODE_UNEXPECTED:
        return (
            f"something other than Intercom answered at {settings.base_url} (a captive portal, "
            "a proxy or a wrong --base-url); the event may not have arrived: check the "
            "network, HTTPS_PROXY / NO_PROXY and --base-url / INTERCOM_BASE_URL, then send "
            "again (Intercom de-duplicates the same event)"
        )
    if outcome.kind is OutcomeKind.CONFIG:
        return (
            f"{settings.base_url} answered with a redirect, which ievents never follows (it "
            "would carry the token elsewhere); check --base-url / INTERCOM_BASE_URL"
        )
    if outcome.kind is OutcomeKind.NO_CONTACT:
        return (
            f"no contact with {event.contact} in this workspace; events do not create "
            "contacts: create the contact first, or check the identifier"
        )
    if outcome.kind is OutcomeKind.INVALID:
        return (
            "Intercom refused the event's data; fix it and send again. If it is about "
            "active event names, archive unused event names in Intercom "
            "(Settings > Data > Events)"
        )
    retries = outcome.attempts - 1
    when = f"in {outcome.retry_after_s:.0f} s" if outcome.retry_after_s else "in a few minutes"
    cause = (
        "Intercom's rate limit was reached"
        if outcome.status == 429
        else "Intercom or the network is unavailable"
    )
    if outcome.retry_after_s and retries < settings.retries:
        return (
            f"{cause} and Intercom asked to wait {outcome.retry_after_s:.0f} s, longer than "
            f"ievents waits within one run: try again {when} (or use --queue-on-failure)"
        )
    return (
        f"gave up after {outcome.attempts} attempt{'s' if outcome.attempts != 1 else ''} "
        f"({retries} retr{'ies' if retries != 1 else 'y'}); {cause}: try again {when}"
    )


def lookup_hint(exc: ApiError, settings: Settings, contact: Contact | None = None) -> str:
    """What the user can do about a failed GET (``check``, ``list``)."""
    from ..http.client import proxy_for

    if exc.exit_code is ExitCode.AUTH:
        return token_rejected_hint(settings, "allowed to read admins and events")
    if exc.exit_code is ExitCode.NO_CONTACT and contact is not None:
        return f"no contact with {contact} in this workspace; check the identifier"
    if exc.exit_code is ExitCode.CONFIG:
        return (
            f"{settings.base_url} did not answer like Intercom's API: check --base-url "
            f"(or INTERCOM_BASE_URL) and --api-version (now {settings.api_version})"
        )
    if exc.exit_code is ExitCode.DATA:
        return "Intercom refused the request; check the contact identifier"
    proxy = proxy_for(settings.base_url)
    if proxy:
        return (
            f"the request went through the proxy {proxy}: check it (HTTPS_PROXY, NO_PROXY), "
            "or try again in a few minutes"
        )
    return "Intercom or the network is unavailable: try again in a few minutes"


def describe_failure(outcome: Outcome) -> str:
    """One line: status, API error code and message, request id."""
    parts = [status_text(outcome.status) if outcome.status is not None else "failed"]
    detail = api_error_text(outcome.error_code, outcome.error_message)
    line = f"{parts[0]}: {detail}" if detail else parts[0]
    if outcome.request_id:
        line += f" (request {outcome.request_id})"
    return f"{outcome.event.event_name} for {outcome.event.contact} not delivered: {line}"


def when(seconds: float | None) -> str | None:
    """Unix time as ``2024-01-31T12:00:00Z`` (None stays None)."""
    return None if seconds is None else format_utc(int(seconds))


def relative(seconds: float, now: float | None = None) -> str:
    """``5 min ago`` / ``in 30 s``."""
    delta = (current().clock() if now is None else now) - seconds
    size = abs(delta)
    if size < 90:
        text = f"{size:.0f} s"
    elif size < 90 * 60:
        text = f"{size / 60:.0f} min"
    elif size < 36 * 3600:
        text = f"{size / 3600:.0f} h"
    else:
        text = f"{size / 86400:.0f} days"
    return f"{text} ago" if delta >= 0 else f"in {text}"


def plural(count: int, word: str) -> str:
    """``1 event``, ``2 events``."""
    return f"{count} {word}{'' if count == 1 else 's'}"


def agree(count: int, one: str, many: str) -> str:
    """The word that agrees with ``count``: ``agree(1, "waits", "wait")`` is ``waits``."""
    return one if count == 1 else many


def seconds(elapsed_s: float) -> str:
    """``2.5 s``, or ``under 0.1 s`` for what would show as ``0.0 s``."""
    return "under 0.1 s" if elapsed_s < 0.05 else f"{elapsed_s:.1f} s"


def timing(elapsed_s: float, count_per_s: float, unit: str) -> str:
    """``2.5 s, 400 events/s``; under 0.1 s just that: a rate from ~0 s means nothing."""
    if elapsed_s < 0.05:
        return seconds(elapsed_s)
    return f"{seconds(elapsed_s)}, {count_per_s:.0f} {unit}/s"


def destination_json(destination: Destination | None) -> dict[str, str | None] | None:
    """A destination without any secret: base URL, API version, workspace and region."""
    if destination is None:
        return None
    return {
        "base_url": destination.base_url,
        "api_version": destination.api_version,
        "workspace_id": destination.workspace_id,
        "region": destination.region,
    }


def destination_text(destination: Destination | None) -> str:
    """``workspace abc123xy (Europe)``; ``unbound`` for None. Never the token."""
    if destination is None:
        return "unbound (any configuration that flushes)"
    return destination.describe()


def row_json(
    row: OutboxRow, destinations: Mapping[int, Destination] | None = None
) -> dict[str, Any]:
    """One outbox row for ``--json``: the event (API field names), its last error and
    its destination (null: unbound)."""
    from ..outbox import State

    return {
        "id": row.id,
        "state": row.state.value,
        "event": row.payload,
        "attempts": row.attempts,
        "captured_at": when(row.created),
        "updated_at": when(row.updated),
        "next_attempt_at": when(row.next_attempt_at) if row.state is State.PENDING else None,
        "last_status": row.last_status,
        "error": row.error(),
        "request_id": row.request_id,
        "dedup_key": row.dedup_key,
        "destination": destination_json(
            (destinations or {}).get(row.destination_id) if row.destination_id else None
        ),
    }


def error_json(exc: IeventsError) -> dict[str, Any]:
    """``{"code", "message", "hint"}`` of an error, as every command's ``--json`` shows it."""
    return {"code": exc.code, "message": exc.message, "hint": exc.hint}


def failure_json(exc: IeventsError, **fields: Any) -> dict[str, Any]:
    """Every command's ``--json`` document for an error: ``{"ok": false, "exit_code",
    ...fields, "error": {"code", "message", "hint"}}``."""
    return {"ok": False, "exit_code": int(exc.exit_code), **fields, "error": error_json(exc)}


def no_outbox_text(path: OutboxLocation) -> str:
    """A read-only command found no outbox at ``path``: where, and what creates one."""
    return (
        f"no outbox at {path} yet (nothing was ever queued there); send --queue, "
        "batch --queue or flush --watch creates it"
    )


def error_hint(exc: IeventsError) -> str | None:
    """The hint shown under an error: for a missing extra, the command that installs it
    into this ievents, the way it was installed (never a package name no index serves)."""
    from ..errors import MissingExtra

    if not isinstance(exc, MissingExtra):
        return exc.hint
    from ..extras import extra_install_command

    install = f"install it: {extra_install_command(exc.extra)}"
    return f"{install}; {exc.hint}" if exc.hint else install


def stop_cause(reason: StopReason | None) -> str:
    """Why a run left events undelivered, as a batch summary says it."""
    from ..delivery.results import StopReason

    causes = {
        StopReason.AUTH: "the token was rejected",
        StopReason.UNAVAILABLE: "Intercom or the network is unavailable",
        StopReason.MAX_TIME: "--max-time was reached",
    }
    temporary = "some deliveries failed temporarily"
    return temporary if reason is None else causes.get(reason, temporary)


def waiting_elsewhere_text(destination: Destination, count: int) -> str:
    """Events this configuration does not deliver: they were captured for another workspace."""
    return (
        f"{plural(count, 'event')} {agree(count, 'waits', 'wait')} for "
        f"{destination.describe()}: run flush with a token of that workspace, or "
        "ievents outbox move"
    )


# A relay beats every 5 s (delivery/timings.py HEARTBEAT_S); a minute without a beat is the
# alert the monitoring page suggests: status says so rather than "alive".
RELAY_SILENT_S = 60.0


def relay_silent_text(last_beat: str) -> str:
    """``outbox status`` when the last relay's heartbeat is old and it never said it
    stopped (killed, frozen, or its host gone)."""
    # Here, not at the top: render.py is on every command's start-up path.
    from ..delivery.timings import HEARTBEAT_S

    return (
        f"no heartbeat since {last_beat}; a running relay beats every {HEARTBEAT_S:g} s: "
        "check that it runs (a relay killed or frozen says nothing)"
    )


def waiting_for_workspace_text(workspace: str | None, count: int) -> str:
    """SQL-enqueued events no token can take yet: their workspace unseen, or none named."""
    if workspace is None:
        return (
            f"{plural(count, 'event')} enqueued from SQL {agree(count, 'names', 'name')} no "
            "workspace and the outbox has no default: set one with ievents outbox "
            "default-workspace --profile NAME"
        )
    return (
        f"{plural(count, 'event')} {agree(count, 'waits', 'wait')} for workspace "
        f"{workspace}: no flush or check has used a token of it yet"
    )


def waiting_for_workspace_json(waiting: list[tuple[str | None, int]]) -> list[dict[str, Any]]:
    """``[{"workspace": "abc123xy" or null, "events": 3}]``."""
    return [{"workspace": workspace, "events": count} for workspace, count in waiting]


def setup_cause(outcome: Outcome) -> str:
    """Why delivery stopped at once, in a few words: the token rejected, a redirect, or
    what else makes the configuration unusable (an untrusted certificate, a bad URL)."""
    if outcome.kind is OutcomeKind.AUTH:
        return "the token was rejected"
    if outcome.status is None:
        return outcome.error_message or "the configuration cannot work"
    return "the base URL redirects"


def delivery_counts(
    delivered: int, dead: int, deferred: int, released: str | None, refused: int = 0
) -> str:
    """``3 delivered, 1 rejected, 2 to retry later`` (and what was handed back unsent).

    ``refused`` of the ``dead`` were never sent: invalid as stored.
    """
    parts = [f"{delivered} delivered"]
    if dead - refused:
        parts.append(f"{dead - refused} rejected")
    if refused:
        parts.append(f"{refused} refused as invalid")
    if deferred:
        parts.append(f"{deferred} to retry later")
    if released:
        parts.append(released)
    return ", ".join(parts)


def delivery_line(delivery: Delivery) -> str:
    """``flush -v``: ``#12 signed-up for user_id 7: delivered (202 Accepted)``."""
    from ..outbox import State

    row, outcome = delivery.row, delivery.outcome
    if outcome is None and delivery.state is State.DEAD:
        return f"#{row.id} {row.event_name}: dead letter ({row.last_error_message})"
    what = f"#{row.id} {row.event_name} for {row.event().contact}"
    if outcome is None:
        return f"{what}: not sent, pending again"
    if delivery.state is State.DELIVERED:
        return f"{what}: delivered ({status_text(outcome.status)})"
    if delivery.state is State.DEAD:
        return f"{what}: dead letter ({status_text(outcome.status)})"
    return f"{what}: pending again ({status_text(outcome.status)})"


def relay_line(delivery: Delivery) -> str:
    """``flush --watch -v``: ``#12 signed-up: delivered`` (or dead, pending again, not sent)."""
    from ..outbox import State

    row = delivery.row
    if delivery.outcome is None and delivery.state is State.DEAD:
        state = "dead (refused as invalid, never sent)"
    elif delivery.outcome is None:
        state = "not sent, pending again"
    elif delivery.state is State.PENDING:
        state = "pending again"
    else:
        state = delivery.state.value
    return f"#{row.id} {row.event_name}: {state}"


def refused_line(delivery: Delivery) -> str:
    """A relay's line for a row refused as invalid before delivery (a dead letter)."""
    row = delivery.row
    return (
        f"#{row.id} {row.event_name or '(no name)'} refused as invalid, kept as a dead letter "
        f"(ievents outbox list --dead): {row.last_error_message}"
    )
