"""Benchmark scenarios 9 and 10 (issue 22, part 5): how fast one relay empties an outbox.

9. N events already queued (``batch --queue``, not timed) are delivered by ``ievents flush``
   and by ``ievents flush --watch`` (until the outbox holds nothing undelivered), on SQLite
   and on PostgreSQL, against the fake Intercom answering at once. The floor is
   ``floor_asyncio_httpx.py``: a minimal asyncio httpx client posting the same number of
   events with 16 in flight to the same kind of fake. The three take turns; each run is a
   whole child process (spawn to exit, or to drained for ``--watch``), with its own CPU time
   and peak RSS. Two sizes (one with --smoke): flat memory means the same peak at both.
10. The fake enforces a 10-second window (``X-RateLimit-*`` headers, 429 past the limit);
   ``flush`` delivers more events than one window allows. Measured: the share of requests
   answered 429, and the time against the least the limit allows (``rate_limit_floor``).
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness import FakeServer, PeakWatcher, RunResult, run_measured
from outbox_bench import NO_PG, fresh_database, postgres

if TYPE_CHECKING:
    from run import Context, Row, Target

FLOOR = Path(__file__).resolve().parent / "floor_asyncio_httpx.py"
FLOOR_TOOL = "floor: asyncio httpx, 16 in flight"
FLUSH_LIMIT = 1.2  # flush / floor
WINDOW_LIMIT = 1.1  # time / minimum the limit allows
FLAT_LIMIT = 1.1  # peak RSS at 2 N / at N


def undelivered(outbox: str) -> int:
    """Rows not delivered yet, read straight from the outbox (SQLite file or PostgreSQL)."""
    if outbox.startswith("postgresql://"):
        import psycopg

        with psycopg.connect(outbox, autocommit=True) as db:
            row = db.execute("SELECT count(*) FROM ievents.events WHERE state <> 'delivered'")
            return int(row.fetchone()[0])  # type: ignore[index]
    with sqlite3.connect(f"file:{outbox}?mode=ro", uri=True, timeout=30) as db:
        return int(
            db.execute("SELECT count(*) FROM events WHERE state <> 'delivered'").fetchone()[0]
        )


def run_watch(
    argv: list[str], outbox: str, *, env: dict[str, str], cwd: Path, timeout: float
) -> RunResult:
    """Run a relay until the outbox is drained; its time is spawn to drained.

    Then SIGTERM, and its own rusage (CPU, peak RSS) with ``os.wait4``.
    """
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=err, env=env, cwd=cwd
        )
        peak = PeakWatcher(proc.pid)
        deadline = start + timeout
        seconds = timeout
        timed_out = True
        while time.perf_counter() < deadline and proc.poll() is None:
            time.sleep(0.02)
            try:
                if undelivered(outbox) == 0:
                    seconds, timed_out = time.perf_counter() - start, False
                    break
            except Exception:  # the relay may still be creating or migrating the outbox
                continue
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        killer = threading.Timer(30, proc.kill)
        killer.start()
        try:
            _, status, usage = os.wait4(proc.pid, 0)
        finally:
            killer.cancel()
        proc.returncode = os.waitstatus_to_exitcode(status)
        err.seek(0)
        return RunResult(
            argv=argv,
            seconds=seconds,
            exit_code=0 if proc.returncode in (0, -signal.SIGTERM) else proc.returncode,
            peak_rss_mib=peak.stop(usage.ru_maxrss),
            stdout="",
            stderr=err.read().decode("utf-8", "replace"),
            timed_out=timed_out,
            cpu_s=usage.ru_utime + usage.ru_stime,
        )


def write_events(path: Path, count: int, user_prefix: str = "floor-") -> None:
    """The floor's events, as NDJSON for ``batch --queue``; user ids ``user_prefix`` + N."""
    with path.open("w", encoding="utf-8") as out:
        for i in range(count):
            record = {
                "event_name": "floor-event",
                "user_id": f"{user_prefix}{i}",
                "created_at": 1_700_000_000 + i,
                "metadata": {"plan": "pro", "source": "benchmark"},
            }
            out.write(json.dumps(record) + "\n")


def _outbox(ctx: Context, server: Any, backend: str, label: str) -> str:
    if backend == "PostgreSQL":
        return fresh_database(server, label)
    return str(ctx.fresh_dir(label) / "outbox.sqlite3")


def _queue(ctx: Context, env: dict[str, str], events_file: Path, *options: str) -> None:
    """Queue the events (not timed), bound to the fake the run delivers to (``options``:
    more of batch's, such as ``--profile NAME``)."""
    subprocess.run(
        [*ctx.ievents, "batch", str(events_file), "--queue", "-q", *options],
        env=env,
        cwd=ctx.workdir,
        check=True,
        timeout=ctx.sizes.timeout,
        stdout=subprocess.DEVNULL,
    )


def _note(row: Row, result: RunResult, events: int, problem: str | None) -> None:
    if problem is None and not result.ok:
        problem = result.failure_summary()
    if problem is not None:
        row.failures.append(problem[:80])
        row.status = "failed"
        return
    row.seconds.append(result.seconds)
    row.peak_rss_mib.append(result.peak_rss_mib)
    row.extra.setdefault("cpu_ms_per_event", []).append(1000 * result.cpu_s / max(events, 1))


def one_run(
    ctx: Context, server: Any, backend: str, tool: str, events: int, events_file: Path, **limit: Any
) -> tuple[RunResult, dict[str, int]]:
    """One run of ``tool`` (the floor, flush, flush --watch) against a fresh fake."""
    from run import wait_for_window_start

    with FakeServer(ctx.workdir, **limit) as fake:
        env = ctx.env(base_url=fake.url)
        rundir = ctx.fresh_dir("flush-bench")
        if tool == FLOOR_TOOL:
            argv = [ctx.python, str(FLOOR), fake.url, str(events), "--concurrency", "16"]
            result = run_measured(argv, env=env, cwd=rundir, timeout=ctx.sizes.timeout)
        else:
            outbox = _outbox(ctx, server, backend, "flush")
            env["IEVENTS_OUTBOX"] = outbox
            _queue(ctx, env, events_file)
            if limit.get("rate_limit"):
                wait_for_window_start(limit["window"])
            if tool.endswith("--watch"):
                argv = [*ctx.ievents, "flush", "--watch", "-q"]
                result = run_watch(argv, outbox, env=env, cwd=rundir, timeout=ctx.sizes.timeout)
            else:
                argv = [*ctx.ievents, "flush", "-q"]
                result = run_measured(argv, env=env, cwd=rundir, timeout=ctx.sizes.timeout)
    return result, fake.stats


def scenario_flush(ctx: Context, rows: list[Row]) -> None:
    """9. Queued events delivered by flush and flush --watch, beside the floor."""
    from run import Row

    s = ctx.sizes
    with postgres() as server:
        for backend in ("SQLite", "PostgreSQL"):
            for events in s.flush_events:
                name = f"9. {events:,} queued events, fake answering at once ({backend})"
                tools = [
                    Row(name, "ievents flush", unit_count=events, is_ievents=True),
                    Row(name, "ievents flush --watch (until drained)", unit_count=events),
                    Row(name, FLOOR_TOOL, unit_count=events),
                ]
                rows += tools
                if backend == "PostgreSQL" and server is None:
                    for row in tools:
                        row.status = NO_PG
                    continue
                events_file = ctx.workdir / f"flush-{events}.ndjson"
                write_events(events_file, events)
                for index in range(s.bulk_repeat):
                    for row in tools:  # taking turns
                        ctx.progress(f"{name}: {row.tool} ({index + 1}/{s.bulk_repeat})")
                        tool = row.tool if row.tool == FLOOR_TOOL else row.tool.split(" (")[0]
                        try:
                            result, stats = one_run(ctx, server, backend, tool, events, events_file)
                        except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                            row.failures.append(str(exc)[:80])
                            row.status = "failed"
                            continue
                        accepted = stats.get("accepted", 0)
                        problem = (
                            None
                            if accepted == events
                            else f"server accepted {accepted} of {events}"
                        )
                        _note(row, result, events, problem)
                events_file.unlink()


def scenario_window(ctx: Context, rows: list[Row]) -> None:
    """10. flush against a fake enforcing a rate window, more events than one allows."""
    from run import Row, rate_limit_floor

    s = ctx.sizes
    events, limit, window = s.window_events, s.window_limit, s.window_s
    name = f"10. rate window {limit} per {window:g} s, {events:,} events"
    events_file = ctx.workdir / f"window-{events}.ndjson"
    write_events(events_file, events)
    with postgres() as server:
        for backend in ("SQLite", "PostgreSQL"):
            row = Row(name, f"ievents flush ({backend})", unit_count=events, is_ievents=True)
            rows.append(row)
            if backend == "PostgreSQL" and server is None:
                row.status = NO_PG
                continue
            for index in range(s.bulk_repeat):
                ctx.progress(f"{name}: {row.tool} ({index + 1}/{s.bulk_repeat})")
                params: dict[str, Any] = {"rate_limit": limit, "window": window}
                try:
                    result, stats = one_run(
                        ctx, server, backend, "ievents flush", events, events_file, **params
                    )
                except (OSError, subprocess.SubprocessError, RuntimeError) as exc:
                    row.failures.append(str(exc)[:80])
                    row.status = "failed"
                    continue
                accepted = stats.get("accepted", 0)
                problem = None if accepted == events else f"server accepted {accepted} of {events}"
                _note(row, result, events, problem)
                if stats.get("posts"):
                    row.extra.setdefault("pct_429", []).append(
                        100 * stats["count_429"] / stats["posts"]
                    )
                # The run's start: just after the window opened (see one_run).
                started = time.time() - result.seconds
                floor = rate_limit_floor(started, events, limit, window, 0.0)
                row.extra.setdefault("floor_s", []).append(floor)
                row.extra.setdefault("ratio_to_floor", []).append(result.seconds / floor)
    events_file.unlink()


def flush_targets(rows: list[Row]) -> list[Target]:
    """Issue 22, part 5: flush / floor, flat memory, the rate window."""
    from run import Target, find, unavailable

    out: list[Target] = []
    for backend in ("SQLite", "PostgreSQL"):
        sizes = sorted(
            {r.unit_count for r in rows if r.scenario.startswith("9.") and backend in r.scenario}
        )
        for tool in ("ievents flush", "ievents flush --watch"):
            for events in sizes:
                prefix = f"9. {events:,} queued"
                mine = next(
                    (
                        r
                        for r in rows
                        if r.scenario.startswith(prefix)
                        and backend in r.scenario
                        and r.tool.split(" (")[0] == tool
                    ),
                    None,
                )
                floor = next(
                    (
                        r
                        for r in rows
                        if r.scenario.startswith(prefix)
                        and backend in r.scenario
                        and r.tool == FLOOR_TOOL
                    ),
                    None,
                )
                name = f"{tool.removeprefix('ievents ')} / floor, {events:,} events ({backend})"
                reason = unavailable(mine) or unavailable(floor)
                if reason is not None or mine is None or floor is None:
                    out.append(Target(name, "-", f"<= {FLUSH_LIMIT}", reason or "skipped"))
                    continue
                ratio = (mine.median_s or 0.0) / (floor.median_s or 1e-9)
                out.append(
                    Target(
                        name,
                        f"{ratio:.2f} ({mine.median_s:.2f} s / {floor.median_s:.2f} s)",
                        f"<= {FLUSH_LIMIT}",
                        "PASS" if ratio <= FLUSH_LIMIT else "MISS",
                    )
                )
            if len(sizes) == 2:
                small, large = (
                    next(
                        (
                            r
                            for r in rows
                            if r.scenario.startswith(f"9. {n:,} queued")
                            and backend in r.scenario
                            and r.tool.split(" (")[0] == tool
                        ),
                        None,
                    )
                    for n in sizes
                )
                short = tool.removeprefix("ievents ")
                name = f"{short}: peak RSS at {sizes[1]:,} / at {sizes[0]:,} ({backend})"
                if small is None or large is None or not small.peak_mib or not large.peak_mib:
                    out.append(Target(name, "-", f"<= {FLAT_LIMIT}", "skipped"))
                    continue
                ratio = large.peak_mib / small.peak_mib
                out.append(
                    Target(
                        name,
                        f"{ratio:.2f} ({large.peak_mib:.1f} / {small.peak_mib:.1f} MiB)",
                        f"<= {FLAT_LIMIT}",
                        "PASS" if ratio <= FLAT_LIMIT else "MISS",
                    )
                )
    for backend in ("SQLite", "PostgreSQL"):
        row = find(rows, "10.", f"ievents flush ({backend})")
        reason = unavailable(row)
        for label, limit in (
            ("time / minimum", f"<= {WINDOW_LIMIT}"),
            ("requests answered 429", "0 %"),
        ):
            name = f"rate window: {label} ({backend})"
            if reason is not None or row is None:
                out.append(Target(name, "-", limit, reason or "skipped"))
                continue
            if label.startswith("time"):
                ratio = row.extra_median("ratio_to_floor") or 0.0
                out.append(
                    Target(
                        name,
                        f"{ratio:.2f} ({row.median_s:.2f} s / {row.extra_median('floor_s'):.2f} s)",
                        limit,
                        "PASS" if ratio <= WINDOW_LIMIT else "MISS",
                    )
                )
            else:
                worst = max(row.extra.get("pct_429", [0.0]))
                out.append(
                    Target(
                        name, f"{worst:.1f} % (worst run)", limit, "PASS" if worst == 0 else "MISS"
                    )
                )
    return out


if __name__ == "__main__":
    sys.exit("run it through benchmarks/run.py --only flush,window")
