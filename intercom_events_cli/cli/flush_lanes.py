"""``ievents flush`` for several workspaces: ``--all-profiles`` or ``--profile`` repeated.

Each profile's workspace is delivered with that profile's token, in a lane of its own
(:mod:`intercom_events_cli.delivery.lanes`); one ``--profile`` (or none) is the flush of
:mod:`.flush`, unchanged. Here: which profiles, their settings, and the words.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, ExitCode, IeventsError, UsageError
from .common import attempt_logger, stop_on_signals
from .output import Output
from .render import failure_hint
from .render_json import flush_json
from .render_lanes import lane_json, lane_label, lane_line

if TYPE_CHECKING:
    from ..config.settings import Settings
    from ..delivery.engine import FlushReport
    from ..delivery.lanes import Lane, LaneConfig, LanesReport
    from ..outbox import OutboxSummary
    from ..outbox.store import OutboxLocation
    from .options import Options


def chosen_profiles(
    profiles: Sequence[str] | None, all_profiles: bool, opts: Options
) -> list[str] | None:
    """The profiles of a flush over several workspaces; None for the one-profile flush
    (no ``--profile``, or one: exactly what it always meant)."""
    names = list(dict.fromkeys(profiles or []))  # a name given twice is one lane
    if all_profiles and names:
        raise UsageError(
            "--all-profiles and --profile cannot be combined",
            "use --all-profiles for every profile in config.toml, or name each with --profile",
        )
    if all_profiles:
        from ..config.profiles import profile_names

        path, names = profile_names(opts.environment())
        if not names:
            raise ConfigError(
                f"--all-profiles found no profiles in {path}",
                "add a [profiles.NAME] table per workspace there (region, token_env or "
                "token_file), or set IEVENTS_CONFIG to the file that has them",
            )
    return names if len(names) > 1 or all_profiles else None


def lane_configs(
    names: Sequence[str], opts: Options
) -> tuple[list[LaneConfig], OutboxLocation, Any]:
    """Each profile's settings (the flags over each), the one outbox they share, and the
    first profile's variables (for the outbox's options)."""
    from ..delivery.lanes import LaneConfig

    if opts.token_file is not None:
        raise UsageError(
            "--token-file names one token: with several profiles each uses its own",
            "set token_file or token_env in each profile instead",
        )
    configs: list[LaneConfig] = []
    first_env: Any = None
    location: OutboxLocation | None = None
    for name in names:
        lane = opts.for_profile(name)
        here = lane.outbox_location()
        if location is not None and str(here) != str(location):
            raise ConfigError(
                f"profiles {names[0]!r} and {name!r} use different outboxes ({location} and "
                f"{here}); one flush delivers one outbox",
                "give --outbox, or flush each outbox on its own",
            )
        if location is None:
            location, first_env = here, lane.environment()
        configs.append(LaneConfig(name, lane.settings(), lane.settings))
    assert location is not None
    return configs, location, first_env


def merged(report: LanesReport) -> Any:
    """The lanes' reports as one (the counts, the codes, the dead letters) for the summary
    line and ``--json``; each lane's own failure is told by :func:`tell_lanes`."""
    from ..delivery.engine import FlushReport, StopReason

    total = FlushReport(elapsed_s=report.elapsed_s, waiting_elsewhere=report.waiting_elsewhere)
    for lane in report.lanes:
        one = lane.report
        if one is None:
            continue
        for name in ("claimed", "delivered", "dead", "refused", "deferred", "released"):
            setattr(total, name, getattr(total, name) + getattr(one, name))
        total.retried_in_run += one.retried_in_run
        total.probed = total.probed or one.probed
        total.codes |= one.codes
        total.internal_errors += one.internal_errors
        total.dead_letters += one.dead_letters[: 1000 - len(total.dead_letters)]
        if one.stopped is StopReason.INTERRUPTED or total.stopped is None:
            total.stopped = one.stopped
        if one.next_attempt_at is not None:
            total.next_attempt_at = min(
                total.next_attempt_at or one.next_attempt_at, one.next_attempt_at
            )
    return total


def pending_of(lane: Lane, remaining: OutboxSummary) -> int:
    """Pending and in-flight events of the lane's workspace."""
    return sum(
        count
        for destination, count in remaining.pending_by_destination
        if destination is not None
        and destination.base_url == lane.base_url
        and lane.workspace is not None
        and destination.workspace_id == lane.workspace
    )


def workspaces_json(
    profile: str | None,
    settings: Settings,
    workspace: str | None,
    report: FlushReport,
    remaining: OutboxSummary,
) -> list[dict[str, Any]]:
    """``workspaces`` of a one-profile ``flush --json``: its one workspace, as with several."""
    from ..delivery.lanes import Lane

    lane = Lane(profile or "", settings, workspace, report=report)
    return [lane_json(lane, pending_of(lane, remaining))]


def refused_text(refused: IeventsError) -> str:
    """A token refused by GET /me while none of its events was tried (nothing else says it)."""
    from ..delivery.workspaces import refusal_text

    return f"{refusal_text(refused)}: {refused.message}; none of its events was delivered"


def refused_hint(refused: IeventsError, profile: str | None) -> str:
    """How to look into a refused token (``profile``: the one it came from)."""
    check = f"ievents check --profile {profile}" if profile else "ievents check"
    return refused.hint or f"check the token (and the base URL), e.g. {check}"


def lanes_json(report: LanesReport, remaining: OutboxSummary) -> list[dict[str, Any]]:
    """``workspaces`` of ``flush --json`` over several: each lane, and why it failed."""
    lanes = []
    for lane in report.lanes:
        body = lane_json(lane, pending_of(lane, remaining))
        if lane.refused is not None:
            body["why"] = refused_text(lane.refused)
        lanes.append(body)
    return lanes


def tell_lanes(ui: Output, report: LanesReport, remaining: OutboxSummary) -> None:
    """One line per workspace (stdout); a failing one also on stderr, with its hint."""
    for lane in report.lanes:
        text, failure = lane_line(lane, pending_of(lane, remaining))
        if not ui.json_mode:
            ui.result(f"  {text}")
        if lane.refused is not None:
            # Not learned, the label is the profile's already: it is not said twice.
            label = lane_label(lane)
            label += f" [profile {lane.profile}]" if lane.workspace else ""
            ui.error(
                f"{label}: {refused_text(lane.refused)}",
                hint=refused_hint(lane.refused, lane.profile),
            )
        elif failure is not None:
            ui.error(
                f"{lane_label(lane)}: {text.partition(': ')[2]}",
                failure_hint(failure, lane.settings),
            )


def flush_several(
    ui: Output,
    names: Sequence[str],
    opts: Options,
    *,
    concurrency: int,
    max_time: float | None,
    now: bool,
    watch: bool,
    metrics_port: str | None,
    report_flush: Callable[..., None],
) -> int:
    """Deliver every profile's workspace at once (``watch``: as a relay, until stopped);
    returns the exit code. ``report_flush`` words the totals (the one-profile flush's)."""
    from ..delivery.lanes import flush_lanes, lane_concurrency
    from ..outbox.owner import lease_seconds
    from .common import open_outbox
    from .render import waiting_for_workspace_json, waiting_for_workspace_text

    configs, location, env = lane_configs(names, opts)
    concurrency = lane_concurrency(concurrency, len(configs))
    if watch:
        from .watch import watch_several

        return watch_several(
            ui, configs, location, env, concurrency=concurrency, metrics_port=metrics_port
        )
    from ..outbox.store import backend_of, open_store

    stop = threading.Event()
    # A connection per lane where writers run side by side (PostgreSQL); one where they
    # take turns anyway (SQLite: one file).
    concurrent = backend_of(location).concurrent_writers
    own = (lambda: open_store(location, env)) if concurrent else None
    with open_outbox(location, env) as store, stop_on_signals(stop):
        report = flush_lanes(
            store,
            configs,
            stop=stop,
            open_lane_store=own,
            on_attempt=attempt_logger(ui),
            concurrency=concurrency,
            max_time=max_time,
            ignore_schedule=now,
            lease_s=lease_seconds(env),
        )
        remaining = store.summary()
        waiting = store.waiting_for_workspace()
    total = merged(report)
    if ui.json_mode:
        body = flush_json(total, location, remaining)
        body["exit_code"] = int(report.exit_code)
        body["ok"] = report.exit_code == ExitCode.OK
        body["workspaces"] = lanes_json(report, remaining)
        body["waiting_for_workspace"] = waiting_for_workspace_json(waiting)
        ui.json(body)
    first = dataclasses.replace(configs[0].settings)
    report_flush(ui, total, first, remaining, max_time)
    tell_lanes(ui, report, remaining)
    for workspace, count in waiting:
        ui.info(waiting_for_workspace_text(workspace, count))
    return int(report.exit_code)
