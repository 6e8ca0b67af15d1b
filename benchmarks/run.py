"""ievents against the official SDK, HTTPie, curl and hand-written httpx loops, side by side.

    python benchmarks/run.py               # the full run (a few minutes)
    python benchmarks/run.py --quick       # fewer repetitions
    python benchmarks/run.py --smoke       # tiny sizes, one repetition: for CI, < 1 minute
    python benchmarks/run.py --only cold,queue --repeat 9 --json results.json

Each measured command is a fresh child process against a fake Intercom
(tests/fake_intercom.py) on 127.0.0.1; tools are alternated A, B, A, B; the table shows
medians, ratios against each baseline, the targets of issue 6 with PASS/MISS, and each
child's own peak RSS. Baselines that are not installed (python-intercom, HTTPie, curl) and
ievents commands that do not exist yet are shown as skipped or "n/a (not built yet)".
The exit status is 0 unless the harness itself breaks: timings never fail a run.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from capture_bench import capture_targets, scenario_capture  # noqa: E402
from flush_bench import flush_targets, scenario_flush, scenario_window  # noqa: E402
from harness import (  # noqa: E402
    BENCH_TOKEN,
    FakeServer,
    RunResult,
    machine_description,
    median,
    run_measured,
    run_quick,
)
from lanes_bench import lanes_targets, scenario_lanes, scenario_lanes_window  # noqa: E402
from outbox_bench import scenario_postgres, scenario_relay  # noqa: E402
from scrape_bench import scenario_scrape, scrape_targets  # noqa: E402

BENCH_DIR = Path(__file__).resolve().parent
NOT_BUILT = "n/a (not built yet)"
# Nothing listens on the discard port: a run that should not talk to a server cannot reach
# the real Intercom by accident either.
UNREACHABLE_URL = "http://127.0.0.1:9"


# -- sizes ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Sizes:
    """How big and how often: one instance per mode (full, quick, smoke)."""

    cold_repeat: int = 5
    bulk_repeat: int = 3
    warmup: int = 1
    bulk_events: int = 600
    bulk_latency: float = 0.05
    concurrency: int = 16
    rl_events: int = 600
    rl_limit: int = 200
    rl_window: float = 2.0
    rl_latency: float = 0.05
    ndjson_lines: int = 300_000
    capture_repeat: int = 3  # scenarios 11 and 12: at least 3 runs each, interleaved
    relay_events: int = 200
    scrape_events: int = 3_000
    scrape_ledger: int = 250_000
    flush_events: tuple[int, ...] = (3_000, 6_000)  # two sizes: flat memory
    window_events: int = 1_000
    window_limit: int = 400
    window_s: float = 10.0
    timeout: float = 300.0


FULL = Sizes()
QUICK = Sizes(cold_repeat=3, bulk_repeat=1)
SMOKE = Sizes(
    cold_repeat=1,
    bulk_repeat=1,
    warmup=0,
    bulk_events=4,
    bulk_latency=0.005,
    concurrency=4,
    rl_events=6,
    rl_limit=3,
    rl_window=1.0,
    rl_latency=0.005,
    ndjson_lines=200,
    capture_repeat=1,
    relay_events=5,
    scrape_events=30,
    scrape_ledger=1_000,
    flush_events=(20,),
    window_events=4,
    window_limit=2,
    window_s=1.0,
    timeout=60.0,
)


# -- results -------------------------------------------------------------------------------


@dataclass
class Row:
    """One tool in one scenario: its runs, or why it has none."""

    scenario: str
    tool: str
    unit_count: int = 1  # events or lines per run, for the throughput column
    unit: str = "events"
    status: str = "ok"  # ok | failed | skipped reason | NOT_BUILT
    is_ievents: bool = False
    reference_only: bool = False  # shown for context; its failures are expected
    seconds: list[float] = field(default_factory=list)
    peak_rss_mib: list[float] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    extra: dict[str, list[float]] = field(default_factory=dict)

    @property
    def measured(self) -> bool:
        return bool(self.seconds)

    @property
    def median_s(self) -> float | None:
        return median(self.seconds)

    @property
    def throughput(self) -> float | None:
        m = self.median_s
        return self.unit_count / m if m else None

    @property
    def peak_mib(self) -> float | None:
        return max(self.peak_rss_mib) if self.peak_rss_mib else None

    def extra_median(self, key: str) -> float | None:
        return median(self.extra.get(key, []))


@dataclass
class Target:
    """One of issue 6's targets and how this run did against it."""

    name: str
    measured: str
    limit: str
    verdict: str


@dataclass
class Context:
    """What every scenario needs: sizes, paths, the commands that exist, the environment."""

    sizes: Sizes
    workdir: Path
    ievents: list[str]
    python: str
    send_flags: set[str]
    batch_flags: set[str] | None  # None: no batch command
    has_sdk: bool
    httpie: str | None
    curl: str | None
    progress: Callable[[str], None]
    run_counter: int = 0

    def env(self, base_url: str = UNREACHABLE_URL, outbox: Path | None = None) -> dict[str, str]:
        """A clean environment: nothing from the user's shell beyond PATH and locale."""
        env = {
            k: os.environ[k] for k in ("PATH", "LANG", "LC_ALL", "SYSTEMROOT") if k in os.environ
        }
        env.update(
            {
                "HOME": str(self.workdir / "home"),
                "XDG_STATE_HOME": str(self.workdir / "state"),
                "XDG_CONFIG_HOME": str(self.workdir / "config"),
                "HTTPIE_CONFIG_DIR": str(self.workdir / "httpie"),
                "NO_COLOR": "1",
                "INTERCOM_ACCESS_TOKEN": BENCH_TOKEN,
                "INTERCOM_BASE_URL": base_url,
                "IEVENTS_OUTBOX": str(outbox or self.workdir / "outbox-default.sqlite3"),
            }
        )
        return env

    def fresh_dir(self, label: str) -> Path:
        self.run_counter += 1
        path = self.workdir / f"{self.run_counter:04d}-{label}"
        path.mkdir()
        return path

    @property
    def has_send_queue(self) -> bool:
        return "--queue" in self.send_flags

    def batch_has(self, flag: str) -> bool:
        return self.batch_flags is not None and flag in self.batch_flags


# -- contenders ----------------------------------------------------------------------------


@dataclass
class Contender:
    """A tool in a comparison: how to run it once and what a successful run looks like."""

    row: Row
    build: Callable[[Context, str, int, Path], list[str]]  # (ctx, server url, run index, dir)
    expect_accepted: int | None = None  # events the server must have accepted (None: any)
    expect_posts: int | None = None  # e.g. 0 for paths that must not touch the network
    latency: float = 0.0
    rate_limit: int | None = None
    window: float = 10.0
    needs_server: bool = True
    align_to_window: bool = False
    outbox: Path | None = None  # default: a fresh outbox per run
    check: Callable[[RunResult, Row], str | None] | None = None


def run_once(ctx: Context, c: Contender, index: int, *, record: bool) -> None:
    """One run of one contender, with its own fake server when it needs one."""
    rundir = ctx.fresh_dir(re.sub(r"[^a-z0-9]+", "-", c.row.tool.lower()).strip("-"))
    server_cm = (
        FakeServer(ctx.workdir, latency=c.latency, rate_limit=c.rate_limit, window=c.window)
        if c.needs_server
        else nullcontext()
    )
    with server_cm as server:
        url = server.url if isinstance(server, FakeServer) else UNREACHABLE_URL
        argv = c.build(ctx, url, index, rundir)
        env = ctx.env(base_url=url, outbox=c.outbox or rundir / "outbox.sqlite3")
        if c.align_to_window:
            wait_for_window_start(c.window)
        wall_start = time.time()
        result = run_measured(argv, env=env, cwd=rundir, timeout=ctx.sizes.timeout)
    if isinstance(server, FakeServer):
        result.server_stats = server.stats
    if not record:
        return
    row = c.row
    problem: str | None = None
    stats = result.server_stats
    if c.needs_server and not stats:
        problem = "fake server wrote no stats"
    if problem is None and c.expect_accepted is not None:
        accepted = stats.get("accepted", 0)
        if accepted != c.expect_accepted:
            problem = f"server accepted {accepted} of {c.expect_accepted}"
    if not result.ok:
        problem = result.failure_summary() + (f" ({problem})" if problem else "")
    if problem is None and c.expect_posts is not None and stats.get("posts", 0) != c.expect_posts:
        problem = f"{stats.get('posts')} requests reached the server, expected {c.expect_posts}"
    if problem is None and c.check is not None:
        problem = c.check(result, row)
    if stats.get("posts"):
        row.extra.setdefault("pct_429", []).append(100 * stats["count_429"] / stats["posts"])
        row.extra.setdefault("accepted", []).append(float(stats["accepted"]))
    if c.align_to_window:
        floor = rate_limit_floor(wall_start, row.unit_count, c.rate_limit or 1, c.window, c.latency)
        row.extra.setdefault("floor_s", []).append(floor)
        row.extra.setdefault("ratio_to_floor", []).append(result.seconds / floor)
    if problem is not None and not row.reference_only:
        row.failures.append(problem)
        row.status = "failed"
        return
    if problem is not None:
        row.notes.append(problem)
    row.seconds.append(result.seconds)
    row.peak_rss_mib.append(result.peak_rss_mib)


def compare(
    ctx: Context, title: str, contenders: list[Contender], repeat: int, warmup: int = 0
) -> None:
    """Warm up each available contender, then run them in turn: A, B, C, A, B, C, ..."""
    live = [c for c in contenders if c.row.status == "ok"]
    if not live:
        return
    for c in live:
        for i in range(warmup):
            run_once(ctx, c, -1 - i, record=False)
    for rep in range(repeat):
        for c in live:
            ctx.progress(f"{title}: {c.row.tool} ({rep + 1}/{repeat})")
            run_once(ctx, c, rep, record=True)


def wait_for_window_start(window: float, offset: float = 0.05) -> None:
    """Sleep until just after a rate-limit window opens (the fake aligns windows to epoch
    multiples), so every run starts with the same full window ahead of it."""
    phase = time.time() % window
    delay = (offset - phase) % window
    time.sleep(delay)


def rate_limit_floor(start: float, events: int, limit: int, window: float, rtt: float) -> float:
    """The least time the limit allows for ``events`` requests started at wall time ``start``.

    Windows are fixed and aligned to multiples of ``window``; the current one still has
    ``window - phase`` seconds. At best the first ``limit`` go out in the current window,
    the next ``limit`` in the following one, and so on; the last batch can start only when
    the last needed window opens, and takes one round trip.
    """
    windows_needed = math.ceil(events / limit)
    if windows_needed <= 1:
        return rtt
    phase = start % window
    return (window - phase) + (windows_needed - 2) * window + rtt


# -- feature detection ---------------------------------------------------------------------


def help_flags(ctx_env: dict[str, str], argv: list[str], cwd: Path) -> set[str] | None:
    """The long options a command's --help lists, or None when the command does not exist."""
    env = {**ctx_env, "COLUMNS": "200", "TERM": "dumb"}
    try:
        done = run_quick([*argv, "--help"], env=env, cwd=cwd)
    except (OSError, TimeoutError):
        return None
    if done.returncode != 0:
        return None
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*)", done.stdout))


def detect(ctx: Context) -> None:
    env = ctx.env()
    ctx.send_flags = help_flags(env, [*ctx.ievents, "send"], ctx.workdir) or set()
    ctx.batch_flags = help_flags(env, [*ctx.ievents, "batch"], ctx.workdir)
    sdk = run_quick(
        [ctx.python, "-c", "from intercom import AsyncIntercom, Intercom"], env=env, cwd=ctx.workdir
    )
    ctx.has_sdk = sdk.returncode == 0
    # HTTPie otherwise spawns a daemon that fetches its latest version from the internet.
    httpie_dir = ctx.workdir / "httpie"
    httpie_dir.mkdir(exist_ok=True)
    (httpie_dir / "config.json").write_text(json.dumps({"disable_update_warnings": True}))
    venv_bin = str(Path(ctx.python).parent)
    http = shutil.which("http", path=venv_bin + os.pathsep + os.environ.get("PATH", ""))
    if http is not None:
        version = run_quick([http, "--version"], env=env, cwd=ctx.workdir)
        http = http if version.returncode == 0 else None
    ctx.httpie = http
    ctx.curl = shutil.which("curl")


# -- scenario builders ---------------------------------------------------------------------

SDK_MISSING = "skipped (python-intercom not installed)"
HTTPX_ONE_SHOT = "bare httpx script"


def sample_event(index: int, prefix: str) -> dict[str, Any]:
    return {
        "event_name": "bench-event",
        "created_at": int(time.time()),
        "user_id": f"{prefix}{index}",
        "metadata": {"plan": "pro", "seats": "3"},
    }


def ievents_send(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
    return [
        *ctx.ievents,
        "send",
        "bench-event",
        "--user-id",
        f"cold-{index}",
        "-m",
        "plan=pro",
        "-m",
        "seats=3",
    ]


def ievents_send_queue(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
    return [*ievents_send(ctx, url, index, rundir), "--queue"]


def httpx_one(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
    return [ctx.python, str(BENCH_DIR / "httpx_send_one.py"), f"cold-{index}"]


def sdk_one(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
    return [ctx.python, str(BENCH_DIR / "sdk_send_one.py"), f"cold-{index}"]


def httpie_one(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
    assert ctx.httpie is not None
    body = sample_event(index, "cold-")
    return [
        ctx.httpie,
        "--ignore-stdin",
        "--check-status",
        "--quiet",
        "POST",
        f"{url}/events",
        f"Authorization:Bearer {BENCH_TOKEN}",
        f"event_name={body['event_name']}",
        f"user_id={body['user_id']}",
        f"created_at:={body['created_at']}",
        f"metadata:={json.dumps(body['metadata'])}",
    ]


def curl_one(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
    assert ctx.curl is not None
    return [
        ctx.curl,
        "-sS",
        "-f",
        "-o",
        os.devnull,
        "-X",
        "POST",
        "-H",
        f"Authorization: Bearer {BENCH_TOKEN}",
        "-H",
        "Content-Type: application/json",
        "-H",
        "Accept: application/json",
        "--data-binary",
        json.dumps(sample_event(index, "cold-")),
        f"{url}/events",
    ]


def baseline(kind: str, events: int, concurrency: int) -> Callable[..., list[str]]:
    def build(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
        return [
            ctx.python,
            str(BENCH_DIR / "baselines.py"),
            kind,
            "--events",
            str(events),
            "--concurrency",
            str(concurrency),
        ]

    return build


def write_ndjson(path: Path, lines: int, *, seed: int = 6) -> None:
    """Valid events of the shapes users send: user ids or e-mails, Unix or ISO times, and
    metadata with strings, numbers, dates and the odd rich link or price."""
    rng = random.Random(seed)
    plans = ["free", "pro", "team", "enterprise"]
    with path.open("w", encoding="utf-8") as out:
        for i in range(lines):
            record: dict[str, Any] = {"event_name": rng.choice(["signed-up", "paid", "invited"])}
            if i % 3 == 0:
                record["email"] = f"user{i}@example.org"
            else:
                record["user_id"] = f"u{i}"
            ts = 1_700_000_000 + i
            record["created_at"] = (
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts)) if i % 4 == 0 else ts
            )
            meta: dict[str, Any] = {"plan": rng.choice(plans), "seats": rng.randint(1, 50)}
            if i % 5 == 0:
                meta["renewal_date"] = ts + 86_400 * 30
            if i % 7 == 0:
                meta["invoice"] = {"url": f"https://example.org/i/{i}", "value": f"INV-{i}"}
            if i % 11 == 0:
                meta["price"] = {"amount": rng.randint(100, 99_999), "currency": "usd"}
            record["metadata"] = meta
            out.write(json.dumps(record, separators=(",", ":")) + "\n")


def ievents_batch(extra: Sequence[str]) -> Callable[..., list[str]]:
    def build(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
        json_flag = ["--json"] if ctx.batch_has("--json") else []
        return [*ctx.ievents, "batch", str(ctx.workdir / "events.ndjson"), *extra, *json_flag]

    return build


def summary_check(expect_key: str, expected: int) -> Callable[[RunResult, Row], str | None]:
    """When batch printed its --json summary, check one of its counts."""

    def check(result: RunResult, row: Row) -> str | None:
        summary = result.json_stdout()
        if summary is None:
            return None
        got = summary.get(expect_key)
        if got is not None and got != expected:
            return f"summary says {expect_key}={got}, expected {expected}"
        return None

    return check


def scenario_cold(ctx: Context, rows: list[Row]) -> None:
    name = "1. one event, cold process"
    ievents_row = Row(name, "ievents send", is_ievents=True)
    sdk_row = Row(name, "SDK one-shot script", status="ok" if ctx.has_sdk else SDK_MISSING)
    httpie_row = Row(
        name, "HTTPie", status="ok" if ctx.httpie else "skipped (HTTPie not installed)"
    )
    curl_row = Row(name, "curl", status="ok" if ctx.curl else "skipped (curl not installed)")
    httpx_row = Row(name, HTTPX_ONE_SHOT)
    contenders = [
        Contender(ievents_row, ievents_send, expect_accepted=1),
        Contender(httpx_row, httpx_one, expect_accepted=1),
        Contender(sdk_row, sdk_one, expect_accepted=1),
        Contender(httpie_row, httpie_one, expect_accepted=1),
        Contender(curl_row, curl_one, expect_accepted=1),
    ]
    rows += [c.row for c in contenders]
    compare(ctx, name, contenders, ctx.sizes.cold_repeat, ctx.sizes.warmup)


def scenario_queue(ctx: Context, rows: list[Row]) -> None:
    name = "2. send --queue, cold process"
    queue_row = Row(
        name,
        "ievents send --queue",
        is_ievents=True,
        status="ok" if ctx.has_send_queue else NOT_BUILT,
    )
    sdk_row = Row(name, "SDK one-shot script", status="ok" if ctx.has_sdk else SDK_MISSING)
    # One outbox for all runs, created by the warm-up: a cron job appends to an existing one.
    outbox = ctx.workdir / "queue-outbox.sqlite3"
    contenders = [
        Contender(queue_row, ievents_send_queue, expect_posts=0, outbox=outbox),
        Contender(sdk_row, sdk_one, expect_accepted=1),
    ]
    rows += [c.row for c in contenders]
    compare(ctx, name, contenders, ctx.sizes.cold_repeat, ctx.sizes.warmup)


def scenario_bulk(ctx: Context, rows: list[Row]) -> None:
    s = ctx.sizes
    n, conc = s.bulk_events, s.concurrency
    name = f"3. {n} events, {s.bulk_latency * 1000:g} ms round trip"
    write_ndjson(ctx.workdir / "events.ndjson", n)
    batch_row = Row(
        name,
        "ievents batch",
        unit_count=n,
        is_ievents=True,
        status="ok" if ctx.batch_flags is not None else NOT_BUILT,
    )
    sdk_status = "ok" if ctx.has_sdk else SDK_MISSING
    sdk_seq = Row(name, "SDK sequential loop", unit_count=n, status=sdk_status)
    sdk_async = Row(name, f"SDK async, {conc} in flight", unit_count=n, status=sdk_status)
    httpx_seq = Row(name, "httpx sequential loop", unit_count=n)
    httpx_async = Row(name, f"httpx async, {conc} in flight", unit_count=n)
    lat = s.bulk_latency
    contenders = [
        Contender(
            batch_row,
            ievents_batch([]),
            expect_accepted=n,
            latency=lat,
            check=summary_check("delivered", n),
        ),
        Contender(sdk_seq, baseline("sdk-seq", n, conc), expect_accepted=n, latency=lat),
        Contender(sdk_async, baseline("sdk-async", n, conc), expect_accepted=n, latency=lat),
        Contender(httpx_seq, baseline("httpx-seq", n, conc), expect_accepted=n, latency=lat),
        Contender(httpx_async, baseline("httpx-async", n, conc), expect_accepted=n, latency=lat),
    ]
    rows += [c.row for c in contenders]
    # No warm-up: the sequential loops take half a minute each, and a cold page cache
    # matters little next to that; the cold-start scenarios warm up.
    compare(ctx, name, contenders, s.bulk_repeat)
    (ctx.workdir / "events.ndjson").unlink()


def scenario_rate_limit(ctx: Context, rows: list[Row]) -> None:
    s = ctx.sizes
    n = s.rl_events
    name = f"4. rate limit {s.rl_limit} per {s.rl_window:g} s, {n} events"
    write_ndjson(ctx.workdir / "events.ndjson", n)
    batch_row = Row(
        name,
        "ievents batch",
        unit_count=n,
        is_ievents=True,
        status="ok" if ctx.batch_flags is not None else NOT_BUILT,
    )
    naive_row = Row(
        name,
        f"httpx async, {s.concurrency} in flight (no pacing, no retry)",
        unit_count=n,
        reference_only=True,
    )
    common: dict[str, Any] = {
        "latency": s.rl_latency,
        "rate_limit": s.rl_limit,
        "window": s.rl_window,
        "align_to_window": True,
    }
    contenders = [
        Contender(
            batch_row,
            ievents_batch([]),
            expect_accepted=n,
            check=summary_check("delivered", n),
            **common,
        ),
        Contender(
            naive_row, baseline("httpx-async", n, s.concurrency), expect_accepted=n, **common
        ),
    ]
    rows += [c.row for c in contenders]
    compare(ctx, name, contenders, s.bulk_repeat)
    (ctx.workdir / "events.ndjson").unlink()


def scenario_ndjson(ctx: Context, rows: list[Row]) -> None:
    s = ctx.sizes
    n = s.ndjson_lines
    name = f"5. {n:,}-line NDJSON"
    write_ndjson(ctx.workdir / "events.ndjson", n)
    dry_row = Row(
        name,
        "ievents batch --dry-run",
        unit_count=n,
        unit="lines",
        is_ievents=True,
        status="ok" if ctx.batch_has("--dry-run") else NOT_BUILT,
    )
    queue_row = Row(
        name,
        "ievents batch --queue",
        unit_count=n,
        is_ievents=True,
        status="ok" if ctx.batch_has("--queue") else NOT_BUILT,
    )
    floor_row = Row(name, "floor: json.loads per line", unit_count=n, unit="lines")

    def floor(ctx: Context, url: str, index: int, rundir: Path) -> list[str]:
        return [
            ctx.python,
            str(BENCH_DIR / "baselines.py"),
            "parse-floor",
            str(ctx.workdir / "events.ndjson"),
        ]

    contenders = [
        Contender(
            dry_row,
            ievents_batch(["--dry-run"]),
            needs_server=False,
            check=summary_check("valid", n),
        ),
        Contender(
            queue_row,
            ievents_batch(["--queue"]),
            needs_server=False,
            check=summary_check("valid", n),
        ),
        Contender(floor_row, floor, needs_server=False),
    ]
    rows += [c.row for c in contenders]
    compare(ctx, name, contenders, s.bulk_repeat)
    (ctx.workdir / "events.ndjson").unlink()


SCENARIOS: dict[str, Callable[[Context, list[Row]], None]] = {
    "cold": scenario_cold,
    "queue": scenario_queue,
    "bulk": scenario_bulk,
    "ratelimit": scenario_rate_limit,
    "ndjson": scenario_ndjson,
    "postgres": scenario_postgres,
    "relay": scenario_relay,
    "scrape": scenario_scrape,
    "flush": scenario_flush,
    "window": scenario_window,
    "capture": scenario_capture,
    "lanes": scenario_lanes,
    "lanes_window": scenario_lanes_window,
}


# -- targets -------------------------------------------------------------------------------


def find(rows: list[Row], scenario_prefix: str, tool: str) -> Row | None:
    for row in rows:
        if row.scenario.startswith(scenario_prefix) and row.tool.startswith(tool):
            return row
    return None


def unavailable(row: Row | None) -> str | None:
    """Why a row cannot back a target verdict, or None when it can."""
    if row is None:
        return "n/a (not run)"
    if row.status == NOT_BUILT or row.status.startswith("skipped"):
        return row.status
    if row.failures:
        return f"MISS ({len(row.failures)} run(s) failed: {row.failures[0]})"
    if not row.measured:
        return "n/a (no runs)"
    return None


def ratio_target(
    rows: list[Row], name: str, num: Row | None, den: Row | None, limit: float
) -> Target:
    reason = unavailable(num) or unavailable(den)
    if reason is not None:
        return Target(name, "-", f"<= {limit:g}", reason)
    assert num is not None and den is not None
    ratio = (num.median_s or 0) / (den.median_s or 1)
    return Target(
        name,
        f"{ratio:.2f} ({fmt_s(num.median_s)} / {fmt_s(den.median_s)})",
        f"<= {limit:g}",
        "PASS" if ratio <= limit else "MISS",
    )


def targets_for(rows: list[Row], sizes: Sizes) -> list[Target]:
    out: list[Target] = []
    send = find(rows, "1.", "ievents send")
    out.append(
        ratio_target(rows, "send / SDK one-shot", send, find(rows, "1.", "SDK one-shot"), 0.85)
    )
    out.append(ratio_target(rows, "send / HTTPie", send, find(rows, "1.", "HTTPie"), 0.85))
    out.append(
        ratio_target(
            rows, "send / bare httpx script (issue 24)", send, find(rows, "1.", HTTPX_ONE_SHOT), 1.2
        )
    )
    out.append(
        ratio_target(
            rows,
            "send --queue / SDK one-shot",
            find(rows, "2.", "ievents send --queue"),
            find(rows, "2.", "SDK one-shot"),
            0.6,
        )
    )
    batch = find(rows, "3.", "ievents batch")
    out.append(
        ratio_target(
            rows, "batch / SDK sequential loop", batch, find(rows, "3.", "SDK sequential"), 0.1
        )
    )
    out.append(
        ratio_target(
            rows,
            f"batch / SDK async {sizes.concurrency} in flight",
            batch,
            find(rows, "3.", "SDK async"),
            1.0,
        )
    )

    rl = find(rows, "4.", "ievents batch")
    reason = unavailable(rl)
    if reason is not None:
        out.append(Target("rate limit: time / minimum", "-", "<= 1.35", reason))
        out.append(Target("rate limit: requests answered 429", "-", "<= 5 %", reason))
    else:
        assert rl is not None
        ratio = rl.extra_median("ratio_to_floor") or 0.0
        floor = rl.extra_median("floor_s")
        out.append(
            Target(
                "rate limit: time / minimum",
                f"{ratio:.2f} ({fmt_s(rl.median_s)} / {fmt_s(floor)})",
                "<= 1.35",
                "PASS" if ratio <= 1.35 else "MISS",
            )
        )
        pct = max(rl.extra.get("pct_429", [0.0]))
        out.append(
            Target(
                "rate limit: requests answered 429 (worst run)",
                f"{pct:.1f} %",
                "<= 5 %",
                "PASS" if pct <= 5 else "MISS",
            )
        )

    for tool, min_rate, max_mib in (
        ("ievents batch --dry-run", 30_000, 80),
        ("ievents batch --queue", 20_000, 100),
    ):
        row = find(rows, "5.", tool)
        reason = unavailable(row)
        label = tool.replace("ievents ", "")
        if reason is not None:
            unit = "lines" if "dry" in tool else "events"
            out.append(Target(f"{label}: {unit}/s", "-", f">= {min_rate:,}", reason))
            out.append(Target(f"{label}: peak memory", "-", f"<= {max_mib} MiB", reason))
            continue
        assert row is not None
        rate = row.throughput or 0.0
        peak = row.peak_mib or 0.0
        small = sizes.ndjson_lines < 100_000
        note = " (small file: not comparable)" if small else ""
        out.append(
            Target(
                f"{label}: {row.unit}/s",
                f"{rate:,.0f}{note}",
                f">= {min_rate:,}",
                "PASS" if rate >= min_rate else "MISS",
            )
        )
        out.append(
            Target(
                f"{label}: peak memory",
                f"{peak:.1f} MiB",
                f"<= {max_mib} MiB",
                "PASS" if peak <= max_mib else "MISS",
            )
        )
    out += outbox_targets(rows, sizes)
    out += scrape_targets(rows)
    out += flush_targets(rows)
    out += capture_targets(rows)
    out += lanes_targets(rows)
    return out


def outbox_targets(rows: list[Row], sizes: Sizes) -> list[Target]:
    """Issue 11: batch --queue into PostgreSQL, and the relay's p95 latency."""
    out: list[Target] = []
    row = find(rows, "6.", "ievents batch --queue (PostgreSQL)")
    reason = unavailable(row)
    if reason is not None:
        out.append(Target("batch --queue into PostgreSQL: events/s", "-", ">= 20,000", reason))
        out.append(Target("batch --queue into PostgreSQL: peak memory", "-", "<= 100 MiB", reason))
    else:
        assert row is not None
        rate = row.throughput or 0.0
        note = " (small file: not comparable)" if sizes.ndjson_lines < 100_000 else ""
        out.append(
            Target(
                "batch --queue into PostgreSQL: events/s",
                f"{rate:,.0f}{note}",
                ">= 20,000",
                "PASS" if rate >= 20_000 else "MISS",
            )
        )
        peak = row.peak_mib or 0.0
        out.append(
            Target(
                "batch --queue into PostgreSQL: peak memory",
                f"{peak:.1f} MiB",
                "<= 100 MiB",
                "PASS" if peak <= 100 else "MISS",
            )
        )
    for backend, limit in (("PostgreSQL", 1.0), ("SQLite", 2.0)):
        row = find(rows, "7.", f"ievents flush --watch ({backend})")
        name = f"relay latency p95, capture to 202 ({backend})"
        reason = unavailable(row)
        if reason is not None:
            out.append(Target(name, "-", f"<= {limit:g} s", reason))
            continue
        assert row is not None
        p95 = row.median_s or 0.0
        out.append(Target(name, fmt_s(p95), f"<= {limit:g} s", "PASS" if p95 <= limit else "MISS"))
    return out


# -- output --------------------------------------------------------------------------------


def fmt_s(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def markdown_table(header: Sequence[str], body: Sequence[Sequence[str]]) -> str:
    widths = [max(len(str(cell)) for cell in col) for col in zip(header, *body, strict=False)]

    def line(cells: Sequence[str]) -> str:
        return (
            "| " + " | ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=False)) + " |"
        )

    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in body)])


def results_table(rows: list[Row]) -> str:
    body: list[list[str]] = []
    ievents_median: dict[str, float | None] = {}
    for row in rows:
        if row.is_ievents and row.scenario not in ievents_median:
            ievents_median[row.scenario] = row.median_s
    for row in rows:
        if row.status in ("ok", "failed") or row.measured:
            runs = f"{len(row.seconds)}" + (
                f" ({len(row.failures)} failed)" if row.failures else ""
            )
        else:
            runs = "-"
        rate = (
            f"{row.throughput:,.0f} {row.unit}/s" if row.throughput and row.unit_count > 1 else ""
        )
        own = ievents_median.get(row.scenario)
        ratio = ""
        if not row.is_ievents and not row.reference_only and own and row.median_s:
            ratio = f"{own / row.median_s:.2f}"
        notes: list[str] = []
        if row.status not in ("ok", "failed"):
            notes.append(row.status)
        if row.failures:
            notes.append(row.failures[0])
        if row.extra.get("ratio_to_floor"):
            notes.append(f"minimum {fmt_s(row.extra_median('floor_s'))}")
        pct = row.extra.get("pct_429")
        if pct and (max(pct) > 0 or row.extra.get("ratio_to_floor")):
            notes.append(f"429s {median(pct):.1f} %")
        if row.extra.get("p50"):
            worst = max(row.extra.get("max", [0.0]))
            notes.append(f"p50 {fmt_s(row.extra_median('p50'))}, worst {fmt_s(worst)}")
        if row.extra.get("cpu_ms_per_event"):
            notes.append(f"CPU {row.extra_median('cpu_ms_per_event'):.2f} ms/event")
        if row.extra.get("scrapes_per_s"):
            notes.append(f"{row.extra_median('scrapes_per_s'):,.0f} scrapes/s answered")
        if row.reference_only and row.notes:
            notes.append(row.notes[0])
        peak = f"{row.peak_mib:.1f}" if row.peak_mib is not None else ""
        body.append(
            [row.scenario, row.tool, runs, fmt_s(row.median_s), rate, ratio, peak, "; ".join(notes)]
        )
    header = [
        "scenario",
        "tool",
        "runs",
        "median",
        "throughput",
        "ievents ÷ this",
        "peak MiB",
        "notes",
    ]
    return markdown_table(header, body)


def targets_table(targets: list[Target]) -> str:
    return markdown_table(
        ["target (issue 6, 11)", "measured", "limit", "verdict"],
        [[t.name, t.measured, t.limit, t.verdict] for t in targets],
    )


# -- main ----------------------------------------------------------------------------------


def default_ievents_command(python: str) -> list[str]:
    """The installed ``ievents`` script beside the interpreter, as users run it."""
    script = Path(python).parent / "ievents"
    if script.is_file() and os.access(script, os.X_OK):
        return [str(script)]
    return [python, "-m", "intercom_events_cli"]


@contextmanager
def work_directory(keep: bool) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="ievents-bench-"))
    try:
        yield path
    finally:
        if keep:
            print(f"kept {path}", file=sys.stderr)
        else:
            shutil.rmtree(path, ignore_errors=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description="Benchmark ievents against the official SDK, HTTPie, curl and httpx loops.",
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--smoke", action="store_true", help="tiny sizes, one repetition (CI)")
    mode.add_argument("--quick", action="store_true", help="fewer repetitions")
    parser.add_argument("--repeat", type=int, help="repetitions for every scenario")
    parser.add_argument(
        "--only",
        default=",".join(SCENARIOS),
        help=f"comma-separated scenarios to run (default: all of {','.join(SCENARIOS)})",
    )
    parser.add_argument("--json", dest="json_path", type=Path, help="write the results here")
    parser.add_argument(
        "--ievents",
        help="command that runs ievents (default: the ievents script beside this Python)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the temporary directory")
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress on stderr")
    args = parser.parse_args(argv)
    unknown = set(args.only.split(",")) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(sorted(unknown))}")
    if args.repeat is not None and args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = SMOKE if args.smoke else QUICK if args.quick else FULL
    if args.repeat is not None:
        sizes = Sizes(
            **{
                **asdict(sizes),
                "cold_repeat": args.repeat,
                "bulk_repeat": args.repeat,
                "capture_repeat": max(args.repeat, sizes.capture_repeat),
            }
        )
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    python = sys.executable
    ievents = shlex.split(args.ievents) if args.ievents else default_ievents_command(python)

    def progress(message: str) -> None:
        if not args.quiet:
            print(f"  {message}", file=sys.stderr, flush=True)

    started = time.perf_counter()
    rows: list[Row] = []
    with work_directory(args.keep) as workdir:
        ctx = Context(
            sizes=sizes,
            workdir=workdir,
            ievents=ievents,
            python=python,
            send_flags=set(),
            batch_flags=None,
            has_sdk=False,
            httpie=None,
            curl=None,
            progress=progress,
        )
        detect(ctx)
        for key in args.only.split(","):
            SCENARIOS[key](ctx, rows)
    targets = targets_for(rows, sizes)
    elapsed = time.perf_counter() - started

    machine = machine_description()
    print(
        f"ievents benchmark ({mode}; {machine['cpu']}, {machine['cores']} cores, "
        f"Python {machine['python']}, {machine['os']}; {elapsed:.0f} s)\n"
    )
    print(results_table(rows))
    print()
    print(targets_table(targets))
    if args.smoke:
        print("\n(smoke run: sizes are tiny, so the verdicts say nothing about speed)")
    if args.json_path is not None:
        document = {
            "mode": mode,
            "machine": machine,
            "sizes": asdict(sizes),
            "ievents_command": ievents,
            "elapsed_s": elapsed,
            "rows": [
                {
                    **asdict(r),
                    "median_s": r.median_s,
                    "throughput_per_s": r.throughput,
                    "max_peak_rss_mib": r.peak_mib,
                }
                for r in rows
            ],
            "targets": [asdict(t) for t in targets],
        }
        args.json_path.write_text(json.dumps(document, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
