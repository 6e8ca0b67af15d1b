"""The words of a flush or relay over several workspaces (``--all-profiles``, ``--profile``
repeated): a workspace's label, its line, its ``--json`` object. Never a token."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..outcome import Outcome, api_error_text, status_text
from .render import delivery_counts, setup_cause

if TYPE_CHECKING:
    from ..delivery.lanes import Lane


def lane_label(lane: Lane) -> str:
    """``workspace abc123 (Europe)``; before GET /me answered: ``profile eu (Europe)``.
    Never the token."""
    if lane.workspace:
        return f"workspace {lane.workspace} ({lane.region})"
    return f"profile {lane.profile} ({lane.region}, workspace not learned yet)"


def lane_line(lane: Lane, pending: int) -> tuple[str, Outcome | None]:
    """One workspace's line of a flush over several, and the failure to hint about."""
    report = lane.report
    if lane.served_by is not None or report is None:
        served = f"served by profile {lane.served_by}'s lane (same workspace)"
        return f"{lane_label(lane)} [profile {lane.profile}]: {served}", None
    released = f"{report.released} not sent" if report.released else None
    counts = delivery_counts(
        report.delivered, report.dead, report.deferred, released, report.refused
    )
    text = f"{lane_label(lane)} [profile {lane.profile}]: {counts}; {pending} pending"
    failure = report.last_failure
    if report.setup_failures and failure is not None:
        return f"{text}: {setup_cause(failure)}, its events stay pending", failure
    if report.deferred and failure is not None:
        return f"{text}: {deferred_line(failure)}", failure
    return text, None


def deferred_line(failure: Outcome) -> str:
    """``not delivered (503 Service Unavailable), retried later``."""
    last = status_text(failure.status) if failure.status is not None else None
    return f"not delivered ({api_error_text(last, failure.error_message)}), retried later"


def lane_json(lane: Lane, pending: int) -> dict[str, Any]:
    """One workspace of ``flush --json`` (``workspaces``): never a token."""
    report = lane.report
    return {
        "workspace_id": lane.workspace,
        "region": lane.region,
        "base_url": lane.base_url,
        "profile": lane.profile,
        "served_by": lane.served_by,
        "exit_code": int(lane.exit_code()),
        "delivered": report.delivered if report else 0,
        "dead": report.dead if report else 0,
        "deferred": report.deferred if report else 0,
        "released": report.released if report else 0,
        "stopped": report.stopped if report else None,
        "pending": pending,
        "why": lane_line(lane, pending)[0].partition(": ")[2] if report else None,
    }
