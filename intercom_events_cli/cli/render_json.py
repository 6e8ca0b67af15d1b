"""The ``--json`` objects of the commands: ``send --queue``, ``flush``, ``batch`` and
``outbox status``, built from the core's results with :mod:`.render`'s pieces.

It writes nothing itself.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from ..errors import ExitCode
from .environment import current
from .render import destination_json, outcome_json, when

if TYPE_CHECKING:
    from ..capture import CaptureResult
    from ..delivery.batch import BatchMode, BatchReport
    from ..delivery.results import FlushReport
    from ..outbox import OutboxSummary
    from ..outbox.store import OutboxLocation


def capture_json(result: CaptureResult) -> dict[str, Any]:
    """The ``send --queue`` / ``--queue-on-failure`` ``--json`` object."""
    from ..capture import CaptureState

    failure = result.failure
    if failure is not None:
        body = outcome_json(failure, queued=True)
    else:
        body = {
            "ok": True,
            "delivered": False,
            "queued": True,
            "status": None,
            "attempts": 0,
            "request_id": None,
            "event": result.event.payload(),
            "error": None,
        }
    body["exit_code"] = int(result.exit_code)
    if result.stored:
        body["outbox_id"] = result.outbox_id
        if failure is None:
            body["duplicate"] = False
        body["ok"] = result.exit_code == 0
        return body
    body = {**body, "outbox_id": result.outbox_id, "duplicate": True}
    row = result.row
    assert row is not None
    if result.state is CaptureState.ALREADY_DELIVERED:
        body.update(ok=True, queued=False, delivered=True, status=row.last_status)
    elif result.state is CaptureState.DEAD_LETTER:
        body.update(ok=False, queued=False, status=row.last_status, error=row.error())
    else:
        body.update(ok=True, queued=True)
    return body


def stored_event(text: str) -> Any:
    """A stored event's JSON, or its text as stored when that is not JSON (refused)."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def flush_json(
    report: FlushReport,
    path: OutboxLocation,
    remaining: OutboxSummary | None,
    due_remaining: int = 0,
) -> dict[str, Any]:
    """The ``flush --json`` object."""
    from ..outbox import State

    counts = remaining.counts if remaining is not None else {}
    return {
        "ok": report.exit_code == ExitCode.OK,
        "exit_code": int(report.exit_code),
        "outbox": str(path),
        "claimed": report.claimed,
        "delivered": report.delivered,
        "dead": report.dead,
        "refused": report.refused,
        "deferred": report.deferred,
        "released": report.released,
        "stopped": report.stopped,
        "probed": report.probed,
        "retried_in_run": report.retried_in_run,
        "due_remaining": due_remaining,
        "waiting_elsewhere": [
            {
                "base_url": destination.base_url,
                "api_version": destination.api_version,
                "workspace_id": destination.workspace_id,
                "region": destination.region,
                "events": count,
            }
            for destination, count in report.waiting_elsewhere
        ],
        "next_attempt_at": when(report.next_attempt_at),
        "elapsed_s": round(report.elapsed_s, 3),
        "remaining": {state.value: counts.get(state, 0) for state in State},
        # At most the first 1,000 (``dead`` counts all; outbox list --dead shows every one).
        "dead_letters": [
            {
                "id": d.row.id,
                "event": stored_event(d.row.payload_text),
                "status": d.outcome.status if d.outcome else None,
                # Refused before delivery: the reason the outbox keeps.
                "error": d.outcome.error() if d.outcome else d.row.error(),
            }
            for d in report.dead_letters
        ],
    }


def summary_json(report: BatchReport, rejects: str | None, mode: BatchMode) -> dict[str, Any]:
    """The ``batch --json`` object."""
    from ..delivery.batch import BatchMode

    return {
        "ok": report.exit_code == ExitCode.OK,
        "exit_code": int(report.exit_code),
        "dry_run": mode is BatchMode.DRY_RUN,
        "queue_only": mode is BatchMode.QUEUE,
        "read": report.read,
        "valid": report.valid,
        "invalid": report.invalid,
        "skipped": report.skipped,
        "queued": report.queued,
        "delivered": report.delivered,
        "dead": report.dead,
        "pending": report.pending,
        "failed": report.failed,
        "not_due": report.not_due,
        "in_flight_elsewhere": report.elsewhere,
        "elapsed_s": round(report.elapsed_s, 3),
        "events_per_s": round(report.events_per_s, 1),
        "rejects": rejects,
        "input_error": report.input_error,
        "interrupted": report.interrupted,
    }


def schema_text(path: OutboxLocation, version: int) -> str:
    """``SQLite, schema version 3``: each backend numbers its own schema's versions."""
    from ..outbox.store import backend_label

    return f"{backend_label(path)}, schema version {version}"


def status_json(
    path: OutboxLocation, summary: OutboxSummary | None, source: str = ""
) -> dict[str, Any]:
    """The ``outbox status --json`` object; ``source``: why this outbox (``--outbox``, ...)."""
    from ..outbox import State

    now = current().clock()

    def age(moment: float | None) -> float | None:
        return None if moment is None else round(max(0.0, now - moment), 1)

    counts = summary.counts if summary is not None else {}
    oldest = summary.oldest_pending_created if summary else None
    last_flush = summary.last_flush_at if summary else None
    last_success = summary.last_success_at if summary else None
    heartbeat = summary.relay_heartbeat_at if summary else None
    stopped = summary.relay_stopped_at if summary and summary.relay_stopped else None
    return {
        "path": str(path),
        "source": source,
        "exists": summary is not None,
        "schema_version": summary.schema_version if summary else None,
        "pending": counts.get(State.PENDING, 0),
        "in_flight": counts.get(State.IN_FLIGHT, 0),
        "dead": counts.get(State.DEAD, 0),
        "delivered": counts.get(State.DELIVERED, 0),
        "oldest_pending_at": when(oldest),
        "oldest_pending_age_s": age(oldest),
        "next_attempt_at": when(summary.next_attempt_at if summary else None),
        "last_flush_at": when(last_flush),
        "last_flush_age_s": age(last_flush),
        "last_flush_exit_code": summary.last_flush_exit_code if summary else None,
        "last_success_at": when(last_success),
        "last_success_age_s": age(last_success),
        # A running relay (flush --watch) beats every few seconds; null: none ever ran.
        "relay_heartbeat_at": when(heartbeat),
        "relay_heartbeat_age_s": age(heartbeat),
        # When the relay that spoke last stopped cleanly; null: it runs (or none ran).
        "relay_stopped_at": when(stopped),
        # Pending and in-flight events per destination; unbound (an older outbox): null.
        "pending_by_destination": [
            {"destination": destination_json(destination), "events": count}
            for destination, count in (summary.pending_by_destination if summary else ())
        ],
    }
