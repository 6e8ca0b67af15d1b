"""Benchmark scenarios 13 and 14 (issue 22, part 5): one relay for ten workspaces.

13. N events queued for each of 10 workspaces (``batch --queue --profile wK``, not timed;
   N in all, spread evenly) are delivered by ``ievents flush --all-profiles`` and by
   ``ievents flush --watch --all-profiles`` (until the outbox holds nothing undelivered),
   on SQLite and on PostgreSQL, each workspace a fake Intercom of its own (a process)
   answering at once. The floor is ``floor_asyncio_httpx.py`` spreading the same number of
   events over the same kind of 10 fakes, 16 in flight in all. The three take turns; each
   run is a whole child process with its own CPU time and peak RSS. Two sizes, N and 4 N
   (one with --smoke): flat memory means the same peak at both.
14. Each workspace's fake enforces a 10-second window (``X-RateLimit-*``, 429 past the
   limit: 100 a window) and gets more events than one window allows (250);
   ``flush --all-profiles`` delivers them all. Measured: the share of requests answered
   429, and the time against the least the limits allow (the windows of the 10 fakes run
   side by side, so that minimum is the one of a single workspace's events).
"""

from __future__ import annotations

import contextlib
import subprocess
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from flush_bench import (
    FLOOR,
    FLUSH_LIMIT,
    WINDOW_LIMIT,
    _note,
    _outbox,
    _queue,
    run_watch,
    write_events,
)
from harness import BENCH_TOKEN, FakeServer, RunResult, run_measured
from outbox_bench import NO_PG, postgres

if TYPE_CHECKING:
    from run import Context, Row, Target

WORKSPACES = 10
FLOOR_TOOL = "floor: asyncio httpx over 10 fakes, 16 in flight"
FLAT_LIMIT = 1.1  # peak RSS at 4 N / at N
TOOLS = ("ievents flush --all-profiles", "ievents flush --watch --all-profiles")


def _profiles(ctx: Context, fakes: list[FakeServer]) -> tuple[Path, dict[str, str]]:
    """config.toml with a profile per fake (w0..w9), and the variables of their tokens."""
    folder = ctx.fresh_dir("lanes-config")
    config = folder / "config.toml"
    config.write_text(
        "".join(
            f'[profiles.w{k}]\nbase_url = "{fake.url}"\ntoken_env = "TOKEN_W{k}"\n\n'
            for k, fake in enumerate(fakes)
        )
    )
    return config, {f"TOKEN_W{k}": f"{BENCH_TOKEN}-w{k}" for k in range(len(fakes))}


def _queue_all(ctx: Context, env: dict[str, str], events: int) -> None:
    """Queue ``events`` in all, spread over the profiles (not timed); each workspace's
    user ids are its own (the outbox keeps one row per distinct event, and the floor sends
    N distinct ones)."""
    for k in range(WORKSPACES):
        count = events // WORKSPACES + (1 if k < events % WORKSPACES else 0)
        path = ctx.workdir / f"lanes-w{k}.ndjson"
        write_events(path, count, user_prefix=f"floor-w{k}-")
        _queue(ctx, env, path, "--profile", f"w{k}")
        path.unlink()


def one_run(
    ctx: Context, server: Any, backend: str, tool: str, events: int, **limit: Any
) -> tuple[RunResult, dict[str, int]]:
    """One run of ``tool`` against 10 fresh fakes; the result and the fakes' summed counts."""
    from run import wait_for_window_start

    with contextlib.ExitStack() as stack:
        fakes = [stack.enter_context(FakeServer(ctx.workdir, **limit)) for _ in range(WORKSPACES)]
        rundir = ctx.fresh_dir("lanes-bench")
        if tool == FLOOR_TOOL:
            urls = ",".join(fake.url for fake in fakes)
            argv = [ctx.python, str(FLOOR), urls, str(events), "--concurrency", "16"]
            result = run_measured(argv, env=ctx.env(), cwd=rundir, timeout=ctx.sizes.timeout)
        else:
            config, tokens = _profiles(ctx, fakes)
            env = {**ctx.env(), **tokens, "IEVENTS_CONFIG": str(config)}
            # The environment's token and URL would beat every profile's.
            env.pop("INTERCOM_ACCESS_TOKEN", None)
            env.pop("INTERCOM_BASE_URL", None)
            outbox = _outbox(ctx, server, backend, "lanes")
            env["IEVENTS_OUTBOX"] = outbox
            _queue_all(ctx, env, events)
            if limit.get("rate_limit"):
                wait_for_window_start(limit["window"])
            started = time.time()  # not after the fakes stop: ten take a while
            if "--watch" in tool:
                argv = [*ctx.ievents, "flush", "--watch", "--all-profiles", "-q"]
                result = run_watch(argv, outbox, env=env, cwd=rundir, timeout=ctx.sizes.timeout)
            else:
                argv = [*ctx.ievents, "flush", "--all-profiles", "-q"]
                result = run_measured(argv, env=env, cwd=rundir, timeout=ctx.sizes.timeout)
    totals: dict[str, int] = {"started": int(started * 1000)} if tool != FLOOR_TOOL else {}
    for fake in fakes:
        for key, value in fake.stats.items():
            totals[key] = totals.get(key, 0) + value
    return result, totals


def _sizes(ctx: Context) -> tuple[int, ...]:
    n = ctx.sizes.flush_events[0]
    return (n, 4 * n) if len(ctx.sizes.flush_events) > 1 else (n,)


def scenario_lanes(ctx: Context, rows: list[Row]) -> None:
    """13. Queued events of 10 workspaces delivered by one flush / relay, beside the floor."""
    from run import Row

    s = ctx.sizes
    with postgres() as server:
        for backend in ("SQLite", "PostgreSQL"):
            for events in _sizes(ctx):
                name = f"13. {events:,} queued events over 10 workspaces ({backend})"
                tools = [Row(name, TOOLS[0], unit_count=events, is_ievents=True)]
                tools += [
                    Row(name, TOOLS[1], unit_count=events),
                    Row(name, FLOOR_TOOL, unit_count=events),
                ]
                rows += tools
                if backend == "PostgreSQL" and server is None:
                    for row in tools:
                        row.status = NO_PG
                    continue
                for index in range(s.bulk_repeat):
                    for row in tools:  # taking turns
                        ctx.progress(f"{name}: {row.tool} ({index + 1}/{s.bulk_repeat})")
                        _measure(ctx, server, backend, row, events)


def _measure(
    ctx: Context, server: Any, backend: str, row: Row, events: int, **limit: Any
) -> dict[str, int]:
    try:
        result, stats = one_run(ctx, server, backend, row.tool, events, **limit)
    except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
        row.failures.append(str(exc)[:80])
        row.status = "failed"
        return {}
    accepted = stats.get("accepted", 0)
    problem = None if accepted == events else f"servers accepted {accepted} of {events}"
    _note(row, result, events, problem)
    return stats


def scenario_lanes_window(ctx: Context, rows: list[Row]) -> None:
    """14. flush --all-profiles against 10 fakes each enforcing a rate window."""
    from run import Row, rate_limit_floor

    s = ctx.sizes
    # A quarter of scenario 10's per workspace (250 events, 100 per window: the same 2.5
    # windows): at 400 per workspace the ten would allow 400 events/s, about all that two
    # shared cores deliver at all (scenario 13), and the scenario would measure the CPU.
    per, limit, window = max(2, s.window_events // 4), max(1, s.window_limit // 4), s.window_s
    events = per * WORKSPACES
    name = f"14. 10 workspaces, each a window of {limit} per {window:g} s, {events:,} events"
    with postgres() as server:
        for backend in ("SQLite", "PostgreSQL"):
            row = Row(name, f"{TOOLS[0]} ({backend})", unit_count=events, is_ievents=True)
            rows.append(row)
            if backend == "PostgreSQL" and server is None:
                row.status = NO_PG
                continue
            for index in range(s.bulk_repeat):
                ctx.progress(f"{name}: {row.tool} ({index + 1}/{s.bulk_repeat})")
                runs = len(row.seconds)
                stats = _measure(ctx, server, backend, row, events, rate_limit=limit, window=window)
                if stats.get("posts"):
                    row.extra.setdefault("pct_429", []).append(
                        100 * stats["count_429"] / stats["posts"]
                    )
                if len(row.seconds) > runs:
                    seconds = row.seconds[-1]
                    started = stats["started"] / 1000
                    floor = rate_limit_floor(started, per, limit, window, 0.0)
                    row.extra.setdefault("floor_s", []).append(floor)
                    row.extra.setdefault("ratio_to_floor", []).append(seconds / floor)


def _find(rows: list[Row], prefix: str, backend: str, tool: str) -> Row | None:
    return next(
        (
            r
            for r in rows
            if r.scenario.startswith(prefix) and backend in r.scenario and r.tool == tool
        ),
        None,
    )


def lanes_targets(rows: list[Row]) -> list[Target]:
    """Issue 22, part 5 for 10 workspaces: flush / floor, flat memory, the rate windows."""
    from run import Target, unavailable

    out: list[Target] = []
    for backend in ("SQLite", "PostgreSQL"):
        sizes = sorted(
            {r.unit_count for r in rows if r.scenario.startswith("13.") and backend in r.scenario}
        )
        for tool in TOOLS:
            short = tool.removeprefix("ievents ")
            for events in sizes:
                prefix = f"13. {events:,} queued"
                mine, floor = (
                    _find(rows, prefix, backend, tool),
                    _find(rows, prefix, backend, FLOOR_TOOL),
                )
                name = f"10 workspaces: {short} / floor, {events:,} events ({backend})"
                reason = unavailable(mine) or unavailable(floor)
                if reason is not None or mine is None or floor is None:
                    out.append(Target(name, "-", f"<= {FLUSH_LIMIT}", reason or "skipped"))
                    continue
                ratio = (mine.median_s or 0.0) / (floor.median_s or 1e-9)
                figure = f"{ratio:.2f} ({mine.median_s:.2f} s / {floor.median_s:.2f} s)"
                out.append(
                    Target(
                        name,
                        figure,
                        f"<= {FLUSH_LIMIT}",
                        "PASS" if ratio <= FLUSH_LIMIT else "MISS",
                    )
                )
            if len(sizes) == 2:
                small, large = (_find(rows, f"13. {n:,} queued", backend, tool) for n in sizes)
                at = f"{sizes[1]:,} / at {sizes[0]:,}"
                name = f"10 workspaces: {short}: peak RSS at {at} ({backend})"
                if small is None or large is None or not small.peak_mib or not large.peak_mib:
                    out.append(Target(name, "-", f"<= {FLAT_LIMIT}", "skipped"))
                    continue
                ratio = large.peak_mib / small.peak_mib
                figure = f"{ratio:.2f} ({large.peak_mib:.1f} / {small.peak_mib:.1f} MiB)"
                out.append(
                    Target(
                        name, figure, f"<= {FLAT_LIMIT}", "PASS" if ratio <= FLAT_LIMIT else "MISS"
                    )
                )
    for backend in ("SQLite", "PostgreSQL"):
        row = next((r for r in rows if r.scenario.startswith("14.") and backend in r.tool), None)
        reason = unavailable(row)
        name = f"10 rate windows: time / minimum ({backend})"
        name_429 = f"10 rate windows: requests answered 429 ({backend})"
        if reason is not None or row is None:
            out.append(Target(name, "-", f"<= {WINDOW_LIMIT}", reason or "skipped"))
            out.append(Target(name_429, "-", "0 %", reason or "skipped"))
            continue
        ratio = row.extra_median("ratio_to_floor") or 0.0
        figure = f"{ratio:.2f} ({row.median_s:.2f} s / {row.extra_median('floor_s'):.2f} s)"
        out.append(
            Target(name, figure, f"<= {WINDOW_LIMIT}", "PASS" if ratio <= WINDOW_LIMIT else "MISS")
        )
        worst = max(row.extra.get("pct_429", [0.0]))
        out.append(
            Target(name_429, f"{worst:.1f} % (worst run)", "0 %", "PASS" if worst == 0 else "MISS")
        )
    return out


if __name__ == "__main__":
    raise SystemExit("run it through benchmarks/run.py --only lanes,lanes_window")
